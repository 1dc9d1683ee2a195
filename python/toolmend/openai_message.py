"""OpenAI chat-completion shapes for parse results and stream events.

Shared by the CLI and the proxy: a :class:`~toolmend.ParseResult` becomes an assistant
``message``, and stream events become ``delta`` objects in the canonical order clients
expect (a call's first delta carries index, id, type and the full name; argument
fragments follow).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from toolmend._core import Event, ParseResult

JSON = dict[str, Any]


def finish_reason_for(has_calls: bool, backend_reason: Any = None) -> str:
    """The finish reason a client should see: ``tool_calls`` whenever there are calls,
    ``length`` kept (the token limit cut the answer: a call in it may be incomplete), else
    the backend's (``stop`` by default)."""
    if backend_reason == "length":
        return "length"
    if has_calls:
        return "tool_calls"
    if not isinstance(backend_reason, str) or backend_reason in ("tool_calls", "function_call"):
        return "stop"
    return backend_reason


def finish_reason(result: ParseResult) -> str:
    """``"tool_calls"`` when the result holds calls, else ``"stop"``."""
    return finish_reason_for(bool(result.tool_calls))


def call_start_delta(index: int | None, call_id: str | None, name: str | None) -> JSON:
    """A call's first delta: index, id, type and the full name, arguments empty."""
    return {
        "tool_calls": [{"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}]
    }


def call_args_delta(index: int | None, fragment: str | None) -> JSON:
    """A continuation delta: exactly index and an arguments fragment."""
    return {"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}


def message_from_result(result: ParseResult) -> JSON:
    """The assistant ``message`` for a parse result."""
    message: JSON = {"role": "assistant", "content": result.content}
    if result.reasoning is not None:
        message["reasoning_content"] = result.reasoning
    if result.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in result.tool_calls
        ]
    return message


def delta_from_event(event: Event) -> JSON | None:
    """The ``delta`` for one event (``None`` for events with no delta of their own)."""
    kind = event.kind
    if kind == "content":
        return {"content": event.text}
    if kind == "reasoning":
        return {"reasoning_content": event.text}
    if kind == "tool_call_start":
        return call_start_delta(event.index, event.id, event.name)
    if kind == "tool_call_args":
        return call_args_delta(event.index, event.text)
    return None


def deltas_from_events(events: Iterable[Event]) -> list[JSON]:
    """Deltas for a batch of events, in order."""
    out: list[JSON] = []
    for e in events:
        d = delta_from_event(e)
        if d is not None:
            out.append(d)
    return out
