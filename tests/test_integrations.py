"""The server adapters of ``toolmend.integrations`` through the servers' own interfaces.

- vLLM: the parser is looked up by name through ``ToolParserManager`` / ``ParserManager`` after
  ``import_tool_parser("toolmend.integrations.vllm_plugin")`` (what ``--tool-parser-plugin`` does), then
  driven the way vLLM's chat serving drives it: ``Parser.parse`` for whole answers and one
  ``ChatStreamProcessor`` per response for streams.
- SGLang: the detector is reached by name through ``FunctionCallParser`` (``parse_non_stream``,
  ``parse_stream_chunk``, ``parse_stream_end``), as SGLang's chat serving does.
- LiteLLM: the callback's hooks on LiteLLM's own response objects, and a real LiteLLM proxy
  (``litellm --config``, a subprocess on 127.0.0.1) in front of the scripted backend.

The answers are corpus outputs of many formats, chunked at random for streams; each adapter must
hand the server what ``toolmend.parse`` finds in the same text. The third-party packages are
optional: without them these tests are skipped (``bash tools/install-integrations.sh VENV``
installs them).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from conftest import load_corpus, load_exceptions
from toolmend import ParseResult, parse
from toolmend.scripted import Script, ScriptedBackend, serve_in_thread

# LiteLLM fetches its model price map from the internet at import unless told to use its bundled copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# Warnings from inside LiteLLM that pytest (filterwarnings=error) would turn into failures: pydantic
# cannot enforce the `ReadOnly` qualifier of some of its TypedDicts.
pytestmark = [pytest.mark.filterwarnings("ignore:Item.* using the `ReadOnly` qualifier:UserWarning")]

INSTALL_HINT = "install it with: bash tools/install-integrations.sh VENV"

# Formats of the corpus run through every adapter (format pinned with $TOOLMEND_FORMAT).
FORMATS = [
    "hermes",
    "mistral_array",
    "llama3_json",
    "qwen3_xml",
    "pythonic",
    "kimi_k2",
    "deepseek_v31",
    "glm47",
    "minimax_m2",
    "functools",
    "granite",
    "gemma4",
]
CASES_PER_FORMAT = 2

WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city"],
            },
        },
    }
]
# A Qwen-style answer: reasoning, text, a call whose "days" the model wrote as a string.
WEATHER_TEXT = (
    "<think>The user wants the weather.</think>Let me check."
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": "3"}}\n</tool_call>'
)
WEATHER_CALL = ("get_weather", {"city": "Paris", "days": 3})


# -- corpus cases ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    format: str
    output: str
    tools: list[dict[str, Any]]


def _tools_for(case: dict[str, Any]) -> list[dict[str, Any]]:
    if case["tools"]:
        return list(case["tools"])
    names = dict.fromkeys(c["name"] for c in case["expected"]["tool_calls"])
    return [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}} for n in names]


def _pick_cases() -> list[Case]:
    exceptions = load_exceptions()
    by_format: dict[str, list[Case]] = {}
    for c in load_corpus():
        if c["format"] not in FORMATS or c["id"] in exceptions or not c["expected"]["tool_calls"]:
            continue
        if "thinking enabled" in (c["notes"] or ""):
            continue  # needs the parser told that the answer starts inside reasoning
        picked = by_format.setdefault(c["format"], [])
        if len(picked) < CASES_PER_FORMAT:
            picked.append(Case(c["id"], c["format"], c["output"], _tools_for(c)))
    missing = sorted(set(FORMATS) - set(by_format))
    if missing:
        raise RuntimeError(f"no usable corpus case for {missing}")
    return [case for f in FORMATS for case in by_format[f]]


CASES = _pick_cases()
CASE_IDS = [c.id for c in CASES]


def chunks(text: str, seed: str) -> list[str]:
    """``text`` cut at random places (1 to 7 characters a piece), the same cuts for the same seed."""
    rng = random.Random(seed)
    out: list[str] = []
    i = 0
    while i < len(text):
        n = rng.randint(1, 7)
        out.append(text[i : i + n])
        i += n
    return out


def core(case: Case) -> ParseResult:
    return parse(case.output, tools=case.tools, format=case.format)


def calls_of(result: ParseResult) -> list[tuple[str, Any]]:
    return [(c.name, json.loads(c.arguments)) for c in result.tool_calls]


def with_think(result: ParseResult) -> str:
    """The content the vLLM and SGLang adapters give: reasoning left in the text as <think>."""
    think = f"<think>{result.reasoning}</think>" if result.reasoning is not None else ""
    return (think + (result.content or "")).strip()


@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.delenv("TOOLMEND_FORMAT", raising=False)
    monkeypatch.delenv("TOOLMEND_MODEL", raising=False)
    yield monkeypatch


class Assembler:
    """A streamed answer put back together, checking the OpenAI delta rules on the way: a call's
    first delta has its id, type and name; later deltas only add argument text."""

    def __init__(self) -> None:
        self.content = ""
        self.calls: dict[int, dict[str, Any]] = {}

    def text(self, text: str | None) -> None:
        self.content += text or ""

    def call(self, index: int, id: str | None, name: str | None, arguments: str | None, type: str | None) -> None:
        if index not in self.calls:
            assert id and name, f"first delta of call {index} lacks id or name: {id!r} {name!r}"
            assert type in (None, "function")
            self.calls[index] = {"id": id, "name": name, "arguments": arguments or ""}
            return
        assert not name, f"call {index}: the name came again ({name!r})"
        assert not id, f"call {index}: the id came again ({id!r})"
        self.calls[index]["arguments"] += arguments or ""

    def result(self) -> list[tuple[str, Any]]:
        assert sorted(self.calls) == list(range(len(self.calls))), f"call indexes {sorted(self.calls)}"
        return [(c["name"], json.loads(c["arguments"])) for _, c in sorted(self.calls.items())]

    def ids(self) -> list[str]:
        return [c["id"] for _, c in sorted(self.calls.items())]


# -- import hygiene ----------------------------------------------------------------------------


def test_package_import_pulls_in_no_server() -> None:
    code = (
        "import sys, toolmend, toolmend.integrations\n"
        "loaded = sorted(m for m in ('vllm', 'sglang', 'litellm', 'torch') if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""


def test_common_tool_shapes_and_reasoning_text() -> None:
    """What every adapter relies on: tools in the Chat and the Responses shapes, and a stream whose
    text (reasoning put back as <think>) adds up to the whole answer's."""
    from toolmend.integrations._common import RequestStream, content_with_reasoning, tool_dicts, tools_arg

    flat = {"type": "function", "name": "get_weather", "parameters": WEATHER_TOOLS[0]["function"]["parameters"]}
    assert tool_dicts([flat, {"type": "web_search"}]) == [
        {"type": "function", "function": {"name": "get_weather", "parameters": flat["parameters"]}}
    ]
    tools = tools_arg([flat])
    assert tools is not None and tools.names == ["get_weather"]
    assert tools_arg([{"type": "web_search"}]) is None

    stream = RequestStream.open(tools, "Qwen/Qwen3-8B")
    pieces = [p for part in chunks(WEATHER_TEXT, "common") for p in stream.feed(part)] + stream.finish()
    text = "".join(p.text for p in pieces if p.kind == "text")
    whole = parse(WEATHER_TEXT, tools=tools, model="Qwen/Qwen3-8B")
    assert text == content_with_reasoning(whole) == "<think>The user wants the weather.</think>Let me check."
    args = "".join(p.text for p in pieces if p.kind == "args")
    assert [p.name for p in pieces if p.kind == "start"] == ["get_weather"]
    assert json.loads(args) == WEATHER_CALL[1]
    assert [(c.name, c.arguments) for c in stream.calls] == [("get_weather", args)]


# == vLLM ======================================================================================


@dataclass
class VllmKit:
    manager: Any
    parser_manager: Any
    request_cls: Any
    stream_processor: Any
    adapter: ModuleType

    def parser_cls(self) -> Any:
        return self.parser_manager.get_parser(tool_parser_name="toolmend", enable_auto_tools=True, model_name="m")

    def request(self, tools: list[dict[str, Any]], *, stream: bool, model: str = "served-model", **kw: Any) -> Any:
        return self.request_cls(
            model=model, messages=[{"role": "user", "content": "hi"}], tools=tools, stream=stream, **kw
        )


class Tokenizer:
    """What the adapter reads of vLLM's and SGLang's tokenizers: the model id."""

    def __init__(self, name_or_path: str = "") -> None:
        self.name_or_path = name_or_path


@pytest.fixture(scope="module")
def vk() -> VllmKit:
    pytest.importorskip("vllm", reason=f"vLLM is not installed; {INSTALL_HINT}")
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.entrypoints.openai.chat_completion.stream_processor import ChatStreamProcessor
    from vllm.parser.parser_manager import ParserManager
    from vllm.tool_parsers import ToolParserManager

    # What `--tool-parser-plugin toolmend.integrations.vllm_plugin` does at startup.
    ToolParserManager.import_tool_parser("toolmend.integrations.vllm_plugin")
    import toolmend.integrations.vllm_plugin as adapter

    return VllmKit(ToolParserManager, ParserManager, ChatCompletionRequest, ChatStreamProcessor, adapter)


def vllm_stream(vk: VllmKit, request: Any, parts: list[str], tokenizer: Any = None) -> tuple[Assembler, str, Any]:
    """One response through a fresh parser and vLLM's ChatStreamProcessor, as vLLM's chat serving
    streams it: the assembled answer, the finish_reason and the parser."""
    cls = vk.parser_cls()
    parser = cls(tokenizer or Tokenizer(), request.tools, model_config=None)
    proc = vk.stream_processor(request, parser, enable_auto_tools=True, parser_cls=cls)
    got = Assembler()
    finish = None
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        step = proc.step(part, [i + 1], "stop" if last else None, [0])
        if step.delta is not None:
            got.text(step.delta.content)
            for tc in step.delta.tool_calls:
                fn = tc.function
                got.call(tc.index, tc.id, fn.name if fn else None, fn.arguments if fn else None, tc.type)
        finish = step.finish_reason or finish
    return got, finish or "", parser


def test_vllm_registered_by_name(vk: VllmKit) -> None:
    assert "toolmend" in vk.manager.list_registered()
    cls = vk.manager.get_tool_parser("toolmend")
    assert cls is vk.adapter.ToolmendToolParser
    assert vk.parser_cls().tool_parser_cls is cls


def test_vllm_plugin_loads_by_file_path_too(vk: VllmKit) -> None:
    """`--tool-parser-plugin /path/to/vllm_plugin.py`: vLLM imports the file under its base name,
    which must not shadow vLLM itself."""
    import toolmend.integrations.vllm_plugin as adapter

    vk.manager.import_tool_parser(adapter.__file__)
    assert "toolmend" in vk.manager.list_registered()
    import vllm

    assert hasattr(vllm, "__version__") and vllm.__name__ == "vllm"


def test_vllm_cli_accepts_the_plugin(vk: VllmKit) -> None:
    """`vllm serve --enable-auto-tool-choice --tool-parser-plugin toolmend.integrations.vllm_plugin
    --tool-call-parser toolmend`: the steps of vLLM's server startup that load and check them."""
    import argparse

    from vllm.entrypoints.common import cli_args

    def args(parser: str) -> argparse.Namespace:
        return argparse.Namespace(
            tool_parser_plugin="toolmend.integrations.vllm_plugin",
            reasoning_parser_plugin="",
            enable_auto_tool_choice=True,
            tool_call_parser=parser,
            structured_outputs_config=argparse.Namespace(reasoning_parser=None),
        )

    cli_args.init_parser_plugin(args("toolmend"))
    cli_args.validate_api_server_args(args("toolmend"))
    with pytest.raises(KeyError):
        cli_args.validate_api_server_args(args("toolmend-unknown"))


def test_vllm_one_parser_per_request(vk: VllmKit) -> None:
    """vLLM's chat serving builds one Parser (hence one tool parser) per request and choice; the
    per-request state lives there, so two parsers must not share it."""
    cls = vk.parser_cls()
    request = vk.request(WEATHER_TOOLS, stream=True)
    a, b = cls(Tokenizer(), request.tools), cls(Tokenizer(), request.tools)
    assert a.tool_parser is not b.tool_parser
    a.parse_delta(
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}', [1], request, [0], finished=False
    )
    assert b.tool_parser.prev_tool_call_arr == []
    assert a.tool_parser.prev_tool_call_arr[0]["name"] == "get_weather"


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_vllm_corpus_whole(vk: VllmKit, pinned: pytest.MonkeyPatch, case: Case) -> None:
    pinned.setenv("TOOLMEND_FORMAT", case.format)
    want = core(case)
    request = vk.request(case.tools, stream=False)
    reasoning, content, calls = vk.parser_cls()(Tokenizer(), request.tools).parse(
        case.output, request, enable_auto_tools=True
    )
    assert reasoning is None  # no --reasoning-parser configured
    assert [(c.name, json.loads(c.arguments)) for c in calls] == calls_of(want)
    assert [c.id for c in calls] == [c.id for c in want.tool_calls] or all(c.id for c in calls)
    assert (content or "").strip() == with_think(want)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_vllm_corpus_stream(vk: VllmKit, pinned: pytest.MonkeyPatch, case: Case) -> None:
    pinned.setenv("TOOLMEND_FORMAT", case.format)
    want = core(case)
    got, finish, parser = vllm_stream(vk, vk.request(case.tools, stream=True), chunks(case.output, case.id))
    assert got.result() == calls_of(want)
    assert got.content.strip() == with_think(want)
    assert finish == "tool_calls"
    # Nothing left for vLLM to append at the end of the stream.
    assert parser.tool_parser.get_remaining_unstreamed_args() == ""


def test_vllm_auto_format_from_tokenizer_model(vk: VllmKit, pinned: pytest.MonkeyPatch) -> None:
    """No $TOOLMEND_FORMAT: the format comes from the output and the model id (the tokenizer's
    name_or_path), whatever name the model is served under; strings are coerced to the schema."""
    text = '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Rome", "days": "2"}}]'
    request = vk.request(WEATHER_TOOLS, stream=True, model="my-alias")
    tokenizer = Tokenizer("mistralai/Mistral-7B-Instruct-v0.3")
    got, finish, _ = vllm_stream(vk, request, chunks(text, "mistral"), tokenizer)
    assert got.result() == [("get_weather", {"city": "Rome", "days": 2})]
    assert finish == "tool_calls"
    _, content, calls = vk.parser_cls()(tokenizer, request.tools).parse(text, request, enable_auto_tools=True)
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Rome", "days": 2})]
    assert not content


def test_vllm_weather_with_reasoning(vk: VllmKit, pinned: pytest.MonkeyPatch) -> None:
    request = vk.request(WEATHER_TOOLS, stream=True, model="Qwen/Qwen3-8B")
    got, finish, _ = vllm_stream(vk, request, chunks(WEATHER_TEXT, "weather"))
    assert got.result() == [WEATHER_CALL]
    assert got.content == "<think>The user wants the weather.</think>Let me check."
    assert finish == "tool_calls"
    _, content, calls = vk.parser_cls()(Tokenizer(), request.tools).parse(WEATHER_TEXT, request, enable_auto_tools=True)
    assert content == got.content
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [WEATHER_CALL]


def test_vllm_call_completed_only_at_end_of_stream(vk: VllmKit, pinned: pytest.MonkeyPatch) -> None:
    """A Llama-3 JSON call is a call only once the text is over: it reaches the client through
    the parser's finish_streaming(), which vLLM calls on the last chunk."""
    pinned.setenv("TOOLMEND_FORMAT", "llama3_json")
    text = '{"name": "get_weather", "parameters": {"city": "Lima"}}'
    got, finish, _ = vllm_stream(vk, vk.request(WEATHER_TOOLS, stream=True), chunks(text, "llama"))
    assert got.result() == [("get_weather", {"city": "Lima"})]
    assert got.content == ""
    assert finish == "tool_calls"


def test_vllm_plain_text_stays_text(vk: VllmKit, pinned: pytest.MonkeyPatch) -> None:
    text = "The weather in Paris is mild; no tool needed. Use <b>tags</b> freely."
    got, finish, _ = vllm_stream(vk, vk.request(WEATHER_TOOLS, stream=True), chunks(text, "plain"))
    assert got.content == text
    assert got.calls == {}
    assert finish == "stop"
    request = vk.request(WEATHER_TOOLS, stream=False)
    _, content, calls = vk.parser_cls()(Tokenizer(), request.tools).parse(text, request, enable_auto_tools=True)
    assert content == text
    assert not calls


def test_vllm_two_calls(vk: VllmKit, pinned: pytest.MonkeyPatch) -> None:
    text = (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>\n'
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Bergen", "days": 4}}</tool_call>'
    )
    got, finish, parser = vllm_stream(vk, vk.request(WEATHER_TOOLS, stream=True), chunks(text, "two"))
    assert got.result() == [("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Bergen", "days": 4})]
    assert len(set(got.ids())) == 2
    assert finish == "tool_calls"
    tp = parser.tool_parser
    assert [a["name"] for a in tp.prev_tool_call_arr] == ["get_weather", "get_weather"]
    assert tp.streamed_args_for_tool == [c["arguments"] for _, c in sorted(got.calls.items())]


def test_vllm_tool_choice_none_sends_no_calls(vk: VllmKit, pinned: pytest.MonkeyPatch) -> None:
    request = vk.request(WEATHER_TOOLS, stream=True, tool_choice="none")
    got, finish, _ = vllm_stream(vk, request, chunks(WEATHER_TEXT, "none"))
    assert got.calls == {}
    assert finish == "stop"


# == SGLang ====================================================================================


@dataclass
class SglangKit:
    parser_cls: Any
    tool_cls: Any
    adapter: ModuleType

    def parser(self, tools: list[dict[str, Any]], tokenizer: Any = None) -> Any:
        return self.parser_cls([self.tool_cls(**t) for t in tools], "toolmend", tokenizer=tokenizer or Tokenizer())


@pytest.fixture(scope="module")
def sk() -> SglangKit:
    pytest.importorskip("sglang", reason=f"SGLang is not installed; {INSTALL_HINT}")
    import toolmend.integrations.sglang as adapter
    from sglang.srt.entrypoints.openai.protocol import Tool
    from sglang.srt.function_call.function_call_parser import FunctionCallParser

    return SglangKit(FunctionCallParser, Tool, adapter)


def sglang_stream(parser: Any, parts: list[str]) -> Assembler:
    """A response streamed the way SGLang's chat serving does: parse_stream_chunk per delta,
    parse_stream_end on the last; an item with a name opens a call, the others add arguments."""
    got = Assembler()

    def take(text: str, items: list[Any]) -> None:
        got.text(text)
        for item in items:
            got.call(item.tool_index, "id" if item.name else None, item.name, item.parameters, None)

    for part in parts:
        take(*parser.parse_stream_chunk(part))
    take(*parser.parse_stream_end())
    return got


def test_sglang_registered_by_name(sk: SglangKit) -> None:
    assert sk.parser_cls.ToolCallParserEnum["toolmend"] is sk.adapter.ToolmendDetector
    parser = sk.parser(WEATHER_TOOLS)
    assert isinstance(parser.detector, sk.adapter.ToolmendDetector)
    # SGLang's server-argument choices read the same table.
    from sglang.srt.server_args import _tool_call_parser_choices

    assert "toolmend" in _tool_call_parser_choices()


def test_sglang_launcher_offers_the_parser(sk: SglangKit) -> None:
    """`python -m toolmend.integrations.sglang ...` runs SGLang's launch_server with the detector
    registered before SGLang parses its arguments."""
    out = subprocess.run(
        [sys.executable, "-m", "toolmend.integrations.sglang", "--help"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    line = next(ln for ln in out.stdout.splitlines() if "--tool-call-parser {" in ln)
    choices = line.split("{", 1)[1].split("}", 1)[0].split(",")
    assert "toolmend" in choices
    assert "hermes" in choices


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_sglang_corpus_whole(sk: SglangKit, pinned: pytest.MonkeyPatch, case: Case) -> None:
    pinned.setenv("TOOLMEND_FORMAT", case.format)
    want = core(case)
    parser = sk.parser(case.tools)
    assert parser.has_tool_call(case.output)
    text, items = parser.parse_non_stream(case.output)
    assert [(i.name, json.loads(i.parameters)) for i in items] == calls_of(want)
    names = [t["function"]["name"] for t in case.tools]
    assert [i.tool_index for i in items] == [names.index(c.name) if c.name in names else -1 for c in want.tool_calls]
    assert text.strip() == with_think(want)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_sglang_corpus_stream(sk: SglangKit, pinned: pytest.MonkeyPatch, case: Case) -> None:
    pinned.setenv("TOOLMEND_FORMAT", case.format)
    want = core(case)
    parser = sk.parser(case.tools)
    got = sglang_stream(parser, chunks(case.output, case.id))
    assert got.result() == calls_of(want)
    assert got.content.strip() == with_think(want)
    # What SGLang compares at the end of a stream to send unstreamed arguments: nothing is left.
    det = parser.detector
    assert [a["arguments"] for a in det.prev_tool_call_arr] == det.streamed_args_for_tool
    assert len(det.streamed_args_for_tool) == len(want.tool_calls)


def test_sglang_weather_auto(sk: SglangKit, pinned: pytest.MonkeyPatch) -> None:
    parser = sk.parser(WEATHER_TOOLS, Tokenizer("Qwen/Qwen3-8B"))
    got = sglang_stream(parser, chunks(WEATHER_TEXT, "weather"))
    assert got.result() == [WEATHER_CALL]
    assert got.content == "<think>The user wants the weather.</think>Let me check."
    text, items = sk.parser(WEATHER_TOOLS, Tokenizer("Qwen/Qwen3-8B")).parse_non_stream(WEATHER_TEXT)
    assert text == got.content
    assert [(i.name, json.loads(i.parameters)) for i in items] == [WEATHER_CALL]


def test_sglang_plain_text(sk: SglangKit, pinned: pytest.MonkeyPatch) -> None:
    text = "No call here, just <i>prose</i> and a [bracket]."
    parser = sk.parser(WEATHER_TOOLS)
    assert not parser.has_tool_call(text)
    assert parser.parse_non_stream(text) == (text, [])
    got = sglang_stream(sk.parser(WEATHER_TOOLS), chunks(text, "plain"))
    assert got.content == text
    assert got.calls == {}


def test_sglang_required_tool_choice_uses_json_schema(sk: SglangKit) -> None:
    """The detector declines structural tags (the format is unknown until the model writes it),
    so SGLang constrains tool_choice="required" with its JSON schema."""
    kind, _ = sk.parser(WEATHER_TOOLS).get_structure_constraint("required")
    assert kind == "json_schema"


def test_sglang_structure_info(sk: SglangKit, pinned: pytest.MonkeyPatch) -> None:
    pinned.setenv("TOOLMEND_FORMAT", "hermes")
    info = sk.parser(WEATHER_TOOLS).detector.structure_info()("get_weather")
    # The framing must be what the hermes parser reads back as a call.
    text = info.begin + '{"city": "Kyiv"}' + info.end
    assert text.startswith(info.trigger)
    r = parse(text, tools=WEATHER_TOOLS, format="hermes")
    assert calls_of(r) == [("get_weather", {"city": "Kyiv"})]
    pinned.setenv("TOOLMEND_FORMAT", "qwen3_xml")
    with pytest.raises(ValueError, match="qwen3_xml"):
        sk.parser(WEATHER_TOOLS).detector.structure_info()


# == LiteLLM ===================================================================================


@pytest.fixture(scope="module")
def ll() -> ModuleType:
    pytest.importorskip("litellm", reason=f"LiteLLM is not installed; {INSTALL_HINT}")
    import toolmend.integrations.litellm as adapter

    return adapter


def litellm_response(text: str, model: str = "m") -> Any:
    from litellm.types.utils import Choices, Message, ModelResponse

    return ModelResponse(
        model=model, choices=[Choices(index=0, finish_reason="stop", message=Message(role="assistant", content=text))]
    )


def litellm_chunks(text: str, seed: str) -> list[Any]:
    from litellm.types.utils import Delta, ModelResponseStream, StreamingChoices

    def chunk(delta: Any, finish: str | None = None) -> Any:
        return ModelResponseStream(
            id="chatcmpl-1",
            created=1,
            model="m",
            choices=[StreamingChoices(index=0, delta=delta, finish_reason=finish)],
        )

    out = [chunk(Delta(role="assistant", content=""))]
    out += [chunk(Delta(content=part)) for part in chunks(text, seed)]
    out.append(chunk(Delta(), "stop"))
    return out


async def _aiter(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


def litellm_stream(ll: ModuleType, items: list[Any], data: dict[str, Any]) -> tuple[Assembler, str, str, list[Any]]:
    """The iterator hook over LiteLLM stream chunks: the assembled answer, the reasoning, the
    finish_reason and the chunks it yielded."""

    async def run() -> list[Any]:
        hook = ll.proxy_handler_instance.async_post_call_streaming_iterator_hook
        return [c async for c in hook(user_api_key_dict=None, response=_aiter(items), request_data=data)]

    out = asyncio.run(run())
    got = Assembler()
    reasoning = ""
    finish = ""
    for c in out:
        for ch in c.choices:
            d = ch.delta
            has_text = bool(getattr(d, "content", None))
            tcs = getattr(d, "tool_calls", None) or []
            assert not (has_text and tcs), "text and calls in one delta"
            got.text(getattr(d, "content", None))
            reasoning += getattr(d, "reasoning_content", None) or ""
            for tc in tcs:
                got.call(tc.index, tc.id, tc.function.name, tc.function.arguments, tc.type)
            finish = ch.finish_reason or finish
    return got, reasoning, finish, out


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_litellm_hooks_corpus(ll: ModuleType, pinned: pytest.MonkeyPatch, case: Case) -> None:
    pinned.setenv("TOOLMEND_FORMAT", case.format)
    want = core(case)
    data = {"model": "m", "tools": case.tools, "messages": []}
    resp = asyncio.run(
        ll.proxy_handler_instance.async_post_call_success_hook(
            data=data, user_api_key_dict=None, response=litellm_response(case.output)
        )
    )
    choice = resp.choices[0]
    calls = [(tc.function.name, json.loads(tc.function.arguments)) for tc in choice.message.tool_calls]
    assert calls == calls_of(want)
    assert all(tc.id and tc.type == "function" for tc in choice.message.tool_calls)
    assert (choice.message.content or "").strip() == (want.content or "").strip()
    assert getattr(choice.message, "reasoning_content", None) == want.reasoning
    assert choice.finish_reason == "tool_calls"

    got, reasoning, finish, _ = litellm_stream(ll, litellm_chunks(case.output, case.id), data)
    assert got.result() == calls_of(want)
    assert got.content.strip() == (want.content or "").strip()
    assert (reasoning or None) == want.reasoning
    assert finish == "tool_calls"


def test_litellm_weather(ll: ModuleType, pinned: pytest.MonkeyPatch) -> None:
    data = {"model": "Qwen/Qwen3-8B", "tools": WEATHER_TOOLS, "messages": []}
    resp = asyncio.run(
        ll.proxy_handler_instance.async_post_call_success_hook(
            data=data, user_api_key_dict=None, response=litellm_response(WEATHER_TEXT)
        )
    )
    msg = resp.choices[0].message
    assert msg.content == "Let me check."
    assert msg.reasoning_content == "The user wants the weather."
    assert [(t.function.name, json.loads(t.function.arguments)) for t in msg.tool_calls] == [WEATHER_CALL]
    got, reasoning, finish, out = litellm_stream(ll, litellm_chunks(WEATHER_TEXT, "weather"), data)
    assert got.content == "Let me check."
    assert reasoning == "The user wants the weather."
    assert got.result() == [WEATHER_CALL]
    assert finish == "tool_calls"
    assert out[0].choices[0].delta.role == "assistant"


def test_litellm_leaves_requests_without_tools_alone(ll: ModuleType, pinned: pytest.MonkeyPatch) -> None:
    data: dict[str, Any] = {"model": "Qwen/Qwen3-8B", "messages": []}
    resp = litellm_response(WEATHER_TEXT)
    assert asyncio.run(ll.proxy_handler_instance.async_post_call_success_hook(data, None, resp)) is None
    assert resp.choices[0].message.content == WEATHER_TEXT
    items = litellm_chunks(WEATHER_TEXT, "no-tools")
    got, _, finish, out = litellm_stream(ll, items, data)
    assert out == items
    assert got.content == WEATHER_TEXT
    assert finish == "stop"


def test_litellm_native_calls_pass_through(ll: ModuleType, pinned: pytest.MonkeyPatch) -> None:
    from litellm.types.utils import ChatCompletionMessageToolCall, Function

    resp = litellm_response("")
    native = ChatCompletionMessageToolCall(id="call_1", type="function", function=Function(name="x", arguments="{}"))
    resp.choices[0].message.tool_calls = [native]
    resp.choices[0].message.content = "<tool_call>not touched</tool_call>"
    data = {"model": "m", "tools": WEATHER_TOOLS}
    out = asyncio.run(ll.proxy_handler_instance.async_post_call_success_hook(data, None, resp))
    assert out.choices[0].message.tool_calls == [native]
    assert out.choices[0].message.content == "<tool_call>not touched</tool_call>"


def test_litellm_stream_without_finish_chunk_is_flushed(ll: ModuleType, pinned: pytest.MonkeyPatch) -> None:
    pinned.setenv("TOOLMEND_FORMAT", "llama3_json")
    items = litellm_chunks('{"name": "get_weather", "parameters": {"city": "Quito"}}', "cut")[:-1]
    got, _, _, _ = litellm_stream(ll, items, {"model": "m", "tools": WEATHER_TOOLS})
    assert got.result() == [("get_weather", {"city": "Quito"})]


# -- a real LiteLLM proxy ------------------------------------------------------------------------

PROXY_FORMATS = ["hermes", "mistral_array", "llama3_json", "qwen3_xml", "kimi_k2"]
PROXY_CASES = [next(c for c in CASES if c.format == f) for f in PROXY_FORMATS]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LiteLLMProxy:
    url: str
    key: str


@pytest.fixture(scope="module")
def litellm_proxy(ll: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiteLLMProxy]:
    try:  # LiteLLM raises plain ImportErrors for some missing proxy dependencies
        with warnings.catch_warnings():  # its import-time deprecation warnings are not ours
            warnings.simplefilter("ignore")
            importlib.import_module("litellm.proxy.proxy_server")
    except ImportError as e:
        pytest.skip(f"the LiteLLM proxy's dependencies are missing ({e}); {INSTALL_HINT}")
    exe = shutil.which("litellm", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip(f"no litellm command beside {sys.executable}")
    backend = ScriptedBackend()
    for c in PROXY_CASES:
        backend.add(f"corpus/{c.format}", Script(text=c.output, chunk_size=3))
    backend.add("weather", Script(text=WEATHER_TEXT, chunk_size=4))
    work = tmp_path_factory.mktemp("litellm")
    with serve_in_thread(backend.app) as upstream:
        models = [f"corpus/{c.format}" for c in PROXY_CASES] + ["weather"]
        lines = ["model_list:"]
        for m in models:
            lines += [
                f"  - model_name: {m}",
                "    litellm_params:",
                f"      model: openai/{m}",
                f"      api_base: {upstream.url}/v1",
                "      api_key: sk-upstream",
            ]
        lines += ["litellm_settings:", '  callbacks: ["toolmend.integrations.litellm.proxy_handler_instance"]']
        config = work / "config.yaml"
        config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        key = "sk-" + secrets.token_hex(24)
        port = _free_port()
        env = {**os.environ, "LITELLM_MASTER_KEY": key, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        # No pinned format: the callback detects it from the text and the request's model name.
        env.pop("TOOLMEND_FORMAT", None)
        env.pop("TOOLMEND_MODEL", None)
        log = (work / "proxy.log").open("wb")
        proc = subprocess.Popen(
            [exe, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=work,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90
            while True:
                if proc.poll() is not None:
                    raise RuntimeError("litellm proxy exited:\n" + (work / "proxy.log").read_text(errors="replace"))
                try:
                    if httpx.get(url + "/health/liveliness", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        "litellm proxy did not start:\n" + (work / "proxy.log").read_text(errors="replace")
                    )
                time.sleep(0.3)
            yield LiteLLMProxy(url, key)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            log.close()


def _proxy_post(proxy: LiteLLMProxy, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        proxy.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {proxy.key}"}, timeout=60
    )


def _sse(proxy: LiteLLMProxy, body: dict[str, Any]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    with httpx.stream(
        "POST",
        proxy.url + "/v1/chat/completions",
        json={**body, "stream": True},
        headers={"Authorization": f"Bearer {proxy.key}"},
        timeout=60,
    ) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line[6:]))
    return events


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("case", PROXY_CASES, ids=[c.format for c in PROXY_CASES])
def test_litellm_proxy_corpus(litellm_proxy: LiteLLMProxy, case: Case, stream: bool) -> None:
    want = core(case)
    body = {"model": f"corpus/{case.format}", "messages": [{"role": "user", "content": "go"}], "tools": case.tools}
    if not stream:
        r = _proxy_post(litellm_proxy, body)
        assert r.status_code == 200, r.text
        choice = r.json()["choices"][0]
        calls = [
            (t["function"]["name"], json.loads(t["function"]["arguments"])) for t in choice["message"]["tool_calls"]
        ]
        assert calls == calls_of(want)
        assert (choice["message"].get("content") or "").strip() == (want.content or "").strip()
        assert choice["finish_reason"] == "tool_calls"
        return
    got = Assembler()
    finish = ""
    for ev in _sse(litellm_proxy, body):
        for ch in ev["choices"]:
            d = ch["delta"]
            got.text(d.get("content"))
            for tc in d.get("tool_calls") or []:
                fn = tc.get("function") or {}
                got.call(tc["index"], tc.get("id"), fn.get("name"), fn.get("arguments"), tc.get("type"))
            finish = ch.get("finish_reason") or finish
    assert got.result() == calls_of(want)
    assert got.content.strip() == (want.content or "").strip()
    assert finish == "tool_calls"


def test_litellm_proxy_reasoning_and_text(litellm_proxy: LiteLLMProxy) -> None:
    body = {"model": "weather", "messages": [{"role": "user", "content": "weather?"}], "tools": WEATHER_TOOLS}
    msg = _proxy_post(litellm_proxy, body).json()["choices"][0]["message"]
    assert msg["content"] == "Let me check."
    assert msg["reasoning_content"] == "The user wants the weather."
    assert [(t["function"]["name"], json.loads(t["function"]["arguments"])) for t in msg["tool_calls"]] == [
        WEATHER_CALL
    ]
    # Without tools in the request the callback leaves the answer alone (LiteLLM itself moves a
    # leading <think> block to reasoning_content).
    plain = _proxy_post(litellm_proxy, {"model": "weather", "messages": body["messages"]}).json()
    message = plain["choices"][0]["message"]
    assert message["content"].endswith(WEATHER_TEXT.split("</think>")[1])
    assert not message.get("tool_calls")
    assert plain["choices"][0]["finish_reason"] == "stop"
