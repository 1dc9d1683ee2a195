"""The Responses API front door (``POST /v1/responses``, what Codex CLI speaks).

A Responses request is translated to a chat completion request, answered by
:meth:`Proxy.chat <toolmend.proxy.app.Proxy.chat>` (so calls written as text are mended exactly
as on ``/v1/chat/completions``), and the answer is translated back: a ``response`` object, or
the Responses event stream (``response.created`` … ``response.completed``) built from the
canonical chat chunk stream. Nothing is stored: ``previous_response_id`` and the other
parameters that need server-side state are refused with a 400.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from toolmend.proxy.errors import ProxyError
from toolmend.proxy.sse import SSEDecoder

if TYPE_CHECKING:
    from toolmend.proxy.app import Proxy

ENDPOINT = "responses"
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
# Request parameters that only make sense with responses stored on the server.
_STATEFUL = {
    "previous_response_id": "previous_response_id",
    "conversation": "conversation",
    "prompt": "prompt (a stored prompt template)",
}


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def _invalid(message: str, code: str = "invalid_request") -> ProxyError:
    return ProxyError(400, message, code)


def _obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def _nonempty(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# -- request: Responses -> chat ------------------------------------------------------------


def _text_of_parts(parts: list[Any], sep: str) -> str:
    texts = [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return sep.join(texts)


def _user_content(content: Any, where: str) -> str | list[dict[str, Any]]:
    """A message's content for chat: a string, or content parts when there are images."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _invalid(f"{where}: `content` must be a string or a list of content parts")
    parts: list[dict[str, Any]] = []
    has_image = False
    for p in content:
        if not isinstance(p, dict):
            raise _invalid(f"{where}: a content part must be an object")
        kind = p.get("type")
        if kind in ("input_text", "output_text", "text") and isinstance(p.get("text"), str):
            parts.append({"type": "text", "text": p["text"]})
        elif kind == "refusal" and isinstance(p.get("refusal"), str):
            parts.append({"type": "text", "text": p["refusal"]})
        elif kind == "input_image":
            url = p.get("image_url")
            if not isinstance(url, str) or not url:
                raise _invalid(f"{where}: an input_image needs an `image_url` (file ids are not supported)")
            image: dict[str, Any] = {"url": url}
            if isinstance(p.get("detail"), str):
                image["detail"] = p["detail"]
            parts.append({"type": "image_url", "image_url": image})
            has_image = True
        # Other parts (input_file, input_audio, ...) have no chat equivalent here: left out.
    if has_image:
        return parts
    return "\n".join(p["text"] for p in parts)


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise _invalid(f"{where}: unknown message role {role!r}")
    content = item.get("content")
    if role == "assistant":
        # Chat templates expect an assistant's content as one string.
        text = content if isinstance(content, str) else _text_of_parts(content if isinstance(content, list) else [], "")
        return {"role": "assistant", "content": text}
    chat_content = _user_content(content, where)
    if role != "user" and not isinstance(chat_content, str):
        chat_content = _text_of_parts(chat_content, "\n")
    # Local servers know no "developer" role: it is a system message to them.
    return {"role": "user" if role == "user" else "system", "content": chat_content}


def _tool_output(output: Any) -> str:
    """A ``function_call_output``'s ``output`` as a tool message's text."""
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return _text_of_parts(output, "\n")
    return orjson.dumps(output).decode()


def _messages(req: dict[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    instructions = req.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    elif instructions is not None and not isinstance(instructions, str):
        raise _invalid("`instructions` must be a string")
    items = req.get("input")
    if items is None:
        items = []
    elif isinstance(items, str):
        items = [{"role": "user", "content": items}]
    elif not isinstance(items, list):
        raise _invalid("`input` must be a string or a list of input items")
    for n, item in enumerate(items):
        where = f"input[{n}]"
        if not isinstance(item, dict):
            raise _invalid(f"{where}: an input item must be an object")
        kind = item.get("type")
        if kind is None or kind == "message":
            msg = _message(item, where)
            if msg["role"] == "system" and all(m["role"] == "system" for m in messages) and messages:
                # Leading instructions and developer messages become one system message: many
                # chat templates accept a system message only at the start.
                messages[0] = {**messages[0], "content": f"{messages[0]['content']}\n\n{msg['content']}"}
            else:
                messages.append(msg)
        elif kind == "function_call":
            call_id, name = item.get("call_id"), item.get("name")
            if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
                raise _invalid(f"{where}: a function_call item needs a `call_id` and a `name`")
            args = item.get("arguments")
            arguments = args if isinstance(args, str) else orjson.dumps(args if args is not None else {}).decode()
            call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                # Consecutive calls (and the text the model wrote before them) are one assistant turn.
                last.setdefault("tool_calls", []).append(call)
                if last.get("content") == "":
                    last["content"] = None
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or not call_id:
                raise _invalid(f"{where}: a function_call_output item needs a `call_id`")
            messages.append({"role": "tool", "tool_call_id": call_id, "content": _tool_output(item.get("output"))})
        elif kind == "item_reference":
            raise _invalid(
                f"{where}: item_reference needs stored responses, which toolmend does not keep; "
                "send the items themselves",
                "unsupported_parameter",
            )
        # Reasoning items, and the calls and outputs of tool types other than functions, have
        # no chat form: skipped.
    return messages


def _tools(req: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The chat tools, and the Responses function tools they came from (echoed back).
    Tools of other types (web_search, file_search, custom, local_shell, mcp, ...) are dropped:
    a local model can only be offered functions."""
    tools = req.get("tools")
    if tools is None:
        return [], []
    if not isinstance(tools, list):
        raise ProxyError(400, "invalid tools: `tools` must be a list of tool objects", "invalid_tools")
    chat: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    for n, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise ProxyError(400, f"invalid tools: tools[{n}] (a function) needs a `name`", "invalid_tools")
        fn: dict[str, Any] = {"name": name}
        if isinstance(tool.get("description"), str):
            fn["description"] = tool["description"]
        params = tool.get("parameters")
        fn["parameters"] = params if isinstance(params, dict) else _EMPTY_SCHEMA
        if isinstance(tool.get("strict"), bool):
            fn["strict"] = tool["strict"]
        chat.append({"type": "function", "function": fn})
        kept.append(tool)
    return chat, kept


def _tool_choice(choice: Any, chat_tools: list[dict[str, Any]]) -> tuple[Any, list[dict[str, Any]]]:
    """The chat ``tool_choice`` (``None``: leave it out) and the tools it leaves on offer."""
    if choice in ("auto", "none", "required"):
        return choice, chat_tools
    if not isinstance(choice, dict):
        return None, chat_tools
    kind = choice.get("type")
    if kind == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}, chat_tools
    if kind == "allowed_tools":
        allowed = choice.get("tools")
        names = {t.get("name") for t in (allowed if isinstance(allowed, list) else []) if isinstance(t, dict)} - {None}
        mode = choice.get("mode")
        return (mode if mode in ("auto", "required") else "auto"), [
            t for t in chat_tools if t["function"]["name"] in names
        ]
    # A choice of a hosted or custom tool: those tools were dropped, the model chooses.
    return None, chat_tools


def _response_format(text: Any) -> dict[str, Any] | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        schema: dict[str, Any] = {"name": fmt.get("name") if isinstance(fmt.get("name"), str) else "response"}
        schema["schema"] = fmt["schema"]
        for key in ("strict", "description"):
            if fmt.get(key) is not None:
                schema[key] = fmt[key]
        return {"type": "json_schema", "json_schema": schema}
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    return None


def chat_request(req: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Responses request as a chat completion request, and the request fields a response
    object echoes. Raises :class:`ProxyError` (400) for what cannot be translated."""
    for key, what in _STATEFUL.items():
        if req.get(key) is not None:
            raise _invalid(
                f"{what} is not supported: toolmend keeps no responses or conversations; "
                "send the whole conversation in `input`",
                "unsupported_parameter",
            )
    if req.get("background") is True:
        raise _invalid(
            "background responses are not supported: toolmend keeps no responses to poll", "unsupported_parameter"
        )
    chat: dict[str, Any] = {}
    if req.get("model") is not None:
        chat["model"] = req["model"]
    chat["messages"] = _messages(req)
    tools, kept = _tools(req)
    choice, tools = _tool_choice(req.get("tool_choice"), tools)
    if tools:
        chat["tools"] = tools
        if choice is not None:
            chat["tool_choice"] = choice
        if isinstance(req.get("parallel_tool_calls"), bool):
            chat["parallel_tool_calls"] = req["parallel_tool_calls"]
    max_tokens = req.get("max_output_tokens")
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
        chat["max_tokens"] = max_tokens
    for key in ("temperature", "top_p"):
        if isinstance(req.get(key), (int, float)) and not isinstance(req.get(key), bool):
            chat[key] = req[key]
    if isinstance(req.get("user"), str):
        chat["user"] = req["user"]
    fmt = _response_format(req.get("text"))
    if fmt is not None:
        chat["response_format"] = fmt
    if "toolmend" in req:
        chat["toolmend"] = req["toolmend"]  # the proxy's own request options, as on chat completions
    stream = req.get("stream") is True
    chat["stream"] = stream
    if stream:
        chat["stream_options"] = {"include_usage": True}
    text = _obj(req.get("text"))
    echo: dict[str, Any] = {
        "instructions": req.get("instructions") if isinstance(req.get("instructions"), str) else None,
        "max_output_tokens": max_tokens if isinstance(max_tokens, int) else None,
        "model": req.get("model") if isinstance(req.get("model"), str) else None,
        "parallel_tool_calls": req.get("parallel_tool_calls") is not False,
        "temperature": chat.get("temperature"),
        "text": {**text, "format": text.get("format") or {"type": "text"}},
        "tool_choice": req.get("tool_choice") if req.get("tool_choice") is not None else "auto",
        "tools": kept,
        "top_p": chat.get("top_p"),
        "metadata": req.get("metadata") if isinstance(req.get("metadata"), dict) else {},
    }
    if isinstance(req.get("user"), str):
        echo["user"] = req["user"]
    return chat, echo


# -- answer: chat -> Responses ---------------------------------------------------------------


def _usage(usage: Any) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return None

    def count(obj: Any, key: str) -> int:
        value = obj.get(key) if isinstance(obj, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    given_in, given_out = count(usage, "prompt_tokens"), count(usage, "completion_tokens")
    total = count(usage, "total_tokens") or given_in + given_out
    return {
        "input_tokens": given_in,
        "input_tokens_details": {
            "cached_tokens": count(usage.get("prompt_tokens_details"), "cached_tokens"),
            "cache_write_tokens": 0,
        },
        "output_tokens": given_out,
        "output_tokens_details": {
            "reasoning_tokens": count(usage.get("completion_tokens_details"), "reasoning_tokens")
        },
        "total_tokens": total,
    }


def _incomplete_reason(finish_reason: Any) -> str | None:
    if finish_reason == "length":
        return "max_output_tokens"
    if finish_reason == "content_filter":
        return "content_filter"
    return None


class ResponseBuilder:
    """One response's identity and echoed request fields; builds ``response`` objects."""

    def __init__(self, echo: dict[str, Any]) -> None:
        self.id = _new_id("resp_")
        self.created_at = int(time.time())
        self.echo = echo

    def response(
        self,
        status: str,
        output: list[dict[str, Any]],
        *,
        model: Any = None,
        usage: dict[str, Any] | None = None,
        incomplete_reason: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        echo = self.echo
        obj: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": error,
            "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
            "instructions": echo["instructions"],
            "max_output_tokens": echo["max_output_tokens"],
            "model": echo["model"] or (model if isinstance(model, str) else ""),
            "output": output,
            "parallel_tool_calls": echo["parallel_tool_calls"],
            "previous_response_id": None,
            "store": False,
            "temperature": echo["temperature"],
            "text": echo["text"],
            "tool_choice": echo["tool_choice"],
            "tools": echo["tools"],
            "top_p": echo["top_p"],
            "truncation": "disabled",
            "usage": usage,
            "metadata": echo["metadata"],
        }
        if "user" in echo:
            obj["user"] = echo["user"]
        if status == "completed":
            obj["completed_at"] = int(time.time())
        return obj


def _message_item(text: str, status: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": _new_id("msg_"),
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}] if status != "in_progress" else [],
    }


def _call_item(call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": _new_id("fc_"),
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def _reasoning_item(text: str, status: str) -> dict[str, Any]:
    content = [{"type": "reasoning_text", "text": text}] if status != "in_progress" else []
    return {"type": "reasoning", "id": _new_id("rs_"), "summary": [], "content": content, "status": status}


def response_from_completion(completion: Any, builder: ResponseBuilder) -> dict[str, Any]:
    """A (mended) ``chat.completion`` as a ``response`` object: reasoning, then the text as a
    message item, then one ``function_call`` item per call."""
    choices = completion.get("choices") if isinstance(completion, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    msg = _obj(choice.get("message"))
    reason = _incomplete_reason(choice.get("finish_reason"))
    output: list[dict[str, Any]] = []
    reasoning = msg.get("reasoning_content") or msg.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        output.append(_reasoning_item(reasoning, "completed"))
    content = msg.get("content")
    if isinstance(content, list):
        content = _text_of_parts(content, "")
    if isinstance(content, str) and content.strip():
        output.append(_message_item(content, "completed"))
    for tc in msg.get("tool_calls") or []:
        fn = _obj(tc.get("function") if isinstance(tc, dict) else None)
        name = _nonempty(fn.get("name"))
        if name is None:
            continue
        args = fn.get("arguments")
        arguments = args if isinstance(args, str) else orjson.dumps(args if args is not None else {}).decode()
        call_id = _nonempty(tc.get("id")) or _new_id("call_")
        output.append(_call_item(call_id, name, arguments or "{}", "completed"))
    if reason is not None and output:
        # The token limit (or a filter) cut the answer: its last item may be unfinished.
        output[-1] = _with_status(output[-1], "incomplete")
    model = completion.get("model") if isinstance(completion, dict) else None
    usage = _usage(completion.get("usage")) if isinstance(completion, dict) else None
    return builder.response(
        "incomplete" if reason else "completed", output, model=model, usage=usage, incomplete_reason=reason
    )


def _with_status(item: dict[str, Any], status: str) -> dict[str, Any]:
    out = {**item, "status": status}
    if item["type"] == "message" and not item["content"]:
        out["content"] = [{"type": "output_text", "text": "", "annotations": []}]
    return out


class _Item:
    """An output item being streamed."""

    __slots__ = ("chat_index", "item", "output_index", "text")

    def __init__(self, item: dict[str, Any], output_index: int, chat_index: int | None = None) -> None:
        self.item = item
        self.output_index = output_index
        self.chat_index = chat_index
        self.text: list[str] = []


class ResponseEvents:
    """Turns a canonical chat completion chunk stream into Responses API events.

    :meth:`start` gives ``response.created`` and ``response.in_progress``; :meth:`feed` takes
    each chunk (a parsed ``chat.completion.chunk``); :meth:`finish` closes the open item and
    gives ``response.completed`` (``response.incomplete`` when the token limit cut the
    answer); :meth:`fail` gives ``response.failed``. Each returned element is one encoded
    SSE event (``event: <type>`` and ``data: <json>``, with a ``sequence_number``).
    """

    def __init__(self, builder: ResponseBuilder) -> None:
        self.builder = builder
        self.items: list[_Item] = []
        self.finish_reason: str | None = None
        self.usage: Any = None
        self.model: Any = None
        self.final: dict[str, Any] | None = None
        self._seq = 0
        self._open: _Item | None = None
        self._calls: dict[int, _Item] = {}
        # Whitespace written outside a message (around calls) is kept back: it becomes a
        # message only if text follows it.
        self._pending = ""

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def start(self) -> list[bytes]:
        snapshot = self.builder.response("in_progress", [])
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    # -- items ---------------------------------------------------------------------------

    def _add(self, item: dict[str, Any], chat_index: int | None = None) -> tuple[_Item, list[bytes]]:
        it = _Item(item, len(self.items), chat_index)
        self.items.append(it)
        self._open = it
        out = [self._event("response.output_item.added", output_index=it.output_index, item=dict(item))]
        part: dict[str, Any] | None = None
        if item["type"] == "message":
            part = {"type": "output_text", "text": "", "annotations": []}
        elif item["type"] == "reasoning":
            part = {"type": "reasoning_text", "text": ""}
        if part is not None:
            out.append(
                self._event(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=it.output_index,
                    content_index=0,
                    part=part,
                )
            )
        return it, out

    def _close(self, status: str = "completed") -> list[bytes]:
        it = self._open
        if it is None:
            return []
        self._open = None
        item = it.item
        text = "".join(it.text)
        ids = {"item_id": item["id"], "output_index": it.output_index}
        out: list[bytes] = []
        if item["type"] == "message":
            part = {"type": "output_text", "text": text, "annotations": []}
            out.append(self._event("response.output_text.done", **ids, content_index=0, text=text, logprobs=[]))
            out.append(self._event("response.content_part.done", **ids, content_index=0, part=part))
            item["content"] = [part]
        elif item["type"] == "reasoning":
            part = {"type": "reasoning_text", "text": text}
            out.append(self._event("response.reasoning_text.done", **ids, content_index=0, text=text))
            out.append(self._event("response.content_part.done", **ids, content_index=0, part=part))
            item["content"] = [part]
        else:
            item["arguments"] = text or "{}"
            out.append(self._event("response.function_call_arguments.done", **ids, arguments=item["arguments"]))
        item["status"] = status
        out.append(self._event("response.output_item.done", output_index=it.output_index, item=dict(item)))
        return out

    def _text(self, text: str) -> list[bytes]:
        out: list[bytes] = []
        it = self._open
        if it is None or it.item["type"] != "message":
            self._pending += text
            if not self._pending.strip():
                return out
            text, self._pending = self._pending, ""
            out += self._close()
            it, added = self._add(_message_item("", "in_progress"))
            out += added
        it.text.append(text)
        out.append(
            self._event(
                "response.output_text.delta",
                item_id=it.item["id"],
                output_index=it.output_index,
                content_index=0,
                delta=text,
                logprobs=[],
            )
        )
        return out

    def _reasoning(self, text: str) -> list[bytes]:
        out: list[bytes] = []
        it = self._open
        if it is None or it.item["type"] != "reasoning":
            out += self._close()
            it, added = self._add(_reasoning_item("", "in_progress"))
            out += added
        it.text.append(text)
        out.append(
            self._event(
                "response.reasoning_text.delta",
                item_id=it.item["id"],
                output_index=it.output_index,
                content_index=0,
                delta=text,
            )
        )
        return out

    def _call(self, tc: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        fn = _obj(tc.get("function"))
        index = tc.get("index")
        if not isinstance(index, int):
            index = self._open.chat_index if self._open is not None and self._open.chat_index is not None else 0
        it = self._calls.get(index)
        if it is None:
            self._pending = ""
            out += self._close()
            call_id = _nonempty(tc.get("id")) or _new_id("call_")
            name = _nonempty(fn.get("name")) or ""
            it, added = self._add(_call_item(call_id, name, "", "in_progress"), index)
            self._calls[index] = it
            out += added
        args = fn.get("arguments")
        if args is not None and not isinstance(args, str):
            args = orjson.dumps(args).decode()
        if args:
            it.text.append(args)
            out.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=it.item["id"],
                    output_index=it.output_index,
                    delta=args,
                )
            )
        return out

    # -- the stream ------------------------------------------------------------------------

    def feed(self, chunk: Any) -> list[bytes]:
        """The events for one chat chunk (only the first choice is read)."""
        if not isinstance(chunk, dict):
            return []
        if self.model is None and isinstance(chunk.get("model"), str):
            self.model = chunk["model"]
        if chunk.get("usage") is not None:
            self.usage = chunk["usage"]
        out: list[bytes] = []
        choices = chunk.get("choices")
        for ch in choices if isinstance(choices, list) else []:
            if not isinstance(ch, dict) or ch.get("index", 0) != 0:
                continue
            delta = ch.get("delta")
            if isinstance(delta, dict):
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                if isinstance(reasoning, str) and reasoning:
                    out += self._reasoning(reasoning)
                content = delta.get("content")
                if isinstance(content, str) and content:
                    out += self._text(content)
                calls = delta.get("tool_calls")
                for tc in calls if isinstance(calls, list) else []:
                    if isinstance(tc, dict):
                        out += self._call(tc)
            if isinstance(ch.get("finish_reason"), str):
                self.finish_reason = ch["finish_reason"]
        return out

    def finish(self) -> list[bytes]:
        """Closes the open item; ``response.completed`` (or ``response.incomplete``)."""
        reason = _incomplete_reason(self.finish_reason)
        out = self._close("incomplete" if reason else "completed")
        output = [it.item for it in self.items]
        status = "incomplete" if reason else "completed"
        self.final = self.builder.response(
            status, output, model=self.model, usage=_usage(self.usage), incomplete_reason=reason
        )
        out.append(self._event(f"response.{status}", response=self.final))
        return out

    def fail(self, message: str, code: Any) -> list[bytes]:
        """``response.failed``: the answer broke off (items left open stay ``in_progress``)."""
        self._open = None
        error = {"code": code if isinstance(code, str) and code else "server_error", "message": message}
        output = [it.item for it in self.items]
        self.final = self.builder.response("failed", output, model=self.model, usage=_usage(self.usage), error=error)
        return [self._event("response.failed", response=self.final)]

    def failed_by(self, payload: Any) -> list[bytes]:
        """``response.failed`` for an ``{"error": ...}`` payload of the chat stream."""
        err = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(err, dict):
            message = _nonempty(err.get("message")) or "the backend failed"
            return self.fail(message, err.get("code"))
        return self.fail(str(err), None)


# -- the endpoint ----------------------------------------------------------------------------


def _chunk_of_completion(completion: Any) -> dict[str, Any]:
    """A whole chat completion as one chunk (for a stream answered whole)."""
    if not isinstance(completion, dict):
        return {}
    choices = []
    for ch in completion.get("choices") or []:
        if isinstance(ch, dict) and isinstance(ch.get("message"), dict):
            msg = ch["message"]
            calls = [{**c, "index": i} for i, c in enumerate(msg.get("tool_calls") or []) if isinstance(c, dict)]
            delta = {k: msg.get(k) for k in ("content", "reasoning_content", "reasoning")}
            choices.append(
                {
                    "index": ch.get("index", 0),
                    "delta": {**delta, "tool_calls": calls},
                    "finish_reason": ch.get("finish_reason"),
                }
            )
    return {"model": completion.get("model"), "choices": choices, "usage": completion.get("usage")}


async def _translate(body: AsyncIterable[Any] | None, whole: Any, events: ResponseEvents) -> AsyncIterator[bytes]:
    """The Responses events for a chat answer: the chunk stream ``body``, or a ``whole``
    completion when the answer came whole."""
    yield b"".join(events.start())
    if body is None:
        yield b"".join(events.feed(_chunk_of_completion(whole)) + events.finish())
        return
    decoder = SSEDecoder()
    done = False
    try:
        async for raw in body:
            data = raw.encode() if isinstance(raw, str) else bytes(raw)
            payloads = decoder.feed(data)
            out: list[bytes] = []
            for payload in payloads:
                if payload == b"[DONE]":
                    done = True
                    continue
                try:
                    chunk = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    yield b"".join([*out, *events.fail("the backend sent a malformed stream event", "server_error")])
                    return
                if isinstance(chunk, dict) and chunk.get("error") is not None:
                    yield b"".join(out + events.failed_by(chunk))
                    return
                out += events.feed(chunk)
            if out:
                yield b"".join(out)
        tail = decoder.close()
        if tail is not None and tail != b"[DONE]":
            try:
                chunk = orjson.loads(tail)
            except orjson.JSONDecodeError:
                chunk = None
            if isinstance(chunk, dict) and chunk.get("error") is not None:
                yield b"".join(events.failed_by(chunk))
                return
            tail_out = events.feed(chunk)
            if tail_out:
                yield b"".join(tail_out)
        elif tail == b"[DONE]":
            done = True
        if not done and events.finish_reason is None:
            yield b"".join(events.fail("the backend stream ended before the answer was complete", "server_error"))
            return
        yield b"".join(events.finish())
    finally:
        close = getattr(body, "aclose", None)
        if close is not None:
            await close()


async def _final_of(events: ResponseEvents, body: AsyncIterable[Any]) -> dict[str, Any]:
    """Runs a chat stream through ``events`` and returns the final response object."""
    async for _ in _translate(body, None, events):
        pass
    assert events.final is not None
    return events.final


def _json(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type="application/json")


async def create_response(proxy: Proxy, request: Request) -> Response:
    """``POST /v1/responses``."""
    started = time.perf_counter()
    stream = False
    try:
        proxy._check_key(request)
        body = await proxy._read_body(request)
        req = proxy._parse_json(body)
        stream = req.get("stream") is True
        chat, echo = chat_request(req)
    except ProxyError as e:
        return proxy._fail(ENDPOINT, stream, e, started)
    answer = await proxy.chat(request, chat, orjson.dumps(chat), ENDPOINT, started)
    if answer.status_code >= 400:
        return answer  # an OpenAI error body, which the Responses API shares
    events = ResponseEvents(ResponseBuilder(echo))
    if isinstance(answer, StreamingResponse):
        if stream:
            return StreamingResponse(
                _translate(answer.body_iterator, None, events), media_type="text/event-stream", headers=_SSE_HEADERS
            )
        final = await _final_of(events, answer.body_iterator)
        if final["status"] == "failed":
            error = final["error"] or {}
            return _error(502, str(error.get("message")), error.get("code"))
        return _json(final)
    try:
        whole = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        whole = None
    if not isinstance(whole, dict) or (whole.get("error") is not None and "choices" not in whole):
        # A body the chat path relayed as it came (no tools): not a completion.
        err = whole.get("error") if isinstance(whole, dict) else None
        message = err.get("message") if isinstance(err, dict) else None
        detail = f": {message}" if isinstance(message, str) else ""
        return _error(502, f"the backend did not answer with a chat completion{detail}", "backend_malformed_answer")
    if stream:
        # The backend answered whole although a stream was asked for: sent as one.
        return StreamingResponse(_translate(None, whole, events), media_type="text/event-stream", headers=_SSE_HEADERS)
    return _json(response_from_completion(whole, events.builder))


def _error(status: int, message: str, code: Any) -> Response:
    return Response(
        ProxyError(status, message, code if isinstance(code, str) else None).json(),
        status_code=status,
        media_type="application/json",
    )


def responses_endpoint(proxy: Proxy) -> Callable[[Request], Awaitable[Response]]:
    """The route handler for ``POST /v1/responses`` bound to ``proxy``."""

    async def endpoint(request: Request) -> Response:
        return await create_response(proxy, request)

    return endpoint
