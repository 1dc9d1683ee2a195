"""From a backend's chat completion to a mended :class:`~toolmend.pipeline.Answer`, and back.

One function mends one assistant message (text calls parsed, native calls repaired, coerced
and renumbered); the proxy, the runner and ``toolmend eval`` all use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from toolmend._core import ParseResult, StreamParser
from toolmend.pipeline import Answer, Call
from toolmend.proxy.chat import NativeCalls


def mend_message(message: Mapping[str, Any], parser_options: Mapping[str, Any]) -> tuple[ParseResult, int]:
    """The core's reading of one assistant message, and how many calls were native."""
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


def finish_reason_for(result_has_calls: bool, backend_reason: Any) -> str:
    """The finish reason a client should see: ``tool_calls`` whenever there are calls,
    ``length`` kept (a call in the answer may be cut), else the backend's (``stop`` default)."""
    if backend_reason == "length":
        return "length"
    if result_has_calls:
        return "tool_calls"
    if backend_reason in (None, "tool_calls", "function_call") or not isinstance(backend_reason, str):
        return "stop"
    return backend_reason


def answer_from_completion(completion: Any, parser_options: Mapping[str, Any]) -> Answer:
    """The mended first choice of a ``chat.completion`` (an empty answer when it has none)."""
    choices = completion.get("choices") if isinstance(completion, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return Answer()
    ch = choices[0]
    message = ch.get("message")
    msg: Mapping[str, Any] = message if isinstance(message, dict) else {}
    r, _ = mend_message(msg, parser_options)
    reasoning = msg.get("reasoning_content", msg.get("reasoning"))
    if r.reasoning:
        reasoning = (reasoning + r.reasoning) if isinstance(reasoning, str) else r.reasoning
    return Answer(
        content=r.content,
        calls=[Call(c.id, c.name, c.arguments) for c in r.tool_calls],
        finish_reason=finish_reason_for(bool(r.tool_calls), ch.get("finish_reason")),
        reasoning=reasoning if isinstance(reasoning, str) else None,
        diagnostics=list(r.diagnostics),
        format=r.format,
    )
