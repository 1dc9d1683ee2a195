"""``toolmend doctor``: probe a backend the way agent tools' troubleshooting guides do by hand.

It lists the models, sends a request with two tools and a prompt that asks for two calls, once
without and once with streaming, then three ``tool_choice`` probes, and judges every answer
against what agent clients need (see ``docs/doctor.md``): native ``tool_calls`` in the shape
clients accept, or calls printed as text (in which format, markers intact or stripped), and
streaming deltas with one role chunk, one head delta per call (``index``, ``id``, ``type``,
the name once), argument fragments that join to a JSON object, content and calls in separate
deltas, and a ``finish_reason`` of its own before ``[DONE]``::

    report = run_doctor("http://127.0.0.1:8000/v1", model="Qwen/Qwen3-8B")
    print_report(report)
    sys.exit(report.exit_code)   # 0 direct use works, 1 use the proxy, 2 unusable

The requests go out in a fixed order: ``GET /models``, then chat completions: the probe
without streaming, the same with streaming, ``tool_choice: "none"``, a named function
(``get_time``, while the prompt asks for the weather), and ``"required"`` (with a prompt that
needs no tool).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

import aiohttp

from toolmend._core import Tools, format_for_model, parse
from toolmend.config import normalize_backend_url
from toolmend.proxy.sse import SSEDecoder

__all__ = ["CHECKS", "Check", "Report", "doctor", "format_report", "print_report", "run_doctor"]

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"

CHECKS: dict[str, str] = {
    "server": "server reachable",
    "model": "model listed",
    "tools": "tools accepted",
    "calls": "tool calls",
    "call_shape": "call shape",
    "special_tokens": "special tokens",
    "stream": "streaming",
    "stream_role": "stream: role chunk",
    "stream_call_start": "stream: call head",
    "stream_index": "stream: call index",
    "stream_name_once": "stream: name once",
    "stream_arguments": "stream: arguments",
    "stream_content_separate": "stream: content apart",
    "stream_finish": "stream: finish",
    "tool_choice_none": 'tool_choice "none"',
    "tool_choice_named": "tool_choice named",
    "tool_choice_required": 'tool_choice "required"',
}
"""Every check, in report order: name -> the label printed for it."""

# Checks whose warnings or failures the proxy repairs: any of them not ok means "use the proxy".
_PROXY_FIXES = ("calls", "call_shape", "special_tokens", "stream", *(n for n in CHECKS if n.startswith("stream_")))

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "City name, e.g. Paris"}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Get the current local time in an IANA time zone.",
            "parameters": {
                "type": "object",
                "properties": {"timezone": {"type": "string", "description": "e.g. Europe/Paris"}},
                "required": ["timezone"],
            },
        },
    },
]
TOOL_NAMES = frozenset(t["function"]["name"] for t in TOOLS)

PROMPT = (
    "What is the weather right now in Paris and in Tokyo? You cannot know it yourself: call the "
    "get_weather tool once for each city, both calls in this reply, and write nothing else."
)
PLAIN_PROMPT = "Say hello in one short sentence."
NAMED_TOOL = "get_time"
MAX_TOKENS = 1024

# Formats whose calls start with a marker that is a special token for the models using them:
# format -> (marker, text to put before a stripped body, text after it).
_MARKERS: dict[str, tuple[str, str, str]] = {
    "hermes": ("<tool_call>", "<tool_call>\n", "\n</tool_call>"),
    "qwen3_xml": ("<tool_call>", "<tool_call>\n", "\n</tool_call>"),
    "mistral_array": ("[TOOL_CALLS]", "[TOOL_CALLS]", ""),
    "mistral_v13": ("[TOOL_CALLS]", "[TOOL_CALLS]", ""),
    "mistral_v11": ("[TOOL_CALLS]", "[TOOL_CALLS]", ""),
    "llama3_json": ("<|python_tag|>", "<|python_tag|>", ""),
}
# Formats whose marker may legitimately be absent (Llama 3 JSON calls come with or without it).
_OPTIONAL_MARKER = frozenset({"llama3_json"})

SPECIAL_TOKENS_ADVICE = (
    "keep special tokens in the output: vLLM and SGLang take the request parameter "
    '"skip_special_tokens": false (a sampling parameter; its default is true), or let vLLM parse '
    "calls itself (--enable-auto-tool-choice --tool-call-parser NAME); llama.cpp's llama-server "
    "prints special tokens when started with --special (-sp)"
)
TOOLS_ADVICE = (
    "enable tool support in the server or pick a model whose chat template has it "
    "(llama.cpp's llama-server needs --jinja; vLLM's automatic tool choice needs "
    "--enable-auto-tool-choice and a --tool-call-parser)"
)


@dataclass(frozen=True)
class Check:
    """One verdict: ``status`` is ``ok``, ``warn``, ``fail`` or ``skip``."""

    name: str
    status: str
    detail: str

    @property
    def title(self) -> str:
        return CHECKS.get(self.name, self.name)

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


@dataclass
class Report:
    """The checks, what was learnt, and the configuration to use."""

    backend_url: str
    model: str | None = None
    checks: list[Check] = field(default_factory=list)
    native_calls: bool = False
    """The backend returned native ``tool_calls`` (in either mode)."""
    text_format: str | None = None
    """The format of calls printed as text, when they come that way."""
    markers_stripped: bool = False
    """Calls came as text without the special token that should start them."""
    tool_choice: dict[str, str] = field(default_factory=dict)
    """``none`` / ``named`` / ``required`` -> ``honoured``, ``ignored``, ``rejected`` or ``untested``."""
    verdict: str = "unusable"
    """``direct`` (clients can use the backend as it is), ``proxy`` or ``unusable``."""
    recommendations: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    """Machine-readable advice: ``backend_url``, ``model``, ``use_proxy``, ``formats``,
    ``keep_special_tokens``, ``tool_choice``."""

    @property
    def exit_code(self) -> int:
        return {"direct": 0, "proxy": 1}.get(self.verdict, 2)

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def status(self, name: str) -> str:
        return self.check(name).status

    def add(self, name: str, status: str, detail: str) -> None:
        if name not in CHECKS:
            raise ValueError(f"unknown check {name!r}")
        self.checks.append(Check(name, status, detail))

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend_url": self.backend_url,
            "model": self.model,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "checks": [c.to_dict() for c in self.checks],
            "native_calls": self.native_calls,
            "text_format": self.text_format,
            "markers_stripped": self.markers_stripped,
            "tool_choice": dict(self.tool_choice),
            "recommendations": list(self.recommendations),
            "config": self.config,
        }


# --- HTTP --------------------------------------------------------------------------------------


@dataclass
class _Reply:
    """One answer: ``status`` None when no HTTP answer came (``error`` says why)."""

    status: int | None = None
    error: str | None = None
    body: Any = None  # the JSON body (non-streaming, or a stream request answered with JSON)
    is_stream: bool = False
    chunks: list[dict[str, Any]] = field(default_factory=list)
    bad_events: int = 0
    error_event: Any = None
    done: bool = False
    broken: str | None = None  # the stream ended abnormally


def _error_text(status: int, raw: bytes) -> str:
    message = ""
    try:
        body = json.loads(raw)
    except ValueError:
        message = raw.decode("utf-8", "replace").strip()
    else:
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict):
            message = str(err.get("message", ""))
        elif isinstance(err, str):
            message = err
        elif isinstance(body, dict) and "message" in body:
            message = str(body["message"])
        else:
            message = raw.decode("utf-8", "replace").strip()
    message = " ".join(message.split())
    if len(message) > 200:
        message = message[:197] + "..."
    return f"HTTP {status}: {message}" if message else f"HTTP {status}"


def _transport_error(e: BaseException, timeout: float) -> str:
    if isinstance(e, asyncio.TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(e, aiohttp.ClientConnectorError):
        return f"cannot connect ({e.os_error.strerror or e.os_error})"
    if isinstance(e, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(e, aiohttp.ClientPayloadError):
        return "the connection closed before the end of the answer"
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


class _Client:
    def __init__(self, session: aiohttp.ClientSession, base: str, api_key: str | None, timeout: float) -> None:
        self.session = session
        self.base = base
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def get(self, path: str) -> _Reply:
        try:
            async with self.session.get(self.base + path, headers=self.headers) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    return _Reply(status=resp.status, error=_error_text(resp.status, raw))
                try:
                    return _Reply(status=200, body=json.loads(raw))
                except ValueError:
                    return _Reply(status=200, error="the body is not JSON")
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            return _Reply(error=_transport_error(e, self.timeout))

    async def chat(self, body: dict[str, Any]) -> _Reply:
        reply = _Reply()
        try:
            async with self.session.post(self.base + "/chat/completions", json=body, headers=self.headers) as resp:
                reply.status = resp.status
                if resp.status != 200:
                    reply.error = _error_text(resp.status, await resp.read())
                    return reply
                if resp.content_type == "text/event-stream":
                    reply.is_stream = True
                    await self._read_stream(resp, reply)
                    return reply
                raw = await resp.read()
                try:
                    reply.body = json.loads(raw)
                except ValueError:
                    reply.error = "the body is not JSON"
                return reply
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            if reply.is_stream:
                reply.broken = _transport_error(e, self.timeout)
            else:
                reply.error = _transport_error(e, self.timeout)
            return reply

    async def _read_stream(self, resp: aiohttp.ClientResponse, reply: _Reply) -> None:
        decoder = SSEDecoder()

        def take(payloads: Iterable[bytes]) -> None:
            for payload in payloads:
                if payload.strip() == b"[DONE]":
                    reply.done = True
                    continue
                try:
                    obj = json.loads(payload)
                except ValueError:
                    reply.bad_events += 1
                    continue
                if isinstance(obj, dict) and "error" in obj and "choices" not in obj:
                    reply.error_event = obj["error"]
                elif isinstance(obj, dict):
                    reply.chunks.append(obj)
                else:
                    reply.bad_events += 1

        async for data in resp.content.iter_any():
            take(decoder.feed(data))
        rest = decoder.close()
        if rest is not None:
            take([rest])


# --- reading answers ---------------------------------------------------------------------------


@dataclass
class _Call:
    name: str | None
    arguments: str

    def show(self) -> str:
        args = self.arguments if len(self.arguments) <= 40 else self.arguments[:37] + "..."
        return f"{self.name or '?'}({args})"


@dataclass
class _TextCalls:
    """What the text of an answer holds."""

    calls: list[_Call] = field(default_factory=list)
    format: str | None = None
    stripped: str | None = None  # a format whose marker is missing from calls found in the text
    bare: bool = False  # calls found as bare JSON (generic_json), with no marker at all
    raw: str = ""


def _read_text(text: str, model: str | None) -> _TextCalls:
    out = _TextCalls(raw=text)
    if not text.strip():
        return out
    tools = Tools(TOOLS)
    result = parse(text, tools=tools, format="auto", model=model)
    if result.tool_calls:
        out.calls = [_Call(c.name, c.arguments) for c in result.tool_calls]
        out.format = result.format
        out.bare = result.format == "generic_json"
        if out.bare:
            expected = format_for_model(model) if model else None
            if expected in _MARKERS and expected not in _OPTIONAL_MARKER:
                out.stripped = expected
        return out
    # No call: maybe a call body whose opening special token the server removed.
    body = text.strip()
    for fmt, (marker, before, after) in _MARKERS.items():
        if marker in body:
            continue
        wrapped = parse(before + body + after, tools=tools, format=fmt, model=model)
        if wrapped.tool_calls:
            out.calls = [_Call(c.name, c.arguments) for c in wrapped.tool_calls]
            out.format = fmt
            out.stripped = fmt
            return out
    return out


def _message(body: Any) -> tuple[dict[str, Any], Any] | None:
    """``(message, finish_reason)`` of a chat completion, None if it is not one."""
    if not isinstance(body, dict):
        return None
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message")
    if not isinstance(message, dict):
        return None
    return message, choices[0].get("finish_reason")


def _native_calls(message: dict[str, Any]) -> list[Any]:
    calls = message.get("tool_calls")
    return calls if isinstance(calls, list) else []


def _call_from_native(call: Any) -> _Call:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict):
        return _Call(None, "")
    name = fn.get("name") if isinstance(fn.get("name"), str) else None
    args = fn.get("arguments")
    return _Call(name, args if isinstance(args, str) else json.dumps(args))


def _is_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _shape_issues(calls: list[Any], finish: Any) -> list[str]:
    """What is wrong with non-streamed native calls, as clients see it (clients.md 6, 7, 9)."""
    issues: list[str] = []
    ids: list[str] = []
    for i, call in enumerate(calls):
        if not isinstance(call, dict):
            issues.append(f"call {i} is not an object")
            continue
        cid = call.get("id")
        if not isinstance(cid, str) or not cid:
            issues.append(f"call {i} has no id")
        else:
            ids.append(cid)
        if call.get("type") != "function":
            issues.append(f'call {i} has type {call.get("type")!r}, not "function"')
        fn = call.get("function")
        if not isinstance(fn, dict):
            issues.append(f"call {i} has no function object")
            continue
        name = fn.get("name")
        if name not in TOOL_NAMES:
            issues.append(f"call {i} names {name!r}, not a declared tool")
        args = fn.get("arguments")
        if isinstance(args, dict):
            issues.append(f"call {i}'s arguments are a JSON object, not a string")
        elif not isinstance(args, str):
            issues.append(f"call {i}'s arguments are {type(args).__name__}, not a string")
        elif not _is_object(args):
            issues.append(f"call {i}'s arguments {args[:40]!r} are not a JSON object")
    if len(set(ids)) < len(ids):
        issues.append("calls share an id")
    if finish != "tool_calls":
        issues.append(f'finish_reason {finish!r}, not "tool_calls"')
    return issues


# --- streams -----------------------------------------------------------------------------------


@dataclass
class _StreamCall:
    index: Any
    id: str | None
    name: str | None
    arguments: str = ""
    head_id: bool = True  # the call's first delta had the id
    head_name: bool = True  # ... and the name


class _Issues:
    """Issues per check, each kept once, in order."""

    def __init__(self) -> None:
        self.by_check: dict[str, list[str]] = {}

    def add(self, check: str, issue: str) -> None:
        items = self.by_check.setdefault(check, [])
        if issue not in items:
            items.append(issue)

    def get(self, check: str) -> list[str]:
        return self.by_check.get(check, [])


@dataclass
class _StreamFindings:
    issues: _Issues
    calls: list[_StreamCall]
    content: str
    finish: list[Any]
    chunks: int


def _analyze_stream(chunks: list[dict[str, Any]]) -> _StreamFindings:
    """Judges the chunks of a streamed answer against clients.md items 10-18."""
    issues = _Issues()
    calls: list[_StreamCall] = []
    latest: dict[Any, _StreamCall] = {}  # index -> the call last seen under it
    content: list[str] = []
    finish: list[Any] = []
    first = True
    for chunk in chunks:
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices:
            continue  # a usage chunk
        choice = choices[0]
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        if first:
            first = False
            if delta.get("role") != "assistant":
                role = delta.get("role")
                issues.add(
                    "stream_role",
                    "the first chunk has no role"
                    if role is None
                    else f'the first chunk has role {role!r}, not "assistant"',
                )
        piece = delta.get("content")
        has_content = False
        if isinstance(piece, str) and piece:
            has_content = True
            content.append(piece)
        deltas = delta.get("tool_calls")
        deltas = deltas if isinstance(deltas, list) else []
        if deltas and has_content:
            issues.add("stream_content_separate", "a delta holds both content and tool_calls")
        for tc in deltas:
            if isinstance(tc, dict):
                _call_delta(tc, calls, latest, issues)
        reason = choice.get("finish_reason")
        if reason:
            finish.append(reason)
            if deltas:
                issues.add("stream_finish", "finish_reason shares its chunk with a call delta")
    for i, call in enumerate(calls):
        if call.id is None:
            issues.add("stream_call_start", f"call {i} has no id")
        elif not call.head_id:
            issues.add("stream_call_start", f"call {i}'s id comes after its first delta")
        if call.name is None:
            issues.add("stream_call_start", f"call {i} has no name")
        elif not call.head_name:
            issues.add("stream_call_start", f"call {i}'s name comes after its first delta")
        if not _is_object(call.arguments):
            shown = call.arguments if len(call.arguments) <= 50 else call.arguments[:47] + "..."
            issues.add("stream_arguments", f"call {i}'s fragments join to {shown!r}, not one JSON object")
    if not finish:
        issues.add("stream_finish", "no finish_reason")
    elif calls and finish[-1] != "tool_calls":
        issues.add("stream_finish", f'finish_reason {finish[-1]!r} with calls, not "tool_calls"')
    if len(finish) > 1:
        issues.add("stream_finish", f"{len(finish)} finish_reason chunks")
    return _StreamFindings(issues, calls, "".join(content), finish, len(chunks))


def _call_delta(tc: dict[str, Any], calls: list[_StreamCall], latest: dict[Any, _StreamCall], issues: _Issues) -> None:
    index = tc.get("index")
    has_index = isinstance(index, int) and not isinstance(index, bool)
    if not has_index:
        issues.add("stream_index", "a call delta has no integer index")
        index = None
    fn = tc.get("function")
    if not isinstance(fn, dict):
        issues.add("stream_arguments", "a call delta has no function object")
        fn = {}
    name = fn.get("name") if isinstance(fn.get("name"), str) and fn.get("name") else None
    cid = tc.get("id") if isinstance(tc.get("id"), str) and tc.get("id") else None
    args = fn.get("arguments")
    current = latest.get(index) if has_index else (calls[-1] if calls else None)

    shared = False
    if current is not None:
        if cid is not None and current.id is not None and cid != current.id:
            shared = True  # another call under the same index
        elif name is not None and current.name is not None and _is_object(current.arguments):
            shared = cid is None or cid != current.id  # a complete call, then a new head
    if current is None or shared:
        if shared and has_index:
            issues.add("stream_index", f"two calls share index {index}")
        elif has_index:
            expected = len({c.index for c in calls if isinstance(c.index, int)})
            if index != expected:
                issues.add("stream_index", f"call {len(calls)} has index {index}, expected {expected}")
        call = _StreamCall(index, cid, name)
        calls.append(call)
        latest[index] = call
        call.head_id, call.head_name = cid is not None, name is not None
        if tc.get("type") != "function":
            issues.add("stream_call_start", 'a call\'s first delta has no type "function"')
    else:
        call = current
        if calls and call is not calls[-1]:
            issues.add("stream_index", "calls are interleaved (a fragment for an earlier call)")
        if cid is not None:
            if call.id is None:
                call.id = cid
            else:
                issues.add("stream_name_once", "the id is repeated on continuation deltas")
        if name is not None:
            if call.name is None:
                call.name = name
            else:
                issues.add("stream_name_once", "the name is repeated on continuation deltas")
    if isinstance(args, str):
        call.arguments += args
    elif isinstance(args, dict):
        issues.add("stream_arguments", "arguments are sent as a JSON object, not a string")
        call.arguments += json.dumps(args)
    elif args is not None:
        issues.add("stream_arguments", f"arguments are {type(args).__name__}, not a string")


# --- the probes --------------------------------------------------------------------------------


def _request(model: str, prompt: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "tools": TOOLS,
        "temperature": 0,
        "max_tokens": MAX_TOKENS,
    }
    body.update(extra)
    return body


def _summary(calls: list[_Call]) -> str:
    shown = ", ".join(c.show() for c in calls[:3])
    return shown + (f" and {len(calls) - 3} more" if len(calls) > 3 else "")


def _answer_calls(reply: _Reply, model: str) -> tuple[list[_Call], bool, _TextCalls]:
    """The calls of a whole answer: (calls, native?, what its text holds)."""
    found = _message(reply.body)
    if found is None:
        return [], False, _TextCalls()
    message, _ = found
    native = _native_calls(message)
    content = message.get("content")
    text = _read_text(content if isinstance(content, str) else "", model)
    if native:
        return [_call_from_native(c) for c in native], True, text
    return text.calls, False, text


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= 60 else text[:57] + "...")


async def doctor(
    backend_url: str, model: str | None = None, api_key: str | None = None, timeout: float = 120.0
) -> Report:
    """Runs every check against ``backend_url`` (``http://host:port`` or ``.../v1``)."""
    try:
        base = normalize_backend_url(backend_url)
    except ValueError as e:
        report = Report(backend_url=backend_url, model=model)
        report.add("server", FAIL, str(e))
        _finish(report, {})
        return report
    report = Report(backend_url=base, model=model)
    client_timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 10.0))
    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        client = _Client(session, base, api_key, timeout)
        facts: dict[str, Any] = {}
        if await _probe_models(client, report, facts):
            await _probe_calls(client, report, facts)
    _finish(report, facts)
    return report


def run_doctor(
    backend_url: str, model: str | None = None, api_key: str | None = None, timeout: float = 120.0
) -> Report:
    """:func:`doctor`, run to completion in a fresh event loop."""
    return asyncio.run(doctor(backend_url, model=model, api_key=api_key, timeout=timeout))


async def _probe_models(client: _Client, report: Report, facts: dict[str, Any]) -> bool:
    """The server and model checks; False when nothing more can be probed."""
    reply = await client.get("/models")
    if reply.status is None:
        report.add("server", FAIL, f"{client.base}: {reply.error}")
        facts["unreachable"] = True
        return False
    if reply.status in (401, 403):
        report.add("server", FAIL, f"GET /models: {reply.error} (a key is needed: --api-key)")
        facts["auth"] = True
        return False
    ids: list[str] | None = None
    if reply.status == 200 and reply.error is None:
        data = reply.body.get("data") if isinstance(reply.body, dict) else None
        if isinstance(data, list):
            ids = [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
    if ids is None:
        why = reply.error or "the body has no data list"
        if report.model is None:
            report.add("server", FAIL, f"GET /models: {why}; pass --model to probe anyway")
            return False
        report.add("server", WARN, f"answers, but GET /models: {why}")
        report.add("model", SKIP, f"cannot tell whether {report.model} is served")
        return True
    count = f"{len(ids)} model{'s' if len(ids) != 1 else ''}"
    report.add("server", OK, f"GET /models lists {count}")
    if report.model is None:
        if not ids:
            report.add("model", FAIL, "no model is listed; pass --model")
            return False
        report.model = ids[0]
        others = f" (of {len(ids)}; choose with --model)" if len(ids) > 1 else ""
        report.add("model", OK, f"no --model given: using the first listed, {ids[0]}{others}")
    elif report.model in ids:
        report.add("model", OK, f"{report.model} is listed")
    else:
        shown = ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "")
        report.add("model", WARN, f"{report.model} is not listed ({shown or 'none'}); probing it anyway")
    return True


async def _probe_calls(client: _Client, report: Report, facts: dict[str, Any]) -> None:
    model = report.model or ""
    plain = await client.chat(_request(model, PROMPT))
    if plain.status != 200 or plain.error is not None or _message(plain.body) is None:
        why = plain.error or "the answer is not a chat completion"
        report.add("tools", FAIL, f"a request with tools failed: {why}")
        facts["model_missing"] = plain.status == 404
        facts["tools_rejected"] = plain.status in (400, 422)
        for name in CHECKS:
            if name not in ("server", "model", "tools"):
                report.add(name, SKIP, "tools not accepted")
        return
    report.add("tools", OK, "a request with tools was accepted (HTTP 200)")
    calls, native, text = _answer_calls(plain, model)
    facts["plain_calls"] = calls
    _judge_plain(report, plain, calls, native, text, facts)

    streamed = await client.chat(_request(model, PROMPT, stream=True))
    _judge_stream(report, streamed, model, facts)
    if report.status("calls") == FAIL and facts.get("stream_calls"):
        # The model called when streaming: the non-streamed miss is the model's, not the wire's.
        detail = report.check("calls").detail + " (the streamed answer had calls)"
        report.checks = [Check("calls", WARN, detail) if c.name == "calls" else c for c in report.checks]
    _judge_markers(report, facts)

    await _probe_tool_choice(client, report, model)


def _judge_plain(
    report: Report, reply: _Reply, calls: list[_Call], native: bool, text: _TextCalls, facts: dict[str, Any]
) -> None:
    found = _message(reply.body)
    assert found is not None
    message, finish = found
    if native:
        report.native_calls = True
        report.add("calls", OK, f"native tool_calls: {_summary(calls)}")
        issues = _shape_issues(_native_calls(message), finish)
        if issues:
            report.add("call_shape", WARN, "; ".join(issues))
        else:
            report.add("call_shape", OK, 'id, type "function", JSON-string arguments, finish_reason "tool_calls"')
        return
    report.add("call_shape", SKIP, "no native tool_calls")
    if calls:
        facts["text"] = text
        report.add("calls", WARN, _text_detail(text))
        return
    content = message.get("content")
    said = _snippet(content) if isinstance(content, str) and content.strip() else "nothing"
    cut = " (cut by max_tokens)" if finish == "length" else ""
    report.add("calls", FAIL, f"no tool call, native or as text; the model said {said}{cut}")


def _text_detail(text: _TextCalls) -> str:
    if text.stripped and not text.bare:
        marker = _MARKERS[text.stripped][0]
        return f"calls as text: a {text.stripped} call body without its {marker}: {_summary(text.calls)}"
    return f"calls as text in the {text.format} format, not tool_calls: {_summary(text.calls)}"


def _judge_markers(report: Report, facts: dict[str, Any]) -> None:
    """The special-token check, on the calls printed as text (without streaming, else streamed)."""
    text: _TextCalls | None = facts.get("text") or facts.get("stream_text")
    if text is None:
        why = "the server parses calls itself" if report.native_calls else "no call to look at"
        report.add("special_tokens", SKIP, why)
        return
    report.text_format = text.format
    if text.stripped:
        report.markers_stripped = True
        facts["unreadable"] = not text.bare
        marker = _MARKERS[text.stripped][0]
        how = "bare JSON" if text.bare else "the call body"
        detail = f"{how} without {marker} ({text.stripped} format): the server likely strips special tokens"
        report.add("special_tokens", WARN, detail)
    elif text.bare:
        report.markers_stripped = True
        detail = (
            "bare JSON calls with no marker: if the model's format starts calls with a special token "
            "(<tool_call>, [TOOL_CALLS], <|python_tag|>), the server strips it"
        )
        report.add("special_tokens", WARN, detail)
    else:
        marker = _MARKERS.get(text.format or "", ("",))[0]
        if text.format in _OPTIONAL_MARKER and marker not in text.raw:
            where = f"no {marker}, which {text.format} calls may omit"
        else:
            where = f"{marker} is in the text" if marker else "the format's markers are in the text"
        report.add("special_tokens", OK, f"{where} ({text.format})")


def _judge_stream(report: Report, reply: _Reply, model: str, facts: dict[str, Any]) -> None:
    stream_checks = [n for n in CHECKS if n.startswith("stream_")]
    if reply.status != 200 or reply.error is not None:
        report.add("stream", FAIL, f"a streaming request with tools failed: {reply.error}")
        facts["stream_failed"] = True
        for name in stream_checks:
            report.add(name, SKIP, "no stream")
        return
    if not reply.is_stream:
        calls, native, text = _answer_calls(reply, model)
        facts["stream_calls"] = calls
        if native:
            report.native_calls = True
            what = f"native tool_calls: {_summary(calls)}"
        elif calls:
            facts["stream_text"] = text
            what = f"calls as text ({text.format})"
        else:
            what = "no call"
        report.add("stream", WARN, f"stream=true was answered with one JSON body, not SSE ({what})")
        for name in stream_checks:
            report.add(name, SKIP, "not a stream")
        return
    found = _analyze_stream(reply.chunks)
    native = bool(found.calls)
    calls = [_Call(c.name, c.arguments) for c in found.calls]
    text = _read_text(found.content, model)
    if not native:
        calls = text.calls
    facts["stream_calls"] = calls

    problems: list[str] = []
    status = OK

    def worse(new: str) -> None:
        nonlocal status
        if status != FAIL:
            status = new

    if reply.error_event is not None:
        err = reply.error_event
        problems.append(f"an error event: {err.get('message') if isinstance(err, dict) else err}")
        worse(FAIL)
    if reply.broken:
        problems.append(f"the stream broke off: {reply.broken}")
        worse(FAIL)
    if reply.bad_events:
        problems.append(f"{reply.bad_events} event(s) are not JSON")
        worse(FAIL)
    if not reply.done and status != FAIL:
        problems.append("no [DONE]")
        worse(WARN)
    plain_native = report.native_calls
    if native:
        report.native_calls = True
        what = f"{len(calls)} native call{'s' if len(calls) != 1 else ''}"
        if not plain_native and facts.get("plain_calls"):
            problems.append("native calls only when streaming")
            worse(WARN)
    elif calls:
        facts["stream_text"] = text
        what = f"calls as text ({text.format}{', markers stripped' if text.stripped else ''})"
        if plain_native:
            problems.append("calls as text when streaming, native otherwise")
        worse(WARN)
    else:
        what = "no call"
    if status == FAIL:
        facts["stream_failed"] = True
    framing = f"{found.chunks} chunks" + (", [DONE]" if reply.done else "")
    report.add("stream", status, f"{framing}; {what}" + "".join(f"; {p}" for p in problems))

    incomplete = reply.broken is not None or reply.error_event is not None

    def verdict(name: str, ok_detail: str, needs_calls: bool = True) -> None:
        issues = found.issues.get(name)
        if incomplete and name in ("stream_arguments", "stream_finish"):
            report.add(name, SKIP, "the stream did not complete")
        elif issues:
            report.add(name, WARN, "; ".join(issues))
        elif needs_calls and not native:
            report.add(name, SKIP, "no native calls in the stream")
        else:
            report.add(name, OK, ok_detail)

    verdict("stream_role", 'the first delta has role "assistant"', needs_calls=False)
    verdict("stream_call_start", 'each call\'s first delta has index, id, type "function" and the name')
    if native and len(found.calls) == 1 and not found.issues.get("stream_index"):
        report.add("stream_index", OK, "index 0 (one call only: distinct indexes not exercised)")
    else:
        verdict("stream_index", "one index per call, 0, 1, ... in order")
    verdict("stream_name_once", "name and id only in each call's first delta")
    verdict("stream_arguments", "argument fragments join to one JSON object per call")
    verdict("stream_content_separate", "content and tool_calls come in separate deltas", needs_calls=False)
    reason = found.finish[-1] if found.finish else None
    verdict("stream_finish", f"finish_reason {reason!r} in its own chunk", needs_calls=False)


async def _probe_tool_choice(client: _Client, report: Report, model: str) -> None:
    none = await client.chat(_request(model, PROMPT, tool_choice="none"))
    status, detail, verdict = _choice_none(none, model)
    report.add("tool_choice_none", status, detail)
    report.tool_choice["none"] = verdict

    forced = {"type": "function", "function": {"name": NAMED_TOOL}}
    named = await client.chat(_request(model, PROMPT, tool_choice=forced))
    status, detail, verdict = _choice_named(named, model)
    report.add("tool_choice_named", status, detail)
    report.tool_choice["named"] = verdict

    required = await client.chat(_request(model, PLAIN_PROMPT, tool_choice="required"))
    status, detail, verdict = _choice_required(required, model)
    report.add("tool_choice_required", status, detail)
    report.tool_choice["required"] = verdict


def _choice_failed(reply: _Reply) -> tuple[str, str, str] | None:
    if reply.status in (400, 422):
        return WARN, f"rejected: {reply.error}", "rejected"
    if reply.status != 200 or reply.error is not None or _message(reply.body) is None:
        return WARN, f"no answer: {reply.error or 'not a chat completion'}", "untested"
    return None


def _choice_none(reply: _Reply, model: str) -> tuple[str, str, str]:
    failed = _choice_failed(reply)
    if failed:
        return failed
    calls, native, _ = _answer_calls(reply, model)
    if native:
        return WARN, f"ignored: tool_calls came anyway ({_summary(calls)})", "ignored"
    if calls:
        return WARN, f"ignored: a call printed as text came anyway ({_summary(calls)})", "ignored"
    return OK, "no call", "honoured"


def _choice_named(reply: _Reply, model: str) -> tuple[str, str, str]:
    failed = _choice_failed(reply)
    if failed:
        return failed
    calls, _, _ = _answer_calls(reply, model)
    if not calls:
        return WARN, f"ignored: no call, though {NAMED_TOOL} was forced", "ignored"
    others = sorted({c.name or "?" for c in calls if c.name != NAMED_TOOL})
    if others:
        return WARN, f"ignored: forced {NAMED_TOOL}, got {', '.join(others)}", "ignored"
    return OK, f"forced {NAMED_TOOL}, got {_summary(calls)}", "honoured"


def _choice_required(reply: _Reply, model: str) -> tuple[str, str, str]:
    failed = _choice_failed(reply)
    if failed:
        return failed
    calls, _, _ = _answer_calls(reply, model)
    if not calls:
        return WARN, "ignored: no call to a prompt that needs none", "ignored"
    return OK, f"a call to a prompt that needs none: {_summary(calls)}", "honoured"


# --- verdict and advice ------------------------------------------------------------------------


def _finish(report: Report, facts: dict[str, Any]) -> None:
    """Fills in the checks never reached, the verdict, the recommendations and the config."""
    done = {c.name for c in report.checks}
    for name in CHECKS:
        if name not in done:
            report.add(name, SKIP, "not reached")
    report.checks.sort(key=lambda c: list(CHECKS).index(c.name))
    for key in ("none", "named", "required"):
        report.tool_choice.setdefault(key, "untested")

    status = {c.name: c.status for c in report.checks}
    any_calls = bool(facts.get("plain_calls")) or bool(facts.get("stream_calls"))
    recs = report.recommendations
    url, model = report.backend_url, report.model
    if FAIL in (status["server"], status["model"], status["tools"]) or facts.get("stream_failed") or not any_calls:
        report.verdict = "unusable"
        if facts.get("unreachable"):
            recs.append(f"start the backend, or pass its address: toolmend doctor --backend URL (tried {url})")
        elif facts.get("auth"):
            recs.append("pass the backend's key: toolmend doctor --api-key KEY")
        elif status["server"] == FAIL or status["model"] == FAIL:
            recs.append("name the model to probe: toolmend doctor --model MODEL")
        elif facts.get("model_missing"):
            recs.append(f"the backend does not serve {model}: pass a listed model with --model")
        elif facts.get("tools_rejected"):
            recs.append(TOOLS_ADVICE)
        elif status["tools"] == FAIL:
            recs.append("the backend failed a request with tools; see its log")
        elif facts.get("stream_failed"):
            recs.append("streaming with tools fails on this backend; most agent clients stream, so fix or update it")
        else:
            recs.append(
                "the model made no tool call: check that the server applies a chat template with tool support "
                "(llama.cpp: --jinja), or use a model trained for tool calling"
            )
    elif any(status[n] in (WARN, FAIL) for n in _PROXY_FIXES):
        report.verdict = "proxy"
        serve = f"toolmend serve --backend {url}"
        where = f"point the client at http://127.0.0.1:4000/v1 (model {model})"
        if facts.get("unreadable"):
            recs.append(
                "the calls lost their marker, so neither clients nor toolmend can tell them from text: "
                + SPECIAL_TOKENS_ADVICE
            )
            recs.append(f"then run `{serve}`, {where}, and run toolmend doctor again")
        else:
            why = []
            if report.text_format:
                why.append(f"turns the {report.text_format} text calls into tool_calls")
            if report.native_calls:
                why.append("re-emits native calls in the shape clients accept")
            recs.append(f"run `{serve}` and {where}; the proxy " + " and ".join(why or ["mends the answers"]))
            if report.markers_stripped:
                recs.append(SPECIAL_TOKENS_ADVICE)
            elif report.text_format:
                fmt = report.text_format
                recs.append(
                    f"pin the format: TOOLMEND_FORMATS='{model}={fmt}', or in toolmend.toml: "
                    f"[formats] {json.dumps(model)} = {json.dumps(fmt)}"
                )
    else:
        report.verdict = "direct"
        recs.append(
            f"point the client at {url} (model {model}): its tool calls already have the shape clients need; "
            "toolmend's proxy is not needed"
        )
    if report.verdict != "unusable":
        if report.tool_choice["none"] in ("ignored", "rejected"):
            recs.append('tool_choice "none" is not honoured: to stop tool calls, leave out tools instead')
        if report.tool_choice["named"] in ("ignored", "rejected"):
            recs.append("a tool named in tool_choice is not forced: clients that force a tool may get another")
        if report.tool_choice["required"] in ("ignored", "rejected"):
            recs.append('tool_choice "required" is not honoured: the model may answer with text instead')

    report.config = {
        "backend_url": url,
        "model": model,
        "use_proxy": report.verdict == "proxy",
        "formats": {model: report.text_format} if model and report.text_format and not report.markers_stripped else {},
        "keep_special_tokens": report.markers_stripped,
        "tool_choice": dict(report.tool_choice),
    }


# --- printing ----------------------------------------------------------------------------------

_SYMBOLS = {OK: "✓", WARN: "!", FAIL: "✗", SKIP: "-"}
_ASCII = {OK: "+", WARN: "!", FAIL: "x", SKIP: "-"}
_VERDICTS = {
    "direct": "the backend works for tool calling as it is",
    "proxy": "use toolmend's proxy in front of this backend",
    "unusable": "tool calling does not work with this backend as probed",
}


def format_report(report: Report, *, ascii_only: bool = False) -> str:
    """The report as text: a header, one line per check, the verdict and the recommendations."""
    symbols = _ASCII if ascii_only else _SYMBOLS
    width = max(len(t) for t in CHECKS.values())
    lines = [f"toolmend doctor: {report.backend_url}" + (f", model {report.model}" if report.model else ""), ""]
    for c in report.checks:
        lines.append(f"{symbols.get(c.status, '?')} {c.title:<{width}}  {c.detail}")
    lines.append("")
    lines.append(f"Verdict: {_VERDICTS.get(report.verdict, report.verdict)} (exit {report.exit_code})")
    lines.extend(f"Recommended: {r}" for r in report.recommendations)
    return "\n".join(lines)


def print_report(report: Report, file: TextIO | None = None) -> None:
    """Prints :func:`format_report`, in ASCII when the stream cannot encode the symbols."""
    out = file if file is not None else sys.stdout
    encoding = getattr(out, "encoding", None) or "ascii"
    try:
        "".join(_SYMBOLS.values()).encode(encoding)
        ascii_only = False
    except (UnicodeEncodeError, LookupError):
        ascii_only = True
    print(format_report(report, ascii_only=ascii_only), file=out)
