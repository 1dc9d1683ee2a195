"""Schema coercion through the Python API: arguments are coerced while they stream."""

from __future__ import annotations

import json
from typing import Any

import pytest
from toolmend import StreamParser, parse

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "zip": {"type": "string"},
                    "days": {"type": "integer"},
                    "hourly": {"type": "boolean"},
                    "unit": {"type": "string", "enum": ["Celsius", "Fahrenheit"]},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "where": {"type": "object", "properties": {"lat": {"type": "number"}}},
                    "mode": {"type": "string", "default": "fast"},
                },
                "required": ["city", "mode"],
                "additionalProperties": False,
            },
        },
    }
]

ARGS = {
    "city": "Oslo",
    "zip": "02139",
    "days": "3",
    "hourly": "false",
    "unit": "celsius",
    "tags": "rain",
    "where": json.dumps({"lat": "59.9"}),
    "extra": {"x": [1, 2]},
}
TEXT = "<tool_call>\n" + json.dumps({"name": "get_weather", "arguments": ARGS}) + "\n</tool_call>"
WANT = {
    "city": "Oslo",
    "zip": "02139",
    "days": 3,
    "hourly": False,
    "unit": "Celsius",
    "tags": ["rain"],
    "where": {"lat": 59.9},
    "mode": "fast",
}
KINDS = {
    "coerced_number",
    "coerced_boolean",
    "enum_case",
    "wrapped_in_array",
    "decoded_string",
    "dropped_property",
    "default_filled",
}


def test_parse_coerces_by_default() -> None:
    r = parse(TEXT, tools=TOOLS, format="hermes")
    assert json.loads(r.tool_calls[0].arguments) == WANT
    assert {d.kind for d in r.diagnostics} >= KINDS


def test_coerce_false_keeps_arguments_as_written() -> None:
    r = parse(TEXT, tools=TOOLS, format="hermes", coerce=False)
    assert json.loads(r.tool_calls[0].arguments) == ARGS
    assert not KINDS & {d.kind for d in r.diagnostics}


@pytest.mark.parametrize("chunk", [1, 2, 5, 64])
def test_stream_fragments_are_coerced_and_final(chunk: int) -> None:
    p = StreamParser(tools=TOOLS, format="hermes", coerce=True, id_seed=1)
    events = []
    for i in range(0, len(TEXT), chunk):
        events.extend(p.feed(TEXT[i : i + chunk]))
    events.extend(p.finish())
    fragments = "".join(e.text or "" for e in events if e.kind == "tool_call_args")
    result = p.result()
    # The fragments concatenate to the final arguments: nothing streamed was retracted.
    assert fragments == result.tool_calls[0].arguments
    assert json.loads(fragments) == WANT
    assert result == parse(TEXT, tools=TOOLS, format="hermes", id_seed=1)


def test_stream_parser_coerce_false() -> None:
    p = StreamParser(tools=TOOLS, format="hermes", coerce=False)
    p.feed(TEXT)
    p.finish()
    assert json.loads(p.result().tool_calls[0].arguments) == ARGS


def test_no_tools_no_coercion() -> None:
    r = parse(TEXT, format="hermes")
    assert json.loads(r.tool_calls[0].arguments) == ARGS
