"""Checks a chat-completion SSE stream against the canonical sequence real clients need
(shared/docs/clients.md, items 10-19 and section D), and assembles what a client would get."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Assembled:
    content: str = ""
    reasoning: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)  # {"id", "name", "arguments"}
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


def sse_payloads(raw: bytes) -> list[str]:
    """The ``data:`` payloads of a complete SSE body."""
    out = []
    for event in raw.decode().replace("\r\n", "\n").split("\n\n"):
        lines = [ln[5:].lstrip(" ") if ln.startswith("data:") else None for ln in event.split("\n")]
        data = [x for x in lines if x is not None]
        if data:
            out.append("\n".join(data))
    return out


def check_stream(raw: bytes) -> Assembled:
    """Asserts every canonical-shape rule; returns what the stream says."""
    payloads = sse_payloads(raw)
    out = Assembled()
    assert payloads, "empty stream"
    if payloads[-1] != "[DONE]":
        last = json.loads(payloads[-1])
        assert "error" in last, f"stream neither ends with [DONE] nor with an error: {payloads[-1]!r}"
        out.error = last["error"]
        payloads = payloads[:-1]
    else:
        payloads = payloads[:-1]
    chunks = [json.loads(p) for p in payloads]
    assert all(p != "[DONE]" for p in payloads)
    head = None
    open_index = -1
    finished = False
    for n, ch in enumerate(chunks):
        assert ch["object"] == "chat.completion.chunk"
        h = (ch["id"], ch["created"], ch["model"])
        head = head or h
        assert h == head, "id/created/model must be the same on every chunk"
        if not ch["choices"]:
            assert "usage" in ch and n == len(chunks) - 1, "a usage chunk (choices: []) comes last"
            out.usage = ch["usage"]
            continue
        assert not finished, "nothing but the usage chunk may follow the finish chunk"
        (choice,) = ch["choices"]
        delta = choice["delta"]
        if n == 0:
            assert delta.get("role") == "assistant", "the first chunk carries role assistant"
        if choice["finish_reason"] is not None:
            assert delta == {}, "the finish reason comes in its own chunk with an empty delta"
            out.finish_reason = choice["finish_reason"]
            finished = True
            continue
        assert not ("tool_calls" in delta and delta.get("content")), "content and tool_calls never share a delta"
        out.content += delta.get("content") or ""
        out.reasoning += delta.get("reasoning_content") or ""
        for tc in delta.get("tool_calls") or []:
            assert isinstance(tc["index"], int)
            if "id" in tc:
                assert tc["index"] == open_index + 1, "calls are numbered 0, 1, 2... and sent one after another"
                assert tc["id"] and tc["type"] == "function" and tc["function"]["name"]
                assert tc["function"]["arguments"] == ""
                assert tc["id"] not in {c["id"] for c in out.calls}, "ids are distinct"
                open_index = tc["index"]
                out.calls.append({"id": tc["id"], "name": tc["function"]["name"], "arguments": ""})
            else:
                assert set(tc) == {"index", "function"} and set(tc["function"]) == {"arguments"}, tc
                assert tc["index"] == open_index, "fragments belong to the open call"
                out.calls[-1]["arguments"] += tc["function"]["arguments"]
    if out.error is None:
        assert finished, "a finish chunk is sent"
        for c in out.calls:
            assert isinstance(json.loads(c["arguments"]), dict), c
        if out.calls:
            assert out.finish_reason in ("tool_calls", "length")
    return out
