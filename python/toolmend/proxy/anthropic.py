"""The Anthropic Messages front door: ``POST /v1/messages`` and ``/v1/messages/count_tokens``.

A Messages request is translated into a chat completion request and answered by
:meth:`Proxy.chat <toolmend.proxy.app.Proxy.chat>`, so it is mended exactly like an OpenAI
one; the mended answer (JSON, or the canonical SSE stream) is translated back: a ``message``
object, or the Messages event stream (``message_start``, ``content_block_*``,
``message_delta``, ``message_stop``; an ``error`` event when the stream breaks off).

The translation functions are pure (no I/O); :class:`Messages` holds the two handlers.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from toolmend.proxy.errors import ProxyError
from toolmend.proxy.sse import SSEDecoder

if TYPE_CHECKING:
    from toolmend.proxy.app import Proxy

__all__ = [
    "Messages",
    "StreamTranslator",
    "error_body",
    "error_response_from_openai",
    "estimate_input_tokens",
    "message_from_completion",
    "to_chat_request",
]

log = logging.getLogger("toolmend.proxy")

_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_JSON = "application/json"

IMAGE_TOKENS = 1600
"""What an image or a binary document counts for in the token estimates (about the largest
image Anthropic's vision models take without downscaling)."""

# Anthropic's error types by HTTP status.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}

# -- requests: Messages -> chat completions ------------------------------------------------------


def _invalid(message: str) -> ProxyError:
    return ProxyError(400, message, "invalid_request")


def _text_of(content: Any, where: str) -> str:
    """A string, or the text of a list of ``text`` blocks (other blocks are skipped)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _invalid(f"{where} must be a string or a list of content blocks")
    parts = []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
    return "\n\n".join(parts)


def _source_url(source: Any) -> str | None:
    """An image source as a URL (``data:`` for base64), or None when it cannot be one."""
    if not isinstance(source, dict):
        return None
    kind = source.get("type")
    if kind == "base64" and isinstance(source.get("data"), str):
        media = source.get("media_type") if isinstance(source.get("media_type"), str) else "image/png"
        return f"data:{media};base64,{source['data']}"
    if kind == "url" and isinstance(source.get("url"), str):
        return str(source["url"])
    return None


def _document_text(block: Mapping[str, Any]) -> str | None:
    """A document block's text when it has one (plain-text or content sources)."""
    source = block.get("source")
    if not isinstance(source, dict):
        return None
    if source.get("type") == "text" and isinstance(source.get("data"), str):
        text = str(source["data"])
    elif source.get("type") == "content":
        text = _text_of(source.get("content"), "a document's content")
    else:
        return None
    title = block.get("title")
    return f"{title}\n\n{text}" if isinstance(title, str) and title else text


def _tool_result_text(block: Mapping[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, list):
        parts = []
        for b in content:
            if not isinstance(b, dict):
                continue
            if b.get("type") == "text" and isinstance(b.get("text"), str):
                parts.append(b["text"])
            elif b.get("type") in ("image", "document"):
                # Chat tool messages carry text only.
                parts.append(_document_text(b) or f"({b['type']} omitted)")
        text = "\n".join(parts)
    else:
        text = _text_of(content, "tool_result content")
    if block.get("is_error") is True:
        return f"Error: {text}" if text else "Error"
    return text


def _user_messages(content: Any) -> list[dict[str, Any]]:
    """A user turn: ``tool`` messages for its ``tool_result`` blocks first (they answer the
    previous assistant turn's calls), then one user message with the rest."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise _invalid("a message's content must be a string or a list of content blocks")
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in content:
        if not isinstance(block, dict):
            raise _invalid("a content block must be an object")
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            url = _source_url(block.get("source"))
            if url is not None:
                parts.append({"type": "image_url", "image_url": {"url": url}})
        elif kind == "document":
            text = _document_text(block)
            if text is not None:
                parts.append({"type": "text", "text": text})
        elif kind == "tool_result":
            call_id = block.get("tool_use_id")
            if not isinstance(call_id, str):
                raise _invalid("a tool_result block needs a string tool_use_id")
            tools.append({"role": "tool", "tool_call_id": call_id, "content": _tool_result_text(block)})
        # Other blocks (thinking, search results, server tool results) have no chat equivalent.
    out = tools
    if parts:
        if all(p["type"] == "text" for p in parts):
            out.append({"role": "user", "content": "\n\n".join(p["text"] for p in parts)})
        else:
            out.append({"role": "user", "content": parts})
    return out


def _assistant_message(content: Any) -> dict[str, Any] | None:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise _invalid("a message's content must be a string or a list of content blocks")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        if not isinstance(block, dict):
            raise _invalid("a content block must be an object")
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use":
            call_id, name = block.get("id"), block.get("name")
            if not isinstance(call_id, str) or not isinstance(name, str):
                raise _invalid("a tool_use block needs a string id and name")
            args = block.get("input", {})
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": orjson.dumps(args if args is not None else {}).decode()},
                }
            )
        # thinking / redacted_thinking and server tool blocks are not sent back to the model.
    text = "\n\n".join(t for t in texts if t)
    if not calls and not text:
        return None
    msg: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        msg["tool_calls"] = calls
    return msg


def _tool(tool: Any) -> dict[str, Any] | None:
    """A custom tool as a chat ``function`` tool; None for Anthropic's schema-less built-in
    tools (web search, bash, text editor...), which a local model cannot be given."""
    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
        raise _invalid("a tool must be an object with a string name")
    schema = tool.get("input_schema")
    if schema is None and tool.get("type") not in (None, "custom"):
        log.info("messages: built-in tool %r (%s) dropped: it has no input schema", tool["name"], tool.get("type"))
        return None
    if not isinstance(schema, dict):
        raise _invalid(f"tool {tool['name']!r}: input_schema must be a JSON schema object")
    function: dict[str, Any] = {"name": tool["name"], "parameters": schema}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> tuple[Any, bool | None]:
    """The chat ``tool_choice`` and ``parallel_tool_calls`` (None: not said)."""
    if not isinstance(choice, dict):
        raise _invalid("tool_choice must be an object with a type")
    kind = choice.get("type")
    parallel = False if choice.get("disable_parallel_tool_use") is True else None
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", None
    if kind == "tool":
        if not isinstance(choice.get("name"), str):
            raise _invalid("tool_choice of type tool needs a string name")
        return {"type": "function", "function": {"name": choice["name"]}}, parallel
    raise _invalid(f"unknown tool_choice type {kind!r} (auto, any, tool or none)")


def to_chat_request(req: Mapping[str, Any]) -> dict[str, Any]:
    """A Messages request as a chat completion request. ``metadata``, ``thinking``, cache
    control and the other Anthropic-only fields are left out; raises :class:`ProxyError` (400)
    for a malformed request."""
    messages = req.get("messages")
    if not isinstance(messages, list):
        raise _invalid("messages must be a list")
    out: dict[str, Any] = {}
    if "model" in req:
        out["model"] = req["model"]
    chat: list[dict[str, Any]] = []
    system = _text_of(req.get("system"), "system")
    if system:
        chat.append({"role": "system", "content": system})
    for m in messages:
        if not isinstance(m, dict):
            raise _invalid("each message must be an object")
        role = m.get("role")
        if role == "user":
            chat += _user_messages(m.get("content"))
        elif role == "assistant":
            msg = _assistant_message(m.get("content"))
            if msg is not None:
                chat.append(msg)
        else:
            raise _invalid(f"a message's role must be user or assistant, not {role!r}")
    out["messages"] = chat
    for key in ("max_tokens", "temperature", "top_p", "top_k"):
        if req.get(key) is not None:
            out[key] = req[key]
    stops = req.get("stop_sequences")
    if isinstance(stops, list) and stops:
        out["stop"] = stops
    tools = req.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _invalid("tools must be a list")
        converted = [t for t in (_tool(t) for t in tools) if t is not None]
        if converted:
            out["tools"] = converted
            if req.get("tool_choice") is not None:
                choice, parallel = _tool_choice(req["tool_choice"])
                out["tool_choice"] = choice
                if parallel is not None:
                    out["parallel_tool_calls"] = parallel
    if req.get("stream") is True:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def wants_thinking(req: Mapping[str, Any]) -> bool:
    """Whether the request turned extended thinking on: only then is the model's reasoning
    sent back, as ``thinking`` blocks."""
    thinking = req.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def _without_media(obj: Any) -> tuple[Any, int]:
    """``obj`` with base64 / URL sources of images and documents taken out, and their count."""
    if isinstance(obj, list):
        items = [_without_media(v) for v in obj]
        return [v for v, _ in items], sum(n for _, n in items)
    if not isinstance(obj, dict):
        return obj, 0
    source = obj.get("source")
    if (
        obj.get("type") in ("image", "document")
        and isinstance(source, dict)
        and source.get("type") in ("base64", "url")
    ):
        return {k: v for k, v in obj.items() if k != "source"}, 1
    count = 0
    out = {}
    for k, v in obj.items():
        out[k], n = _without_media(v)
        count += n
    return out, count


def estimate_input_tokens(req: Mapping[str, Any]) -> int:
    """A rough input token count: 4 characters of the system prompt, messages and tools (as
    JSON) a token, plus :data:`IMAGE_TOKENS` per image or binary document."""
    parts = {k: req[k] for k in ("system", "messages", "tools") if req.get(k) is not None}
    stripped, media = _without_media(parts)
    return (len(orjson.dumps(stripped)) + 3) // 4 + media * IMAGE_TOKENS


# -- answers: chat completions -> Messages -------------------------------------------------------


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def _new_tool_id() -> str:
    return f"toolu_{uuid.uuid4().hex}"


def stop_reason(finish_reason: Any, has_calls: bool, matched: Any, stop_sequences: Any) -> tuple[str, str | None]:
    """Anthropic's ``stop_reason`` and ``stop_sequence`` for a chat finish reason.
    ``matched`` is the stop string some servers report in ``choices[].stop_reason``."""
    if finish_reason == "length":
        return "max_tokens", None
    if has_calls:
        return "tool_use", None
    if finish_reason == "content_filter":
        return "refusal", None
    if isinstance(matched, str) and isinstance(stop_sequences, list) and matched in stop_sequences:
        return "stop_sequence", matched
    return "end_turn", None


def _usage(usage: Any, input_estimate: int, output_estimate: int) -> dict[str, int]:
    """Anthropic usage from chat usage (estimates where the backend said nothing). Cached
    prompt tokens count as cache reads, which Anthropic keeps out of ``input_tokens``."""
    u = usage if isinstance(usage, dict) else {}
    prompt = u.get("prompt_tokens")
    completion = u.get("completion_tokens")
    details = u.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    cached = cached if isinstance(cached, int) and not isinstance(cached, bool) and cached > 0 else 0
    inputs = prompt - cached if isinstance(prompt, int) and not isinstance(prompt, bool) else input_estimate
    outputs = completion if isinstance(completion, int) and not isinstance(completion, bool) else output_estimate
    return {
        "input_tokens": max(inputs, 0),
        "output_tokens": outputs,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def _input_of(arguments: Any, name: str) -> dict[str, Any]:
    """A call's arguments as the ``input`` object of a ``tool_use`` block."""
    if isinstance(arguments, dict):
        return arguments
    if isinstance(arguments, str) and arguments.strip():
        try:
            value = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return value
        log.warning("messages: the arguments of a %r call are not a JSON object; input left empty", name)
    return {}


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _first_choice(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    choices = obj.get("choices")
    if not isinstance(choices, list):
        return None
    for ch in choices:
        if isinstance(ch, dict) and ch.get("index", 0) == 0:
            return ch
    return None


def _reasoning_of(d: Mapping[str, Any]) -> Any:
    r = d.get("reasoning_content")
    return r if r is not None else d.get("reasoning")


def message_from_completion(
    completion: Mapping[str, Any],
    *,
    model: Any,
    thinking: bool = False,
    stop_sequences: Any = None,
    input_estimate: int = 0,
) -> dict[str, Any]:
    """A ``chat.completion`` (its first choice) as a Messages ``message``: a thinking block
    (when asked for), the text, then one ``tool_use`` block per call."""
    choice = _first_choice(completion) or {}
    msg = choice.get("message")
    m: Mapping[str, Any] = msg if isinstance(msg, dict) else {}
    content: list[dict[str, Any]] = []
    produced = 0
    reasoning = _reasoning_of(m)
    if thinking and isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
        produced += len(reasoning)
    text = _content_text(m.get("content"))
    if text:
        content.append({"type": "text", "text": text})
        produced += len(text)
    calls = m.get("tool_calls")
    for call in calls if isinstance(calls, list) else []:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            continue
        call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else _new_tool_id()
        args = fn.get("arguments")
        produced += len(args) if isinstance(args, str) else 0
        content.append({"type": "tool_use", "id": call_id, "name": fn["name"], "input": _input_of(args, fn["name"])})
    has_calls = any(b["type"] == "tool_use" for b in content)
    reason, sequence = stop_reason(choice.get("finish_reason"), has_calls, choice.get("stop_reason"), stop_sequences)
    return {
        "id": new_message_id(),
        "type": "message",
        "role": "assistant",
        "model": model if isinstance(model, str) else completion.get("model", ""),
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": _usage(completion.get("usage"), input_estimate, (produced + 3) // 4),
    }


# -- errors --------------------------------------------------------------------------------------


def error_body(status: int, message: str) -> dict[str, Any]:
    """``{"type": "error", "error": {"type", "message"}}`` with the type for ``status``."""
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def _error_message(data: bytes) -> str:
    """The message of an error body (OpenAI-style, or whatever a backend sent)."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return data.decode("utf-8", "replace").strip()[:1000] or "unknown error"
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        for value in (err, body.get("message"), body.get("detail")):
            if isinstance(value, str) and value:
                return value
    return data.decode("utf-8", "replace")[:1000]


def error_response_from_openai(status: int, data: bytes) -> Response:
    """An OpenAI-style error answer (status and body) as an Anthropic one."""
    return Response(orjson.dumps(error_body(status, _error_message(data))), status_code=status, media_type=_JSON)


def _event(kind: str, obj: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **obj}) + b"\n\n"


def error_event(message: str, kind: str = "api_error") -> bytes:
    """The ``error`` event that ends a broken stream."""
    return _event("error", {"error": {"type": kind, "message": message}})


# -- streams -------------------------------------------------------------------------------------


class StreamTranslator:
    """Turns chat completion chunks (first choice) into Messages stream events, and keeps the
    message they describe (:meth:`message`).

    Blocks are numbered from 0 in the order they open: thinking (when asked for), text, then
    one ``tool_use`` block per call. A block is closed when the next one opens; content that
    comes after a call opens a new text block (whitespace alone is dropped there).
    """

    def __init__(
        self, model: Any, *, thinking: bool = False, stop_sequences: Any = None, input_estimate: int = 0
    ) -> None:
        self.model = model if isinstance(model, str) else ""
        self.thinking = thinking
        self.stop_sequences = stop_sequences
        self.input_estimate = input_estimate
        self.id = new_message_id()
        self.blocks: list[dict[str, Any]] = []
        self._json: dict[int, list[str]] = {}  # tool block -> its input fragments
        self._open: int | None = None
        self._calls: dict[int, int] = {}  # chat call index -> block index
        self._finish: Any = None
        self._matched: Any = None
        self._usage: Any = None
        self._chars = 0
        self.finished = False  # a finish reason was seen

    def start(self) -> bytes:
        usage = {
            "input_tokens": self.input_estimate,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        message: dict[str, Any] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return _event("message_start", {"message": message})

    def _close(self, out: list[bytes]) -> None:
        if self._open is not None:
            out.append(_event("content_block_stop", {"index": self._open}))
            self._open = None

    def _begin(self, block: dict[str, Any], out: list[bytes]) -> int:
        self._close(out)
        index = len(self.blocks)
        self.blocks.append(block)
        self._open = index
        out.append(_event("content_block_start", {"index": index, "content_block": dict(block)}))
        return index

    def _text(self, kind: str, text: str, out: list[bytes]) -> None:
        """Appends text to the open block of ``kind`` (``text`` or ``thinking``), opening one."""
        field = "text" if kind == "text" else "thinking"
        current = self.blocks[self._open] if self._open is not None else None
        if current is None or current["type"] != kind:
            if kind == "text" and any(b["type"] == "tool_use" for b in self.blocks) and not text.strip():
                return
            self._begin({"type": "text", "text": ""} if kind == "text" else {**_THINKING}, out)
        assert self._open is not None
        self.blocks[self._open][field] += text
        self._chars += len(text)
        delta = {"type": "text_delta", "text": text} if kind == "text" else {"type": "thinking_delta", "thinking": text}
        out.append(_event("content_block_delta", {"index": self._open, "delta": delta}))

    def _call(self, tc: Mapping[str, Any], out: list[bytes]) -> None:
        given = tc.get("index")
        index = given if isinstance(given, int) else len(self._calls)
        fn = tc.get("function")
        f: Mapping[str, Any] = fn if isinstance(fn, dict) else {}
        block = self._calls.get(index)
        if block is None:
            call_id = tc.get("id") if isinstance(tc.get("id"), str) and tc.get("id") else _new_tool_id()
            name = f.get("name") if isinstance(f.get("name"), str) else ""
            block = self._begin({"type": "tool_use", "id": call_id, "name": name, "input": {}}, out)
            self._calls[index] = block
            self._json[block] = []
        args = f.get("arguments")
        if isinstance(args, dict):
            args = orjson.dumps(args).decode()
        if isinstance(args, str) and args:
            self._json[block].append(args)
            self._chars += len(args)
            delta = {"type": "input_json_delta", "partial_json": args}
            out.append(_event("content_block_delta", {"index": block, "delta": delta}))

    def feed(self, chunk: Mapping[str, Any]) -> bytes:
        """The events for one chat completion chunk (an error chunk is the caller's)."""
        out: list[bytes] = []
        if chunk.get("usage") is not None:
            self._usage = chunk["usage"]
        choice = _first_choice(chunk)
        if choice is None:
            return b""
        delta = choice.get("delta")
        if isinstance(delta, dict):
            reasoning = _reasoning_of(delta)
            if self.thinking and isinstance(reasoning, str) and reasoning:
                self._text("thinking", reasoning, out)
            content = delta.get("content")
            if isinstance(content, str) and content:
                self._text("text", content, out)
            calls = delta.get("tool_calls")
            for tc in calls if isinstance(calls, list) else []:
                if isinstance(tc, dict):
                    self._call(tc, out)
        if isinstance(choice.get("finish_reason"), str):
            self._finish = choice["finish_reason"]
            self._matched = choice.get("stop_reason")
            self.finished = True
        return b"".join(out)

    def _stop(self) -> tuple[str, str | None]:
        has_calls = any(b["type"] == "tool_use" for b in self.blocks)
        return stop_reason(self._finish, has_calls, self._matched, self.stop_sequences)

    def finish(self) -> bytes:
        """The closing events: the open block's stop, ``message_delta``, ``message_stop``."""
        out: list[bytes] = []
        self._close(out)
        reason, sequence = self._stop()
        usage = _usage(self._usage, self.input_estimate, (self._chars + 3) // 4)
        delta_usage: dict[str, Any] = {"output_tokens": usage["output_tokens"]}
        if isinstance(self._usage, dict):  # the backend's counts replace message_start's estimate
            delta_usage["input_tokens"] = usage["input_tokens"]
            delta_usage["cache_read_input_tokens"] = usage["cache_read_input_tokens"]
        out.append(
            _event("message_delta", {"delta": {"stop_reason": reason, "stop_sequence": sequence}, "usage": delta_usage})
        )
        out.append(_event("message_stop", {}))
        return b"".join(out)

    def message(self) -> dict[str, Any]:
        """The whole message the events so far describe."""
        content = []
        for i, block in enumerate(self.blocks):
            if block["type"] == "tool_use":
                block = {**block, "input": _input_of("".join(self._json.get(i, [])), block["name"])}
            content.append(block)
        reason, sequence = self._stop()
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": reason,
            "stop_sequence": sequence,
            "usage": _usage(self._usage, self.input_estimate, (self._chars + 3) // 4),
        }


_THINKING = {"type": "thinking", "thinking": "", "signature": ""}


def events_from_message(message: Mapping[str, Any]) -> bytes:
    """A whole message as a Messages event stream (each block in one delta)."""
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**message["usage"], "output_tokens": 0}
    out = [_event("message_start", {"message": start})]
    for i, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "tool_use":
            empty = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": orjson.dumps(block["input"]).decode()}
        elif kind == "thinking":
            empty = {**block, "thinking": ""}
            delta = {"type": "thinking_delta", "thinking": block["thinking"]}
        else:
            empty = {**block, "text": ""}
            delta = {"type": "text_delta", "text": block["text"]}
        out.append(_event("content_block_start", {"index": i, "content_block": empty}))
        out.append(_event("content_block_delta", {"index": i, "delta": delta}))
        out.append(_event("content_block_stop", {"index": i}))
    usage = {"output_tokens": message["usage"]["output_tokens"]}
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    out.append(_event("message_delta", {"delta": delta, "usage": usage}))
    out.append(_event("message_stop", {}))
    return b"".join(out)


def _as_bytes(raw: Any) -> bytes:
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, str):
        return raw.encode()
    return bytes(raw)


class _Broken(Exception):
    """A chat stream that reported an error, or ended mid-answer."""


class _ChatEvents:
    """The chunks of a chat SSE stream, per read (``[DONE]`` and non-object events skipped).
    Iterating raises :class:`_Broken` for an error event or an event that is not JSON;
    :attr:`done` says afterwards whether ``[DONE]`` came. The stream is read to its end, so
    that its producer finishes its bookkeeping, and closed."""

    def __init__(self, body: AsyncIterable[Any]) -> None:
        self.body = body
        self.done = False

    @staticmethod
    def _chunk(payload: bytes) -> dict[str, Any] | _Broken | None:
        """The chunk, or the failure it reports (None: not an object, skipped)."""
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return _Broken("the backend sent a malformed stream event")
        if not isinstance(chunk, dict):
            return None
        if chunk.get("error") is not None:
            return _Broken(_error_message(payload))
        return chunk

    async def chunks(self) -> AsyncGenerator[list[dict[str, Any]], None]:
        decoder = SSEDecoder()
        try:
            async for raw in self.body:
                if self.done:
                    continue
                payloads = decoder.feed(_as_bytes(raw))
                chunks: list[dict[str, Any]] = []
                for payload in payloads:
                    if payload == b"[DONE]":
                        self.done = True
                        break
                    chunk = self._chunk(payload)
                    if isinstance(chunk, _Broken):
                        if chunks:
                            yield chunks  # what came before the failure still goes out
                        raise chunk
                    if chunk is not None:
                        chunks.append(chunk)
                if chunks:
                    yield chunks
            if not self.done:
                tail = decoder.close()
                if tail == b"[DONE]":
                    self.done = True
                elif tail is not None:
                    chunk = self._chunk(tail)
                    if isinstance(chunk, _Broken):
                        raise chunk
                    if chunk is not None:
                        yield [chunk]
        finally:
            aclose = getattr(self.body, "aclose", None)
            if aclose is not None:
                await aclose()


# -- the handlers --------------------------------------------------------------------------------


class Messages:
    """``POST /v1/messages`` and ``POST /v1/messages/count_tokens`` for a :class:`Proxy`."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    async def _read(self, request: Request, endpoint: str, started: float) -> dict[str, Any] | Response:
        """The authorised request body, or the error answer."""
        try:
            self.proxy._check_key(request)
            body = await self.proxy._read_body(request)
            return self.proxy._parse_json(body)
        except ProxyError as e:
            return self._anthropic(self.proxy._fail(endpoint, False, e, started))

    @staticmethod
    def _anthropic(resp: Response) -> Response:
        """An OpenAI-style error response from the proxy as an Anthropic one."""
        return error_response_from_openai(resp.status_code, bytes(resp.body))

    async def messages(self, request: Request) -> Response:
        started = time.perf_counter()
        req = await self._read(request, "messages", started)
        if isinstance(req, Response):
            return req
        try:
            chat = to_chat_request(req)
        except ProxyError as e:
            return self._anthropic(self.proxy._fail("messages", bool(req.get("stream")), e, started))
        options: dict[str, Any] = {
            "thinking": wants_thinking(req),
            "stop_sequences": req.get("stop_sequences"),
            "input_estimate": estimate_input_tokens(req),
        }
        resp = await self.proxy.chat(request, chat, orjson.dumps(chat), "messages", started)
        if isinstance(resp, StreamingResponse):
            if resp.status_code >= 400:
                data = b"".join([_as_bytes(raw) async for raw in resp.body_iterator])
                return error_response_from_openai(resp.status_code, data)
            translator = StreamTranslator(req.get("model"), **options)
            if chat.get("stream"):
                return StreamingResponse(
                    self._stream(translator, resp.body_iterator), media_type="text/event-stream", headers=_SSE_HEADERS
                )
            events = _ChatEvents(resp.body_iterator)
            reads = events.chunks()
            try:
                async for chunks in reads:
                    for chunk in chunks:
                        translator.feed(chunk)
                if not (events.done or translator.finished):
                    raise _Broken("the backend stream ended before the answer was complete")
            except _Broken as e:
                return Response(orjson.dumps(error_body(502, str(e))), status_code=502, media_type=_JSON)
            finally:
                await reads.aclose()
            return Response(orjson.dumps(translator.message()), media_type=_JSON)
        data = bytes(resp.body)
        if resp.status_code >= 400:
            return error_response_from_openai(resp.status_code, data)
        try:
            completion = orjson.loads(data)
        except orjson.JSONDecodeError:
            completion = None
        if not isinstance(completion, dict):
            return Response(
                orjson.dumps(error_body(502, "the backend's answer is not a JSON object")),
                status_code=502,
                media_type=_JSON,
            )
        message = message_from_completion(completion, model=req.get("model"), **options)
        if chat.get("stream"):
            # The backend answered whole: the message as a stream.
            return StreamingResponse(
                _once(events_from_message(message)), media_type="text/event-stream", headers=_SSE_HEADERS
            )
        return Response(orjson.dumps(message), media_type=_JSON)

    async def _stream(self, translator: StreamTranslator, body: AsyncIterable[Any]) -> AsyncIterator[bytes]:
        yield translator.start()
        events = _ChatEvents(body)
        reads = events.chunks()
        try:
            async for chunks in reads:
                out = b"".join(translator.feed(c) for c in chunks)
                if out:
                    yield out
        except _Broken as e:
            yield error_event(str(e))
            return
        finally:
            await reads.aclose()
        if not (events.done or translator.finished):
            yield error_event("the backend stream ended before the answer was complete")
            return
        yield translator.finish()

    async def count_tokens(self, request: Request) -> Response:
        started = time.perf_counter()
        req = await self._read(request, "count_tokens", started)
        if isinstance(req, Response):
            return req
        if not isinstance(req.get("messages"), list):
            e = _invalid("messages must be a list")
            return self._anthropic(self.proxy._fail("count_tokens", False, e, started))
        self.proxy._done("count_tokens", False, started)
        return Response(orjson.dumps({"input_tokens": estimate_input_tokens(req)}), media_type=_JSON)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
