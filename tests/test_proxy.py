"""The proxy end to end over raw HTTP (httpx): a real uvicorn proxy in front of the scripted
backend (see proxy_harness.py). What is checked is the wire: the canonical SSE sequence, the
whole-message shape, the native quirks normalised, faults, auth, limits and the side endpoints.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from canonical import check_stream, sse_payloads
from prometheus_client.parser import text_string_to_metric_families
from proxy_harness import (
    CALL_EXPECTED,
    CALL_TEXT,
    CASE_BY_FORMAT,
    E2E,
    FORMATS,
    NATIVE_CALLS,
    NATIVE_QUIRKS,
    NATIVE_TEXT,
    NATIVE_TOOLS,
    PLAIN_TEXT,
    WEATHER_TOOLS,
    WHOLE_PREFIX,
    assert_calls,
    closed_port,
    marker,
    native_model,
)
from toolmend.proxy.probe import Candidate, find_backend
from toolmend.scripted import FAULTS, Script


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=15.0) as client:
        yield client


def chat_body(model: str, tools: list[dict[str, Any]] | None, stream: bool, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": marker()}], "stream": stream}
    if tools is not None:
        body["tools"] = tools
    return {**body, **extra}


def chat(http: httpx.Client, base: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    return http.post(f"{base}/chat/completions", json=body, headers=headers)


def check_message(answer: dict[str, Any]) -> tuple[str | None, list[tuple[str, str]], str]:
    """Asserts the shape of a whole ``chat.completion``; returns content, calls, finish reason."""
    assert answer["object"] == "chat.completion"
    (choice,) = answer["choices"]
    msg = choice["message"]
    assert msg["role"] == "assistant"
    calls = msg.get("tool_calls") or []
    ids = []
    for c in calls:
        assert set(c) == {"id", "type", "function"}, c
        assert c["type"] == "function" and c["id"] and isinstance(c["id"], str)
        assert set(c["function"]) == {"name", "arguments"}
        assert isinstance(c["function"]["arguments"], str)
        assert isinstance(json.loads(c["function"]["arguments"]), dict)
        ids.append(c["id"])
    assert len(set(ids)) == len(ids), "call ids are distinct"
    if calls:
        assert choice["finish_reason"] == "tool_calls"
    return msg["content"], [(c["function"]["name"], c["function"]["arguments"]) for c in calls], choice["finish_reason"]


def error_of(resp: httpx.Response) -> dict[str, Any]:
    """The OpenAI-style error body of a failed (pre-stream) answer."""
    assert resp.headers["content-type"].startswith("application/json")
    err = resp.json()["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str) and err["type"]
    assert set(err) == {"message", "type", "param", "code"}
    return dict(err)


def stream_error(raw: bytes) -> dict[str, Any]:
    """A stream that failed after it started: ends with an error event, no finish, no [DONE]."""
    got = check_stream(raw)
    assert got.error is not None, raw[-300:]
    assert got.finish_reason is None, "a failed stream has no finish chunk"
    assert b"[DONE]" not in raw
    assert isinstance(got.error["message"], str) and got.error["message"]
    return got.error


# -- every format, text calls -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_text_calls_stream_canonically(e2e: E2E, http: httpx.Client, fmt: str) -> None:
    case = CASE_BY_FORMAT[fmt]
    resp = chat(http, e2e.url, chat_body(case.model, case.tools, True))
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    got = check_stream(resp.content)
    assert got.error is None
    assert_calls([(c["name"], c["arguments"]) for c in got.calls], case.calls, case.case_id)
    assert got.finish_reason == "tool_calls"
    if case.content is not None:
        assert got.content.strip() == case.content.strip()


@pytest.mark.parametrize("fmt", FORMATS)
def test_text_calls_whole(e2e: E2E, http: httpx.Client, fmt: str) -> None:
    case = CASE_BY_FORMAT[fmt]
    body = chat_body(case.model, case.tools, False)
    resp = chat(http, e2e.url, body)
    assert resp.status_code == 200
    answer = resp.json()
    content, calls, finish = check_message(answer)
    assert_calls(calls, case.calls, case.case_id)
    assert finish == "tool_calls"
    if case.content is not None:
        assert (content or "").strip() == case.content.strip()
    # What is not mended is kept: the backend's id, model and usage.
    upstream = json.loads(e2e.recorder.find(body["messages"][0]["content"]).response)
    assert {k: answer[k] for k in ("id", "model", "created", "usage")} == {
        k: upstream[k] for k in ("id", "model", "created", "usage")
    }


@pytest.mark.parametrize("label", [*FORMATS, *(native_model(q) for q in NATIVE_QUIRKS)])
def test_whole_backend_answer_to_a_stream_request(e2e: E2E, http: httpx.Client, label: str) -> None:
    """A backend that ignores ``stream: true`` and answers whole: the mended answer is sent as
    the canonical stream."""
    if label in CASE_BY_FORMAT:
        case = CASE_BY_FORMAT[label]
        model, tools, calls, content = case.model, case.tools, case.calls, case.content
    else:
        model, tools, calls, content = label, NATIVE_TOOLS, NATIVE_CALLS, NATIVE_TEXT
    body = chat_body(WHOLE_PREFIX + model, tools, True, stream_options={"include_usage": True})
    resp = chat(http, e2e.url, body)
    upstream = e2e.recorder.find(body["messages"][0]["content"])
    assert json.loads(upstream.request)["stream"] is True  # asked for a stream, got a whole answer:
    assert json.loads(upstream.response)["object"] == "chat.completion"
    assert resp.headers["content-type"].startswith("text/event-stream")
    got = check_stream(resp.content)
    assert got.error is None
    assert_calls([(c["name"], c["arguments"]) for c in got.calls], calls, label)
    assert got.finish_reason == "tool_calls"
    if content is not None:
        assert got.content.strip() == content.strip()
    assert got.usage == json.loads(upstream.response)["usage"]


def test_tools_request_is_forwarded_unchanged(e2e: E2E, http: httpx.Client) -> None:
    case = CASE_BY_FORMAT["hermes"]
    body = chat_body(case.model, case.tools, True, temperature=0.25, tool_choice="auto", user="u-1")
    raw = json.dumps(body).encode()
    resp = http.post(f"{e2e.url}/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert resp.status_code == 200
    assert e2e.recorder.find(body["messages"][0]["content"]).request == raw


def test_stream_usage_chunk_is_the_backends(e2e: E2E, http: httpx.Client) -> None:
    case = CASE_BY_FORMAT["hermes"]
    body = chat_body(case.model, case.tools, True, stream_options={"include_usage": True})
    got = check_stream(chat(http, e2e.url, body).content)
    upstream = [json.loads(p) for p in sse_payloads(e2e.recorder.find(body["messages"][0]["content"]).response)[:-1]]
    assert got.usage is not None and got.usage == upstream[-1]["usage"]
    assert_calls([(c["name"], c["arguments"]) for c in got.calls], case.calls)


# -- native calls -------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("quirk", NATIVE_QUIRKS)
def test_native_calls_are_mended_and_normalised(e2e: E2E, http: httpx.Client, quirk: str, stream: bool) -> None:
    resp = chat(http, e2e.url, chat_body(native_model(quirk), NATIVE_TOOLS, stream))
    assert resp.status_code == 200
    if stream:
        got = check_stream(resp.content)
        assert got.error is None
        content: str | None = got.content
        calls = [(c["name"], c["arguments"]) for c in got.calls]
        ids = [c["id"] for c in got.calls]
        finish = got.finish_reason
    else:
        answer = resp.json()
        content, calls, finish = check_message(answer)
        ids = [c["id"] for c in answer["choices"][0]["message"]["tool_calls"]]
    # Repaired (trailing comma), coerced ("3" -> 3), two distinct calls (even on index 0).
    assert_calls(calls, NATIVE_CALLS, quirk)
    assert finish == "tool_calls"
    assert content == NATIVE_TEXT
    assert len(set(ids)) == 2 and all(ids)
    if quirk != "no_ids":
        # The backend's own ids are kept.
        assert all(i.startswith("call_") and len(i) == 29 for i in ids), ids


# -- faults ---------------------------------------------------------------------------------------

# The fault strikes after 20 SSE events: the role chunk and 19 three-character deltas, that is
# inside the call's arguments (`Sure. <tool_call>{"name": "get_weather", "arguments": {"c`).
CUT_AFTER = 20
HTTP_FAULTS = {"http_500": 500, "http_429": 429, "http_503": 503}
# The code in the error body: the backend's own, else one naming the status.
HTTP_FAULT_CODES = {
    "http_500": "backend_http_500",
    "http_429": "rate_limit_exceeded",
    "http_503": "service_unavailable",
}
# Faults that need a proxy with a short read timeout (the main one waits 300 s).
TIMEOUT_FAULTS = {"hang", "slow_headers"}


def fault_script(e2e: E2E, fault: str) -> str:
    return e2e.script(
        f"fault/{fault}",
        Script(text=CALL_TEXT, chunk_size=3, fault=fault, cut_after=CUT_AFTER, fault_delay_s=10.0),
    )


def upstream_text(raw: bytes) -> str:
    """The content the backend streamed, up to its fault."""
    text = ""
    for p in sse_payloads(raw):
        try:
            chunk = json.loads(p)
        except ValueError:
            break
        if not isinstance(chunk, dict) or "choices" not in chunk:
            break
        text += "".join(c["delta"].get("content") or "" for c in chunk["choices"])
    return text


def test_every_scripted_fault_is_covered() -> None:
    assert set(HTTP_FAULTS) | {"cut", "malformed_sse", "error_event"} | TIMEOUT_FAULTS == FAULTS


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("fault", sorted(HTTP_FAULTS))
def test_backend_http_error_keeps_its_status(e2e: E2E, http: httpx.Client, fault: str, stream: bool) -> None:
    resp = chat(http, e2e.url, chat_body(fault_script(e2e, fault), WEATHER_TOOLS, stream))
    assert resp.status_code == HTTP_FAULTS[fault]
    err = error_of(resp)
    assert f"HTTP {HTTP_FAULTS[fault]}" in err["message"]  # the backend's own message is passed on
    assert err["code"] == HTTP_FAULT_CODES[fault]
    assert err["type"] == ("rate_limit_error" if fault == "http_429" else "server_error")


@pytest.mark.parametrize("fault", ["cut", "malformed_sse", "error_event"])
def test_stream_fault_after_start_is_an_error_event(e2e: E2E, http: httpx.Client, fault: str) -> None:
    body = chat_body(fault_script(e2e, fault), WEATHER_TOOLS, True)
    resp = chat(http, e2e.url, body)
    assert resp.status_code == 200
    err = stream_error(resp.content)
    # The backend had sent the start of the call before the fault.
    assert '"arguments": {' in upstream_text(e2e.recorder.find(body["messages"][0]["content"]).response)
    # Whether the start of the call was relayed before the error depends on timing (aiohttp
    # reports a broken connection before the bytes it still holds) and on whether the proxy holds
    # calls back to check them; either way the call is never presented as complete.
    assert len(check_stream(resp.content).calls) <= 1
    if fault == "error_event":
        assert "scripted error mid-stream" in err["message"]
    if fault == "cut":
        assert err["code"] == "backend_stream_cut"
    if fault == "malformed_sse":
        assert err["code"] == "backend_malformed_stream"


@pytest.mark.parametrize("fault", ["cut", "malformed_sse", "error_event"])
def test_whole_answer_fault_is_502(e2e: E2E, http: httpx.Client, fault: str) -> None:
    resp = chat(http, e2e.url, chat_body(fault_script(e2e, fault), WEATHER_TOOLS, False))
    assert resp.status_code == 502
    err = error_of(resp)
    assert err["type"] == "server_error"
    if fault == "error_event":
        assert "scripted error" in err["message"]


def test_slow_headers_within_the_timeout_are_fine(e2e: E2E, http: httpx.Client) -> None:
    name = e2e.script("slow-headers-ok", Script(text=CALL_TEXT, chunk_size=3, fault="slow_headers", fault_delay_s=0.3))
    got = check_stream(chat(http, e2e.url, chat_body(name, WEATHER_TOOLS, True)).content)
    assert_calls([(c["name"], c["arguments"]) for c in got.calls], CALL_EXPECTED)


@pytest.fixture(scope="module")
def impatient(e2e: E2E) -> Iterator[str]:
    """A proxy that waits at most 0.4 s for the backend's next bytes."""
    with e2e.proxy(**{"timeouts.read": 0.4}) as server:
        yield server.url + "/v1"


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("fault", sorted(TIMEOUT_FAULTS))
def test_backend_timeout(e2e: E2E, http: httpx.Client, impatient: str, fault: str, stream: bool) -> None:
    cut_before = e2e.backend.streams_cut
    started = time.monotonic()
    resp = chat(http, impatient, chat_body(fault_script(e2e, fault), WEATHER_TOOLS, stream))
    assert time.monotonic() - started < 5.0
    if fault == "hang" and stream:
        # The stream had started: the timeout comes as an error event.
        assert resp.status_code == 200
        err = stream_error(resp.content)
        assert err["code"] == "backend_timeout"
        # ... and the proxy hung up on the backend.
        assert e2e.backend.wait_streams_cut(cut_before + 1)
    else:
        assert resp.status_code == 504
        assert error_of(resp)["code"] == "backend_timeout"


def test_unreachable_backend_is_502(e2e: E2E, http: httpx.Client) -> None:
    with e2e.proxy(backend_url=f"http://127.0.0.1:{closed_port()}/v1") as server:
        base = server.url + "/v1"
        for tools in (WEATHER_TOOLS, None):
            for stream in (True, False):
                resp = chat(http, base, chat_body("any", tools, stream))
                assert resp.status_code == 502, (tools, stream)
                assert error_of(resp)["code"] == "backend_unreachable"
        resp = http.get(f"{base}/models")
        assert resp.status_code == 502 and error_of(resp)["code"] == "backend_unreachable"
        health = http.get(server.url + "/health").json()
        assert health["status"] == "ok" and health["backend"]["reachable"] is False


# -- client disconnects ------------------------------------------------------------------------------


@pytest.mark.parametrize("tools", [WEATHER_TOOLS, None], ids=["mended", "passthrough"])
def test_client_disconnect_cancels_the_backend_request(
    e2e: E2E, http: httpx.Client, tools: list[dict[str, Any]] | None
) -> None:
    cut_before = e2e.backend.streams_cut
    body = chat_body("slow", tools, True)
    started = time.monotonic()
    with http.stream("POST", f"{e2e.url}/chat/completions", json=body) as resp:
        assert resp.status_code == 200
        received = b""
        for part in resp.iter_raw():
            received += part
            if received.count(b"\n\n") >= 3:
                break
    # The whole answer would take ~15 s; the backend must see its client leave long before.
    assert e2e.backend.wait_streams_cut(cut_before + 1, timeout=5.0)
    assert time.monotonic() - started < 8.0
    assert not e2e.recorder.find(body["messages"][0]["content"]).complete


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("tools", [WEATHER_TOOLS, None], ids=["mended", "passthrough"])
def test_client_leaving_before_the_answer_cancels_the_backend_request(
    e2e: E2E, tools: list[dict[str, Any]] | None, stream: bool
) -> None:
    # The backend takes 10 s to answer (a long prompt, or a whole answer being generated).
    name = e2e.script("late", Script(text=CALL_TEXT, fault="slow_headers", fault_delay_s=10.0))
    body = chat_body(name, tools, stream)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{e2e.url}/chat/completions", json=body, timeout=httpx.Timeout(10.0, read=0.3))
    upstream = e2e.recorder.find(body["messages"][0]["content"])
    deadline = time.monotonic() + 3.0
    while not upstream.disconnected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream.disconnected and not upstream.complete, "the proxy still waits for the backend"


# -- passthrough -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_request_without_tools_passes_through_untouched(e2e: E2E, http: httpx.Client, stream: bool) -> None:
    # The model writes a call as text, but no tools were given: nothing is parsed.
    case = CASE_BY_FORMAT["hermes"]
    for body in (
        chat_body(case.model, None, stream),
        chat_body(case.model, [], stream),
        chat_body("plain", None, stream, stream_options={"include_usage": True}),
    ):
        raw = json.dumps(body).encode()
        resp = http.post(f"{e2e.url}/chat/completions", content=raw, headers={"content-type": "application/json"})
        upstream = e2e.recorder.find(body["messages"][0]["content"])
        assert upstream.request == raw
        assert resp.status_code == upstream.status == 200
        assert resp.content == upstream.response
        assert b"tool_calls" not in resp.content
    assert PLAIN_TEXT[:5].encode() in resp.content


def test_passthrough_http_error_is_relayed(e2e: E2E, http: httpx.Client) -> None:
    body = chat_body(fault_script(e2e, "http_503"), None, True)
    resp = chat(http, e2e.url, body)
    upstream = e2e.recorder.find(body["messages"][0]["content"])
    assert resp.status_code == 503 and resp.content == upstream.response


def test_passthrough_stream_cut_ends_with_an_error_event(e2e: E2E, http: httpx.Client) -> None:
    body = chat_body(fault_script(e2e, "cut"), None, True)
    resp = chat(http, e2e.url, body)
    upstream = e2e.recorder.find(body["messages"][0]["content"])
    relayed, sep, error = resp.content.rpartition(b"data: {")
    assert sep and upstream.response.startswith(relayed.rstrip(b"\n"))
    assert json.loads(sep[6:] + error)["error"]["code"] == "backend_stream_cut"
    assert b"[DONE]" not in resp.content


def test_models_are_forwarded(e2e: E2E, http: httpx.Client) -> None:
    resp = http.get(f"{e2e.url}/models")
    assert resp.status_code == 200
    assert resp.content == e2e.recorder.last("/v1/models").response
    ids = {m["id"] for m in resp.json()["data"]}
    assert {"plain", CASE_BY_FORMAT["hermes"].model, native_model("no_ids")} <= ids


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_legacy_completions_are_forwarded_untouched(e2e: E2E, http: httpx.Client, stream: bool) -> None:
    tag = marker()
    raw = json.dumps({"model": "corpus/hermes", "prompt": tag, "stream": stream}).encode()
    resp = http.post(f"{e2e.url}/completions", content=raw, headers={"content-type": "application/json"})
    upstream = e2e.recorder.find(tag)
    assert upstream.path == "/v1/completions" and upstream.request == raw
    assert resp.status_code == 200 and resp.content == upstream.response
    if stream:
        payloads = sse_payloads(resp.content)
        assert payloads[-1] == "[DONE]"
        text = "".join(json.loads(p)["choices"][0]["text"] for p in payloads[:-1])
    else:
        text = resp.json()["choices"][0]["text"]
    assert text == CASE_BY_FORMAT["hermes"].output


def test_health_and_unknown_routes(e2e: E2E, http: httpx.Client) -> None:
    health = http.get(e2e.root + "/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "backend": {"url": e2e.backend_url, "reachable": True}}
    resp = http.get(f"{e2e.url}/nowhere")
    assert resp.status_code == 404 and error_of(resp)["code"] == "not_found"
    resp = http.get(f"{e2e.url}/chat/completions")
    assert resp.status_code in (404, 405) and "error" in resp.json()


# -- bad requests ----------------------------------------------------------------------------------


def test_invalid_json_and_invalid_tools_are_400(e2e: E2E, http: httpx.Client) -> None:
    before = len(e2e.recorder.exchanges)
    headers = {"content-type": "application/json"}
    resp = http.post(f"{e2e.url}/chat/completions", content=b'{"model": "x", "messages": [', headers=headers)
    assert resp.status_code == 400 and error_of(resp)["code"] == "invalid_json"
    resp = http.post(f"{e2e.url}/chat/completions", content=b"[1, 2]", headers=headers)
    assert resp.status_code == 400 and error_of(resp)["type"] == "invalid_request_error"
    for tools in ([{"type": "function", "function": {"parameters": {}}}], "get_weather"):
        for stream in (True, False):
            resp = chat(http, e2e.url, chat_body("corpus/hermes", tools, stream))
            assert resp.status_code == 400, tools
            err = error_of(resp)
            assert err["code"] == "invalid_tools" and err["type"] == "invalid_request_error"
    assert len(e2e.recorder.exchanges) == before, "bad requests never reach the backend"


def test_request_over_the_size_limit_is_413(e2e: E2E, http: httpx.Client) -> None:
    before = len(e2e.recorder.exchanges)
    with e2e.proxy(**{"limits.max_request_bytes": 2048}) as server:
        base = server.url + "/v1"
        big = chat_body("plain", WEATHER_TOOLS, False, messages=[{"role": "user", "content": "x" * 4096}])
        resp = chat(http, base, big)
        assert resp.status_code == 413 and error_of(resp)["code"] == "request_too_large"
        # Without a content-length (chunked): counted as it arrives.
        raw = json.dumps(big).encode()
        parts = (raw[i : i + 512] for i in range(0, len(raw), 512))
        resp = http.post(f"{base}/chat/completions", content=parts, headers={"content-type": "application/json"})
        assert "content-length" not in resp.request.headers
        assert resp.status_code == 413
        resp = http.post(f"{base}/completions", json={"model": "plain", "prompt": "x" * 4096})
        assert resp.status_code == 413
        assert len(e2e.recorder.exchanges) == before
        small = chat(http, base, chat_body("plain", WEATHER_TOOLS, False))
        assert small.status_code == 200


# -- auth --------------------------------------------------------------------------------------------


def upstream_auth(e2e: E2E, body: dict[str, Any]) -> str | None:
    return e2e.recorder.find(body["messages"][0]["content"]).headers.get("authorization")


def test_client_authorization_is_forwarded(e2e: E2E, http: httpx.Client) -> None:
    for tools in (WEATHER_TOOLS, None):
        body = chat_body("plain", tools, False)
        resp = chat(http, e2e.url, body, headers={"authorization": "Bearer sk-client"})
        assert resp.status_code == 200
        assert upstream_auth(e2e, body) == "Bearer sk-client"
    http.get(f"{e2e.url}/models", headers={"authorization": "Bearer sk-models"})
    assert e2e.recorder.last("/v1/models").headers.get("authorization") == "Bearer sk-models"


def test_backend_key_replaces_the_clients(e2e: E2E, http: httpx.Client) -> None:
    with e2e.proxy(backend_api_key="sk-backend") as server:
        for tools in (WEATHER_TOOLS, None):
            body = chat_body("plain", tools, True)
            resp = chat(http, server.url + "/v1", body, headers={"authorization": "Bearer sk-client"})
            assert resp.status_code == 200
            assert upstream_auth(e2e, body) == "Bearer sk-backend"


def test_proxy_key_protects_the_proxy(e2e: E2E, http: httpx.Client) -> None:
    with e2e.proxy(api_key="sk-proxy") as server:
        base = server.url + "/v1"
        for headers in ({}, {"authorization": "Bearer wrong"}, {"x-api-key": "wrong"}):
            resp = chat(http, base, chat_body("plain", WEATHER_TOOLS, True), headers=headers)
            assert resp.status_code == 401
            err = error_of(resp)
            assert err["type"] == "authentication_error" and err["code"] == "invalid_api_key"
            assert http.get(f"{base}/models", headers=headers).status_code == 401
            assert (
                http.post(f"{base}/completions", json={"model": "plain", "prompt": "x"}, headers=headers).status_code
                == 401
            )
        for headers in ({"authorization": "Bearer sk-proxy"}, {"x-api-key": "sk-proxy"}):
            for tools in (WEATHER_TOOLS, None):
                body = chat_body("plain", tools, False)
                resp = chat(http, base, body, headers=headers)
                assert resp.status_code == 200
                # The proxy's key is not the backend's: it is not passed on.
                assert upstream_auth(e2e, body) is None
        assert http.get(f"{base}/models", headers={"authorization": "Bearer sk-proxy"}).status_code == 200
    with e2e.proxy(api_key="sk-proxy", backend_api_key="sk-backend") as server:
        body = chat_body("plain", WEATHER_TOOLS, False)
        resp = chat(http, server.url + "/v1", body, headers={"authorization": "Bearer sk-proxy"})
        assert resp.status_code == 200
        assert upstream_auth(e2e, body) == "Bearer sk-backend"


# -- metrics -------------------------------------------------------------------------------------------


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(got: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return got.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics(e2e: E2E, http: httpx.Client) -> None:
    case = CASE_BY_FORMAT["hermes"]
    with e2e.proxy() as server:
        base = server.url + "/v1"
        assert chat(http, base, chat_body(case.model, case.tools, True)).status_code == 200
        assert chat(http, base, chat_body(native_model("no_ids"), NATIVE_TOOLS, False)).status_code == 200
        assert chat(http, base, chat_body("plain", None, False)).status_code == 200
        assert chat(http, base, chat_body(fault_script(e2e, "http_500"), WEATHER_TOOLS, False)).status_code == 500
        resp = chat(http, base, chat_body(fault_script(e2e, "cut"), WEATHER_TOOLS, True))
        stream_error(resp.content)
        assert http.get(f"{base}/models").status_code == 200
        resp = http.get(server.url + "/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    got = samples(resp.text)
    req = "toolmend_requests_total"
    assert value(got, req, endpoint="chat_completions", stream="true", status="200") == 1
    assert value(got, req, endpoint="chat_completions", stream="false", status="200") == 2
    assert value(got, req, endpoint="chat_completions", stream="false", status="500") == 1
    assert value(got, req, endpoint="chat_completions", stream="true", status="502") == 1
    assert value(got, req, endpoint="models", stream="false", status="200") == 1
    calls = "toolmend_tool_calls_total"
    assert value(got, calls, format="hermes", source="text") == len(case.calls)
    assert sum(v for (n, labels), v in got.items() if n == calls and ("source", "native") in labels) == 2
    diags = {dict(labels)["kind"]: v for (n, labels), v in got.items() if n == "toolmend_diagnostics_total"}
    assert diags.get("coerced_number") == 1 and diags.get("trailing_comma") == 1, diags
    failures = {dict(labels)["code"]: v for (n, labels), v in got.items() if n == "toolmend_failures_total"}
    assert failures == {"backend_http_500": 1, "backend_stream_cut": 1}, failures
    hist = "toolmend_request_duration_seconds_count"
    assert value(got, hist, endpoint="chat_completions", stream="false") == 3
    assert value(got, hist, endpoint="chat_completions", stream="true") == 2
    assert value(got, "toolmend_time_to_first_chunk_seconds_count", endpoint="chat_completions") >= 1
    assert (
        value(got, "toolmend_request_duration_seconds_bucket", endpoint="chat_completions", stream="false", le="+Inf")
        == 3
    )


# -- probing ---------------------------------------------------------------------------------------------


def test_probe_finds_a_live_backend(e2e: E2E) -> None:
    dead = Candidate("dead", closed_port())
    live = Candidate("scripted", e2e.backend_server.port)
    found, tried = asyncio.run(find_backend(candidates=(dead, live)))
    assert found == live and tried == [dead, live]
    found, tried = asyncio.run(find_backend(candidates=(dead,), timeout=1.0))
    assert found is None and tried == [dead]


# -- a client slower than the backend ------------------------------------------------------------------


def test_a_client_that_stops_reading_gets_the_whole_stream_in_order(e2e: E2E) -> None:
    """The proxy writes each mended chunk from the backend read that brought it; when the
    client stops reading, its socket and then the server's buffer fill up, the proxy stops
    reading the backend, and everything still arrives, in order, once the client reads again."""
    import socket
    from urllib.parse import urlsplit

    text = "".join(f"line {i:06d} of a long answer.\n" for i in range(200_000)) + "The end."  # 6.4 MB
    name = e2e.script("bulky", Script(text=text, chunk_size=8192))
    body = json.dumps(chat_body(name, WEATHER_TOOLS, True)).encode()
    url = urlsplit(e2e.url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((url.hostname, url.port))
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    time.sleep(1.5)  # not reading: the proxy must hold back, not drop or reorder
    sock.settimeout(20)
    raw = b""
    while chunk := sock.recv(65536):
        raw += chunk
    sock.close()
    head, _, chunked = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    stream = b""
    while chunked:
        size, _, rest = chunked.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            break
        stream += rest[:n]
        chunked = rest[n + 2 :]
    events = sse_payloads(stream)
    assert events[-1] == "[DONE]"
    content = "".join(
        json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1] if json.loads(e)["choices"]
    )
    assert content == text
