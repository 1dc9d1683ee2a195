"""The proxy's end-to-end setting: one scripted backend and one proxy on real uvicorn servers
(127.0.0.1, free ports), the scripts they answer with, and what each should come out as.

``tests/conftest.py`` exposes it as the session fixture ``e2e`` (an :class:`E2E`); the servers
start on first use and stop at the end of the session. Scripts:

- ``corpus/<format>``: one corpus case per format whose output holds at least one call (not
  listed in ``corpus_exceptions.jsonl``), sent as text in 3-character deltas. The proxy pins the
  format per model with ``formats = {"*corpus/<format>": "<format>"}``, as a user would.
- ``native/<quirk>``: the backend sends structured ``tool_calls`` with one of the wire quirks
  of :data:`toolmend.scripted.QUIRKS`; the arguments need coercing (``"3"`` for an integer) and
  repairing (a trailing comma), so the proxy must mend native calls too.
- ``plain``, ``slow``, ``fault/<fault>`` and whatever a test adds with :meth:`E2E.script`.
- ``whole/<any of these>``: the same, answered whole even when a stream is asked for.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from conftest import load_corpus, load_exceptions
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from toolmend.config import load_settings
from toolmend.evaluation import same_value
from toolmend.proxy import create_app
from toolmend.scripted import QUIRKS, RunningServer, Script, ScriptedBackend, serve_in_thread

# -- expected results -----------------------------------------------------------------------


def assert_calls(got: list[tuple[str, Any]], expected: list[dict[str, Any]], where: str = "") -> None:
    """``got``: (name, arguments) pairs, arguments a JSON string or an already parsed object."""
    parsed = [(name, json.loads(args) if isinstance(args, str) else args) for name, args in got]
    want = [(c["name"], c["arguments"]) for c in expected]
    ok = len(parsed) == len(want) and all(
        gn == wn and isinstance(ga, dict) and same_value(ga, wa) for (gn, ga), (wn, wa) in zip(parsed, want)
    )
    assert ok, f"{where}: got calls {parsed}, expected {want}"


# -- per-format corpus cases ------------------------------------------------------------------


@dataclass(frozen=True)
class FormatCase:
    """A corpus case the backend answers model ``corpus/<format>`` with."""

    format: str
    case_id: str
    output: str
    tools: list[dict[str, Any]]
    calls: list[dict[str, Any]]  # expected {"name", "arguments"}
    content: str | None  # expected content (None: the peer does not check it)

    @property
    def model(self) -> str:
        return f"corpus/{self.format}"


def _open_tools(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = dict.fromkeys(c["name"] for c in calls)
    return [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}} for n in names]


def _starts_in_reasoning(case: dict[str, Any]) -> bool:
    # Such outputs need the parser told that thinking was on, which a proxy request cannot say.
    return "thinking enabled" in (case["notes"] or "")


def pick_format_cases() -> list[FormatCase]:
    """One case per corpus format: the first with at least one expected call, not a listed
    exception, preferring cases that come with their own tools."""
    exceptions = load_exceptions()
    by_format: dict[str, list[dict[str, Any]]] = {}
    for case in load_corpus():
        by_format.setdefault(case["format"], []).append(case)
    picked = []
    for fmt in sorted(by_format):
        usable = [
            c
            for c in by_format[fmt]
            if c["expected"]["tool_calls"] and c["id"] not in exceptions and not _starts_in_reasoning(c)
        ]
        if not usable:
            raise RuntimeError(f"corpus format {fmt} has no usable case with a tool call")
        case = next((c for c in usable if c["tools"]), usable[0])
        calls = case["expected"]["tool_calls"]
        picked.append(
            FormatCase(
                format=fmt,
                case_id=case["id"],
                output=case["output"],
                tools=case["tools"] or _open_tools(calls),
                calls=calls,
                content=case["expected"]["content"],
            )
        )
    return picked


FORMAT_CASES = pick_format_cases()
FORMATS = [c.format for c in FORMAT_CASES]
CASE_BY_FORMAT = {c.format: c for c in FORMAT_CASES}
# "*corpus/<format>" also pins the format for "whole/corpus/<format>" (see WHOLE_PREFIX).
FORMAT_GLOBS = {f"*{c.model}": c.format for c in FORMAT_CASES}

# -- native calls ------------------------------------------------------------------------------

NATIVE_TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather forecast for a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Web search.",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
        },
    },
]
NATIVE_TEXT = "Let me check."
# As the backend sends them: "3" must be coerced to the declared integer, the trailing comma repaired.
NATIVE_SENT: list[dict[str, Any]] = [
    {"name": "get_weather", "arguments": {"city": "Paris", "days": "3"}},
    {"name": "search", "arguments": '{"query": "rain in Paris",}'},
]
NATIVE_CALLS: list[dict[str, Any]] = [
    {"name": "get_weather", "arguments": {"city": "Paris", "days": 3}},
    {"name": "search", "arguments": {"query": "rain in Paris"}},
]
NATIVE_QUIRKS = sorted(QUIRKS)


def native_model(quirk: str) -> str:
    return f"native/{quirk}"


# -- other scripts -------------------------------------------------------------------------------

WEATHER_TOOLS = NATIVE_TOOLS[:1]
CALL_TEXT = 'Sure. <tool_call>{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}</tool_call>'
CALL_EXPECTED = [{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}]
PLAIN_TEXT = "Paris is sunny today, 24 degrees, light wind from the west."
SLOW_TEXT = "A long answer that takes its time to arrive. " * 20 + CALL_TEXT


def _scripts() -> dict[str, Script]:
    scripts: dict[str, Script] = {c.model: Script(text=c.output, chunk_size=3) for c in FORMAT_CASES}
    for quirk in NATIVE_QUIRKS:
        scripts[native_model(quirk)] = Script(
            text=NATIVE_TEXT, tool_calls=NATIVE_SENT, chunk_size=3, quirks=frozenset({quirk})
        )
    scripts["plain"] = Script(text=PLAIN_TEXT, chunk_size=5)
    scripts["slow"] = Script(text=SLOW_TEXT, chunk_size=2, delay_ms=30)
    return scripts


# -- recording the backend's wire bytes ----------------------------------------------------------


@dataclass
class Exchange:
    """One HTTP exchange with the backend, as bytes."""

    method: str
    path: str
    headers: dict[str, str]
    request: bytes = b""
    status: int = 0
    response: bytes = b""
    complete: bool = False
    disconnected: bool = False  # the client (the proxy) left before the end


WHOLE_PREFIX = "whole/"
"""A model ``whole/<name>`` is answered as ``<name>`` but never streamed (``stream`` is turned
off on the way in), like a server that ignores ``stream: true``."""


class Recorder:
    """ASGI middleware keeping every exchange of the app it wraps (request and response bytes);
    it also rewrites requests for ``whole/...`` models (see :data:`WHOLE_PREFIX`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._lock = threading.Lock()
        self.exchanges: list[Exchange] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ex = Exchange(
            scope["method"], scope["path"], {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        )
        with self._lock:
            self.exchanges.append(ex)
        # The whole request body first (the app reads it first anyway).
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before sending its request
            ex.request += message.get("body", b"")
            more = message.get("more_body", False)
        body = _unstreamed(ex.request)
        replayed = False

        async def recv() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            message = await receive()
            if message["type"] == "http.disconnect" and not ex.complete:
                ex.disconnected = True
            return message

        async def snd(message: Message) -> None:
            if message["type"] == "http.response.start":
                ex.status = message["status"]
            elif message["type"] == "http.response.body":
                ex.response += message.get("body", b"")
                ex.complete = not message.get("more_body", False)
            await send(message)

        await self.app(scope, recv, snd)

    def find(self, marker: str) -> Exchange:
        """The exchange whose request body contains ``marker``."""
        with self._lock:
            found = [e for e in self.exchanges if marker.encode() in e.request]
        assert len(found) == 1, f"{len(found)} backend requests hold {marker!r}"
        return found[0]

    def last(self, path: str) -> Exchange:
        with self._lock:
            return next(e for e in reversed(self.exchanges) if e.path == path)


def _unstreamed(raw: bytes) -> bytes:
    if WHOLE_PREFIX.encode() not in raw:
        return raw
    try:
        body = json.loads(raw)
    except ValueError:
        return raw
    model = body.get("model") if isinstance(body, dict) else None
    if not isinstance(model, str) or not model.startswith(WHOLE_PREFIX):
        return raw
    return json.dumps({**body, "model": model[len(WHOLE_PREFIX) :], "stream": False}).encode()


def marker() -> str:
    """A unique string to put in a request, to find it again at the backend."""
    return f"req-{uuid.uuid4().hex}"


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- the servers ---------------------------------------------------------------------------------


@dataclass
class E2E:
    """The running backend and proxy of a test session."""

    backend: ScriptedBackend
    recorder: Recorder
    backend_server: RunningServer
    proxy_server: RunningServer

    @property
    def backend_url(self) -> str:
        """The backend's base URL, ``.../v1``."""
        return self.backend_server.url + "/v1"

    @property
    def url(self) -> str:
        """The proxy's base URL, ``.../v1`` (what clients are given)."""
        return self.proxy_server.url + "/v1"

    @property
    def root(self) -> str:
        """The proxy's root URL (``/health``, ``/metrics``)."""
        return self.proxy_server.url

    def script(self, name: str, spec: Script | list[Script]) -> str:
        """Adds (or replaces) a script; returns its name."""
        self.backend.add(name, spec)
        return name

    @contextlib.contextmanager
    def proxy(self, backend_url: str | None = None, **overrides: Any) -> Iterator[RunningServer]:
        """Another proxy, with settings ``overrides`` (dotted keys, e.g. ``timeouts.read``), in
        front of this backend (or ``backend_url``); stopped when the block ends."""
        server = start_proxy(backend_url or self.backend_url, overrides)
        try:
            yield server
        finally:
            server.stop()

    def stop(self) -> None:
        self.proxy_server.stop()
        self.backend_server.stop()

    @classmethod
    def start(cls) -> E2E:
        """Starts the backend (every script registered) and the main proxy."""
        backend = ScriptedBackend(_scripts())
        recorder = Recorder(backend.app)
        backend_server = serve_in_thread(recorder)
        try:
            proxy_server = start_proxy(backend_server.url + "/v1", {})
        except BaseException:
            backend_server.stop()
            raise
        return cls(backend, recorder, backend_server, proxy_server)


def start_proxy(backend_url: str, overrides: dict[str, Any]) -> RunningServer:
    """A proxy for ``backend_url`` with the corpus format pins and ``overrides``."""
    settings = load_settings(env={}, overrides={"backend_url": backend_url, "formats": FORMAT_GLOBS, **overrides})
    return serve_in_thread(create_app(settings))
