"""A scripted OpenAI-compatible backend that answers like a small local LLM server.

Each model name maps to a :class:`Script` (or a list of them: successive attempts) that says
what to answer: raw text (e.g. a ``<tool_call>`` the proxy should mend), native ``tool_calls``,
reasoning, chunking and pacing, the wire quirks of real servers, and transport faults. The
backend records every request and counts streams the client abandoned. It is pure Python
(Starlette, uvicorn, orjson) and is used by the proxy's end-to-end tests and ``toolmend demo``::

    backend = ScriptedBackend()
    backend.add("qwen", Script(text='<tool_call>{"name": "f", "arguments": {}}</tool_call>'))
    backend.add("flaky", [Script(fault="http_503"), Script(text="ok")])   # 1st try fails
    with serve_in_thread(backend.app) as server:
        ...  # POST server.url + "/v1/chat/completions" with {"model": "qwen", ...}

Standalone: ``python -m toolmend.scripted --port 8001 --scripts scripts.json``, where the file
holds ``{name: script}`` as ``POST /_scripts`` takes it (a script is a JSON object of
:class:`Script` fields, or a list of them; the name ``"*"`` sets the default script).

Endpoints: ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions``
(legacy: the script's text), ``POST /_scripts``, ``GET /_requests``, ``POST /_reset``,
``GET /health``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import dataclasses
import hashlib
import json
import logging
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Union

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from toolmend._serve_thread import RunningServer, bind_socket, serve_in_thread, url_for

__all__ = [
    "DEFAULT_KEY",
    "FAULTS",
    "QUIRKS",
    "RunningServer",
    "Script",
    "ScriptedBackend",
    "main",
    "serve_in_thread",
]

QUIRKS = frozenset(
    {
        "ollama_index0",
        "object_arguments",
        "stop_with_calls",
        "no_ids",
        "repeat_name",
        "name_late",
        "no_role",
        "content_and_calls_same_delta",
    }
)
"""Wire quirks of real servers a :class:`Script` can reproduce (see :class:`Script`)."""

FAULTS = frozenset({"http_500", "http_429", "http_503", "cut", "malformed_sse", "error_event", "hang", "slow_headers"})
"""Transport faults a :class:`Script` can inject (see :class:`Script`)."""

DEFAULT_KEY = "*"
"""The name under which ``POST /_scripts`` and ``--scripts`` files set the default script."""

_HTTP_FAULTS = {
    "http_500": (500, "server_error", None, "the scripted backend failed (HTTP 500)"),
    "http_429": (429, "rate_limit_error", "rate_limit_exceeded", "too many requests (scripted HTTP 429)"),
    "http_503": (503, "server_error", "service_unavailable", "the model is loading (scripted HTTP 503)"),
}

_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_DONE = b"data: [DONE]\n\n"
_MALFORMED = b"data: {not json\n\n"
_SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]

# Set inside a response task that ends its connection on purpose (``cut``) or is cancelled while
# hanging, so that uvicorn's error record about it is dropped (see _QuietScriptedFaults).
_DELIBERATE = contextvars.ContextVar("toolmend_scripted_deliberate", default=False)


@dataclass(frozen=True)
class Script:
    """One scripted answer.

    Content: ``text`` is the model's raw output (prose, or a tool call printed as text);
    ``tool_calls`` are native calls, each ``{"name", "arguments": str | dict, "id"?}`` (a string
    is sent verbatim, so it may be broken JSON); ``reasoning`` goes out as
    ``delta.reasoning_content`` (``message.reasoning_content`` when not streaming).

    Pacing: ``chunk_size`` characters per content, reasoning and arguments delta, or explicit
    ``chunks`` of the text (``text`` may then be omitted); ``delay_ms`` before each SSE event
    (not streaming: the whole stream's worth of delay before the response).

    ``finish_reason`` defaults to ``"tool_calls"`` with native calls, else ``"stop"``. ``usage``
    defaults to rough counts (4 characters a token). ``headers`` are added to the response.

    ``quirks`` (any of :data:`QUIRKS`):

    - ``ollama_index0``: every native call has index 0 and comes whole in one delta.
    - ``object_arguments``: arguments are a JSON object, not a string (a string that does not
      parse to an object stays a string); streamed whole in the call's first delta.
    - ``stop_with_calls``: finish_reason ``"stop"`` even with native calls.
    - ``no_ids``: calls carry no ``id``.
    - ``repeat_name``: every continuation delta repeats ``id``, ``type`` and the name.
    - ``name_late``: a call's first delta has no name; its second delta brings it.
    - ``no_role``: no role chunk.
    - ``content_and_calls_same_delta``: the last content delta also holds the first call delta.

    ``fault`` (one of :data:`FAULTS`); "the fault point" is after ``cut_after`` SSE events
    (the role chunk counts):

    - ``http_500`` / ``http_429`` / ``http_503``: that status and an OpenAI error body, no stream.
    - ``cut``: the connection is closed at the fault point (no finish chunk, no ``[DONE]``);
      not streaming: after half of the body.
    - ``malformed_sse``: a ``data: {not json`` event at the fault point, then the rest;
      not streaming: the body is ``{not json``.
    - ``error_event``: at the fault point ``data: {"error": {...}}`` then ``[DONE]``; not
      streaming: HTTP 200 with the error body.
    - ``hang``: nothing after the fault point, until the client leaves (or the server is
      stopped); not streaming: headers only, never a body.
    - ``slow_headers``: the status line waits ``fault_delay_s`` seconds, then the normal answer.

    ``error_message`` replaces the message of ``http_*`` and ``error_event`` errors.
    """

    text: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    chunk_size: int = 4
    chunks: list[str] | None = None
    delay_ms: float = 0.0
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    reasoning: str | None = None
    quirks: AbstractSet[str] = frozenset()
    fault: str | None = None
    cut_after: int = 2
    fault_delay_s: float = 30.0
    error_message: str | None = None
    headers: dict[str, str] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "quirks", frozenset(self.quirks))
        unknown = set(self.quirks) - QUIRKS
        if unknown:
            raise ValueError(f"unknown quirks {sorted(unknown)}; known: {sorted(QUIRKS)}")
        if self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; known: {sorted(FAULTS)}")
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        if self.cut_after < 0:
            raise ValueError("cut_after must not be negative")
        if self.chunks is not None and self.text is not None and "".join(self.chunks) != self.text:
            raise ValueError("chunks must join to text")
        for call in self.tool_calls or ():
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                raise ValueError(f"a tool call needs a string 'name': {call!r}")
            args = call.get("arguments", "{}")
            if not isinstance(args, (str, dict)):
                raise ValueError(f"tool call arguments must be a string or an object: {args!r}")

    @property
    def output(self) -> str:
        """The text the model produced (``text``, or the joined ``chunks``)."""
        if self.text is not None:
            return self.text
        return "".join(self.chunks) if self.chunks is not None else ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Script:
        """A script from its JSON form: an object of field names (``quirks`` as a list)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown script fields {sorted(unknown)}; known: {sorted(names)}")
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form :meth:`from_dict` reads (fields left at their defaults omitted)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if value != default:
                out[f.name] = sorted(value) if f.name == "quirks" else value
        return out


ScriptSpec = Union[Script, Sequence[Script]]
"""One script, or successive attempts (the last one repeats)."""


def _scripts_from_json(value: Any) -> list[Script]:
    if isinstance(value, list):
        if not value:
            raise ValueError("an attempt list must not be empty")
        return [Script.from_dict(v) for v in value]
    if isinstance(value, dict):
        return [Script.from_dict(value)]
    raise ValueError(f"a script is a JSON object or a list of them, not {type(value).__name__}")


def _ident(prefix: str, seed: str, length: int) -> str:
    digest = hashlib.sha256(seed.encode()).digest()
    return prefix + "".join(_ALNUM[b % len(_ALNUM)] for b in digest[:length])


def _split(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _args_text(args: str | dict[str, Any]) -> str:
    return args if isinstance(args, str) else orjson.dumps(args).decode()


def _error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _sse(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


class _Turn:
    """One request's answer: ids, the script's content, and the chunk / body builders."""

    def __init__(self, script: Script, body: Mapping[str, Any], model: str, seq: int) -> None:
        self.script = script
        self.body = body
        self.model = model
        self.seq = seq
        self.quirks = script.quirks
        self.created = int(time.time())
        self.stream = body.get("stream") is True
        options = body.get("stream_options")
        self.include_usage = isinstance(options, Mapping) and options.get("include_usage") is True
        calls = script.tool_calls or []
        self.call_ids = [str(c["id"]) if "id" in c else _ident("call_", f"{seq}:{i}", 24) for i, c in enumerate(calls)]
        self.args_text = [_args_text(c.get("arguments", "{}")) for c in calls]
        self.completion_id = _ident("chatcmpl-", str(seq), 24)

    # --- shared ---------------------------------------------------------------------------

    def finish_reason(self) -> str:
        if self.script.finish_reason is not None:
            return self.script.finish_reason
        if self.script.tool_calls and "stop_with_calls" not in self.quirks:
            return "tool_calls"
        return "stop"

    def usage(self) -> dict[str, Any]:
        if self.script.usage is not None:
            return dict(self.script.usage)
        prompt = self.body.get("messages", self.body.get("prompt", ""))
        prompt_tokens = max(1, len(orjson.dumps(prompt)) // 4)
        produced = len(self.script.output) + len(self.script.reasoning or "") + sum(len(a) for a in self.args_text)
        completion_tokens = (produced + 3) // 4
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }

    def arguments(self, i: int) -> Any:
        """Call ``i``'s arguments as sent: a string, or an object under ``object_arguments``."""
        if "object_arguments" in self.quirks:
            raw = self.script.tool_calls[i].get("arguments", {}) if self.script.tool_calls else {}
            if isinstance(raw, dict):
                return raw
            try:
                parsed = json.loads(raw)
            except ValueError:
                return raw
            return parsed if isinstance(parsed, dict) else raw
        return self.args_text[i]

    def text_pieces(self) -> list[str]:
        if self.script.chunks is not None:
            return list(self.script.chunks)
        return _split(self.script.output, self.script.chunk_size)

    # --- chat ------------------------------------------------------------------------------

    def chat_chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    def call_deltas(self, i: int) -> list[dict[str, Any]]:
        """The ``tool_calls[0]`` entries that stream call ``i``, quirks applied."""
        calls = self.script.tool_calls or []
        name = calls[i]["name"]
        q = self.quirks
        index = 0 if "ollama_index0" in q else i
        head: dict[str, Any] = {"index": index}
        if "no_ids" not in q:
            head["id"] = self.call_ids[i]
        head["type"] = "function"
        args = self.arguments(i)
        whole = "ollama_index0" in q or not isinstance(args, str)
        first = dict(head, function={"name": name, "arguments": args if whole else ""})
        rest: list[dict[str, Any]] = []
        if not whole:
            rest = [{"index": index, "function": {"arguments": frag}} for frag in _split(args, self.script.chunk_size)]
        if "name_late" in q:
            del first["function"]["name"]
            if not rest:
                rest = [{"index": index, "function": {}}]
            rest[0]["function"] = {"name": name, **rest[0]["function"]}
        if "repeat_name" in q:
            rest = [{**head, "function": {"name": name, **d["function"]}} for d in rest]
        return [first, *rest]

    def chat_stream(self) -> list[bytes]:
        """The SSE events of a streamed chat answer, ``[DONE]`` included."""
        deltas: list[dict[str, Any]] = []
        if "no_role" not in self.quirks:
            deltas.append({"role": "assistant", "content": ""})
        if self.script.reasoning:
            deltas.extend({"reasoning_content": p} for p in _split(self.script.reasoning, self.script.chunk_size))
        content: list[dict[str, Any]] = [{"content": p} for p in self.text_pieces()]
        calls: list[dict[str, Any]] = [
            {"tool_calls": [d]} for i in range(len(self.script.tool_calls or [])) for d in self.call_deltas(i)
        ]
        if "content_and_calls_same_delta" in self.quirks and content and calls:
            content[-1] = {**content[-1], **calls.pop(0)}
        deltas.extend(content)
        deltas.extend(calls)
        events = [_sse(self.chat_chunk(d)) for d in deltas]
        events.append(_sse(self.chat_chunk({}, self.finish_reason())))
        if self.include_usage:
            events.append(_sse(self.usage_chunk("chat.completion.chunk")))
        events.append(_DONE)
        return events

    def usage_chunk(self, obj: str) -> dict[str, Any]:
        return {
            "id": self.completion_id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": self.usage(),
        }

    def chat_completion(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.script.output or None}
        if self.script.reasoning:
            message["reasoning_content"] = self.script.reasoning
        if self.script.tool_calls:
            calls = []
            for i, c in enumerate(self.script.tool_calls):
                call: dict[str, Any] = {} if "no_ids" in self.quirks else {"id": self.call_ids[i]}
                call["type"] = "function"
                call["function"] = {"name": c["name"], "arguments": self.arguments(i)}
                calls.append(call)
            message["tool_calls"] = calls
        return {
            "id": self.completion_id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason(), "logprobs": None}],
            "usage": self.usage(),
        }

    # --- legacy completions ----------------------------------------------------------------

    def text_chunk(self, text: str, finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.completion_id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}],
        }

    def text_stream(self) -> list[bytes]:
        events = [_sse(self.text_chunk(p)) for p in self.text_pieces()]
        events.append(_sse(self.text_chunk("", self.script.finish_reason or "stop")))
        if self.include_usage:
            events.append(_sse(self.usage_chunk("text_completion")))
        events.append(_DONE)
        return events

    def text_completion(self) -> dict[str, Any]:
        out = self.text_chunk(self.script.output, self.script.finish_reason or "stop")
        out["usage"] = self.usage()
        return out

    # --- faults ----------------------------------------------------------------------------

    def error_message(self, default: str) -> str:
        return self.script.error_message or default

    def plan(self, events: list[bytes], completion: dict[str, Any]) -> _Plan:
        """How to send this answer (``events`` when streaming, else ``completion``), fault applied."""
        s = self.script
        extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (s.headers or {}).items()]
        if s.fault in _HTTP_FAULTS:
            status, type_, code, message = _HTTP_FAULTS[s.fault]
            body = orjson.dumps(_error_body(self.error_message(message), type_, code))
            return _Plan(status, _json_headers(len(body)) + extra, [body], stream=self.stream)
        head_delay = s.fault_delay_s if s.fault == "slow_headers" else 0.0
        delay = s.delay_ms / 1000.0
        if not self.stream:
            # A non-streaming server spends the whole generation time before it answers.
            head_delay += delay * len(events)
            body = orjson.dumps(completion)
            if s.fault == "malformed_sse":
                body = b"{not json"
            elif s.fault == "error_event":
                body = orjson.dumps(_error_body(self.error_message("scripted error"), "server_error", None))
            headers = _json_headers(len(body)) + extra
            if s.fault == "cut":
                return _Plan(200, headers, [body[: len(body) // 2]], stream=False, head_delay=head_delay, end="abort")
            if s.fault == "hang":
                return _Plan(200, headers, [], stream=False, head_delay=head_delay, end="hang")
            return _Plan(200, headers, [body], stream=False, head_delay=head_delay)
        at = min(s.cut_after, len(events))
        end = "complete"
        if s.fault == "cut":
            events, end = events[:at], "abort"
        elif s.fault == "hang":
            events, end = events[:at], "hang"
        elif s.fault == "malformed_sse":
            events = [*events[:at], _MALFORMED, *events[at:]]
        elif s.fault == "error_event":
            error = _error_body(self.error_message("scripted error mid-stream"), "server_error", None)
            events = [*events[:at], _sse(error), _DONE]
        return _Plan(200, _SSE_HEADERS + extra, events, stream=True, delay=delay, head_delay=head_delay, end=end)


def _json_headers(length: int) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), (b"content-length", str(length).encode())]


@dataclass
class _Plan:
    """What to send: a status line and headers, body parts, pacing, and how the response ends."""

    status: int
    headers: list[tuple[bytes, bytes]]
    parts: list[bytes]
    stream: bool
    delay: float = 0.0  # seconds before each part
    head_delay: float = 0.0  # seconds before the status line
    end: str = "complete"  # "complete" | "abort" (close the connection) | "hang"


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Waits up to ``seconds`` for ``event``; True if it was set."""
    if event.is_set():
        return True
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except asyncio.TimeoutError:
        return False
    return True


class _PlannedResponse(Response):
    """Sends a :class:`_Plan` over raw ASGI, watching for the client leaving meanwhile."""

    def __init__(self, plan: _Plan, backend: ScriptedBackend) -> None:
        super().__init__(status_code=plan.status)
        self.plan = plan
        self.backend = backend

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        plan = self.plan
        gone = asyncio.Event()

        async def watch() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    gone.set()
                    return

        watcher = asyncio.ensure_future(watch())
        finished = False
        try:
            if plan.head_delay > 0 and await _wait(gone, plan.head_delay):
                return
            await send({"type": "http.response.start", "status": plan.status, "headers": plan.headers})
            for part in plan.parts:
                if plan.delay > 0 and await _wait(gone, plan.delay):
                    return
                if gone.is_set():
                    return
                await send({"type": "http.response.body", "body": part, "more_body": True})
            if plan.end == "abort":
                # Returning with the response unfinished makes the server close the connection.
                _DELIBERATE.set(True)
                return
            if plan.end == "hang":
                _DELIBERATE.set(True)
                await gone.wait()
                return
            if gone.is_set():
                return
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            finished = True
        finally:
            watcher.cancel()
            if plan.stream and not finished and gone.is_set():
                self.backend._count_cut()


class _QuietScriptedFaults(logging.Filter):
    """Drops uvicorn's error records about responses a script ended or hung on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _DELIBERATE.get():
            return True
        if record.getMessage() == "ASGI callable returned without completing response.":
            return False
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, asyncio.CancelledError)


_QUIET_FILTER = _QuietScriptedFaults()


def _json(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type="application/json")


class ScriptedBackend:
    """Scripts by model name, the requests received, and the Starlette :attr:`app` serving them.

    The script for a request is the one added under its ``model`` (exactly), else the default
    one, else the answer is an OpenAI-style 404. A list of scripts is a sequence of attempts:
    the n-th request for that name gets the n-th script, and the last one repeats.
    Thread-safe: the app may run in another thread (:func:`serve_in_thread`).
    """

    def __init__(self, scripts: Mapping[str, ScriptSpec] | None = None, *, default: ScriptSpec | None = None) -> None:
        self._lock = threading.Condition()
        self._scripts: dict[str, list[Script]] = {}
        self._default: list[Script] | None = None
        self._attempts: dict[str | None, int] = {}
        self._seq = 0
        self._streams_cut = 0
        self.requests: list[dict[str, Any]] = []
        """Every model request: ``{"path", "headers" (lower-case names), "body" (None if not JSON)}``."""
        for name, spec in (scripts or {}).items():
            self.add(name, spec)
        if default is not None:
            self.set_default(default)
        logging.getLogger("uvicorn.error").addFilter(_QUIET_FILTER)
        self.app = Starlette(
            routes=[
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/completions", self._completions, methods=["POST"]),
                Route("/_scripts", self._register, methods=["POST"]),
                Route("/_requests", self._requests, methods=["GET"]),
                Route("/_reset", self._reset, methods=["POST"]),
                Route("/health", self._health, methods=["GET"]),
            ]
        )

    # --- scripts ---------------------------------------------------------------------------

    @staticmethod
    def _attempt_list(spec: ScriptSpec) -> list[Script]:
        scripts = [spec] if isinstance(spec, Script) else list(spec)
        if not scripts or not all(isinstance(s, Script) for s in scripts):
            raise ValueError("expected a Script or a non-empty list of Scripts")
        return scripts

    def add(self, name: str, spec: ScriptSpec) -> None:
        """Answers requests for model ``name`` with ``spec`` (a list: successive attempts).
        Replacing a name restarts its attempt count."""
        scripts = self._attempt_list(spec)
        with self._lock:
            self._scripts[name] = scripts
            self._attempts.pop(name, None)

    def set_default(self, spec: ScriptSpec | None) -> None:
        """The script for models with no script of their own (``None``: answer 404)."""
        scripts = None if spec is None else self._attempt_list(spec)
        with self._lock:
            self._default = scripts
            self._attempts.pop(None, None)

    def load(self, data: Mapping[str, Any]) -> list[str]:
        """Registers ``{name: script JSON}`` (``"*"``: the default); returns the names."""
        parsed = {name: _scripts_from_json(value) for name, value in data.items()}
        for name, scripts in parsed.items():
            if name == DEFAULT_KEY:
                self.set_default(scripts)
            else:
                self.add(name, scripts)
        return list(parsed)

    @property
    def names(self) -> list[str]:
        with self._lock:
            return list(self._scripts)

    def attempts(self, name: str) -> int:
        """How many requests the script(s) under ``name`` have answered."""
        with self._lock:
            return self._attempts.get(name, 0)

    def _pick(self, model: str) -> tuple[Script, int] | None:
        with self._lock:
            key: str | None = model
            scripts = self._scripts.get(model)
            if scripts is None:
                key, scripts = None, self._default
            if scripts is None:
                return None
            n = self._attempts.get(key, 0)
            self._attempts[key] = n + 1
            self._seq += 1
            return scripts[min(n, len(scripts) - 1)], self._seq

    # --- observations ----------------------------------------------------------------------

    @property
    def streams_cut(self) -> int:
        """Streaming responses whose client left before the end."""
        with self._lock:
            return self._streams_cut

    def _count_cut(self) -> None:
        with self._lock:
            self._streams_cut += 1
            self._lock.notify_all()

    def wait_streams_cut(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Blocks until :attr:`streams_cut` reaches ``count`` (the server notices a client
        leaving asynchronously); False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self._streams_cut >= count, timeout)

    def wait_requests(self, count: int, timeout: float = 5.0) -> bool:
        """Blocks until ``count`` model requests were received; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self.requests) >= count, timeout)

    def reset(self) -> None:
        """Forgets recorded requests, attempt counts and cut streams (keeps the scripts)."""
        with self._lock:
            self.requests.clear()
            self._attempts.clear()
            self._streams_cut = 0

    # --- endpoints -------------------------------------------------------------------------

    async def _record(self, request: Request) -> Any:
        raw = await request.body()
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        with self._lock:
            self.requests.append({"path": request.url.path, "headers": dict(request.headers), "body": body})
            self._lock.notify_all()
        return body

    async def _answer(self, request: Request, legacy: bool) -> Response:
        body = await self._record(request)
        if not isinstance(body, dict):
            return _json(_error_body("the request body must be a JSON object", "invalid_request_error", None), 400)
        model = body.get("model")
        model = model if isinstance(model, str) else ""
        picked = self._pick(model)
        if picked is None:
            message = f"The model `{model}` does not exist."
            return _json(_error_body(message, "invalid_request_error", "model_not_found", "model"), 404)
        script, seq = picked
        turn = _Turn(script, body, model, seq)
        if legacy:
            plan = turn.plan(turn.text_stream(), turn.text_completion())
        else:
            plan = turn.plan(turn.chat_stream(), turn.chat_completion())
        return _PlannedResponse(plan, self)

    async def _chat(self, request: Request) -> Response:
        return await self._answer(request, legacy=False)

    async def _completions(self, request: Request) -> Response:
        return await self._answer(request, legacy=True)

    async def _models(self, request: Request) -> Response:
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "toolmend-scripted"} for n in self.names]
        return _json({"object": "list", "data": data})

    async def _register(self, request: Request) -> Response:
        try:
            data = orjson.loads(await request.body())
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object {name: script}")
            names = self.load(data)
        except (ValueError, TypeError) as e:
            return _json(_error_body(str(e), "invalid_request_error", None), 400)
        return _json({"registered": names})

    async def _requests(self, request: Request) -> Response:
        with self._lock:
            return _json({"requests": list(self.requests), "streams_cut": self._streams_cut})

    async def _reset(self, request: Request) -> Response:
        self.reset()
        return _json({"ok": True})

    async def _health(self, request: Request) -> Response:
        return _json({"status": "ok"})


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m toolmend.scripted",
        description="A scripted OpenAI-compatible backend (for tests and demos).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 (the default) picks a free port")
    parser.add_argument("--scripts", metavar="FILE", help='JSON {name: script}; "*" names the default script')
    parser.add_argument("--log-level", default="warning")
    return parser


def main(argv: Iterable[str] | None = None) -> int:
    """Runs the backend in the foreground; prints ``listening on URL`` once it accepts."""
    args = _build_parser().parse_args(None if argv is None else list(argv))
    backend = ScriptedBackend()
    if args.scripts:
        with open(args.scripts, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict):
            print(f"{args.scripts}: expected a JSON object {{name: script}}", file=sys.stderr)
            return 2
        try:
            backend.load(data)
        except (ValueError, TypeError) as e:
            print(f"{args.scripts}: {e}", file=sys.stderr)
            return 2
    sock = bind_socket(args.host, args.port)
    sock.listen(2048)  # connections wait in the backlog until uvicorn accepts them
    config = uvicorn.Config(backend.app, log_level=args.log_level, access_log=False, timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    print(f"listening on {url_for(args.host, sock.getsockname()[1])}", flush=True)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
