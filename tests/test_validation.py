"""Schema validation of finished tool calls, through the Python API."""

from __future__ import annotations

import json
from typing import Any

import pytest
from toolmend import Diagnostic, ParseResult, StreamParser, Tools, parse

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer"},
        "unit": {"enum": ["c", "f"]},
        "legs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"stops": {"type": "array", "items": {"type": "string"}}},
                "required": ["stops"],
            },
        },
    },
    "required": ["city"],
    "additionalProperties": False,
}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA}}]


def hermes(arguments: dict[str, Any], name: str = "get_weather") -> str:
    return f"Checking.\n<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


def violations(r: ParseResult) -> list[Diagnostic]:
    return [d for d in r.diagnostics if d.kind == "schema_violation"]


def paths(r: ParseResult) -> list[str]:
    return sorted(d.path or "" for d in violations(r))


def streamed(text: str, chunk: int, **kwargs: Any) -> ParseResult:
    p = StreamParser(TOOLS, "hermes", **kwargs)
    for i in range(0, len(text), chunk):
        p.feed(text[i : i + chunk])
    p.finish()
    return p.result()


def test_valid_arguments_have_no_violation() -> None:
    r = parse(hermes({"city": "Oslo", "days": 2, "unit": "c", "legs": [{"stops": ["a"]}]}), TOOLS)
    assert len(r.tool_calls) == 1
    assert violations(r) == []


def test_missing_required_and_wrong_type() -> None:
    text = hermes({"days": [3]})
    r = parse(text, TOOLS)
    assert paths(r) == ["", "/days"]
    by_path = {d.path: d for d in violations(r)}
    assert '"city" is a required property' in by_path[""].message
    assert 'is not of type "integer"' in by_path["/days"].message
    for d in violations(r):
        assert "get_weather arguments" in d.message
        start, end = d.span
        assert d.span == (d.start, d.end)
        assert start < end and "get_weather" in text[start:end]
    # Validation reports; it never changes the arguments.
    assert json.loads(r.tool_calls[0].arguments) == {"days": [3]}


def test_enum_and_nested_arrays() -> None:
    text = hermes({"city": "Oslo", "unit": "kelvin", "legs": [{"stops": ["a", 2]}, {}]})
    r = parse(text, TOOLS, coerce=False)
    assert paths(r) == ["/legs/0/stops/1", "/legs/1", "/unit"]
    # Coercion runs first: it turns 2 into "2", which leaves the other violations.
    assert paths(parse(text, TOOLS)) == ["/legs/1", "/unit"]


def test_additional_properties_without_coercion() -> None:
    # Coercion drops properties `additionalProperties: false` forbids; without it, they are violations.
    text = hermes({"city": "Oslo", "extra": 1})
    assert violations(parse(text, TOOLS)) == []
    r = parse(text, TOOLS, coerce=False)
    assert paths(r) == [""]
    assert "'extra' was unexpected" in violations(r)[0].message
    assert json.loads(r.tool_calls[0].arguments) == {"city": "Oslo", "extra": 1}


def test_validate_false_skips_validation() -> None:
    text = hermes({"days": "x"})
    on = parse(text, TOOLS)
    off = parse(text, TOOLS, validate=False)
    assert violations(on) and violations(off) == []
    assert [c.arguments for c in on.tool_calls] == [c.arguments for c in off.tool_calls]
    assert violations(streamed(text, 3, validate=False)) == []


@pytest.mark.parametrize("chunk", [1, 2, 5, 17, 10_000])
@pytest.mark.parametrize("coerce", [True, False])
def test_streaming_gives_the_same_diagnostics(chunk: int, coerce: bool) -> None:
    text = hermes({"days": "x", "unit": "k"}) + "\n" + hermes({"city": 1})
    whole = parse(text, TOOLS, id_seed=1, coerce=coerce)
    # Without coercion `city: 1` is a violation too; with it, 1 becomes "1".
    assert len(violations(whole)) == (3 if coerce else 4)
    assert streamed(text, chunk, id_seed=1, coerce=coerce) == whole


def test_path_is_none_for_other_diagnostics() -> None:
    r = parse(hermes({"city": "Oslo"}, name="Get-Weather"), TOOLS)
    assert r.diagnostics
    assert all(d.path is None for d in r.diagnostics)
    assert all(d.kind != "schema_violation" for d in r.diagnostics)


def test_pointer_escaping() -> None:
    tools = [{"name": "f", "parameters": {"type": "object", "properties": {"a/b~c": {"type": "integer"}}}}]
    r = parse(hermes({"a/b~c": "x"}, name="f"), tools, format="hermes", coerce=False)
    assert [d.path for d in violations(r)] == ["/a~1b~0c"]


def test_invalid_schema_is_reported_not_raised() -> None:
    tools = Tools([{"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "nope"}}}}])
    for _ in range(2):  # compiled once, reported for every call
        r = parse(hermes({"a": 1}, name="f"), tools)
        assert len(r.tool_calls) == 1
        kinds = [d.kind for d in r.diagnostics]
        assert kinds == ["invalid_schema"], r.diagnostics
        assert "parameters schema of f" in r.diagnostics[0].message
        assert r.diagnostics[0].path is None


def test_null_parameters_mean_no_schema() -> None:
    r = parse(hermes({"anything": 1}, name="f"), [{"name": "f", "parameters": None}])
    assert len(r.tool_calls) == 1
    assert r.diagnostics == []


def test_no_tools_no_validation() -> None:
    r = parse(hermes({"days": "x"}))
    assert len(r.tool_calls) == 1
    assert violations(r) == []


def test_many_violations_are_capped() -> None:
    tools = [{"name": "f", "parameters": {"type": "object", "properties": {"xs": {"items": {"type": "integer"}}}}}]
    r = parse(hermes({"xs": [str(i) for i in range(100)]}, name="f"), tools, coerce=False)
    assert len(violations(r)) == 16
    assert [d.kind for d in r.diagnostics].count("schema_violations_truncated") == 1
