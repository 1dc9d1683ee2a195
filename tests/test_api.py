"""The Python API as users call it: parse, StreamParser, events, errors, tools."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest
import toolmend
from hypothesis import given, settings
from hypothesis import strategies as st
from toolmend import (
    InvalidToolsError,
    ParserFinishedError,
    StreamParser,
    ToolCall,
    Tools,
    UnknownFormatError,
    formats,
    parse,
)

HERMES = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}\n</tool_call>'


def test_installed_wheel_is_under_test() -> None:
    repo_python = Path(__file__).resolve().parent.parent / "python"
    assert repo_python not in Path(toolmend.__file__).resolve().parents


def test_parse_hermes_auto() -> None:
    r = parse(HERMES)
    assert r.format == "hermes"
    assert r.content == "Let me check."
    assert r.reasoning is None
    assert [(c.name, json.loads(c.arguments)) for c in r.tool_calls] == [("get_weather", {"city": "Paris", "days": 3})]
    assert r.tool_calls[0].id.startswith("call_")
    assert r.tool_calls[0].arguments == '{"city":"Paris","days":3}'


def test_plain_text_has_no_format() -> None:
    r = parse("Just an answer.")
    assert r.content == "Just an answer."
    assert r.tool_calls == []
    assert r.format is None


def test_stream_char_by_char_equals_parse() -> None:
    p = StreamParser(id_seed=3)
    events = []
    for ch in HERMES:
        events += p.feed(ch)
    events += p.finish()
    assert p.result() == parse(HERMES, id_seed=3)
    kinds = [e.kind for e in events]
    assert kinds[0] == "content"
    start = next(e for e in events if e.kind == "tool_call_start")
    assert (start.index, start.name) == (0, "get_weather")
    args = "".join(e.text or "" for e in events if e.kind == "tool_call_args")
    assert args == p.result().tool_calls[0].arguments
    assert kinds[-1] == "tool_call_end"


def test_content_streams_before_the_call_is_complete() -> None:
    p = StreamParser(format="hermes")
    first = p.feed("Hello there <tool_c")
    assert [(e.kind, e.text) for e in first] == [("content", "Hello there")]
    mid = p.feed('all>{"name": "search", "arguments": {"q": "a very long')
    assert [e.kind for e in mid] == ["tool_call_start", "tool_call_args"]
    assert mid[1].text == '{"q":"a very long'


def test_unknown_format_lists_valid_names() -> None:
    with pytest.raises(UnknownFormatError) as ei:
        parse("x", format="nonsense")
    assert "hermes" in str(ei.value) and "nonsense" in str(ei.value)
    assert isinstance(ei.value, ValueError)


def test_invalid_tools_raise() -> None:
    with pytest.raises(InvalidToolsError):
        parse("x", tools="not a list")
    with pytest.raises(InvalidToolsError):
        parse("x", tools=[{"type": "function", "function": {"parameters": {}}}])


def test_feed_after_finish_raises() -> None:
    p = StreamParser()
    p.feed("hi")
    p.finish()
    with pytest.raises(ParserFinishedError):
        p.feed("more")
    assert p.finish() == []


def test_text_inputs_must_be_str_and_encodable() -> None:
    p = StreamParser(format="hermes")
    with pytest.raises(TypeError):
        p.feed(b"<tool_call>")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        parse(None)  # type: ignore[arg-type]
    # A lone surrogate cannot be UTF-8: a clear error, and the parser is still usable.
    with pytest.raises(UnicodeEncodeError):
        p.feed("caf\ud800")
    with pytest.raises(UnicodeEncodeError):
        parse("x\udfff")
    events = p.feed(HERMES) + p.finish()
    assert [e.kind for e in events if e.kind != "tool_call_args"] == [
        "content",
        "tool_call_start",
        "tool_call_end",
    ]
    assert p.result().tool_calls[0].name == "get_weather"


def test_events_are_fresh_lists_that_callers_may_keep() -> None:
    p = StreamParser(format="hermes")
    first = p.feed('<tool_call>\n{"name": "f", "arguments": {"a": "x')
    second = p.feed('yz"}}\n</tool_call>')
    assert first is not second
    kept = list(first)
    p.finish()
    assert first == kept  # later feeds never change a list already returned
    assert "".join(e.text or "" for e in first + second if e.kind == "tool_call_args") == '{"a":"xyz"}'


@pytest.mark.parametrize("method", ["feed", "call_args"])
def test_per_delta_methods_take_every_call_shape(method: str) -> None:
    """feed/call_args run without an argument tuple on Python >= 3.10 (a METH_FASTCALL method
    installed over PyO3's); keywords, wrong types and wrong counts behave as PyO3's method."""
    descriptor = getattr(StreamParser, method)
    assert descriptor.__doc__ and descriptor.__doc__.strip()
    param = "delta" if method == "feed" else "fragment"
    assert list(inspect.signature(descriptor).parameters) == ["self", param]

    def fresh() -> StreamParser:
        p = StreamParser(format="hermes")
        if method == "call_args":
            p.call_start("f")
        return p

    whole = "".join(e.text or "" for e in getattr(fresh(), method)('{"a": "xyz"}'))
    for call in (
        lambda p: getattr(p, method)('{"a": "xyz"}'),
        lambda p: getattr(p, method)(**{param: '{"a": "xyz"}'}),
        lambda p: getattr(StreamParser, method)(p, '{"a": "xyz"}'),
    ):
        assert "".join(e.text or "" for e in call(fresh())) == whole
    p = fresh()
    for bad, message in (
        ((), "missing 1 required positional argument"),
        (("a", "b"), "positional arguments but 2 were given"),
        ((3,), f"argument '{param}'"),
    ):
        with pytest.raises(TypeError, match=message):
            getattr(p, method)(*bad)
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        getattr(p, method)(text="a")
    with pytest.raises(TypeError):
        getattr(StreamParser, method)(object(), "a")
    assert "".join(e.text or "" for e in getattr(p, method)('{"a": "xyz"}')) == whole


def test_undeclared_tool_stays_content(weather_tools: list[dict[str, Any]]) -> None:
    text = '<tool_call>{"name": "delete_everything", "arguments": {}}</tool_call>'
    r = parse(text, tools=weather_tools, format="hermes")
    assert r.tool_calls == []
    assert r.content == text
    assert any(d.kind == "unknown_tool" and "get_weather" in d.message for d in r.diagnostics)


def test_tool_name_resolution(weather_tools: list[dict[str, Any]]) -> None:
    r = parse(
        '<tool_call>{"name": "Get-Weather", "arguments": {"city": "Oslo"}}</tool_call>', tools=Tools(weather_tools)
    )
    assert [c.name for c in r.tool_calls] == ["get_weather"]


def test_reasoning_is_separated_and_never_a_call() -> None:
    text = '<think>maybe <tool_call>{"name": "x", "arguments": {}}</tool_call></think>Answer: 4'
    r = parse(text, format="hermes")
    assert r.tool_calls == []
    assert r.reasoning is not None and "<tool_call>" in r.reasoning
    assert r.content == "Answer: 4"


def test_repairs_are_diagnosed() -> None:
    r = parse("<tool_call>{'name': 'search', 'arguments': {'q': 'x',}}</tool_call>")
    assert json.loads(r.tool_calls[0].arguments) == {"q": "x"}
    kinds = {d.kind for d in r.diagnostics}
    assert {"single_quotes", "trailing_comma"} <= kinds
    d = r.diagnostics[0]
    assert d.span == (d.start, d.end) and d.start <= d.end


def test_truncated_output_closes_the_call() -> None:
    r = parse('<tool_call>{"name": "search", "arguments": {"q": "unfinished')
    assert json.loads(r.tool_calls[0].arguments) == {"q": "unfinished"}
    assert any(d.kind == "truncated" for d in r.diagnostics)


def test_formats_lists_names_and_models() -> None:
    names = {f.name for f in formats()}
    assert {"hermes", "mistral_array", "generic_json", "cohere"} <= names
    assert all(f.models for f in formats())


def test_model_hint() -> None:
    assert toolmend.format_for_model("Qwen/Qwen2.5-7B-Instruct") == "hermes"
    assert toolmend.format_for_model("mistralai/Mistral-7B-Instruct-v0.3") == "mistral_array"
    assert toolmend.format_for_model("totally-unknown") is None


def test_hostile_input_does_not_crash() -> None:
    deep = "<tool_call>" + "[" * 100_000
    r = parse(deep, format="hermes")
    assert r.tool_calls == []
    p = StreamParser(format="hermes")
    for _ in range(2000):
        p.feed("<tool_cal")
    p.finish()
    assert (p.result().content or "").startswith("<tool_cal")


def test_toolcall_objects() -> None:
    c = ToolCall("id1", "f", "{}")
    assert (c.id, c.name, c.arguments) == ("id1", "f", "{}")
    assert c == ToolCall("id1", "f", "{}")


@settings(max_examples=60, deadline=None)
@given(
    args=st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.one_of(st.integers(), st.text(max_size=20), st.booleans(), st.none(), st.lists(st.integers(), max_size=3)),
        max_size=4,
    ),
    prefix=st.text(max_size=20).filter(lambda s: "<" not in s and "{" not in s and "[" not in s),
    cuts=st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=30),
)
def test_any_chunking_matches_whole(args: dict[str, Any], prefix: str, cuts: list[int]) -> None:
    text = prefix + "<tool_call>" + json.dumps({"name": "f", "arguments": args}) + "</tool_call>"
    whole = parse(text, format="hermes", id_seed=1)
    assert json.loads(whole.tool_calls[0].arguments) == args
    p = StreamParser(format="hermes", id_seed=1)
    i = 0
    k = 0
    while i < len(text):
        n = cuts[k % len(cuts)]
        p.feed(text[i : i + n])
        i += n
        k += 1
    p.finish()
    assert p.result() == whole


def test_model_written_ids_are_kept_and_mistral_ids_have_nine_chars() -> None:
    kimi = (
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0"
        '<|tool_call_argument_begin|>{"city": "Paris"}<|tool_call_end|><|tool_calls_section_end|>'
    )
    r = parse(kimi)
    assert r.format == "kimi_k2"
    assert [(c.id, c.name) for c in r.tool_calls] == [("functions.get_weather:0", "get_weather")]
    r = parse('[TOOL_CALLS] [{"name": "a", "arguments": {}}, {"name": "b", "arguments": {}}]', format="mistral_array")
    ids = [c.id for c in r.tool_calls]
    assert all(len(i) == 9 and i.isalnum() for i in ids) and len(set(ids)) == 2
    r = parse('[TOOL_CALLS]get_weather[CALL_ID]a1B2c3D4e[ARGS]{"city": "Paris"}', format="mistral_v11")
    assert r.tool_calls[0].id == "a1B2c3D4e"


def test_auto_tells_shared_markers_apart_while_streaming() -> None:
    texts = {
        "hermes": '<tool_call>{"name": "f", "arguments": {"x": 1}}</tool_call>',
        "qwen3_xml": "<tool_call>\n<function=f>\n<parameter=x>\n1\n</parameter>\n</function>\n</tool_call>",
        "glm47": "<tool_call>f<arg_key>x</arg_key><arg_value>1</arg_value></tool_call>",
        "gemma4": "<|tool_call>call:f{x:1}<tool_call|>",
        "granite": '<|tool_call|>[{"name": "f", "arguments": {"x": 1}}]',
    }
    for fmt, text in texts.items():
        p = StreamParser()
        for ch in text:
            p.feed(ch)
        p.finish()
        r = p.result()
        assert r.format == fmt, (fmt, r.format)
        assert [(c.name, json.loads(c.arguments)) for c in r.tool_calls] == [("f", {"x": 1})], fmt


def test_repair_off_keeps_broken_json_as_content() -> None:
    text = "<tool_call>{'name': 'search', 'arguments': {'q': 'x'}}</tool_call>"
    assert len(parse(text, format="hermes").tool_calls) == 1
    strict = parse(text, format="hermes", repair=False)
    assert strict.tool_calls == []
    assert strict.content == text
    assert any(d.kind == "invalid_json" for d in strict.diagnostics)


def test_reprs_read_like_python() -> None:
    p = StreamParser(format="hermes")
    events = p.feed('hi <tool_call>{"name": "f", "arguments": {"a": 1}}</tool_call>')
    text = repr(events)
    assert "Some(" not in text and "index=0" in text and 'text="hi"' in text
    r = parse("x", format="hermes")
    assert "Some(" not in repr(r) and "reasoning=None" in repr(r)
