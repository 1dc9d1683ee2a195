"""The Runner: a tool loop over Python functions against a scripted backend."""

from __future__ import annotations

import json
from collections.abc import Iterator
from enum import Enum
from typing import Literal

import pytest
from pydantic import BaseModel
from toolmend.runner import Runner, RunnerError
from toolmend.scripted import Script, ScriptedBackend, serve_in_thread
from toolmend.tools_from_python import tool_from_callable


class Unit(Enum):
    C = "celsius"
    F = "fahrenheit"


def get_weather(city: str, days: int = 1, unit: Unit = Unit.C) -> str:
    """Weather forecast for a city.

    Args:
        city: the city name
        days: how many days ahead
    """
    return f"{city}: sunny for {days} day(s), {unit.value}"


def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(f"boom: {reason}")


class Verdict(BaseModel):
    """The final structured answer."""

    city: str
    verdict: Literal["go", "stay"]


@pytest.fixture()
def backend() -> Iterator[tuple[ScriptedBackend, str]]:
    b = ScriptedBackend()
    with serve_in_thread(b.app) as server:
        yield b, server.url


def call(name: str, args: str) -> str:
    return f'<tool_call>{{"name": "{name}", "arguments": {args}}}</tool_call>'


def test_schema_from_a_typed_function() -> None:
    t = tool_from_callable(get_weather)
    assert t.description == "Weather forecast for a city."
    props = t.parameters["properties"]
    assert props["city"] == {"type": "string", "description": "the city name"}
    assert props["days"]["type"] == "integer" and props["days"]["default"] == 1
    assert props["unit"]["enum"] == ["celsius", "fahrenheit"]
    assert t.parameters["required"] == ["city"]


def test_a_loop_calls_the_tool_and_ends_on_the_answer(backend: tuple[ScriptedBackend, str]) -> None:
    b, url = backend
    b.add("m", [Script(text=call("get_weather", '{"city": "Paris", "days": "2",}')), Script(text="Sunny, go out.")])
    runner = Runner(url, tools=[get_weather], model="m")
    events = list(runner.stream("weather in Paris?"))
    kinds = [e.kind for e in events]
    assert kinds == ["tool_call", "tool_result", "assistant", "done"]
    assert events[0].arguments == {"city": "Paris", "days": 2}
    assert events[1].result == "Paris: sunny for 2 day(s), celsius"
    result = events[-1].result
    assert result.output == "Sunny, go out." and result.stopped_by == "answer" and result.iterations == 2
    second = b.requests[1]["body"]["messages"]
    assert second[-1]["role"] == "tool" and "Paris" in second[-1]["content"]
    assert second[-2]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_tool_errors_go_back_to_the_model_and_a_budget_stops_the_loop(backend: tuple[ScriptedBackend, str]) -> None:
    b, url = backend
    b.add("m", Script(text=call("explode", '{"reason": "x"}')))
    result = Runner(url, tools=[explode], model="m", max_consecutive_errors=2).run("go")
    assert result.stopped_by == "max_consecutive_errors" and result.iterations == 2
    tool_msgs = [m for m in result.messages if m["role"] == "tool"]
    assert "RuntimeError: boom: x" in tool_msgs[0]["content"]
    b.add("m", Script(text=call("get_weather", '{"city": "A"}')))
    result = Runner(url, tools=[get_weather], model="m", max_iterations=3).run("go")
    assert result.stopped_by == "max_iterations" and result.iterations == 3


def test_a_pydantic_model_tool_is_terminal(backend: tuple[ScriptedBackend, str]) -> None:
    b, url = backend
    b.add("m", Script(text=call("Verdict", '{"city": "Oslo", "verdict": "Go"}')))
    result = Runner(url, tools=[get_weather, Verdict], model="m").run("decide")
    assert result.stopped_by == "terminal_tool"
    assert result.output == Verdict(city="Oslo", verdict="go")


def test_invalid_arguments_are_retried_before_the_tool_runs(backend: tuple[ScriptedBackend, str]) -> None:
    b, url = backend
    b.add(
        "m",
        [
            Script(text=call("get_weather", '{"days": 3}')),
            Script(text=call("get_weather", '{"city": "Rome"}')),
            Script(text="done"),
        ],
    )
    events = list(Runner(url, tools=[get_weather], model="m").stream("weather?"))
    assert [e.kind for e in events] == ["tool_call", "tool_result", "assistant", "done"]
    assert events[0].arguments == {"city": "Rome"}
    feedback = b.requests[1]["body"]["messages"][-1]["content"]
    assert "city" in feedback


def test_an_openai_client_works_as_the_backend(backend: tuple[ScriptedBackend, str]) -> None:
    from openai import OpenAI

    b, url = backend
    b.add("m", [Script(tool_calls=[{"name": "get_weather", "arguments": {"city": "Bern"}}]), Script(text="ok")])
    client = OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    result = Runner(client, tools=[get_weather], model="m").run("weather?")
    assert result.output == "ok"
    assert json.loads(result.messages[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Bern"}


def test_backend_errors_surface(backend: tuple[ScriptedBackend, str]) -> None:
    _, url = backend
    with pytest.raises(RunnerError, match="404"):
        Runner(url, tools=[get_weather], model="no-such-model").run("x")
