"""Every corpus case through the installed Python API: whole, and over random chunkings.

Deliberate differences from a peer are in ``tests/corpus_exceptions.jsonl`` (the case is
checked against toolmend's recorded expectation instead); nothing is skipped.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from typing import Any

import pytest
from conftest import CORPUS_SUMMARY, load_corpus, load_exceptions
from toolmend import Event, ParseResult, StreamParser, UnknownFormatError, parse
from toolmend.evaluation import same_value

CASES = load_corpus()
EXCEPTIONS = load_exceptions()
BY_FORMAT: dict[str, list[dict[str, Any]]] = defaultdict(list)
for _case in CASES:
    BY_FORMAT[_case["format"]].append(_case)


def mismatch(result: ParseResult, expected: dict[str, Any]) -> str | None:
    want = expected["tool_calls"]
    got = result.tool_calls
    if len(got) != len(want):
        return f"{len(got)} calls, expected {len(want)}: {[(c.name, c.arguments) for c in got]}"
    for i, (g, w) in enumerate(zip(got, want)):
        if g.name != w["name"]:
            return f"call {i}: name {g.name!r}, expected {w['name']!r}"
        args = json.loads(g.arguments)
        if not isinstance(args, dict) or not same_value(args, w["arguments"]):
            return f"call {i}: arguments {g.arguments}, expected {json.dumps(w['arguments'])}"
    if expected["content"] is not None and (result.content or "").strip() != expected["content"].strip():
        return f"content {result.content!r}, expected {expected['content']!r}"
    return None


def normalize(events: list[Event]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for e in events:
        key = (e.kind, e.index, e.id, e.name)
        if out and e.kind in ("content", "reasoning", "tool_call_args") and out[-1][:4] == key:
            out[-1] = (*key, out[-1][4] + (e.text or ""))
        else:
            out.append((*key, e.text or ""))
    return out


def starts_in_reasoning(case: dict[str, Any]) -> bool:
    """The peer started with thinking enabled and the output closes a block it never opened."""
    pairs = [("<think>", "</think>"), ("[THINK]", "[/THINK]"), ("<|channel>", "<channel|>")]
    out = case["output"]
    return "thinking enabled" in (case["notes"] or "") and any(c in out and o not in out for o, c in pairs)


def kwargs(case: dict[str, Any]) -> dict[str, Any]:
    return {
        "tools": case["tools"],
        "format": case["format"],
        "model": case["model"],
        "in_reasoning": starts_in_reasoning(case),
        "id_seed": 7,
    }


def streamed(case: dict[str, Any], parts: list[str]) -> tuple[list[Event], ParseResult]:
    p = StreamParser(**kwargs(case))
    events: list[Event] = []
    for part in parts:
        events += p.feed(part)
    events += p.finish()
    return events, p.result()


def random_parts(text: str, rng: random.Random) -> list[str]:
    parts, i = [], 0
    while i < len(text):
        n = rng.randint(1, 12)
        parts.append(text[i : i + n])
        i += n
    return parts


def run_case(case: dict[str, Any]) -> str | None:
    expected = EXCEPTIONS[case["id"]]["expected"] if case["id"] in EXCEPTIONS else case["expected"]
    try:
        whole = parse(case["output"], **kwargs(case))
    except UnknownFormatError as e:
        return str(e)
    problem = mismatch(whole, expected)
    if problem:
        return problem
    ref_events, ref = streamed(case, [case["output"]])
    if ref != whole:
        return "one-chunk stream differs from parse()"
    reference = normalize(ref_events)
    rng = random.Random(case["id"])
    chunkings = [list(case["output"])] + [random_parts(case["output"], rng) for _ in range(4)]
    for parts in chunkings:
        events, result = streamed(case, parts)
        if result != whole:
            return f"chunked result differs ({len(parts)} parts)"
        if normalize(events) != reference:
            return f"chunked events differ ({len(parts)} parts)"
    return None


@pytest.mark.parametrize("fmt", sorted(BY_FORMAT))
def test_corpus_format(fmt: str) -> None:
    failures = []
    for case in BY_FORMAT[fmt]:
        problem = run_case(case)
        if problem:
            failures.append(f"{case['id']}: {problem}")
    CORPUS_SUMMARY[fmt] = [len(BY_FORMAT[fmt]) - len(failures), len(BY_FORMAT[fmt])]
    assert not failures, "\n".join(failures)


def test_corpus_is_complete() -> None:
    assert len(CASES) >= 600
    unknown = set(EXCEPTIONS) - {c["id"] for c in CASES}
    assert not unknown, f"exceptions for cases not in the corpus: {sorted(unknown)}"
    for entry in EXCEPTIONS.values():
        assert len(entry["reason"]) > 10
