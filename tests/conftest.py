"""Shared fixtures: the corpus beside the repository, a per-format summary line, and the
proxy's end-to-end servers (``e2e``, see proxy_harness.py)."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from weather import WEATHER_TOOLS

if TYPE_CHECKING:
    from proxy_harness import E2E

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("TOOLMEND_CORPUS", REPO.parent / "shared" / "corpus"))

# format -> [passed, total], filled by test_corpus.py and printed at the end of the run.
CORPUS_SUMMARY: dict[str, list[int]] = {}


def load_corpus() -> list[dict[str, Any]]:
    files = sorted(CORPUS.glob("*.jsonl"))
    if not files:
        raise RuntimeError(f"corpus not found at {CORPUS} (set TOOLMEND_CORPUS)")
    cases: list[dict[str, Any]] = []
    for f in files:
        with f.open(encoding="utf-8") as fh:
            cases.extend(json.loads(line) for line in fh if line.strip())
    return cases


def load_exceptions() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    with (REPO / "tests" / "corpus_exceptions.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                entry = json.loads(line)
                out[entry["id"]] = entry
    return out


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not CORPUS_SUMMARY:
        return
    tr = terminalreporter
    tr.section("corpus conformance (Python API), passed/total per format")
    for fmt in sorted(CORPUS_SUMMARY):
        ok, n = CORPUS_SUMMARY[fmt]
        tr.write_line(f"  {fmt:18} {ok:3}/{n:3}")
    ok = sum(v[0] for v in CORPUS_SUMMARY.values())
    n = sum(v[1] for v in CORPUS_SUMMARY.values())
    tr.write_line(f"  {'all':18} {ok:3}/{n:3}")


@pytest.fixture
def weather_tools() -> Iterator[list[dict[str, Any]]]:
    yield copy.deepcopy(WEATHER_TOOLS)


@pytest.fixture(scope="session")
def e2e() -> Iterator[E2E]:
    """The scripted backend and the proxy in front of it, on real uvicorn servers."""
    # Imported here: proxy_harness imports this module (the corpus loader).
    from proxy_harness import E2E

    env = E2E.start()
    try:
        yield env
    finally:
        env.stop()
