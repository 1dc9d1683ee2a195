"""Mending chat completions: the backend's answer in, the canonical OpenAI shape out.

Text the model wrote goes through the core's :class:`~toolmend.StreamParser` (calls printed as
text become ``tool_calls``); calls the backend already structured go through the same parser's
``call_*`` methods (repaired, coerced, validated, given distinct indexes and ids). The stream we
send is the sequence ``docs/clients.md`` calls canonical: a role chunk, content chunks, per call a
first delta with index, id, type and the full name then argument fragments, a separate final chunk
with the finish reason, a usage chunk when asked for, and ``[DONE]``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from toolmend._core import Event, ParseResult, StreamParser
from toolmend.openai_message import call_args_delta, call_start_delta, delta_from_event, finish_reason_for
from toolmend.pipeline import Answer, Call
from toolmend.proxy.errors import ProxyError


@dataclass
class Outcome:
    """What one mended answer contained (for metrics and logs)."""

    format: str | None = None
    text_calls: int = 0
    native_calls: int = 0
    diagnostics: list[str] = field(default_factory=list)


class NativeCalls:
    """Turns a backend's ``tool_calls`` deltas into one clean call sequence, whatever the
    server's quirks: a missing or constant ``index`` (Ollama sends 0 for every call), ids
    missing, repeated or shared, the name repeated on every delta or sent late, arguments
    as a JSON object instead of a string."""

    __slots__ = ("_args", "_has_id", "_id", "_index", "_name", "_open", "_parser", "_raw", "_used_ids", "count")

    def __init__(self, parser: StreamParser) -> None:
        self._parser = parser
        self._open = False
        self._index: int | None = None
        self._id: str | None = None
        self._has_id = False
        self._name: str | None = None
        # Argument text received before the call's name.
        self._args: list[str] = []
        # All argument text of the open call, as received.
        self._raw: list[str] = []
        self._used_ids: set[str] = set()
        self.count = 0

    def feed(self, deltas: Any) -> list[Event]:
        """Events for a delta's ``tool_calls`` list."""
        if not isinstance(deltas, list):
            return []
        events: list[Event] = []
        for tc in deltas:
            if isinstance(tc, dict):
                events += self._one(tc)
        return events

    def _one(self, tc: dict[str, Any]) -> list[Event]:
        fn = tc.get("function")
        if not isinstance(fn, dict):
            fn = {}
        index = tc.get("index") if isinstance(tc.get("index"), int) else None
        call_id = tc.get("id") if isinstance(tc.get("id"), str) and tc.get("id") else None
        name = fn.get("name") if isinstance(fn.get("name"), str) and fn.get("name") else None
        args = fn.get("arguments")
        if args is not None and not isinstance(args, str):
            args = orjson.dumps(args).decode()
        events: list[Event] = []
        if self._is_new_call(index, call_id, name):
            events += self.close()
            self._open = True
            self._index, self._id, self._has_id = index, call_id, call_id is not None
            self._name = None
            self._args = []
            self._raw = []
        elif call_id is not None and not self._has_id:
            self._id, self._has_id = call_id, True
        if name is not None and self._name is None:
            self._name = name
            events += self._parser.call_start(name, self._fresh_id(self._id))
            self.count += 1
            for a in self._args:
                events += self._parser.call_args(a)
            self._args = []
        if args:
            self._raw.append(args)
            if self._name is None:
                self._args.append(args)
            else:
                events += self._parser.call_args(args)
        return events

    def _is_new_call(self, index: int | None, call_id: str | None, name: str | None) -> bool:
        if not self._open:
            return True
        if index is not None and self._index is not None and index != self._index:
            return True
        if call_id is not None and self._has_id and call_id != self._id:
            return True
        # Same (or no) index and id: a name again is a new call only when the open call's
        # arguments are already complete (Ollama: every call whole, index 0, maybe no id);
        # otherwise it is the name repeated on a continuation delta.
        return name is not None and self._name is not None and self._args_complete()

    def _args_complete(self) -> bool:
        text = "".join(self._raw).rstrip()
        if not text.endswith(("}", "]")):
            return False
        try:
            orjson.loads(text)
        except orjson.JSONDecodeError:
            return False
        return True

    def _fresh_id(self, call_id: str | None) -> str | None:
        if call_id is None or call_id in self._used_ids:
            return None  # the core generates one
        self._used_ids.add(call_id)
        return call_id

    def close(self) -> list[Event]:
        """Ends the open call (a call whose name never came is dropped)."""
        if not self._open:
            return []
        self._open = False
        if self._name is None:
            return []
        return self._parser.call_end()

    @property
    def open(self) -> bool:
        return self._open and self._name is not None


def _reasoning_of(d: dict[str, Any]) -> Any:
    r = d.get("reasoning_content")
    return r if r is not None else d.get("reasoning")


class _Choice:
    """One choice of a streamed answer: its parser, its native calls, its chunk framing."""

    __slots__ = ("finish_reason", "native", "parser", "prefix", "started")

    def __init__(self, parser: StreamParser, prefix: bytes) -> None:
        self.parser = parser
        self.native = NativeCalls(parser)
        self.prefix = prefix
        self.finish_reason: str | None = None
        self.started = False


_SUFFIX = b',"finish_reason":null}]}\n\n'


class ChatStream:
    """Mends one streamed chat completion: feed it the backend's SSE payloads, send what
    it returns. Raises :class:`ProxyError` for a backend error event, a payload that is not
    JSON, or a stream that ends mid-answer (see :meth:`finish`)."""

    def __init__(self, request: dict[str, Any], parser_options: dict[str, Any], *, hold_calls: bool = False) -> None:
        self._options = parser_options
        # Calls are kept back (content still streams) until close() is given the final answer.
        self._hold = hold_calls
        opts = request.get("stream_options")
        self._include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
        self._choices: dict[int, _Choice] = {}
        self._head: bytes | None = None
        self._header: dict[str, Any] = {}
        self._usage: Any = None
        self._deltas = 0
        # The first parser is built now, so invalid tools fail before the backend is asked.
        self._first: StreamParser | None = StreamParser(**parser_options)

    def _frame(self, chunk: dict[str, Any]) -> None:
        self._header = {
            "id": chunk.get("id") if isinstance(chunk.get("id"), str) else f"chatcmpl-{time.time_ns()}",
            "object": "chat.completion.chunk",
            "created": chunk.get("created") if isinstance(chunk.get("created"), int) else int(time.time()),
            "model": chunk.get("model") if isinstance(chunk.get("model"), str) else "",
        }
        if isinstance(chunk.get("system_fingerprint"), str):
            self._header["system_fingerprint"] = chunk["system_fingerprint"]
        # Every chunk starts with the same bytes: {"id":..,"object":..,"created":..,"model":..,"choices":[
        self._head = b"data: " + orjson.dumps(self._header)[:-1] + b',"choices":[{"index":'

    def _choice(self, index: int) -> _Choice:
        c = self._choices.get(index)
        if c is None:
            parser = self._first if self._first is not None else StreamParser(**self._options)
            self._first = None
            assert self._head is not None
            c = _Choice(parser, self._head + str(index).encode() + b',"delta":')
            self._choices[index] = c
        return c

    def feed(self, payload: bytes) -> list[bytes]:
        """The SSE events to send for one backend payload (``[DONE]`` excluded)."""
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise ProxyError(
                502, f"the backend sent a malformed stream event: {payload[:200]!r}", "backend_malformed_stream"
            ) from None
        if not isinstance(chunk, dict):
            raise ProxyError(502, "the backend sent a stream event that is not an object", "backend_malformed_stream")
        if chunk.get("error") is not None:
            err = chunk["error"]
            message = err.get("message") if isinstance(err, dict) else str(err)
            raise ProxyError(502, f"backend error mid-stream: {message}", "backend_error")
        if self._head is None:
            self._frame(chunk)
        if chunk.get("usage") is not None:
            self._usage = chunk["usage"]
        out: list[bytes] = []
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return out
        for ch in choices:
            if not isinstance(ch, dict):
                continue
            index = ch.get("index")
            c = self._choice(index if isinstance(index, int) else 0)
            if not c.started:
                c.started = True
                out.append(c.prefix + b'{"role":"assistant","content":""}' + _SUFFIX)
            delta = ch.get("delta")
            if isinstance(delta, dict):
                self._deltas += 1
                reasoning = _reasoning_of(delta)
                if isinstance(reasoning, str) and reasoning:
                    out.append(c.prefix + orjson.dumps({"reasoning_content": reasoning}) + _SUFFIX)
                content = delta.get("content")
                events: list[Event] = []
                if isinstance(content, str) and content:
                    if c.native.open and content.strip():
                        events += c.native.close()
                    events += c.parser.feed(content)
                if delta.get("tool_calls"):
                    events += c.native.feed(delta["tool_calls"])
                if events:
                    _encode_events(events, c.prefix, out, self._hold)
            if isinstance(ch.get("finish_reason"), str):
                c.finish_reason = ch["finish_reason"]
        return out

    def finish(self, done: bool) -> list[bytes]:
        """The closing events: :meth:`end` then :meth:`close`."""
        return self.end(done) + self.close()

    def end(self, done: bool) -> list[bytes]:
        """Flushes what the parsers hold back. ``done``: the backend sent ``[DONE]``. A
        stream that ended with neither ``[DONE]`` nor a finish reason was cut: that raises,
        so that no half call is presented as complete."""
        if not done and not any(c.finish_reason for c in self._choices.values()):
            raise ProxyError(502, "the backend stream ended before the answer was complete", "backend_stream_cut")
        if self._head is None:
            self._frame({})
        if not self._choices:
            self._choice(0)
        out: list[bytes] = []
        for c in self._choices.values():
            if not c.started:
                c.started = True
                out.append(c.prefix + b'{"role":"assistant","content":""}' + _SUFFIX)
            events = c.native.close() + c.parser.finish()
            _encode_events(events, c.prefix, out, self._hold)
        return out

    @property
    def holding(self) -> bool:
        """Whether calls are held back for :meth:`close`."""
        return self._hold

    def answer(self) -> Answer:
        """The first choice as an :class:`Answer` (after :meth:`end`)."""
        c = self._choice(0)
        r = c.parser.result()
        return Answer(
            content=r.content,
            calls=[Call(t.id, t.name, t.arguments) for t in r.tool_calls],
            finish_reason=self._finish_reason(c),
            reasoning=r.reasoning,
            diagnostics=list(r.diagnostics),
            format=r.format,
            native_calls=c.native.count,
        )

    def close(self, final: Answer | None = None) -> list[bytes]:
        """The finish chunk(s) and the usage chunk. With ``final`` (the first choice's answer
        after the middleware), its calls are sent first, each whole, and its content where it
        goes beyond what was already streamed."""
        out: list[bytes] = []
        for index, c in self._choices.items():
            reason = self._finish_reason(c)
            if final is not None and index == 0:
                sent = c.parser.result().content or ""
                text = final.content or ""
                extra = text[len(sent) :] if text.startswith(sent) else ("" if sent else text)
                if extra:
                    out.append(c.prefix + orjson.dumps({"content": extra}) + _SUFFIX)
                for i, call in enumerate(final.calls):
                    out.append(c.prefix + orjson.dumps(call_start_delta(i, call.id, call.name)) + _SUFFIX)
                    out.append(c.prefix + orjson.dumps(call_args_delta(i, call.arguments)) + _SUFFIX)
                reason = final.finish_reason
            out.append(c.prefix + b'{},"finish_reason":' + orjson.dumps(reason) + b"}]}\n\n")
        if self._include_usage:
            usage = self._usage if isinstance(self._usage, dict) else _estimated_usage(self._deltas)
            out.append(b"data: " + orjson.dumps({**self._header, "choices": [], "usage": usage}) + b"\n\n")
        return out

    @staticmethod
    def _finish_reason(c: _Choice) -> str:
        return finish_reason_for(c.native.count > 0 or bool(c.parser.result().tool_calls), c.finish_reason)

    def outcome(self) -> Outcome:
        """What the answer contained (after :meth:`finish`)."""
        o = Outcome()
        for c in self._choices.values():
            _add_outcome(o, c.parser.result(), c.native.count)
        return o


def _add_outcome(o: Outcome, r: ParseResult, native: int) -> None:
    o.format = o.format or r.format
    native = min(native, len(r.tool_calls))  # a native call to an unknown tool became content
    o.native_calls += native
    o.text_calls += len(r.tool_calls) - native
    o.diagnostics += [d.kind for d in r.diagnostics]


def _estimated_usage(deltas: int) -> dict[str, int]:
    """Usage when the backend sent none: one token per streamed delta, prompt unknown (0)."""
    return {"prompt_tokens": 0, "completion_tokens": deltas, "total_tokens": deltas}


def _encode_events(events: Iterable[Event], prefix: bytes, out: list[bytes], hold_calls: bool = False) -> None:
    for e in events:
        if hold_calls and e.kind.startswith("tool_call"):
            continue
        delta = delta_from_event(e)
        if delta is not None:
            out.append(prefix + orjson.dumps(delta) + _SUFFIX)


def mend_message(message: Mapping[str, Any], parser_options: Mapping[str, Any]) -> tuple[ParseResult, int]:
    """The core's reading of one finished assistant message (text calls parsed, native calls
    repaired, coerced and renumbered), and how many calls were native."""
    parser = StreamParser(**parser_options)
    native = NativeCalls(parser)
    content = message.get("content")
    if isinstance(content, list):  # content parts: keep the text ones
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if isinstance(content, str) and content:
        parser.feed(content)
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for i, tc in enumerate(calls):
            if isinstance(tc, dict):
                # Each entry of a finished message is its own call, whatever its index.
                native.feed([{**tc, "index": i}])
        native.close()
    parser.finish()
    return parser.result(), native.count


def _reasoning(msg: Mapping[str, Any], r: ParseResult) -> str | None:
    reasoning = _reasoning_of(dict(msg))
    if r.reasoning:
        return (reasoning + r.reasoning) if isinstance(reasoning, str) else r.reasoning
    return reasoning if isinstance(reasoning, str) else None


def answer_from_completion(completion: Any, parser_options: Mapping[str, Any]) -> Answer:
    """The mended first choice of a ``chat.completion`` (an empty answer when it has none)."""
    choices = completion.get("choices") if isinstance(completion, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return Answer()
    ch = choices[0]
    message = ch.get("message")
    msg: Mapping[str, Any] = message if isinstance(message, dict) else {}
    r, native = mend_message(msg, parser_options)
    return Answer(
        content=r.content,
        calls=[Call(c.id, c.name, c.arguments) for c in r.tool_calls],
        finish_reason=finish_reason_for(bool(r.tool_calls), ch.get("finish_reason")),
        reasoning=_reasoning(msg, r),
        diagnostics=list(r.diagnostics),
        format=r.format,
        native_calls=native,
    )


def with_answer(completion: dict[str, Any], answer: Answer) -> dict[str, Any]:
    """``completion`` with its first choice's message replaced by ``answer``."""
    choices = list(completion.get("choices") or [{"index": 0}])
    first = choices[0] if isinstance(choices[0], dict) else {"index": 0}
    message = first.get("message")
    old: dict[str, Any] = message if isinstance(message, dict) else {}
    msg = {k: v for k, v in old.items() if k not in ("content", "tool_calls", "function_call", "reasoning")}
    msg.update(answer.as_message())
    if answer.reasoning:
        msg["reasoning_content"] = answer.reasoning
    choices[0] = {**first, "message": msg, "finish_reason": answer.finish_reason}
    return {**completion, "choices": choices}


def mend_completion(response: Any, parser_options: dict[str, Any]) -> tuple[Any, Outcome]:
    """Mends a non-streamed ``chat.completion`` (returned as a new object)."""
    outcome = Outcome()
    if not isinstance(response, dict) or not isinstance(response.get("choices"), list):
        return response, outcome
    choices = []
    for ch in response["choices"]:
        if not isinstance(ch, dict) or not isinstance(ch.get("message"), dict):
            choices.append(ch)
            continue
        msg = ch["message"]
        r, native = mend_message(msg, parser_options)
        _add_outcome(outcome, r, native)
        new_msg = {k: v for k, v in msg.items() if k not in ("content", "tool_calls", "function_call", "reasoning")}
        new_msg["role"] = "assistant"
        new_msg["content"] = r.content
        reasoning = _reasoning(msg, r)
        if reasoning:
            new_msg["reasoning_content"] = reasoning
        if r.tool_calls:
            new_msg["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in r.tool_calls
            ]
        finish = finish_reason_for(bool(r.tool_calls), ch.get("finish_reason"))
        choices.append({**ch, "message": new_msg, "finish_reason": finish})
    return {**response, "choices": choices}, outcome


def without_calls(obj: Any) -> Any:
    """A chunk or completion with its tool calls removed (``tool_choice: "none"`` when the
    backend sent calls anyway): text is left exactly as it was, ``finish_reason`` becomes
    ``stop``. Returns ``None`` for a chunk left with nothing to say."""
    if not isinstance(obj, dict) or not isinstance(obj.get("choices"), list):
        return obj
    choices = []
    for ch in obj["choices"]:
        if not isinstance(ch, dict):
            choices.append(ch)
            continue
        ch = dict(ch)
        for key in ("delta", "message"):
            part = ch.get(key)
            if isinstance(part, dict) and ("tool_calls" in part or "function_call" in part):
                ch[key] = {k: v for k, v in part.items() if k not in ("tool_calls", "function_call")}
        if ch.get("finish_reason") in ("tool_calls", "function_call"):
            ch["finish_reason"] = "stop"
        if ch.get("delta") == {} and ch.get("finish_reason") is None:
            continue  # a chunk that only carried a call: nothing left to send
        choices.append(ch)
    if not choices and "usage" not in obj:
        return None
    return {**obj, "choices": choices}
