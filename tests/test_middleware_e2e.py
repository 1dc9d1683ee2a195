"""The middleware end to end: a real proxy in front of the scripted backend, which answers badly
first and well after feedback; streaming and not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from canonical import check_stream
from toolmend.config import load_settings
from toolmend.proxy import create_app
from toolmend.scripted import Script, ScriptedBackend, serve_in_thread
from weather import WEATHER_TOOLS

TOOLS = WEATHER_TOOLS


def call(name: str, args: str) -> str:
    return f'<tool_call>{{"name": "{name}", "arguments": {args}}}</tool_call>'


@pytest.fixture(scope="module")
def backend() -> Iterator[tuple[ScriptedBackend, str]]:
    b = ScriptedBackend()
    with serve_in_thread(b.app) as server:
        yield b, server.url


@contextmanager
def proxy(url: str, **overrides: Any) -> Iterator[str]:
    settings = load_settings(env={}, overrides={"backend_url": url, **overrides})
    with serve_in_thread(create_app(settings)) as p:
        yield p.url + "/v1"


@pytest.fixture(scope="module")
def default_proxy(backend: tuple[ScriptedBackend, str]) -> Iterator[str]:
    with proxy(backend[1]) as url:
        yield url


def ask(url: str, model: str, stream: bool, **extra: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Posts a chat request; returns (message-like summary, calls with parsed arguments)."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "weather?"}],
        "tools": TOOLS,
        "stream": stream,
        **extra,
    }
    resp = httpx.post(f"{url}/chat/completions", json=body, timeout=30)
    assert resp.status_code == 200, resp.text
    if stream:
        got = check_stream(resp.content)
        assert got.error is None, got.error
        summary = {"content": got.content or None, "finish_reason": got.finish_reason}
        calls = [{"name": c["name"], "arguments": json.loads(c["arguments"])} for c in got.calls]
    else:
        choice = resp.json()["choices"][0]
        summary = {"content": choice["message"]["content"], "finish_reason": choice["finish_reason"]}
        calls = [
            {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}
            for c in choice["message"].get("tool_calls") or []
        ]
    return summary, calls


STREAMS = pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])


@STREAMS
def test_invalid_arguments_are_retried_with_feedback(
    backend: tuple[ScriptedBackend, str], default_proxy: str, stream: bool
) -> None:
    b, _ = backend
    name = f"retry-{stream}"
    b.add(
        name,
        [
            Script(text="Checking. " + call("get_weather", '{"days": 2}')),
            Script(text=call("get_weather", '{"city": "Oslo"}')),
        ],
    )
    summary, calls = ask(default_proxy, name, stream)
    assert calls == [{"name": "get_weather", "arguments": {"city": "Oslo"}}]
    assert summary["finish_reason"] == "tool_calls"
    if stream:
        assert summary["content"] == "Checking."  # streamed once; the retry is invisible but for latency
    asked = [r["body"] for r in b.requests if r["body"].get("model") == name]
    assert len(asked) == 2 and asked[1]["stream"] is False
    feedback = asked[1]["messages"][-1]["content"]
    assert '"city" is a required property' in feedback and "get_weather, search" in feedback


@STREAMS
def test_required_tool_choice_is_forced_when_the_backend_ignores_it(
    backend: tuple[ScriptedBackend, str], default_proxy: str, stream: bool
) -> None:
    b, _ = backend
    name = f"required-{stream}"
    b.add(name, [Script(text="Probably sunny."), Script(text=call("get_weather", '{"city": "Rome"}'))])
    summary, calls = ask(default_proxy, name, stream, tool_choice="required")
    assert [c["name"] for c in calls] == ["get_weather"]
    assert summary["finish_reason"] == "tool_calls"
    asked = [r["body"] for r in b.requests if r["body"].get("model") == name]
    assert asked[0]["tool_choice"] == "required"  # passed through first
    assert "required" in asked[1]["messages"][-1]["content"]


@STREAMS
def test_named_tool_choice_keeps_only_that_call(
    backend: tuple[ScriptedBackend, str], default_proxy: str, stream: bool
) -> None:
    b, _ = backend
    name = f"named-{stream}"
    b.add(name, Script(text=call("search", '{"q": "x"}') + call("get_weather", '{"city": "Rome"}')))
    choice = {"type": "function", "function": {"name": "get_weather"}}
    _, calls = ask(default_proxy, name, stream, tool_choice=choice)
    assert [c["name"] for c in calls] == ["get_weather"]


@STREAMS
def test_tool_choice_none_never_yields_a_call(
    backend: tuple[ScriptedBackend, str], default_proxy: str, stream: bool
) -> None:
    b, _ = backend
    name = f"none-{stream}"
    b.add(name, Script(text="Here you go.", tool_calls=[{"name": "search", "arguments": "{}"}]))
    summary, calls = ask(default_proxy, name, stream, tool_choice="none")
    assert calls == [] and summary["content"] == "Here you go." and summary["finish_reason"] == "stop"


@STREAMS
def test_parallel_tool_calls_false_sends_one_call(
    backend: tuple[ScriptedBackend, str], default_proxy: str, stream: bool
) -> None:
    b, _ = backend
    name = f"parallel-{stream}"
    b.add(
        name,
        Script(
            tool_calls=[{"name": "search", "arguments": "{}"}, {"name": "get_weather", "arguments": '{"city": "A"}'}]
        ),
    )
    _, calls = ask(default_proxy, name, stream, parallel_tool_calls=False)
    assert [c["name"] for c in calls] == ["search"]


@STREAMS
def test_respond_tool_on_request(backend: tuple[ScriptedBackend, str], default_proxy: str, stream: bool) -> None:
    b, _ = backend
    name = f"respond-{stream}"
    b.add(name, Script(text=call("respond", '{"message": "It is sunny in Rome."}')))
    summary, calls = ask(default_proxy, name, stream, toolmend={"respond_tool": True})
    assert calls == [] and summary["content"] == "It is sunny in Rome." and summary["finish_reason"] == "stop"
    asked = next(r["body"] for r in b.requests if r["body"].get("model") == name)
    assert "toolmend" not in asked
    assert [t["function"]["name"] for t in asked["tools"]] == ["get_weather", "search", "respond"]


@STREAMS
def test_backs_off_on_429_then_answers(backend: tuple[ScriptedBackend, str], default_proxy: str, stream: bool) -> None:
    b, _ = backend
    name = f"busy-{stream}"
    b.add(name, [Script(fault="http_429", headers={"Retry-After": "0"}), Script(text=call("search", "{}"))])
    _, calls = ask(default_proxy, name, stream)
    assert [c["name"] for c in calls] == ["search"]
    assert b.attempts(name) == 2


def test_retries_are_counted_in_metrics(backend: tuple[ScriptedBackend, str]) -> None:
    b, url = backend
    b.add("metered", [Script(text=call("get_weather", "{}")), Script(text=call("get_weather", '{"city": "B"}'))])
    with proxy(url) as p:
        ask(p, "metered", False)
        text = httpx.get(p.removesuffix("/v1") + "/metrics").text
    assert 'toolmend_retries_total{outcome="retried_ok"} 1.0' in text


def test_max_attempts_one_never_asks_again(backend: tuple[ScriptedBackend, str]) -> None:
    b, url = backend
    b.add("once", [Script(text=call("get_weather", "{}")), Script(text=call("get_weather", '{"city": "B"}'))])
    with proxy(url, **{"middleware.max_attempts": 1}) as p:
        _, calls = ask(p, "once", True)
    assert calls == [{"name": "get_weather", "arguments": {}}] and b.attempts("once") == 1


def test_recommended_sampling(backend: tuple[ScriptedBackend, str]) -> None:
    b, url = backend
    b.add("Qwen/Qwen3-8B", Script(text="hi"))
    b.add("mystery-model", Script(text="hi"))
    with proxy(url, **{"middleware.recommended_sampling": True}) as p:
        ask(p, "Qwen/Qwen3-8B", False, temperature=0.2)
        resp = httpx.post(
            f"{p}/chat/completions", json={"model": "mystery-model", "messages": [], "tools": TOOLS}, timeout=10
        )
    sent = [r["body"] for r in b.requests if r["body"].get("model") == "Qwen/Qwen3-8B"][-1]
    assert sent["temperature"] == 0.2 and sent["top_k"] == 20 and sent["top_p"] == 0.95
    assert resp.status_code == 400
    assert (
        resp.json()["error"]["code"] == "unknown_model_profile" and "mystery-model" in resp.json()["error"]["message"]
    )


def test_single_call_models_get_one_call_per_turn_in_history(
    backend: tuple[ScriptedBackend, str], default_proxy: str
) -> None:
    b, _ = backend
    name = "meta-llama/Llama-3.1-8B-Instruct"
    b.add(name, Script(text="done"))
    history = [
        {"role": "user", "content": "both"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "search", "arguments": "{}"}},
                {"id": "b", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "X"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "a", "content": "r1"},
        {"role": "tool", "tool_call_id": "b", "content": "r2"},
    ]
    resp = httpx.post(
        f"{default_proxy}/chat/completions", json={"model": name, "messages": history, "tools": TOOLS}, timeout=10
    )
    assert resp.status_code == 200
    sent = [r["body"] for r in b.requests if r["body"].get("model") == name][-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "assistant", "tool"]
    assert all(len(m.get("tool_calls", [])) <= 1 for m in sent)


@STREAMS
def test_constrained_decoding_for_a_named_choice(backend: tuple[ScriptedBackend, str], stream: bool) -> None:
    b, url = backend
    name = f"constrained-{stream}"
    b.add(name, Script(text='{"name": "get_weather", "arguments": {"city": "Lima", "days": "3"}}'))
    choice = {"type": "function", "function": {"name": "get_weather"}}
    with proxy(url, **{"middleware.constrained": "response_format"}) as p:
        _, calls = ask(p, name, stream, tool_choice=choice)
    assert calls == [{"name": "get_weather", "arguments": {"city": "Lima", "days": 3}}]
    sent = [r["body"] for r in b.requests if r["body"].get("model") == name][-1]
    schema = sent["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["name"] == {"const": "get_weather"}
