"""The scripted OpenAI-compatible backend (``toolmend.scripted``) over real HTTP.

Clients here are stdlib ``http.client``, so what is checked is the bytes on the wire: SSE
framing, chunk shapes, quirks, faults, disconnect counting and the thread server helper.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send
from toolmend.scripted import Script, ScriptedBackend, serve_in_thread

CALL_ID = re.compile(r"^call_[A-Za-z0-9]{24}$")
WEATHER = {"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}
TIME = {"name": "get_time", "arguments": '{"tz": "UTC"}'}
MESSAGES = [{"role": "user", "content": "Weather in Paris?"}]


@pytest.fixture(scope="module")
def backend() -> ScriptedBackend:
    return ScriptedBackend()


@pytest.fixture(scope="module")
def server(backend: ScriptedBackend) -> Iterator[Any]:
    with serve_in_thread(backend.app) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh(backend: ScriptedBackend) -> None:
    backend.reset()
    backend.set_default(None)


class Client:
    """Minimal HTTP client over ``http.client``: whole bodies, or SSE payloads as they come."""

    def __init__(self, port: int) -> None:
        self.port = port

    def request(
        self, method: str, path: str, body: Any = None, timeout: float = 10.0, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            conn.request(method, path, body=data, headers={"content-type": "application/json", **(headers or {})})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        status, _, raw = self.request(method, path, body, **kw)
        return status, json.loads(raw)

    def chat(self, model: str, **extra: Any) -> tuple[int, Any]:
        return self.json("POST", "/v1/chat/completions", {"model": model, "messages": MESSAGES, **extra})

    def stream_raw(self, path: str, body: Any, timeout: float = 10.0) -> Generator[bytes, None, None]:
        """The ``data:`` payloads of a streamed answer, one by one (the connection closes when
        the generator is closed)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("POST", path, body=json.dumps(body).encode(), headers={"content-type": "application/json"})
            resp = conn.getresponse()
            assert resp.status == 200, resp.read()
            assert resp.getheader("content-type", "").startswith("text/event-stream")
            buf = b""
            while True:
                # read1, not readline: it raises IncompleteRead when the chunked body is cut.
                data = resp.read1(65536)
                if not data:
                    assert buf == b"", buf
                    return
                buf += data
                *events, buf = buf.split(b"\n\n")
                for event in events:
                    assert event.startswith(b"data: ") and b"\n" not in event, event
                    yield event[6:]
        finally:
            conn.close()

    def stream(self, model: str, path: str = "/v1/chat/completions", **extra: Any) -> list[Any]:
        """A whole streamed answer: parsed chunks, then the string ``"[DONE]"``."""
        body = {"model": model, "messages": MESSAGES, "stream": True, **extra}
        return [p.decode() if p == b"[DONE]" else json.loads(p) for p in self.stream_raw(path, body)]


@pytest.fixture
def client(server: Any) -> Client:
    return Client(server.port)


def deltas(events: list[Any]) -> list[dict[str, Any]]:
    return [e["choices"][0]["delta"] for e in events if isinstance(e, dict) and e["choices"]]


def call_deltas(events: list[Any]) -> list[dict[str, Any]]:
    return [tc for d in deltas(events) for tc in d.get("tool_calls", [])]


def finish(events: list[Any]) -> str | None:
    reasons = [e["choices"][0]["finish_reason"] for e in events if isinstance(e, dict) and e["choices"]]
    assert all(r is None for r in reasons[:-1])
    last: str | None = reasons[-1]
    return last


# --- canonical shapes -------------------------------------------------------------------------


def test_canonical_stream(backend: ScriptedBackend, client: Client) -> None:
    backend.add("canon", Script(text="Let me check.", tool_calls=[WEATHER, TIME], chunk_size=5))
    events = client.stream("canon")
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1 and next(iter(ids)).startswith("chatcmpl-")
    for c in chunks:
        assert c["object"] == "chat.completion.chunk"
        assert c["model"] == "canon"
        assert isinstance(c["created"], int)
        assert len(c["choices"]) == 1 and c["choices"][0]["index"] == 0
    ds = deltas(chunks)
    assert ds[0] == {"role": "assistant", "content": ""}
    content = [d["content"] for d in ds[1:] if "content" in d]
    assert content == ["Let m", "e che", "ck."]
    calls = call_deltas(chunks)
    heads = [c for c in calls if "id" in c]
    assert [h["function"]["name"] for h in heads] == ["get_weather", "get_time"]
    for i, head in enumerate(heads):
        assert head["index"] == i
        assert CALL_ID.match(head["id"])
        assert head["type"] == "function"
        assert head["function"]["arguments"] == ""
    assert heads[0]["id"] != heads[1]["id"]
    for i in range(2):
        frags = [c["function"]["arguments"] for c in calls if c["index"] == i and "id" not in c]
        assert all(set(c) == {"index", "function"} for c in calls if c["index"] == i and "id" not in c)
        assert all(0 < len(f) <= 5 for f in frags)
        assert json.loads("".join(frags)) == json.loads(
            json.dumps(WEATHER["arguments"]) if i == 0 else TIME["arguments"]
        )
    # Content before calls, calls in order and not interleaved, one delta holds one thing.
    kinds = [
        "role" if "role" in d else "content" if "content" in d else "call" if "tool_calls" in d else "end" for d in ds
    ]
    assert kinds == ["role"] + ["content"] * 3 + ["call"] * (len(kinds) - 5) + ["end"]
    assert [c["index"] for c in calls] == sorted(c["index"] for c in calls)
    assert ds[-1] == {}
    assert finish(chunks) == "tool_calls"
    assert not any("usage" in c for c in chunks)


def test_string_arguments_sent_verbatim(backend: ScriptedBackend, client: Client) -> None:
    broken = '{"city": "Paris",'
    backend.add("broken", Script(tool_calls=[{"name": "f", "arguments": broken}], chunk_size=3))
    frags = [c["function"]["arguments"] for c in call_deltas(client.stream("broken"))]
    assert "".join(frags) == broken
    status, body = client.chat("broken")
    assert status == 200
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == broken


def test_include_usage(backend: ScriptedBackend, client: Client) -> None:
    backend.add("u", Script(text="hi"))
    backend.add("u2", Script(text="hi", usage={"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}))
    events = client.stream("u", stream_options={"include_usage": True})
    assert events[-1] == "[DONE]"
    usage_chunk = events[-2]
    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert events[-3]["choices"][0]["finish_reason"] == "stop"
    events = client.stream("u2", stream_options={"include_usage": True})
    assert events[-2]["usage"] == {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
    events = client.stream("u2", stream_options={"include_usage": False})
    assert all(e == "[DONE]" or e["choices"] for e in events)


def test_non_streaming(backend: ScriptedBackend, client: Client) -> None:
    backend.add("ns", Script(text="Checking.", tool_calls=[WEATHER], reasoning="think"))
    backend.add("ns-calls-only", Script(tool_calls=[{"name": "f", "id": "call_given", "arguments": {}}]))
    backend.add("ns-text", Script(text="Just prose."))
    status, body = client.chat("ns")
    assert status == 200
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-") and body["model"] == "ns"
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    msg = choice["message"]
    assert msg["role"] == "assistant" and msg["content"] == "Checking." and msg["reasoning_content"] == "think"
    (call,) = msg["tool_calls"]
    assert CALL_ID.match(call["id"]) and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == WEATHER["arguments"]
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    _, body = client.chat("ns-calls-only")
    msg = body["choices"][0]["message"]
    assert msg["content"] is None
    assert msg["tool_calls"][0]["id"] == "call_given"
    assert msg["tool_calls"][0]["function"]["arguments"] == "{}"
    _, body = client.chat("ns-text")
    assert body["choices"][0]["finish_reason"] == "stop"
    assert "tool_calls" not in body["choices"][0]["message"]


def test_reasoning_and_explicit_chunks(backend: ScriptedBackend, client: Client) -> None:
    chunks = ["<tool", "_call>", '{"name": "f", "arguments": {}}', "</tool_call>"]
    backend.add("rc", Script(chunks=chunks, reasoning="abcdef", chunk_size=4))
    ds = deltas(client.stream("rc"))
    assert [d["reasoning_content"] for d in ds if "reasoning_content" in d] == ["abcd", "ef"]
    assert [d["content"] for d in ds[1:] if "content" in d] == chunks
    first_content = next(i for i, d in enumerate(ds) if "content" in d and i > 0)
    assert all(i < first_content for i, d in enumerate(ds) if "reasoning_content" in d)
    _, body = client.chat("rc")
    assert body["choices"][0]["message"]["content"] == "".join(chunks)
    assert body["choices"][0]["finish_reason"] == "stop"


def test_script_validation() -> None:
    with pytest.raises(ValueError, match="quirk"):
        Script(text="x", quirks={"nope"})
    with pytest.raises(ValueError, match="fault"):
        Script(text="x", fault="explode")
    with pytest.raises(ValueError, match="join"):
        Script(text="abc", chunks=["a", "b"])
    with pytest.raises(ValueError, match="name"):
        Script(tool_calls=[{"arguments": "{}"}])
    with pytest.raises(ValueError, match="chunk_size"):
        Script(text="x", chunk_size=0)
    with pytest.raises(ValueError, match="unknown script fields"):
        Script.from_dict({"txt": "x"})
    s = Script(text="a", quirks={"no_ids", "no_role"}, fault="cut", cut_after=1, tool_calls=[TIME])
    assert Script.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    assert Script().to_dict() == {}


# --- quirks -----------------------------------------------------------------------------------


def test_quirk_ollama_index0(backend: ScriptedBackend, client: Client) -> None:
    backend.add("o", Script(tool_calls=[WEATHER, TIME], quirks={"ollama_index0"}, chunk_size=2))
    calls = call_deltas(client.stream("o"))
    assert len(calls) == 2
    assert [c["index"] for c in calls] == [0, 0]
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0]["function"]["arguments"]) == WEATHER["arguments"]
    assert calls[1]["function"]["arguments"] == TIME["arguments"]


def test_quirk_object_arguments(backend: ScriptedBackend, client: Client) -> None:
    backend.add("obj", Script(tool_calls=[WEATHER, TIME], quirks={"object_arguments"}))
    calls = call_deltas(client.stream("obj"))
    assert len(calls) == 2
    assert calls[0]["function"]["arguments"] == WEATHER["arguments"]
    assert calls[1]["function"]["arguments"] == {"tz": "UTC"}
    _, body = client.chat("obj")
    args = [c["function"]["arguments"] for c in body["choices"][0]["message"]["tool_calls"]]
    assert args == [WEATHER["arguments"], {"tz": "UTC"}]


def test_quirk_stop_with_calls(backend: ScriptedBackend, client: Client) -> None:
    backend.add("swc", Script(tool_calls=[WEATHER], quirks={"stop_with_calls"}))
    backend.add("explicit", Script(tool_calls=[WEATHER], quirks={"stop_with_calls"}, finish_reason="length"))
    assert finish(client.stream("swc")) == "stop"
    assert client.chat("swc")[1]["choices"][0]["finish_reason"] == "stop"
    assert finish(client.stream("explicit")) == "length"


def test_quirk_no_ids(backend: ScriptedBackend, client: Client) -> None:
    backend.add("noid", Script(tool_calls=[WEATHER, TIME], quirks={"no_ids"}))
    calls = call_deltas(client.stream("noid"))
    assert calls and not any("id" in c for c in calls)
    assert [c["function"]["name"] for c in calls if "name" in c["function"]] == ["get_weather", "get_time"]
    _, body = client.chat("noid")
    assert not any("id" in c for c in body["choices"][0]["message"]["tool_calls"])


def test_quirk_repeat_name(backend: ScriptedBackend, client: Client) -> None:
    backend.add("rep", Script(tool_calls=[WEATHER], quirks={"repeat_name"}, chunk_size=6))
    calls = call_deltas(client.stream("rep"))
    assert len(calls) > 2
    assert len({c["id"] for c in calls}) == 1
    assert all(c["function"]["name"] == "get_weather" and c["type"] == "function" for c in calls)
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == WEATHER["arguments"]


def test_quirk_name_late(backend: ScriptedBackend, client: Client) -> None:
    backend.add("late", Script(tool_calls=[WEATHER], quirks={"name_late"}, chunk_size=6))
    backend.add("late-empty", Script(tool_calls=[{"name": "f", "arguments": ""}], quirks={"name_late"}))
    calls = call_deltas(client.stream("late"))
    assert "name" not in calls[0]["function"] and CALL_ID.match(calls[0]["id"])
    assert calls[1]["function"]["name"] == "get_weather"
    assert all("name" not in c["function"] for c in calls[2:])
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == WEATHER["arguments"]
    calls = call_deltas(client.stream("late-empty"))
    assert len(calls) == 2 and "name" not in calls[0]["function"] and calls[1]["function"]["name"] == "f"


def test_quirk_no_role(backend: ScriptedBackend, client: Client) -> None:
    backend.add("norole", Script(text="hey", quirks={"no_role"}))
    ds = deltas(client.stream("norole"))
    assert not any("role" in d for d in ds)
    assert ds[0] == {"content": "hey"}


def test_quirk_content_and_calls_same_delta(backend: ScriptedBackend, client: Client) -> None:
    backend.add("same", Script(text="ok", tool_calls=[WEATHER], quirks={"content_and_calls_same_delta"}))
    ds = deltas(client.stream("same"))
    both = [d for d in ds if "content" in d and "tool_calls" in d]
    assert len(both) == 1
    assert both[0]["content"] == "ok" and both[0]["tool_calls"][0]["function"]["name"] == "get_weather"


# --- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("fault", "status"), [("http_500", 500), ("http_429", 429), ("http_503", 503)])
def test_http_faults(backend: ScriptedBackend, client: Client, fault: str, status: int) -> None:
    backend.add(fault, Script(text="never", fault=fault, headers={"Retry-After": "0"}))
    for stream in (False, True):
        got, headers, raw = client.request(
            "POST", "/v1/chat/completions", {"model": fault, "messages": MESSAGES, "stream": stream}
        )
        assert got == status
        assert headers["content-type"] == "application/json"
        assert headers["retry-after"] == "0"
        err = json.loads(raw)["error"]
        assert set(err) == {"message", "type", "param", "code"} and err["message"]
        assert err["type"] == ("rate_limit_error" if status == 429 else "server_error")
    backend.add("custom", Script(fault="http_500", error_message="GPU on fire"))
    assert client.chat("custom")[1]["error"]["message"] == "GPU on fire"


def test_fault_cut(backend: ScriptedBackend, client: Client) -> None:
    backend.add("cut", Script(text="abcdefghijklmnop", fault="cut", cut_after=3))
    got: list[bytes] = []
    with pytest.raises(http.client.IncompleteRead):
        got.extend(client.stream_raw("/v1/chat/completions", {"model": "cut", "stream": True}))
    assert len(got) == 3
    assert [json.loads(p)["choices"][0]["delta"] for p in got] == [
        {"role": "assistant", "content": ""},
        {"content": "abcd"},
        {"content": "efgh"},
    ]
    # The server cut the stream, not the client.
    assert not backend.wait_streams_cut(1, timeout=0.2)
    with pytest.raises(http.client.IncompleteRead):
        client.chat("cut")


def test_fault_malformed_sse(backend: ScriptedBackend, client: Client) -> None:
    backend.add("mal", Script(text="abcdefgh", fault="malformed_sse", cut_after=2))
    payloads = list(client.stream_raw("/v1/chat/completions", {"model": "mal", "stream": True}))
    assert payloads[2] == b"{not json"
    assert payloads[-1] == b"[DONE]"
    rest = [json.loads(p) for p in payloads[:2] + payloads[3:-1]]
    assert "".join(d.get("content", "") for d in deltas(rest)) == "abcdefgh"
    assert finish(rest) == "stop"
    status, _, raw = client.request("POST", "/v1/chat/completions", {"model": "mal"})
    assert status == 200 and raw == b"{not json"


def test_fault_error_event(backend: ScriptedBackend, client: Client) -> None:
    backend.add("ee", Script(text="abcdefgh", fault="error_event", cut_after=2, error_message="OOM"))
    events = client.stream("ee")
    assert len(events) == 4 and events[-1] == "[DONE]"
    assert events[2] == {"error": {"message": "OOM", "type": "server_error", "param": None, "code": None}}
    assert all(e["choices"][0]["finish_reason"] is None for e in events[:2])
    status, body = client.chat("ee")
    assert status == 200 and body["error"]["message"] == "OOM"


def test_fault_hang_counts_the_client_leaving(backend: ScriptedBackend, client: Client) -> None:
    backend.add("hang", Script(text="abcdefgh", fault="hang", cut_after=2))
    got: list[bytes] = []
    t0 = time.monotonic()
    with pytest.raises(socket.timeout):
        got.extend(client.stream_raw("/v1/chat/completions", {"model": "hang", "stream": True}, timeout=0.3))
    assert time.monotonic() - t0 < 5
    assert len(got) == 2
    assert backend.wait_streams_cut(1, timeout=5)
    assert backend.streams_cut == 1
    # Not streaming: the headers come, the body never does.
    conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=0.3)
    try:
        conn.request("POST", "/v1/chat/completions", body=json.dumps({"model": "hang"}).encode())
        resp = conn.getresponse()
        assert resp.status == 200
        with pytest.raises(socket.timeout):
            resp.read()
    finally:
        conn.close()
    time.sleep(0.1)
    assert backend.streams_cut == 1  # a non-streaming request is not a stream


def test_fault_slow_headers(backend: ScriptedBackend, client: Client) -> None:
    backend.add("slow", Script(text="hi", fault="slow_headers", fault_delay_s=0.3))
    t0 = time.monotonic()
    events = client.stream("slow")
    assert time.monotonic() - t0 >= 0.3
    assert "".join(d.get("content", "") for d in deltas(events)) == "hi"
    with pytest.raises(socket.timeout):
        client.request("POST", "/v1/chat/completions", {"model": "slow"}, timeout=0.1)


def test_delay_per_chunk(backend: ScriptedBackend, client: Client) -> None:
    backend.add("paced", Script(text="abcdefgh", chunk_size=2, delay_ms=40))
    t0 = time.monotonic()
    stamps = []
    for _ in client.stream_raw("/v1/chat/completions", {"model": "paced", "stream": True}):
        stamps.append(time.monotonic() - t0)
    # role + 4 content + finish + [DONE], each after 40 ms.
    assert len(stamps) == 7
    assert stamps[-1] >= 7 * 0.04
    assert stamps[1] - stamps[0] >= 0.03
    t0 = time.monotonic()
    client.chat("paced")
    assert time.monotonic() - t0 >= 6 * 0.04


# --- selection, attempts, registration --------------------------------------------------------


def test_attempts_sequence(backend: ScriptedBackend, client: Client) -> None:
    backend.add("flaky", [Script(fault="http_500"), Script(fault="http_503"), Script(text="third")])
    statuses = []
    for _ in range(4):
        status, body = client.chat("flaky")
        statuses.append(status)
    assert statuses == [500, 503, 200, 200]
    assert body["choices"][0]["message"]["content"] == "third"
    assert backend.attempts("flaky") == 4
    backend.add("flaky", [Script(fault="http_429"), Script(text="again")])
    assert [client.chat("flaky")[0] for _ in range(3)] == [429, 200, 200]


def test_unknown_model_and_default(backend: ScriptedBackend, client: Client) -> None:
    status, body = client.chat("no-such-model")
    assert status == 404
    assert body == {
        "error": {
            "message": "The model `no-such-model` does not exist.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }
    status, _ = client.json("POST", "/v1/chat/completions", {"messages": MESSAGES})
    assert status == 404
    backend.set_default(Script(text="fallback"))
    status, body = client.chat("anything")
    assert status == 200
    assert body["model"] == "anything" and body["choices"][0]["message"]["content"] == "fallback"
    status, _, raw = client.request("POST", "/v1/chat/completions", None)
    assert status == 400 and json.loads(raw)["error"]["type"] == "invalid_request_error"


def test_models_health_and_recorded_requests(backend: ScriptedBackend, client: Client) -> None:
    backend.add("listed", Script(text="x"))
    status, body = client.json("GET", "/v1/models")
    assert status == 200 and body["object"] == "list"
    assert {"id": "listed", "object": "model", "created": 0, "owned_by": "toolmend-scripted"} in body["data"]
    assert client.json("GET", "/health") == (200, {"status": "ok"})
    client.request(
        "POST",
        "/v1/chat/completions",
        {"model": "listed", "messages": MESSAGES, "tools": []},
        headers={"Authorization": "Bearer k"},
    )
    client.request("POST", "/v1/completions", {"model": "listed", "prompt": "p"})
    assert len(backend.requests) == 2
    first = backend.requests[0]
    assert first["path"] == "/v1/chat/completions"
    assert first["body"] == {"model": "listed", "messages": MESSAGES, "tools": []}
    assert first["headers"]["authorization"] == "Bearer k"
    assert backend.requests[1]["path"] == "/v1/completions"
    status, body = client.json("GET", "/_requests")
    assert status == 200 and body["requests"] == backend.requests and body["streams_cut"] == 0
    assert client.json("POST", "/_reset") == (200, {"ok": True})
    assert backend.requests == []


def test_register_over_http(backend: ScriptedBackend, client: Client) -> None:
    scripts = {
        "remote": {"text": "hello", "chunk_size": 2, "quirks": ["no_role"]},
        "remote-seq": [{"fault": "http_503"}, {"tool_calls": [TIME]}],
        "*": {"text": "default"},
    }
    status, body = client.json("POST", "/_scripts", scripts)
    assert status == 200 and body == {"registered": ["remote", "remote-seq", "*"]}
    assert [d["content"] for d in deltas(client.stream("remote")) if "content" in d] == ["he", "ll", "o"]
    assert client.chat("remote-seq")[0] == 503
    _, body = client.chat("remote-seq")
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_time"
    assert client.chat("unregistered")[1]["choices"][0]["message"]["content"] == "default"
    bad: Any
    for bad in ({"x": {"quirks": ["nope"]}}, {"x": {"bogus": 1}}, {"x": []}, {"x": 3}, ["x"]):
        status, body = client.json("POST", "/_scripts", bad)
        assert status == 400 and body["error"]["message"], bad
    assert "x" not in backend.names


def test_legacy_completions(backend: ScriptedBackend, client: Client) -> None:
    backend.add("legacy", Script(text="once upon", chunk_size=4))
    status, body = client.json("POST", "/v1/completions", {"model": "legacy", "prompt": "p"})
    assert status == 200
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == "once upon" and body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["total_tokens"] > 0
    events = client.stream("legacy", path="/v1/completions", stream_options={"include_usage": True})
    assert events[-1] == "[DONE]" and events[-2]["choices"] == [] and "usage" in events[-2]
    texts = [e["choices"][0]["text"] for e in events[:-2]]
    assert texts == ["once", " upo", "n", ""]
    assert events[-3]["choices"][0]["finish_reason"] == "stop"
    assert all(e["object"] == "text_completion" for e in events[:-1])


# --- client disconnects -----------------------------------------------------------------------


def test_streams_cut_counts_client_disconnects(backend: ScriptedBackend, client: Client) -> None:
    backend.add("long", Script(text="x" * 200, chunk_size=1, delay_ms=20))
    backend.add("short", Script(text="done"))
    client.stream("short")
    client.chat("short")
    assert backend.streams_cut == 0
    gen = client.stream_raw("/v1/chat/completions", {"model": "long", "stream": True})
    assert json.loads(next(gen))["choices"][0]["delta"]["role"] == "assistant"
    next(gen)
    gen.close()  # closes the connection mid-stream
    assert backend.wait_streams_cut(1, timeout=5)
    time.sleep(0.1)
    assert backend.streams_cut == 1


def test_client_leaving_during_slow_headers_is_a_cut_stream(backend: ScriptedBackend, client: Client) -> None:
    backend.add("slowh", Script(text="hi", fault="slow_headers", fault_delay_s=30))
    with pytest.raises(socket.timeout):
        client.request("POST", "/v1/chat/completions", {"model": "slowh", "stream": True}, timeout=0.2)
    assert backend.wait_streams_cut(1, timeout=5)


# --- the thread server and logging ------------------------------------------------------------


def test_serve_in_thread_stops_with_a_hanging_stream(caplog: pytest.LogCaptureFixture) -> None:
    backend = ScriptedBackend({"hang": Script(text="abc", fault="hang", cut_after=1)})
    before = set(threading.enumerate())
    conn = None
    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        server = serve_in_thread(backend.app)
        try:
            assert server.running and server.url == f"http://127.0.0.1:{server.port}"
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            conn.request("POST", "/v1/chat/completions", body=json.dumps({"model": "hang", "stream": True}).encode())
            resp = conn.getresponse()
            assert resp.readline().startswith(b"data: ")
        finally:
            t0 = time.monotonic()
            server.stop()
            elapsed = time.monotonic() - t0
            if conn is not None:
                conn.close()
    assert elapsed < 5
    assert not server.running
    assert set(threading.enumerate()) <= before
    # The deliberate hang's cancellation is not reported as an application error.
    assert not [r for r in caplog.records if r.getMessage().startswith("Exception in ASGI application")]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_cut_is_quiet_but_other_apps_unfinished_responses_are_logged(
    backend: ScriptedBackend, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    unfinished = "ASGI callable returned without completing response."
    backend.add("cut-quiet", Script(text="abcdefgh", fault="cut"))
    with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
        with pytest.raises(http.client.IncompleteRead):
            list(client.stream_raw("/v1/chat/completions", {"model": "cut-quiet", "stream": True}))
        time.sleep(0.1)
    assert not [r for r in caplog.records if r.getMessage() == unfinished]

    async def broken_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})

    with caplog.at_level(logging.ERROR, logger="uvicorn.error"), serve_in_thread(broken_app) as other:
        with pytest.raises(http.client.IncompleteRead):
            Client(other.port).request("GET", "/")
        time.sleep(0.1)
    assert [r for r in caplog.records if r.getMessage() == unfinished]


def test_standalone_main(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts.json"
    scripts.write_text(json.dumps({"cli": {"text": "from a file"}}), encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "toolmend.scripted", "--port", "0", "--scripts", str(scripts)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.match(r"listening on http://127\.0\.0\.1:(\d+)$", line.strip())
        assert m, line
        status, body = Client(int(m.group(1))).chat("cli")
        assert status == 200 and body["choices"][0]["message"]["content"] == "from a file"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal.
    assert proc.returncode in (0, -signal.SIGTERM), err
    assert "Traceback" not in err, err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"x": {"fault": "nope"}}), encoding="utf-8")
    r = subprocess.run(
        [sys.executable, "-m", "toolmend.scripted", "--scripts", str(bad)], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2 and "unknown fault" in r.stderr
