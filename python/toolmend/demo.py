"""``toolmend demo``: what an agent gets from a small local model, without and with toolmend.

It starts a scripted backend that answers like local model servers do (calls printed as text in
several formats, broken JSON, wrong argument types, Ollama's wire quirks), the proxy in front of
it, and an OpenAI-SDK client that streams each answer twice: straight from the backend, and
through toolmend. No GPU and no network needed.
"""

from __future__ import annotations

import json
import shutil
import textwrap
import warnings
from dataclasses import dataclass
from typing import Any

from toolmend.config import load_settings
from toolmend.proxy import create_app
from toolmend.scripted import Script, ScriptedBackend, serve_in_thread

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather forecast for a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                    "days": {"type": "integer"},
                },
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search_web",
            "description": "Search the web.",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
        },
    },
]


@dataclass(frozen=True)
class Scenario:
    """One scripted answer and what is wrong with it."""

    model: str
    title: str
    script: Script


SCENARIOS = (
    Scenario(
        "qwen2.5-7b-instruct",
        "Qwen 2.5 (hermes): the call as text, with a trailing comma",
        Script(
            text='<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius",}}\n</tool_call>'
        ),
    ),
    Scenario(
        "llama-3.1-8b-instruct",
        "Llama 3.1: <|python_tag|> JSON, `days` as a string",
        Script(text='<|python_tag|>{"name": "get_weather", "parameters": {"city": "Tokyo", "days": "3"}}'),
    ),
    Scenario(
        "mistral-7b-instruct-v0.3",
        "Mistral: [TOOL_CALLS] after some text, enum in the wrong case",
        Script(
            text='Let me look that up. [TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "Celsius"}}]'
        ),
    ),
    Scenario(
        "qwen3-coder-30b",
        "Qwen3-Coder (XML parameters): the call as text, values untyped",
        Script(
            text="<tool_call>\n<function=get_weather>\n<parameter=city>\nBerlin\n</parameter>\n"
            "<parameter=days>\n2\n</parameter>\n</function>\n</tool_call>"
        ),
    ),
    Scenario(
        "llama3.2:3b (ollama)",
        "Ollama: two native calls, both index 0, object arguments, finish_reason stop",
        Script(
            tool_calls=[
                {"name": "get_weather", "arguments": {"city": "Rome"}},
                {"name": "search_web", "arguments": {"query": "Rome events this weekend"}},
            ],
            quirks={"ollama_index0", "object_arguments", "stop_with_calls", "no_ids"},
        ),
    ),
)


def _stream(base_url: str, model: str) -> str:
    """Streams one answer with the OpenAI SDK's helper; describes what the agent got."""
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key="demo", max_retries=0, timeout=20)
    messages: Any = [{"role": "user", "content": "What's the weather?"}]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydantic's complaints about the raw server's object arguments
            with client.chat.completions.stream(model=model, messages=messages, tools=TOOLS) as stream:  # type: ignore[arg-type]
                completion = stream.get_final_completion()
    except Exception as e:  # what the client library raised is the point of the demo
        return f"✗ openai-python raised {type(e).__name__}: {e}"
    choice = completion.choices[0]
    calls = choice.message.tool_calls or []
    lines = [f"finish_reason: {choice.finish_reason}"]
    if choice.message.content:
        lines.append(f"content: {choice.message.content!r}")
    ok = bool(calls) and choice.finish_reason == "tool_calls"
    for c in calls:
        fn = getattr(c, "function", None)
        args = getattr(fn, "arguments", None)
        try:
            json.loads(args) if isinstance(args, str) else None
            valid = isinstance(args, str)
        except ValueError:
            valid = False
        ok = ok and valid
        lines.append(f"call {getattr(fn, 'name', '?')}({args})" + ("" if valid else "  <- not a JSON string"))
    if not calls:
        lines.append("no tool_calls: the agent sees text and runs nothing")
    return ("✓ " if ok else "✗ ") + "\n".join(lines)


def _columns(left: str, right: str, width: int) -> str:
    col = max(30, (width - 3) // 2)
    a = [w for line in left.splitlines() for w in textwrap.wrap(line, col) or [""]]
    b = [w for line in right.splitlines() for w in textwrap.wrap(line, col) or [""]]
    rows = [f"{x:<{col}} | {y}" for x, y in zip(a + [""] * (len(b) - len(a)), b + [""] * (len(a) - len(b)))]
    return "\n".join(rows)


def run(width: int | None = None) -> int:
    """Runs the demo; returns how many scenarios toolmend fixed out of how many were broken."""
    width = width or shutil.get_terminal_size((120, 40)).columns
    backend = ScriptedBackend({s.model: s.script for s in SCENARIOS})
    fixed = 0
    with serve_in_thread(backend.app) as b:
        settings = load_settings(env={}, overrides={"backend_url": b.url})
        with serve_in_thread(create_app(settings)) as proxy:
            print("toolmend demo: a scripted local model server, an OpenAI SDK client, and toolmend in between.\n")
            for n, s in enumerate(SCENARIOS, 1):
                print(f"{n}. {s.title}  (model {s.model!r})")
                shown = s.script.text if s.script.text is not None else json.dumps(s.script.tool_calls)
                print(textwrap.indent(textwrap.fill("model output: " + shown, width - 3), "   "))
                direct = _stream(b.url + "/v1", s.model)
                mended = _stream(proxy.url + "/v1", s.model)
                fixed += mended.startswith("✓") and not direct.startswith("✓")
                header = _columns("WITHOUT toolmend (straight from the server)", "WITH toolmend", width - 3)
                print(textwrap.indent(header + "\n" + _columns(direct, mended, width - 3), "   "))
                print()
    print(f"toolmend turned {fixed} of {len(SCENARIOS)} unusable answers into tool calls an agent can run.")
    print("Run it for real: toolmend serve --backend http://127.0.0.1:8000/v1 and point your client at :4000/v1")
    return fixed
