"""The ``toolmend`` command as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TEXT = 'Sure.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris",}}\n</tool_call>'


def run(*args: str, stdin: str = TEXT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "toolmend", *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_parse_prints_openai_message() -> None:
    r = run("parse")
    assert r.returncode == 0, r.stderr
    msg = json.loads(r.stdout)
    assert msg["role"] == "assistant"
    assert msg["content"] == "Sure."
    call = msg["tool_calls"][0]
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def test_parse_stream_prints_chunks() -> None:
    r = run("parse", "--stream", "--chunk-size", "3")
    assert r.returncode == 0, r.stderr
    chunks = [json.loads(line) for line in r.stdout.splitlines()]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    deltas = [c["choices"][0]["delta"] for c in chunks]
    content = "".join(d.get("content", "") for d in deltas)
    assert content == "Sure."
    calls = [tc for d in deltas for tc in d.get("tool_calls", [])]
    assert calls[0]["function"]["name"] == "get_weather" and calls[0]["id"]
    args = "".join(tc["function"].get("arguments", "") for tc in calls)
    assert json.loads(args) == {"city": "Paris"}


def test_tools_file_and_verbose(tmp_path: Path) -> None:
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([{"type": "function", "function": {"name": "other", "parameters": {}}}]))
    r = run("parse", "--tools", str(tools), "-v")
    assert r.returncode == 0
    msg = json.loads(r.stdout)
    assert "tool_calls" not in msg
    assert "unknown_tool" in r.stderr


def test_bad_format_is_a_clean_error() -> None:
    r = run("parse", "--format", "nonsense")
    assert r.returncode == 2
    assert "unknown format" in r.stderr and "hermes" in r.stderr


def test_formats_command() -> None:
    r = run("formats", stdin="")
    assert r.returncode == 0
    assert "hermes" in r.stdout
