"""The middleware pipeline: small typed steps around one chat request and its mended answer.

A step may change the request before it goes to the backend (:meth:`Step.prepare`), report
what is wrong with an answer so that the model is asked again (:meth:`Step.check`), and
rewrite the accepted answer (:meth:`Step.finalize`). :class:`Pipeline` runs them around a
backend call, retrying with feedback up to ``max_attempts``. The proxy is built from these
steps (``toolmend.steps``); the same pipeline runs in your own server or loop::

    from toolmend.pipeline import Pipeline, Turn
    from toolmend.steps import default_steps

    pipeline = Pipeline(default_steps(), max_attempts=3)
    answer = await pipeline.run(Turn(request), backend)     # backend: async (request) -> Answer

An :class:`Answer` is the mended assistant message of one attempt: content, calls and the
core's diagnostics about them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from toolmend._core import Diagnostic

#: Diagnostic kinds that make a call unusable even after repair and coercion.
UNUSABLE = frozenset(
    {
        "schema_violation",
        "unknown_tool",
        "truncated",
        "truncated_arguments",
        "truncated_name",
        "unclosed_call",
        "unclosed_string",
        "unclosed_value",
        "unclosed_list",
    }
)


@dataclass
class Call:
    """One tool call of an answer (``arguments`` is JSON object text)."""

    id: str
    name: str
    arguments: str

    def as_openai(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass
class Answer:
    """The mended assistant message of one attempt."""

    content: str | None = None
    calls: list[Call] = field(default_factory=list)
    finish_reason: str = "stop"
    reasoning: str | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    format: str | None = None
    #: How many of the calls the backend structured itself (the rest were parsed from text).
    native_calls: int = 0

    def problems(self) -> list[str]:
        """What makes this answer's calls unusable, one line each."""
        out: list[str] = []
        for d in self.diagnostics:
            if d.kind in ("schema_violation", "unknown_tool"):
                out.append(d.message)
            elif d.kind in UNUSABLE:
                text = f"a tool call broke off before it was complete ({d.message})"
                if text not in out:
                    out.append(text)
        return out

    def as_message(self) -> dict[str, Any]:
        """The answer as an OpenAI assistant message."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.calls:
            msg["tool_calls"] = [c.as_openai() for c in self.calls]
        return msg


@dataclass
class Turn:
    """One client request going through the pipeline. ``request`` is what the backend gets;
    ``original`` is the client's request as it arrived. Steps change ``request`` by replacing
    its top-level values (a new ``messages`` or ``tools`` list), never by mutating them in
    place, so ``original`` is a cheap shallow copy even for a long history."""

    request: dict[str, Any]
    original: dict[str, Any] = field(default_factory=dict)
    attempt: int = 0
    #: Problems found per attempt (filled by the pipeline, read by steps and metrics).
    history: list[list[str]] = field(default_factory=list)
    #: Free-form notes steps leave for later steps (e.g. "respond_injected").
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.original:
            self.original = dict(self.request)

    @property
    def tools(self) -> list[dict[str, Any]]:
        tools = self.request.get("tools")
        return tools if isinstance(tools, list) else []

    def tool_names(self) -> list[str]:
        names = []
        for t in self.tools:
            fn = t.get("function") if isinstance(t, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("name"), str):
                names.append(fn["name"])
        return names


class Step(Protocol):
    """A pipeline step. Every method has a do-nothing default in :class:`BaseStep`."""

    name: str

    def prepare(self, turn: Turn) -> None:
        """Adjusts ``turn.request`` before the first attempt."""

    def check(self, turn: Turn, answer: Answer) -> list[str]:
        """What is wrong with ``answer`` (empty: nothing; the model is asked again otherwise)."""

    def finalize(self, turn: Turn, answer: Answer) -> Answer:
        """The answer the client gets (after the last attempt)."""

    def holds_calls(self, turn: Turn) -> bool:
        """Whether this step must see a whole answer before any call reaches the client."""


class BaseStep:
    """A step that does nothing; subclass it and override what you need."""

    name = "step"

    def prepare(self, turn: Turn) -> None:
        return None

    def check(self, turn: Turn, answer: Answer) -> list[str]:
        return []

    def finalize(self, turn: Turn, answer: Answer) -> Answer:
        return answer

    def holds_calls(self, turn: Turn) -> bool:
        return False


class BackendError(Exception):
    """A backend answer that may succeed when asked again later (HTTP 429 / 503)."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


Backend = Callable[[dict[str, Any]], Awaitable[Answer]]


def feedback_messages(turn: Turn, answer: Answer, problems: Sequence[str]) -> list[dict[str, Any]]:
    """The model's unusable answer and a short message that says exactly what was wrong."""
    names = ", ".join(turn.tool_names()) or "(none)"
    lines = "\n".join(f"- {p}" for p in problems)
    text = (
        f"Your previous reply could not be used:\n{lines}\n"
        f"The available tools are: {names}. Reply again; call a tool with arguments that match its "
        "parameters schema, as a proper tool call."
    )
    return [answer.as_message(), {"role": "user", "content": text}]


@dataclass
class Outcome:
    """How a pipeline run went (for metrics)."""

    attempts: int = 1
    #: "first_try", "retried_ok", "retried_still_bad", "not_retried_bad"
    result: str = "first_try"


class Pipeline:
    """Runs steps around backend calls; see the module docs."""

    def __init__(
        self,
        steps: Sequence[Step],
        *,
        max_attempts: int = 2,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.steps = list(steps)
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep

    def prepare(self, turn: Turn) -> None:
        for s in self.steps:
            s.prepare(turn)

    def holds_calls(self, turn: Turn) -> bool:
        """Whether calls must be held until the whole answer is known: when the model may be
        asked again, or when a step rewrites the calls."""
        return self.max_attempts > 1 or any(s.holds_calls(turn) for s in self.steps)

    def problems(self, turn: Turn, answer: Answer) -> list[str]:
        found: list[str] = []
        for s in self.steps:
            found += s.check(turn, answer)
        return found

    def finalize(self, turn: Turn, answer: Answer) -> Answer:
        for s in self.steps:
            answer = s.finalize(turn, answer)
        return answer

    async def call(self, backend: Backend, request: dict[str, Any]) -> Answer:
        """One backend call, backing off and trying again on 429 / 503 (within the attempts)."""
        delay = self.backoff
        for n in range(self.max_attempts):
            try:
                return await backend(request)
            except BackendError as e:
                if n + 1 >= self.max_attempts:
                    raise
                wait = e.retry_after if e.retry_after is not None else delay
                await self._sleep(min(wait, self.max_backoff))
                delay = min(delay * 2, self.max_backoff)
        raise AssertionError("unreachable")

    async def retry(self, turn: Turn, backend: Backend, answer: Answer, outcome: Outcome) -> Answer:
        """Asks again while the answer has problems and attempts remain; returns the last answer."""
        problems = self.problems(turn, answer)
        turn.history.append(problems)
        while problems and turn.attempt + 1 < self.max_attempts:
            turn.attempt += 1
            request = dict(turn.request)
            request["messages"] = [*turn.request.get("messages", []), *feedback_messages(turn, answer, problems)]
            request["stream"] = False
            request.pop("stream_options", None)
            answer = await self.call(backend, request)
            problems = self.problems(turn, answer)
            turn.history.append(problems)
        outcome.attempts = turn.attempt + 1
        if turn.attempt == 0:
            outcome.result = "not_retried_bad" if problems else "first_try"
        else:
            outcome.result = "retried_still_bad" if problems else "retried_ok"
        return answer

    async def run(self, turn: Turn, backend: Backend) -> tuple[Answer, Outcome]:
        """Prepares, calls the backend, retries with feedback, finalizes."""
        self.prepare(turn)
        outcome = Outcome()
        answer = await self.call(backend, turn.request)
        answer = await self.retry(turn, backend, answer, outcome)
        return self.finalize(turn, answer), outcome
