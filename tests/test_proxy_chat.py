"""The chat mender on its own: backend chunks in, canonical chunks out (no HTTP)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from canonical import check_stream
from toolmend import Tools
from toolmend.proxy.chat import ChatStream, mend_completion
from toolmend.proxy.errors import ProxyError
from toolmend.proxy.sse import SSEDecoder
from weather import GET_WEATHER

TOOLS = [GET_WEATHER]


def options(model: str = "m") -> dict[str, Any]:
    return {"tools": Tools(TOOLS), "format": "auto", "model": model}


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return json.dumps({"id": "up-1", "created": 7, "model": "m", "choices": choices, **extra}).encode()


def run(payloads: list[bytes], request: dict[str, Any] | None = None, done: bool = True) -> bytes:
    s = ChatStream(request or {"stream": True}, options())
    out: list[bytes] = []
    for p in payloads:
        out += s.feed(p)
    out += s.finish(done)
    return b"".join(out) + b"data: [DONE]\n\n"


def text_chunks(text: str, size: int) -> list[bytes]:
    first = [chunk({"role": "assistant", "content": ""})]
    return first + [chunk({"content": text[i : i + size]}) for i in range(0, len(text), size)] + [chunk({}, "stop")]


CALL_TEXT = 'Let me check. <tool_call>{"name": "get_weather", "arguments": {"city": "Paris", "days": "3",}}</tool_call>'


@pytest.mark.parametrize("size", [1, 3, 7, 1000])
def test_a_call_written_as_text_becomes_tool_calls(size: int) -> None:
    got = check_stream(run(text_chunks(CALL_TEXT, size)))
    assert got.content == "Let me check."
    assert [(c["name"], json.loads(c["arguments"])) for c in got.calls] == [
        ("get_weather", {"city": "Paris", "days": 3})
    ]
    assert got.finish_reason == "tool_calls"


def native(calls: list[dict[str, Any]], finish: str = "tool_calls") -> list[bytes]:
    return [chunk({"role": "assistant"})] + [chunk({"tool_calls": [c]}) for c in calls] + [chunk({}, finish)]


def test_ollama_style_index_zero_and_object_arguments_become_two_calls() -> None:
    calls = [
        {"index": 0, "id": "a", "function": {"name": "get_weather", "arguments": {"city": "A"}}},
        {"index": 0, "id": "b", "function": {"name": "get_weather", "arguments": {"city": "B"}}},
    ]
    got = check_stream(run(native(calls, finish="stop")))
    assert [json.loads(c["arguments"]) for c in got.calls] == [{"city": "A"}, {"city": "B"}]
    assert [c["id"] for c in got.calls] == ["a", "b"]
    assert got.finish_reason == "tool_calls"


def test_whole_calls_without_ids_on_index_zero_are_told_apart() -> None:
    calls = [
        {"index": 0, "function": {"name": "get_weather", "arguments": '{"city": "A"}'}},
        {"index": 0, "function": {"name": "get_weather", "arguments": '{"city": "B"}'}},
    ]
    got = check_stream(run(native(calls)))
    assert [json.loads(c["arguments"]) for c in got.calls] == [{"city": "A"}, {"city": "B"}]
    assert len({c["id"] for c in got.calls}) == 2


def test_name_repeated_on_every_delta_is_one_call() -> None:
    frags = ['{"ci', 'ty": "Pa', 'ris"}']
    calls = [
        {"index": 0, "id": "x", "type": "function", "function": {"name": "get_weather", "arguments": f}} for f in frags
    ]
    got = check_stream(run(native(calls)))
    assert len(got.calls) == 1
    assert json.loads(got.calls[0]["arguments"]) == {"city": "Paris"}


def test_a_name_sent_late_still_starts_the_call_with_all_arguments() -> None:
    calls = [
        {"index": 0, "id": "x", "function": {"arguments": '{"city": '}},
        {"index": 0, "function": {"name": "get_weather", "arguments": '"Rome"}'}},
    ]
    got = check_stream(run(native(calls)))
    assert got.calls[0]["name"] == "get_weather"
    assert json.loads(got.calls[0]["arguments"]) == {"city": "Rome"}


def test_broken_native_arguments_are_repaired_and_coerced() -> None:
    calls = [{"index": 0, "id": "x", "function": {"name": "GET_WEATHER", "arguments": "{'city': 'Oslo', 'days': '2'"}}]
    got = check_stream(run(native(calls)))
    assert got.calls[0]["name"] == "get_weather"
    assert json.loads(got.calls[0]["arguments"]) == {"city": "Oslo", "days": 2}


def test_a_stream_cut_mid_call_is_an_error_not_a_finished_call() -> None:
    payloads = text_chunks(CALL_TEXT, 5)[:-4]
    with pytest.raises(ProxyError) as e:
        run(payloads, done=False)
    assert e.value.code == "backend_stream_cut"


def test_a_backend_error_event_raises() -> None:
    with pytest.raises(ProxyError):
        run([chunk({"content": "x"}), b'{"error": {"message": "boom"}}'])


def test_malformed_backend_event_raises() -> None:
    with pytest.raises(ProxyError) as e:
        run([chunk({"content": "x"}), b"{not json"])
    assert e.value.code == "backend_malformed_stream"


def test_usage_chunk_when_asked_for() -> None:
    req = {"stream": True, "stream_options": {"include_usage": True}}
    usage = {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}
    got = check_stream(run([*text_chunks("hello", 2), chunk(None, usage=usage)], req))
    assert got.usage == usage
    got = check_stream(run(text_chunks("hello", 2), req))
    assert got.usage is not None and got.usage["completion_tokens"] > 0


def test_length_finish_is_kept() -> None:
    payloads = text_chunks('<tool_call>{"name": "get_weather", "arguments": {"city": "Pa', 4)[:-1]
    got = check_stream(run([*payloads, chunk({}, "length")]))
    assert got.finish_reason == "length"


def test_non_streamed_answer_is_mended() -> None:
    answer = {
        "id": "c",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": CALL_TEXT}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }
    mended, outcome = mend_completion(answer, options())
    msg = mended["choices"][0]["message"]
    assert msg["content"] == "Let me check."
    assert json.loads(msg["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris", "days": 3}
    assert msg["tool_calls"][0]["type"] == "function"
    assert mended["choices"][0]["finish_reason"] == "tool_calls"
    assert mended["usage"] == answer["usage"]
    assert outcome.text_calls == 1 and outcome.format == "hermes"


def test_non_streamed_native_calls_with_object_arguments() -> None:
    answer = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"function": {"name": "get_weather", "arguments": {"city": "A"}}},
                        {"function": {"name": "get_weather", "arguments": {"city": "B"}}},
                    ],
                },
                "finish_reason": "stop",
            }
        ]
    }
    mended, _ = mend_completion(answer, options())
    msg = mended["choices"][0]["message"]
    assert msg["content"] is None
    assert [json.loads(c["function"]["arguments"]) for c in msg["tool_calls"]] == [{"city": "A"}, {"city": "B"}]
    assert len({c["id"] for c in msg["tool_calls"]}) == 2
    assert mended["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("split", [1, 2, 5, 13])
def test_sse_decoder_handles_any_chunking_and_line_ends(split: int) -> None:
    raw = b'data: {"a":1}\r\n\r\n: comment\n\nevent: x\ndata: {"b":\ndata: 2}\n\rdata: [DONE]\r\r'
    d = SSEDecoder()
    got: list[bytes] = []
    for i in range(0, len(raw), split):
        got += d.feed(raw[i : i + split])
    tail = d.close()  # a CR at the very end may be half a CRLF until the stream ends
    got += [tail] if tail is not None else []
    assert got == [b'{"a":1}', b'{"b":\n2}', b"[DONE]"]
    assert d.close() is None


def test_an_undeclared_native_call_is_not_counted_as_a_call() -> None:
    s = ChatStream({"stream": True}, options())
    for p in native([{"index": 0, "id": "x", "function": {"name": "rm_rf", "arguments": "{}"}}]):
        s.feed(p)
    s.finish(True)
    o = s.outcome()
    assert (o.native_calls, o.text_calls) == (0, 0)
    assert "unknown_tool" in o.diagnostics
