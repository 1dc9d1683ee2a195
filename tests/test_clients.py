"""The real client libraries through the proxy (a real uvicorn server on 127.0.0.1), for every
corpus format (calls the model wrote as text) and every native-call quirk, streaming and not:
openai-python (hand-assembled stream, whole answers, the ``chat.completions.stream()`` helper),
LangChain ``ChatOpenAI.bind_tools``, LiteLLM ``completion`` and the Vercel AI SDK 2.x / 3.x
(``streamText`` / ``generateText``, batched: one node process per SDK and mode)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from langchain_core.messages import AIMessageChunk, BaseMessageChunk
from langchain_openai import ChatOpenAI
from proxy_harness import E2E, FORMAT_CASES, NATIVE_CALLS, NATIVE_QUIRKS, NATIVE_TOOLS, assert_calls, native_model

# LiteLLM fetches its model price map from the internet at import unless told to use its bundled copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import litellm

# Warnings from inside LiteLLM that pytest (filterwarnings=error) would turn into failures:
# - its first completion() lazily imports its GitHub Copilot provider, whose TypedDicts use
#   `ReadOnly`, and pydantic warns that it cannot enforce that;
# - its synchronous completion() leaves an asyncio event loop of its own unclosed, which the
#   garbage collector reports (in whatever test runs then) as a ResourceWarning.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Item.* using the `ReadOnly` qualifier:UserWarning"),
    pytest.mark.filterwarnings("ignore:unclosed event loop:ResourceWarning"),
]

API_KEY = "sk-test"
PROMPT = "Please use the tools."


@dataclass(frozen=True)
class Case:
    """A model the backend answers with calls, and the calls a client must end up with."""

    label: str
    model: str
    tools: list[dict[str, Any]]
    calls: list[dict[str, Any]]


CASES = [Case(c.format, c.model, c.tools, c.calls) for c in FORMAT_CASES] + [
    Case(native_model(q), native_model(q), NATIVE_TOOLS, NATIVE_CALLS) for q in NATIVE_QUIRKS
]
BY_LABEL = {c.label: c for c in CASES}
LABELS = list(BY_LABEL)
MODES = pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])


def messages() -> list[dict[str, Any]]:
    return [{"role": "user", "content": PROMPT}]


# -- openai-python ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oai(e2e: E2E) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=e2e.url, api_key=API_KEY, max_retries=0, timeout=20.0)
    yield client
    client.close()


@pytest.mark.parametrize("label", LABELS)
def test_openai_stream(oai: openai.OpenAI, label: str) -> None:
    case = BY_LABEL[label]
    calls: dict[int, dict[str, str]] = {}
    finish = None
    with oai.chat.completions.create(
        model=case.model,
        messages=messages(),
        tools=case.tools,
        stream=True,
    ) as stream:
        for chunk in stream:
            for choice in chunk.choices:
                for tc in choice.delta.tool_calls or []:
                    call = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                    call["id"] += tc.id or ""
                    call["name"] += (tc.function.name or "") if tc.function else ""
                    call["arguments"] += (tc.function.arguments or "") if tc.function else ""
                finish = choice.finish_reason or finish
    assert sorted(calls) == list(range(len(calls)))
    got = [calls[i] for i in sorted(calls)]
    assert_calls([(c["name"], c["arguments"]) for c in got], case.calls, label)
    assert all(c["id"] for c in got) and len({c["id"] for c in got}) == len(got)
    assert finish == "tool_calls"


@pytest.mark.parametrize("label", LABELS)
def test_openai_whole(oai: openai.OpenAI, label: str) -> None:
    case = BY_LABEL[label]
    answer = oai.chat.completions.create(
        model=case.model,
        messages=messages(),
        tools=case.tools,
    )
    choice = answer.choices[0]
    calls = choice.message.tool_calls or []
    assert_calls([(c.function.name, c.function.arguments) for c in calls], case.calls, label)
    assert choice.finish_reason == "tool_calls"


def strict(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stream helper parses arguments only for tools marked ``strict``."""
    return [{**t, "function": {**t["function"], "strict": True}} for t in tools]


@pytest.mark.parametrize("label", LABELS)
def test_openai_stream_helper(oai: openai.OpenAI, label: str) -> None:
    case = BY_LABEL[label]
    done = []
    with oai.chat.completions.stream(
        model=case.model,
        messages=messages(),
        tools=strict(case.tools),
    ) as stream:
        for event in stream:
            if event.type == "tool_calls.function.arguments.done":
                done.append(event)
        final = stream.get_final_completion()
    assert [e.index for e in done] == list(range(len(done)))
    assert_calls([(e.name, e.parsed_arguments) for e in done], case.calls, f"{label} .done events")
    assert all(json.loads(e.arguments) == e.parsed_arguments for e in done)
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert_calls([(c.function.name, c.function.parsed_arguments) for c in calls], case.calls, f"{label} final")


# -- LangChain ---------------------------------------------------------------------------------------


@MODES
@pytest.mark.parametrize("label", LABELS)
def test_langchain(e2e: E2E, label: str, stream: bool) -> None:
    case = BY_LABEL[label]
    llm = ChatOpenAI(base_url=e2e.url, api_key=API_KEY, model=case.model, max_retries=0, timeout=20.0)
    bound = llm.bind_tools(case.tools)
    if stream:
        message: BaseMessageChunk | None = None
        for chunk in bound.stream(PROMPT):
            message = chunk if message is None else message + chunk
        assert isinstance(message, AIMessageChunk)
        assert not message.invalid_tool_calls
        got: Any = message
    else:
        got = bound.invoke(PROMPT)
    assert_calls([(c["name"], c["args"]) for c in got.tool_calls], case.calls, label)
    assert len({c["id"] for c in got.tool_calls}) == len(got.tool_calls)
    assert got.response_metadata.get("finish_reason") == "tool_calls"


# -- LiteLLM ------------------------------------------------------------------------------------------


@MODES
@pytest.mark.parametrize("label", LABELS)
def test_litellm(e2e: E2E, label: str, stream: bool) -> None:
    case = BY_LABEL[label]
    kwargs: dict[str, Any] = {
        "model": f"openai/{case.model}",
        "api_base": e2e.url,
        "api_key": API_KEY,
        "messages": messages(),
        "tools": case.tools,
        "timeout": 20.0,
        "num_retries": 0,
    }
    if stream:
        calls: dict[int, dict[str, str]] = {}
        finish = None
        for chunk in litellm.completion(**kwargs, stream=True):
            for choice in chunk.choices:
                for tc in choice.delta.tool_calls or []:
                    call = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                    call["id"] += tc.id or ""
                    call["name"] += tc.function.name or ""
                    call["arguments"] += tc.function.arguments or ""
                finish = choice.finish_reason or finish
        got = [(calls[i]["name"], calls[i]["arguments"]) for i in sorted(calls)]
        assert all(calls[i]["id"] for i in calls)
    else:
        answer = litellm.completion(**kwargs)
        choice = answer.choices[0]
        got = [(c.function.name, c.function.arguments) for c in choice.message.tool_calls or []]
        finish = choice.finish_reason
    assert_calls(got, case.calls, label)
    assert finish == "tool_calls"


# -- Vercel AI SDK --------------------------------------------------------------------------------------

JS = Path(__file__).resolve().parent / "js"
SDKS = ["ai-sdk-2", "ai-sdk-3"]
_AI_SDK_RESULTS: dict[tuple[str, bool], dict[str, dict[str, Any]]] = {}


def _node_missing(sdk: str) -> str | None:
    if shutil.which("node") is None:
        return "node is not installed (the AI SDK tests need node and `bash tests/js/setup.sh`)"
    if not (JS / sdk / "node_modules" / "ai").is_dir():
        return f"tests/js/{sdk}/node_modules is missing: run `bash tests/js/setup.sh`"
    return None


def without_null_descriptions(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Some corpus tools carry ``"description": null``, which ai 7's ``tool()`` rejects
    ("tool.description is not a function"); an absent description is what such a tool means."""
    return [{**t, "function": {k: v for k, v in t["function"].items() if v is not None}} for t in tools]


def ai_sdk_results(e2e: E2E, sdk: str, stream: bool) -> dict[str, dict[str, Any]]:
    """Every case through one node process of ``sdk`` (cached: one run per SDK and mode)."""
    key = (sdk, stream)
    if key not in _AI_SDK_RESULTS:
        specs = [
            {
                "baseURL": e2e.url,
                "apiKey": API_KEY,
                "model": c.model,
                "stream": stream,
                "tools": without_null_descriptions(c.tools),
                "prompt": PROMPT,
                "timeoutMs": 20000,
            }
            for c in CASES
        ]
        proc = subprocess.run(
            ["node", str(JS / sdk / "client.mjs")],
            input=json.dumps(specs),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        lines = proc.stdout.strip().splitlines()
        assert proc.returncode in (0, 1) and lines, f"node failed ({proc.returncode}): {proc.stderr[-2000:]}"
        results = json.loads(lines[-1])
        assert isinstance(results, list) and len(results) == len(CASES), results
        _AI_SDK_RESULTS[key] = {c.label: r for c, r in zip(CASES, results)}
    return _AI_SDK_RESULTS[key]


@MODES
@pytest.mark.parametrize("label", LABELS)
@pytest.mark.parametrize("sdk", SDKS)
def test_ai_sdk(e2e: E2E, sdk: str, label: str, stream: bool) -> None:
    missing = _node_missing(sdk)
    if missing:
        pytest.skip(missing)
    case = BY_LABEL[label]
    result = ai_sdk_results(e2e, sdk, stream)[label]
    assert result["ok"], result["errors"]
    assert not result["warnings"], result["warnings"]
    assert result["finishReason"] == "tool-calls", result
    assert not any(c.get("invalid") for c in result["toolCalls"])
    assert_calls([(c["toolName"], c["input"]) for c in result["toolCalls"]], case.calls, f"{sdk} {label}")
    ids = [c["toolCallId"] for c in result["toolCalls"]]
    assert all(ids) and len(set(ids)) == len(ids)
