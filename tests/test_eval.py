"""``toolmend eval`` on toolmend's own failure cases and a slice of the corpus."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import CORPUS
from toolmend.evaluation import MODES, corpus_cases, own_cases, run_eval


def test_own_cases_need_the_pipeline() -> None:
    tally = run_eval(own_cases())
    for mode in MODES:
        without, n = tally.counts[(mode, "without")]
        parsing, _ = tally.counts[(mode, "parsing")]
        full, _ = tally.counts[(mode, "pipeline")]
        assert without < parsing < full == n, (mode, without, parsing, full, n)


def test_corpus_cases_cover_every_mode_and_parse_at_least_as_well_with_toolmend() -> None:
    cases = [
        c for c in corpus_cases(CORPUS, Path(__file__).with_name("corpus_exceptions.jsonl")) if c.id.startswith("vllm/")
    ]
    assert {c.mode for c in cases} >= {"text", "native"}
    tally = run_eval(cases)
    for mode in {c.mode for c in cases}:
        without = tally.counts[(mode, "without")][0]
        parsing = tally.counts[(mode, "parsing")][0]
        assert parsing > without, mode


def test_eval_command_prints_the_table() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "toolmend", "eval", "--failures"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert "| mode | cases | without toolmend | parsing only | full pipeline |" in r.stdout
    assert "| text |" in r.stdout
