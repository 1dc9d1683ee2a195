"""``toolmend eval``: how many recorded model answers reach a client as the right tool calls,
without toolmend, with parsing only, and with the full pipeline.

Every case is replayed over real HTTP: a scripted backend serves the recorded output, and
openai-python's streaming helper (``client.chat.completions.stream``, the accumulator agent
frameworks build on) reads it either straight from the backend, or through a toolmend proxy
that only mends (``middleware.enabled = false``), or through one running the default pipeline
(validation with one retry, ``tool_choice``, ...). A case succeeds when the client ends with
exactly the expected calls (names, arguments compared as JSON values) and ``finish_reason``
``tool_calls``, or, for cases without calls, with no calls.

Modes:

- ``text``: the backend returns the model's output as text (no server-side parser);
- ``native``: the backend parsed the calls itself and sends ``tool_calls``, with the wire quirks
  of real servers (Ollama's ``index: 0`` and object arguments, the name repeated on every
  delta, ids missing, ``finish_reason: "stop"``);
- ``prompt``: the tools were described in the prompt, so calls come back as bare JSON text.

Cases: the shared corpus (``--corpus``; its ``generic_json`` file is the ``prompt`` mode, the
others ``text``, and every case with calls also ``native``) and toolmend's own failure cases
(``eval_cases.jsonl``: answers that need a retry, with the model's answer to the feedback).
"""

from __future__ import annotations

import json
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolmend.config import load_settings
from toolmend.demo import TOOLS as DEMO_TOOLS
from toolmend.proxy import create_app
from toolmend.scripted import Script, ScriptedBackend, serve_in_thread

OWN_CASES = Path(__file__).with_name("eval_cases.jsonl")
MODES = ("text", "native", "prompt")
SETUPS = ("without", "parsing", "pipeline")
NATIVE_QUIRKS: tuple[frozenset[str], ...] = (
    frozenset(),
    frozenset({"ollama_index0", "object_arguments", "stop_with_calls"}),
    frozenset({"repeat_name"}),
    frozenset({"no_ids"}),
    frozenset({"name_late"}),
)
WEATHER_TOOLS = [DEMO_TOOLS[0]]


@dataclass
class Case:
    """One recorded answer to replay."""

    id: str
    mode: str
    tools: list[dict[str, Any]]
    expected: list[dict[str, Any]]
    scripts: list[Script]
    tool_choice: Any = None


@dataclass
class Tally:
    """Successes per mode and setup."""

    counts: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    failures: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def add(self, mode: str, setup: str, case_id: str, ok: bool) -> None:
        c = self.counts.setdefault((mode, setup), [0, 0])
        c[0] += ok
        c[1] += 1
        if not ok:
            self.failures.setdefault((mode, setup), []).append(case_id)

    def table(self) -> str:
        lines = [
            "| mode | cases | without toolmend | parsing only | full pipeline |",
            "|---|---:|---:|---:|---:|",
        ]
        for mode in MODES:
            cells = []
            n = 0
            for setup in SETUPS:
                ok, n = self.counts.get((mode, setup), [0, 0])
                cells.append(f"{ok} ({100 * ok / n:.1f}%)" if n else "-")
            if n:
                lines.append(f"| {mode} | {n} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _tools_from_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = sorted({c["name"] for c in calls})
    return [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}} for n in names]


def _native_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": c["name"], "arguments": json.dumps(c["arguments"])} for c in calls]


def corpus_cases(corpus: Path, exceptions: Path | None = None) -> list[Case]:
    """The corpus as cases; where ``exceptions`` (toolmend's documented deviations, with the
    expected result a client is better served by) lists a case, its expectation is used."""
    overrides: dict[str, Any] = {}
    if exceptions is not None and exceptions.exists():
        for line in exceptions.read_text().splitlines():
            if line.strip():
                e = json.loads(line)
                if "expected" in e:
                    overrides[e["id"]] = e["expected"]
    cases = []
    for f in sorted(corpus.glob("*.jsonl")):
        for line in f.read_text().splitlines():
            if not line.strip():
                continue
            raw = json.loads(line)
            expected = overrides.get(raw["id"], raw["expected"])
            calls = expected.get("tool_calls") or []
            tools = raw.get("tools") or _tools_from_calls(calls)
            if not tools:
                continue  # no call and no tools: nothing a tool-calling client could get wrong
            mode = "prompt" if raw["format"] == "generic_json" else "text"
            cases.append(Case(raw["id"], mode, tools, calls, [Script(text=raw["output"], chunk_size=5)]))
            if calls:
                quirks = NATIVE_QUIRKS[zlib.crc32(raw["id"].encode()) % len(NATIVE_QUIRKS)]
                script = Script(tool_calls=_native_calls(calls), quirks=quirks, chunk_size=7)
                cases.append(Case(raw["id"], "native", tools, calls, [script]))
    return cases


def own_cases(path: Path = OWN_CASES) -> list[Case]:
    """toolmend's own failure cases (with retry answers)."""
    cases = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        tools = WEATHER_TOOLS if raw.get("tools") == "weather" else raw["tools"]
        quirks = frozenset(raw.get("quirks", []))
        if raw["mode"] == "native":
            scripts = [Script(tool_calls=raw["native"], quirks=quirks)]
            if "retry_native" in raw:
                scripts.append(Script(tool_calls=raw["retry_native"]))
        else:
            scripts = [Script(text=raw["output"], chunk_size=5)]
            if "retry_output" in raw:
                scripts.append(Script(text=raw["retry_output"], chunk_size=5))
        cases.append(
            Case(raw["id"], raw["mode"], tools, raw["expected"]["tool_calls"], scripts, raw.get("tool_choice"))
        )
    return cases


def same_value(a: Any, b: Any) -> bool:
    """JSON equality with numbers compared by value (42 == 42.0), booleans never equal to numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return bool(a == b)


def _client_result(base_url: str, case: Case, model: str) -> bool:
    """Streams the case with openai-python's helper; True when the client got the expected calls."""
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key="eval", max_retries=0, timeout=30)
    kwargs: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "go"}], "tools": case.tools}
    if case.tool_choice is not None:
        kwargs["tool_choice"] = case.tool_choice
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with client.chat.completions.stream(**kwargs) as stream:
                completion = stream.get_final_completion()
        choice = completion.choices[0]
        got = []
        for c in choice.message.tool_calls or []:
            args = c.function.arguments
            got.append({"name": c.function.name, "arguments": json.loads(args) if isinstance(args, str) else None})
    except Exception:  # the client failing on the answer is a failed case
        return False
    if not case.expected:
        return not got
    if choice.finish_reason != "tool_calls" or len(got) != len(case.expected):
        return False
    return all(
        g["name"] == e["name"] and same_value(g["arguments"], e["arguments"]) for g, e in zip(got, case.expected)
    )


def run_eval(cases: Iterable[Case], *, on_case: Any = None) -> Tally:
    """Replays every case in every setup; returns the tally."""
    cases = list(cases)
    tally = Tally()
    backend = ScriptedBackend()
    with serve_in_thread(backend.app) as b:
        parsing = load_settings(env={}, overrides={"backend_url": b.url, "middleware.enabled": False})
        full = load_settings(env={}, overrides={"backend_url": b.url})
        with serve_in_thread(create_app(parsing)) as p1, serve_in_thread(create_app(full)) as p2:
            urls = {"without": b.url + "/v1", "parsing": p1.url + "/v1", "pipeline": p2.url + "/v1"}
            for n, case in enumerate(cases):
                for setup in SETUPS:
                    name = f"{setup}/{case.mode}/{n}"
                    backend.add(name, case.scripts)
                    ok = _client_result(urls[setup], case, name)
                    tally.add(case.mode, setup, case.id, ok)
                if on_case is not None:
                    on_case(n + 1, len(cases))
    return tally
