#!/usr/bin/env python3
"""Compare JSON repair libraries on the toolmend repair corpus: accuracy and speed.

Libraries, each measured in the same process on identical inputs:

* ``json_repair`` (PyPI ``json_repair``): ``json_repair.loads`` / ``json_repair.repair_json``
* ``fast_json_repair`` (PyPI ``fast-json-repair``): ``loads`` / ``repair_json``
* ``toolmend`` when importable: ``toolmend.repair_json(text).json`` (a strict JSON string),
  parsed with the stdlib for the object path. Skipped with a message when it is not built.

Accuracy: a case passes when the repaired value equals the case's ``expected`` value (bool is
not a number, numbers compare by value, object key order is ignored). Anything raised counts
as a miss.

Speed: each library's total time over the corpus, the median of ``--repeat`` runs, with the
libraries interleaved inside every repetition so machine drift hits them all alike. Two
paths are timed: ``obj`` (text -> Python value) and ``str`` (text -> repaired JSON text).
"Snippets" are the corpus cases under 4 KiB; "full" is the whole corpus. Ratios are
relative to json_repair (``x2.0`` means twice as fast).

Large rows: one 16 KB ``write_file`` call, valid and with one defect each, timed per call.

Usage::

    python benches/bench_repair.py [--out results.json] [--repeat 7] [--libs json_repair,...]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import importlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO / "tests" / "repair_corpus" / "cases.jsonl"
SNIPPET_MAX_BYTES = 4096
BASELINE = "json_repair"

# Large-input rows: label -> corpus id (all four share one 16 KB write_file call).
LARGE_ROWS: dict[str, str] = {
    "valid_16KB": "valid/large-16k-write-file",
    "trailing_comma_16KB": "large/trailing-comma-16k",
    "single_quoted_key_16KB": "large/single-quoted-key-16k",
    "truncated_90pct_16KB": "large/truncated-90pct-16k",
}


# --------------------------------------------------------------------------- comparison


def same_value(a: Any, b: Any) -> bool:
    """Equality with JSON semantics: bool is not a number, 1 == 1.0, dicts ignore order."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b  # NaN never equals anything, so a NaN result is a miss
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def strict_loads(text: str) -> Any:
    """Stdlib json.loads that also rejects NaN/Infinity (strict JSON only)."""
    return json.loads(text, parse_constant=_reject_constant)


# --------------------------------------------------------------------------- adapters


@dataclass
class Adapter:
    name: str
    version: str
    to_obj: Callable[[str], Any]
    to_str: Callable[[str], str]
    obj_api: str
    str_api: str


def _version(module: Any, dist: str) -> str:
    ver = getattr(module, "__version__", None)
    if ver:
        return str(ver)
    try:
        return dist_version(dist)
    except PackageNotFoundError:
        return "unknown"


def load_json_repair() -> Adapter:
    mod = importlib.import_module("json_repair")
    repair_json = mod.repair_json

    def to_str(text: str) -> str:
        out = repair_json(text)
        return out if isinstance(out, str) else json.dumps(out)

    return Adapter(
        "json_repair", _version(mod, "json_repair"), mod.loads, to_str, "json_repair.loads", "json_repair.repair_json"
    )


def load_fast_json_repair() -> Adapter:
    mod = importlib.import_module("fast_json_repair")
    return Adapter(
        "fast_json_repair",
        _version(mod, "fast-json-repair"),
        mod.loads,
        mod.repair_json,
        "fast_json_repair.loads",
        "fast_json_repair.repair_json",
    )


def load_toolmend() -> Adapter:
    mod = importlib.import_module("toolmend")
    repair = getattr(mod, "repair_json", None)
    if repair is None:
        raise ImportError("toolmend has no repair_json")
    probe = getattr(repair("{}"), "json", None)
    if not isinstance(probe, str):
        raise TypeError(f"toolmend.repair_json(text).json is {type(probe).__name__}, expected str")

    def to_str(text: str) -> str:
        out: str = repair(text).json
        return out

    def to_obj(text: str) -> Any:
        return strict_loads(repair(text).json)

    return Adapter(
        "toolmend",
        _version(mod, "toolmend"),
        to_obj,
        to_str,
        "json.loads(toolmend.repair_json(t).json)",
        "toolmend.repair_json(t).json",
    )


LOADERS: dict[str, Callable[[], Adapter]] = {
    "json_repair": load_json_repair,
    "fast_json_repair": load_fast_json_repair,
    "toolmend": load_toolmend,
}


# --------------------------------------------------------------------------- corpus


@dataclass
class Case:
    id: str
    category: str
    text: str
    expected: Any
    nbytes: int


def load_corpus(path: Path) -> list[Case]:
    cases: list[Case] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rec = json.loads(line)
                cases.append(
                    Case(rec["id"], rec["category"], rec["input"], rec["expected"], len(rec["input"].encode("utf-8")))
                )
    return cases


# --------------------------------------------------------------------------- measuring


@dataclass
class Outcome:
    ok: bool
    error: str = ""
    got: str = ""


def run_case(adapter: Adapter, case: Case) -> Outcome:
    try:
        got = adapter.to_obj(case.text)
    except Exception as exc:
        return Outcome(False, error=f"{type(exc).__name__}: {exc}"[:200])
    if same_value(got, case.expected):
        return Outcome(True)
    try:
        shown = json.dumps(got, ensure_ascii=False, default=repr)
    except ValueError:
        shown = repr(got)
    return Outcome(False, got=shown[:300])


def check_str_path(adapter: Adapter, case: Case) -> bool:
    """The text path must give strict JSON that parses to the same value as the object path."""
    try:
        return same_value(strict_loads(adapter.to_str(case.text)), case.expected)
    except Exception:
        return False


def _time_once(fn: Callable[[str], Any], texts: list[str]) -> float:
    t0 = time.perf_counter()
    for text in texts:
        with contextlib.suppress(Exception):
            fn(text)
    return time.perf_counter() - t0


def time_corpus(adapters: list[Adapter], texts: list[str], path: str, repeat: int) -> dict[str, float]:
    """Median total seconds per adapter, adapters interleaved in each repetition."""
    samples: dict[str, list[float]] = {a.name: [] for a in adapters}
    for a in adapters:  # warm-up
        _time_once(getattr(a, path), texts)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for rep in range(repeat):
            order = adapters if rep % 2 == 0 else list(reversed(adapters))
            for a in order:
                samples[a.name].append(_time_once(getattr(a, path), texts))
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: statistics.median(vals) for name, vals in samples.items()}


def time_single(fn: Callable[[str], Any], text: str, min_reps: int, budget_s: float) -> float:
    """Median seconds for one call, at least ``min_reps`` calls or until ``budget_s`` is spent."""
    with contextlib.suppress(Exception):
        fn(text)  # warm-up
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < min_reps or (time.perf_counter() - start < budget_s and len(samples) < 1000):
        t0 = time.perf_counter()
        with contextlib.suppress(Exception):
            fn(text)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


@dataclass
class LibResult:
    adapter: Adapter
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    str_path_ok: int = 0
    speed: dict[str, dict[str, float]] = field(default_factory=dict)
    large: dict[str, dict[str, Any]] = field(default_factory=dict)


# --------------------------------------------------------------------------- reporting


def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def fmt_ratio(base: float | None, mine: float) -> str:
    if base is None or mine <= 0:
        return "–"
    return f"x{base / mine:.2f}"


def markdown(results: list[LibResult], cases: list[Case], categories: list[str], meta: dict[str, Any]) -> str:
    out: list[str] = []
    snip = [c for c in cases if c.nbytes < SNIPPET_MAX_BYTES]
    snip_bytes = sum(c.nbytes for c in snip)
    full_bytes = sum(c.nbytes for c in cases)
    out.append("# JSON repair benchmark")
    out.append("")
    out.append(
        f"Corpus: `{meta['corpus']}` ({len(cases)} cases, {full_bytes / 1024:.1f} KiB; "
        f"{len(snip)} snippets < {SNIPPET_MAX_BYTES} B, {snip_bytes / 1024:.1f} KiB). "
        f"Python {meta['python']}, {meta['machine']}, {meta['cpus']} CPUs; median of {meta['repeat']} runs."
    )
    out.append("")
    out.append("## Accuracy (intended value recovered)")
    out.append("")
    head = "| category | cases | " + " | ".join(r.adapter.name for r in results) + " |"
    out.append(head)
    out.append("|---|---:|" + "---:|" * len(results))
    for cat in categories:
        ids = [c.id for c in cases if c.category == cat]
        cells = []
        for r in results:
            n = sum(r.outcomes[i].ok for i in ids)
            cells.append(f"{n}/{len(ids)}")
        out.append(f"| {cat} | {len(ids)} | " + " | ".join(cells) + " |")
    cells = []
    for r in results:
        n = sum(o.ok for o in r.outcomes.values())
        cells.append(f"**{n}/{len(cases)} ({100 * n / len(cases):.1f}%)**")
    out.append(f"| **overall** | {len(cases)} | " + " | ".join(cells) + " |")
    out.append("")
    out.append("## Speed")
    out.append("")
    base = next((r for r in results if r.adapter.name == BASELINE), None)
    out.append(
        "| library | version | path | snippets time | snippets/s | MB/s | vs json_repair | "
        "full corpus time | MB/s | vs json_repair |"
    )
    out.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        for path in ("obj", "str"):
            s = r.speed[path]
            b = base.speed[path] if base else None
            api = r.adapter.obj_api if path == "obj" else r.adapter.str_api
            out.append(
                f"| {r.adapter.name} | {r.adapter.version} | `{api}` | {fmt_time(s['snippets_s'])} | "
                f"{len(snip) / s['snippets_s']:,.0f} | {snip_bytes / s['snippets_s'] / 1e6:.1f} | "
                f"{fmt_ratio(b['snippets_s'] if b else None, s['snippets_s'])} | {fmt_time(s['full_s'])} | "
                f"{full_bytes / s['full_s'] / 1e6:.1f} | {fmt_ratio(b['full_s'] if b else None, s['full_s'])} |"
            )
    out.append("")
    if any(r.large for r in results):
        labels = [lab for lab in LARGE_ROWS if any(lab in r.large for r in results)]
        out.append("## Large inputs (one 16 KB write_file call, object path, time per call)")
        out.append("")
        out.append("| library | " + " | ".join(labels) + " |")
        out.append("|---|" + "---|" * len(labels))
        for r in results:
            cells = []
            for lab in labels:
                row = r.large.get(lab)
                if row is None:
                    cells.append("–")
                    continue
                mark = "✓" if row["ok"] else ("✗ raises" if row["error"] else "✗ wrong")
                ratio = ""
                if base and r is not base and lab in base.large:
                    ratio = f" ({fmt_ratio(base.large[lab]['seconds'], row['seconds'])})"
                cells.append(f"{fmt_time(row['seconds'])} {mark}{ratio}")
            out.append(f"| {r.adapter.name} | " + " | ".join(cells) + " |")
        out.append("")
    for r in results:
        bad = [(i, o) for i, o in r.outcomes.items() if not o.ok]
        out.append(
            f"<details><summary>{r.adapter.name}: {len(bad)} misses; "
            f"text path strict-JSON and correct on {r.str_path_ok}/{len(cases)}</summary>"
        )
        out.append("")
        for i, o in bad:
            detail = o.error or o.got
            if len(detail) > 120:
                detail = detail[:117] + "..."
            out.append(f"- `{i}`: {detail.replace('|', '¦')}")
        out.append("")
        out.append("</details>")
        out.append("")
    return "\n".join(out)


def measure_speed(results: list[LibResult], cases: list[Case], repeat: int, large_budget: float) -> None:
    """Fill ``speed`` (corpus totals, both paths) and ``large`` (16 KB rows) of every result."""
    adapters = [r.adapter for r in results]
    snippet_texts = [c.text for c in cases if c.nbytes < SNIPPET_MAX_BYTES]
    all_texts = [c.text for c in cases]
    for path in ("obj", "str"):
        attr = "to_obj" if path == "obj" else "to_str"
        snip_t = time_corpus(adapters, snippet_texts, attr, repeat)
        full_t = time_corpus(adapters, all_texts, attr, max(3, repeat // 2))
        for r in results:
            r.speed[path] = {"snippets_s": snip_t[r.adapter.name], "full_s": full_t[r.adapter.name]}
    by_id = {c.id: c for c in cases}
    for label, cid in LARGE_ROWS.items():
        lc = by_id.get(cid)
        if lc is None:
            print(f"large row {label}: case {cid} not in corpus, skipped", file=sys.stderr)
            continue
        for r in results:
            o = r.outcomes[cid]
            secs = time_single(r.adapter.to_obj, lc.text, 5, large_budget)
            r.large[label] = {
                "id": cid,
                "bytes": lc.nbytes,
                "seconds": secs,
                "ok": o.ok,
                "error": o.error,
                "mb_per_s": lc.nbytes / secs / 1e6,
            }


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="cases.jsonl to use")
    ap.add_argument("--out", type=Path, help="write JSON results here")
    ap.add_argument("--markdown", type=Path, help="also write the markdown report here")
    ap.add_argument("--repeat", type=int, default=7, help="timed runs over the corpus per library (median)")
    ap.add_argument("--large-budget", type=float, default=0.5, help="seconds per large row and library")
    ap.add_argument("--libs", default=",".join(LOADERS), help="comma-separated subset of: " + ", ".join(LOADERS))
    ap.add_argument("--no-speed", action="store_true", help="accuracy only")
    args = ap.parse_args(argv)

    cases = load_corpus(args.corpus)
    if not cases:
        print(f"no cases in {args.corpus}", file=sys.stderr)
        return 2
    categories: list[str] = []
    for c in cases:
        if c.category not in categories:
            categories.append(c.category)

    adapters: list[Adapter] = []
    skipped: dict[str, str] = {}
    for name in [n.strip() for n in args.libs.split(",") if n.strip()]:
        loader = LOADERS.get(name)
        if loader is None:
            print(f"unknown library {name!r}; choose from {', '.join(LOADERS)}", file=sys.stderr)
            return 2
        try:
            adapters.append(loader())
        except Exception as exc:
            skipped[name] = f"{type(exc).__name__}: {exc}"
            print(f"skipping {name}: {skipped[name]}", file=sys.stderr)
    if not adapters:
        print("no library could be imported", file=sys.stderr)
        return 2

    results = [LibResult(a) for a in adapters]
    for r in results:
        for c in cases:
            r.outcomes[c.id] = run_case(r.adapter, c)
            r.str_path_ok += check_str_path(r.adapter, c)

    if not args.no_speed:
        measure_speed(results, cases, args.repeat, args.large_budget)

    meta: dict[str, Any] = {
        "corpus": os.path.relpath(args.corpus, REPO) if args.corpus.is_relative_to(REPO) else str(args.corpus),
        "corpus_sha256": hashlib.sha256(args.corpus.read_bytes()).hexdigest(),
        "cases": len(cases),
        "bytes": sum(c.nbytes for c in cases),
        "snippet_max_bytes": SNIPPET_MAX_BYTES,
        "snippets": sum(c.nbytes < SNIPPET_MAX_BYTES for c in cases),
        "snippet_bytes": sum(c.nbytes for c in cases if c.nbytes < SNIPPET_MAX_BYTES),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "repeat": args.repeat,
        "baseline": BASELINE,
        "skipped": skipped,
    }

    report = (
        markdown(results, cases, categories, meta) if not args.no_speed else accuracy_only(results, cases, categories)
    )
    print(report)
    if args.markdown:
        args.markdown.write_text(report + "\n", encoding="utf-8")
    if args.out:
        args.out.write_text(
            json.dumps(to_json(results, cases, categories, meta), ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
        print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


def accuracy_only(results: list[LibResult], cases: list[Case], categories: list[str]) -> str:
    out = [
        "| category | cases | " + " | ".join(r.adapter.name for r in results) + " |",
        "|---|---:|" + "---:|" * len(results),
    ]
    for cat in [*categories, "overall"]:
        ids = [c.id for c in cases if cat in ("overall", c.category)]
        cells = [f"{sum(r.outcomes[i].ok for i in ids)}/{len(ids)}" for r in results]
        out.append(f"| {cat} | {len(ids)} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def to_json(results: list[LibResult], cases: list[Case], categories: list[str], meta: dict[str, Any]) -> dict[str, Any]:
    base = next((r for r in results if r.adapter.name == BASELINE), None)
    libs: dict[str, Any] = {}
    for r in results:
        by_cat = {}
        for cat in categories:
            ids = [c.id for c in cases if c.category == cat]
            by_cat[cat] = {"passed": sum(r.outcomes[i].ok for i in ids), "total": len(ids)}
        passed = sum(o.ok for o in r.outcomes.values())
        speed: dict[str, Any] = {}
        for path, s in r.speed.items():
            b = base.speed.get(path) if base else None
            speed[path] = {
                "api": r.adapter.obj_api if path == "obj" else r.adapter.str_api,
                "snippets_seconds": s["snippets_s"],
                "snippets_per_second": meta["snippets"] / s["snippets_s"],
                "snippets_mb_per_s": meta["snippet_bytes"] / s["snippets_s"] / 1e6,
                "snippets_speedup_vs_baseline": (b["snippets_s"] / s["snippets_s"]) if b else None,
                "full_seconds": s["full_s"],
                "full_mb_per_s": meta["bytes"] / s["full_s"] / 1e6,
                "full_speedup_vs_baseline": (b["full_s"] / s["full_s"]) if b else None,
            }
        large = {}
        for label, row in r.large.items():
            b_row = base.large.get(label) if base else None
            large[label] = dict(row, speedup_vs_baseline=(b_row["seconds"] / row["seconds"]) if b_row else None)
        libs[r.adapter.name] = {
            "version": r.adapter.version,
            "accuracy": {"passed": passed, "total": len(cases), "by_category": by_cat},
            "str_path_strict_and_correct": r.str_path_ok,
            "failures": [{"id": i, "error": o.error, "got": o.got} for i, o in r.outcomes.items() if not o.ok],
            "speed": speed,
            "large": large,
        }
    return {"meta": meta, "libraries": libs}


if __name__ == "__main__":
    sys.exit(main())
