"""The middleware pipeline and its built-in steps, without HTTP."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from toolmend import parse
from toolmend.pipeline import Answer, BackendError, BaseStep, Call, Pipeline, Turn
from toolmend.profiles import ProfileError, Profiles, load_profiles
from toolmend.steps import (
    RESPOND,
    ParallelCalls,
    RecommendedSampling,
    RespondTool,
    SingleCallHistory,
    StepError,
    ToolChoice,
    ValidateCalls,
    default_steps,
    split_parallel_calls,
)
from weather import WEATHER_TOOLS

TOOLS = WEATHER_TOOLS


def answer_of(text: str, tools: list[dict[str, Any]] = TOOLS) -> Answer:
    """What the core makes of a model output (the same mending the proxy applies)."""
    r = parse(text, tools=tools)
    calls = [Call(c.id, c.name, c.arguments) for c in r.tool_calls]
    return Answer(r.content, calls, "tool_calls" if calls else "stop", r.reasoning, list(r.diagnostics), r.format)


def call_text(name: str, args: str) -> str:
    return f'<tool_call>{{"name": "{name}", "arguments": {args}}}</tool_call>'


class Scripted:
    """A backend that answers from a list of outputs and records what it was asked."""

    def __init__(self, *outputs: str | Exception) -> None:
        self.outputs = list(outputs)
        self.requests: list[dict[str, Any]] = []

    async def __call__(self, request: dict[str, Any]) -> Answer:
        self.requests.append(request)
        out = self.outputs[min(len(self.requests), len(self.outputs)) - 1]
        if isinstance(out, Exception):
            raise out
        return answer_of(out, request.get("tools") or TOOLS)


def run(pipeline: Pipeline, request: dict[str, Any], backend: Scripted) -> Answer:
    answer, _ = asyncio.run(pipeline.run(Turn(request), backend))
    return answer


def req(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "weather?"}], "tools": TOOLS, **extra}


def test_a_call_that_does_not_validate_is_retried_with_the_validator_message() -> None:
    backend = Scripted(call_text("get_weather", '{"days": 2}'), call_text("get_weather", '{"city": "Oslo"}'))
    answer = run(Pipeline([ValidateCalls()], max_attempts=3), req(), backend)
    assert [(c.name, json.loads(c.arguments)) for c in answer.calls] == [("get_weather", {"city": "Oslo"})]
    assert len(backend.requests) == 2
    feedback = backend.requests[1]["messages"][-1]["content"]
    assert "city" in feedback and "required" in feedback
    assert "get_weather, search" in feedback
    assert backend.requests[1]["messages"][-2]["role"] == "assistant"


def test_unknown_tools_and_unfinished_calls_are_problems() -> None:
    unknown = answer_of(call_text("delete_all", "{}"))
    assert any("delete_all" in p for p in unknown.problems())
    unfinished = answer_of('<tool_call>{"name": "get_weather", "arguments": {"city": "Os')
    assert unfinished.problems(), unfinished.diagnostics


def test_attempts_are_bounded() -> None:
    bad = call_text("get_weather", "{}")
    backend = Scripted(bad)
    p = Pipeline([ValidateCalls()], max_attempts=3)
    answer, outcome = asyncio.run(p.run(Turn(req()), backend))
    assert len(backend.requests) == 3
    assert outcome.result == "retried_still_bad" and outcome.attempts == 3
    assert answer.calls  # the last answer is still returned


def test_backoff_on_429_then_success() -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    backend = Scripted(BackendError(429, "slow down", retry_after=1.5), call_text("search", "{}"))
    p = Pipeline([ValidateCalls()], max_attempts=2, sleep=sleep)
    answer = run(p, req(), backend)
    assert answer.calls[0].name == "search"
    assert slept == [1.5]


def test_required_tool_choice_forces_a_call() -> None:
    backend = Scripted("It is sunny.", call_text("get_weather", '{"city": "Rome"}'))
    answer = run(Pipeline([ToolChoice()], max_attempts=2), req(tool_choice="required"), backend)
    assert answer.calls[0].name == "get_weather"
    assert "required" in backend.requests[1]["messages"][-1]["content"]


def test_named_tool_choice_keeps_only_that_function() -> None:
    out = call_text("search", "{}") + call_text("get_weather", '{"city": "Rome"}')
    choice = {"type": "function", "function": {"name": "get_weather"}}
    answer = run(Pipeline([ToolChoice()], max_attempts=1), req(tool_choice=choice), Scripted(out))
    assert [c.name for c in answer.calls] == ["get_weather"]
    assert answer.finish_reason == "tool_calls"


def test_tool_choice_none_never_yields_a_call() -> None:
    answer = run(Pipeline([ToolChoice()], max_attempts=1), req(tool_choice="none"), Scripted(call_text("search", "{}")))
    assert answer.calls == [] and answer.finish_reason == "stop"


@pytest.mark.parametrize("mode", ToolChoice.MODES)
def test_constrained_decoding_asks_for_the_call_schema(mode: str) -> None:
    turn = Turn(req(tool_choice={"type": "function", "function": {"name": "get_weather"}}))
    ToolChoice(constrained=mode).prepare(turn)
    field = turn.request.get(mode)
    schema = field["json_schema"]["schema"] if mode == "response_format" else field
    assert schema["properties"]["name"] == {"const": "get_weather"}
    assert schema["properties"]["arguments"] == TOOLS[0]["function"]["parameters"]
    assert turn.notes["format"] == "generic_json"


def test_parallel_tool_calls_false_keeps_one_call() -> None:
    out = call_text("search", "{}") + call_text("get_weather", '{"city": "Rome"}')
    answer = run(Pipeline([ParallelCalls()], max_attempts=1), req(parallel_tool_calls=False), Scripted(out))
    assert [c.name for c in answer.calls] == ["search"]


def test_respond_tool_becomes_text_and_is_dropped_next_to_real_calls() -> None:
    p = Pipeline([RespondTool(enabled=True)], max_attempts=1)
    backend = Scripted(call_text(RESPOND, '{"message": "Hello there"}'))
    answer = run(p, req(), backend)
    assert any(t["function"]["name"] == RESPOND for t in backend.requests[0]["tools"])
    assert answer.calls == [] and answer.content == "Hello there" and answer.finish_reason == "stop"
    mixed = call_text(RESPOND, '{"message": "x"}') + call_text("search", "{}")
    answer = run(p, req(), Scripted(mixed))
    assert [c.name for c in answer.calls] == ["search"]


def test_respond_tool_is_opt_in_and_never_shadows_a_client_tool() -> None:
    turn = Turn(req())
    RespondTool(enabled=False).prepare(turn)
    assert RESPOND not in turn.tool_names()
    turn = Turn(req(toolmend={"respond_tool": True}))
    RespondTool(enabled=False).prepare(turn)
    assert RESPOND in turn.tool_names()
    own = [*TOOLS, {"type": "function", "function": {"name": RESPOND, "parameters": {"type": "object"}}}]
    turn = Turn(req(tools=own))
    RespondTool(enabled=True).prepare(turn)
    assert turn.tool_names().count(RESPOND) == 1 and not turn.notes.get("respond_injected")


def test_history_with_parallel_calls_becomes_one_call_turns() -> None:
    history = [
        {"role": "user", "content": "both"},
        {
            "role": "assistant",
            "content": "checking",
            "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "search", "arguments": "{}"}},
                {"id": "b", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "b", "content": "rain"},
        {"role": "tool", "tool_call_id": "a", "content": "found"},
        {"role": "user", "content": "thanks"},
    ]
    out = split_parallel_calls(history)
    roles = [(m["role"], m.get("tool_call_id") or [c["id"] for c in m.get("tool_calls", [])]) for m in out]
    assert roles == [
        ("user", []),
        ("assistant", ["a"]),
        ("tool", "a"),
        ("assistant", ["b"]),
        ("tool", "b"),
        ("user", []),
    ]
    assert out[1]["content"] == "checking" and out[3]["content"] is None
    turn = Turn({"model": "meta-llama/Llama-3.1-8B-Instruct", "messages": history})
    SingleCallHistory(Profiles.shipped()).prepare(turn)
    assert len(turn.request["messages"]) == 6
    turn = Turn({"model": "Qwen/Qwen3-8B", "messages": history})
    SingleCallHistory(Profiles.shipped()).prepare(turn)
    assert len(turn.request["messages"]) == 5


def test_recommended_sampling_fills_gaps_and_refuses_unknown_models() -> None:
    step = RecommendedSampling(Profiles.shipped(), enabled=True)
    turn = Turn({"model": "Qwen/Qwen3-8B", "messages": [], "temperature": 0.1})
    step.prepare(turn)
    assert turn.request["temperature"] == 0.1
    assert turn.request["top_k"] == 20
    with pytest.raises(StepError) as e:
        step.prepare(Turn({"model": "my-finetune-v7", "messages": []}))
    assert e.value.status == 400 and "my-finetune-v7" in e.value.message
    off = Turn({"model": "my-finetune-v7", "messages": []})
    RecommendedSampling(Profiles.shipped(), enabled=False).prepare(off)
    assert "temperature" not in off.request


def test_shipped_profiles_are_valid_and_found_by_common_ids() -> None:
    p = Profiles.shipped()
    assert p.find("Qwen/Qwen3-8B").name == "qwen3"  # type: ignore[union-attr]
    assert p.find("qwen3:8b").name == "qwen3"  # type: ignore[union-attr]
    assert p.find("Qwen3-Coder-30B-A3B-Instruct-Q4_K_M").name == "qwen3-coder"  # type: ignore[union-attr]
    assert p.find("llama3.1:8b").format == "llama3_json"  # type: ignore[union-attr]
    assert p.find("nobody/knows") is None


def test_a_user_profiles_file_overrides_and_is_validated(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text('[[profile]]\nname = "mine"\npatterns = ["acme-*"]\nformat = "hermes"\nquirks = ["single_call"]\n')
    p = Profiles.shipped().with_file(f)
    assert p.find("acme-7b").name == "mine"  # type: ignore[union-attr]
    f.write_text('[[profile]]\nname = "bad"\npatterns = ["x"]\nsampling = { temperature = 0.1 }\n')
    with pytest.raises(ProfileError, match="source"):
        load_profiles(f)
    f.write_text('[[profile]]\nname = "bad"\npatterns = ["x"]\nformat = "nope"\n')
    with pytest.raises(ProfileError, match="nope"):
        load_profiles(f)


def test_user_steps_compose_with_the_defaults() -> None:
    class Uppercase(BaseStep):
        name = "uppercase"

        def finalize(self, turn: Turn, answer: Answer) -> Answer:
            answer.content = (answer.content or "").upper()
            return answer

    p = Pipeline([*default_steps(), Uppercase()], max_attempts=1)
    answer = run(p, req(), Scripted("hello"))
    assert answer.content == "HELLO"
