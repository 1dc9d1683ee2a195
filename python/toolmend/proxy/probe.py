"""Finding a local backend: ask the usual ports for ``GET /v1/models``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp


@dataclass(frozen=True)
class Candidate:
    """A server we look for: its name and its default port on 127.0.0.1."""

    name: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


CANDIDATES = (
    Candidate("Ollama", 11434),
    Candidate("vLLM or SGLang", 8000),
    Candidate("SGLang", 30000),
    Candidate("llama.cpp server", 8080),
    Candidate("LM Studio", 1234),
    Candidate("exo", 52415),
)


async def _answers(session: aiohttp.ClientSession, c: Candidate) -> bool:
    try:
        async with session.get(f"{c.url}/models") as resp:
            return resp.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
        return False


async def find_backend(
    candidates: tuple[Candidate, ...] = CANDIDATES, timeout: float = 1.5
) -> tuple[Candidate | None, list[Candidate]]:
    """Probes every candidate at once; returns the first (in list order) that answered, and
    the list of what was tried."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        results = await asyncio.gather(*(_answers(session, c) for c in candidates))
    for c, ok in zip(candidates, results):
        if ok:
            return c, list(candidates)
    return None, list(candidates)
