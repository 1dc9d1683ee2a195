"""toolmend vs SGLang / vLLM / library baselines on the bench-anchors workloads, side by side.

Reuses ../shared/bench-anchors (bench.py's run_w1/run_w2 with their budgets, projection and
correctness checks; adapters.py; data/ from gen.py) at run time. Each peer family runs in its
own process with the shims bench-anchors uses (sglang: shim/, vllm: shim/ + shim_torch/), and
toolmend runs inside each of those processes on the same texts and deltas.

usage: bench_parsers.py [--families sglang,vllm,libs] [--workloads w1,w2] [--no-toolmend]
                        [--toolmend-format auto] [--report-only]
Run it with the bench-anchors venv's python (bench_parsers.sh does). Writes results/.
"""

import argparse
import glob
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ANCHORS = os.environ.get("ANCHORS_DIR") or os.path.normpath(os.path.join(HERE, "..", "..", "shared", "bench-anchors"))
RESULTS = os.path.join(HERE, "results")
FAMILIES = ("sglang", "vllm", "libs")
# bench-anchors RESULTS: catastrophic regex backtracking (W1 never finishes, W2 hangs at 4 KB)
SKIP = {"sglang.pythonic"}


def family_env(family):
    paths = [os.path.join(ANCHORS, "shim")]
    if family == "vllm":
        paths.append(os.path.join(ANCHORS, "shim_torch"))
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths), PYTHONWARNINGS="ignore")


def run_child(wl, family, use_toolmend, fmt_override):
    """One bench-anchors process: bench.run_<wl>(family) over toolmend + that family's peers."""
    sys.path[:0] = [ANCHORS, HERE]
    import bench  # noqa: I001  (sets the warnings filter before adapters import the parsers)
    import adapters
    from toolmend_adapter import FORMATS, toolmend_adapters

    bench.RES = RESULTS
    peers = [a for a in adapters.get(family) if a.name not in SKIP]
    tm = []
    if use_toolmend:
        fmts = [f for f in FORMATS if any(a.fmt == f for a in peers)]
        try:
            tm, skipped = toolmend_adapters(adapters.TOOLS, fmts, fmt_override)
        except ImportError as e:
            tm, skipped = [], {"all": f"toolmend not importable ({e})"}
        for fmt, why in skipped.items():
            print(f"!! {why}: {fmt} peers run alone", flush=True)
    bench.adapters_for = lambda _family: tm + peers
    getattr(bench, "run_" + wl)(family)
    for f in glob.glob(os.path.join(RESULTS, ".progress_*")):
        os.remove(f)


def toolmend_version():
    from importlib.metadata import PackageNotFoundError, version

    try:
        import toolmend
    except ImportError:
        return None
    try:
        return version("toolmend")
    except PackageNotFoundError:
        return getattr(toolmend, "__version__", "unknown")


# ============================================================== report
def fms(ms):
    return f"{ms:,.0f} ms" if ms >= 100 else f"{ms:.1f} ms"


def fus(us):
    return f"{us:,.0f}" if us >= 100 else f"{us:.1f}" if us >= 1 else f"{us:.2f}"


def fx(r, prefix=""):
    return "–" if r is None else f"{prefix}{r:,.0f}×" if r >= 100 else f"{prefix}{r:.1f}×"


def failure(row, what, limit_s):
    err = row.get("error")
    if err in (None, "timeout"):
        return f"**{what}** (> {limit_s:.0f} s, killed)"
    return f"**error**: {str(err)[:80]}"


def bench_budget():
    return float(os.environ.get("ANCHOR_W2_BUDGET_S", "40"))


def is_tm(row):
    return row["parser"].startswith("toolmend.")


def load(name):
    p = os.path.join(RESULTS, name)
    if not os.path.exists(p):
        return []
    with open(p) as f:
        return json.load(f)


def report(families, workloads):
    out = []
    w1 = [r for f in families for r in load(f"w1_{f}.json")] if "w1" in workloads else []
    w2 = [r for f in families for r in load(f"w2_{f}.json")] if "w2" in workloads else []

    def tm_w1(r):
        return next(
            (
                t
                for t in w1
                if is_tm(t) and t["family"] == r["family"] and t["fmt"] == r["fmt"] and t.get("status") == "ok"
            ),
            None,
        )

    def tm_w2(r):
        return next(
            (
                t
                for t in w2
                if is_tm(t)
                and t["family"] == r["family"]
                and t["fmt"] == r["fmt"]
                and t["kb"] == r["kb"]
                and t.get("status") == "ok"
            ),
            None,
        )

    if w1:
        out += [
            (
                "## W1: whole-completion parse (same texts; `toolmend ×` = peer time / toolmend time,"
                " measured in the same process)"
            ),
            "",
            (
                "| family | parser | fmt | corpus (median) | calls/s | MB/s | toolmend MB/s | toolmend × |"
                " small doc | large doc (16 KB) | correct docs |"
            ),
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in w1:
            if r.get("status") != "ok":
                out.append(
                    f"| {r['family']} | {r['parser']} | {r['fmt']} | {failure(r, 'DNF', r['timeout_s'])}"
                    " | – | – | – | – | – | – | – |"
                )
                continue
            t = None if is_tm(r) else tm_w1(r)
            tcols = f"{t['MB_per_s']:.1f} | {fx(r['median_s'] / t['median_s'])}" if t else "– | –"
            fixed = r["fixed"]
            probs = f" {r['problems']}" if r["problems"] else ""
            out.append(
                f"| {r['family']} | {r['parser']} | {r['fmt']} | {fms(r['median_s'] * 1e3)} | "
                f"{r['calls_per_s']:,.0f} | {r['MB_per_s']:.1f} | {tcols} | "
                f"{fus(fixed['small_2calls']['median_us'])} µs | "
                f"{fus(fixed['large_4calls_16KB']['median_us'])} µs | "
                f"{r['ok_docs']}/{r['docs']}{probs} |"
            )
        out.append("")

    if w2:
        out += [
            "## W2: streaming (same deltas; only the parser call is timed; `×` = peer / toolmend)",
            "",
            (
                "| family | parser | fmt | KB | deltas | total | p50 / p99 µs per delta | last 10% mean µs |"
                " × total | × p50 | × p99 | stream correct |"
            ),
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in w2:
            t = None if is_tm(r) else tm_w2(r)
            head = f"| {r['family']} | {r['parser']} | {r['fmt']} | {r['kb']} | {r['deltas']:,} | "
            st = r.get("status")
            if st == "skipped":
                tot = fx(r["projected_s"] * 1e3 / t["total_ms"], "~") + " (proj.)" if t else "–"
                out.append(head + f"skip (proj. ~{r['projected_s']:.0f} s) | – | – | {tot} | – | – | – |")
                continue
            if st == "killed":
                out.append(head + f"{failure(r, 'hung', bench_budget() + 30)} | – | – | – | – | – | – |")
                continue
            if st == "aborted":
                total = f">{r['elapsed_s']:.1f} s ({100 * r['done_deltas'] / r['deltas']:.0f}% done)"
                rt = fx(r["elapsed_s"] * 1e3 / t["total_ms"], "≥") if t else "–"
                corr = "–"
            else:
                total = fms(r["total_ms"])
                rt = fx(r["total_ms"] / t["total_ms"]) if t else "–"
                corr = "yes" if not r["problems"] else "NO: " + "; ".join(r["problems"])
            rp50 = fx(r["p50_us"] / t["p50_us"]) if t else "–"
            rp99 = fx(r["p99_us"] / t["p99_us"]) if t else "–"
            out.append(
                head + f"{total} | {fus(r['p50_us'])} / {fus(r['p99_us'])} | "
                f"{fus(r['last10_mean_us'])} | {rt} | {rp50} | {rp99} | {corr} |"
            )
        out += [
            "",
            "### W2 scaling and correctness",
            "",
            (
                "(exponent: slope of log(total) vs log(bytes); 1 = O(n) per stream, i.e. O(1) per delta."
                " probe: p50 of the last 300 deltas before the 64 KB string closes)"
            ),
            "",
            (
                "| family | parser | fmt | fitted exponent | local 16→64 | probe p50 @64 KB µs | × probe |"
                " W1 correct docs | W2 streamed == expected | streamed == whole parse | notes |"
            ),
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        seen = []
        for r in w2:
            if (r["family"], r["parser"]) not in seen:
                seen.append((r["family"], r["parser"]))
        for fam, name in seen:
            rows = [r for r in w2 if r["family"] == fam and r["parser"] == name]
            last = rows[-1]
            fit = rows[0].get("fit_exponent")
            loc = last.get("local_exponent")
            probe = (last.get("tail_probe") or {}).get("p50_us")
            t = None if is_tm(last) else tm_w2(last)
            tprobe = ((t or {}).get("tail_probe") or {}).get("p50_us")
            ok = [r for r in rows if r.get("status") == "ok"]
            good = [r for r in ok if not r["problems"]]
            cmp = [r.get("stream_equals_full") for r in ok if r.get("stream_equals_full") is not None]
            same = f"{sum(cmp)}/{len(cmp)}" if cmp else "–"
            w1r = next((x for x in w1 if x["family"] == fam and x["parser"] == name), None)
            w1ok = f"{w1r['ok_docs']}/{w1r['docs']}" if w1r and w1r.get("status") == "ok" else "–"
            notrun = f" ({len(rows) - len(ok)} not run)" if len(ok) < len(rows) else ""
            notes = "; ".join(sorted({n for r in ok for n in (r.get("notes") or [])}))[:160]
            out.append(
                f"| {fam} | {name} | {last['fmt']} | {'–' if fit is None else f'{fit:.2f}'} | "
                f"{'–' if loc is None else f'{loc:.2f}'} | {'–' if probe is None else fus(probe)} | "
                f"{fx(probe / tprobe) if probe and tprobe else '–'} | {w1ok} | "
                f"{len(good)}/{len(ok)} sizes{notrun} | {same} | {notes} |"
            )
        out.append("")
    tm_rows = [r for r in w1 + w2 if is_tm(r)]
    if tm_rows:
        out += ["## toolmend correctness (streamed result vs the intended calls, every process)", ""]
        for name in dict.fromkeys(r["parser"] for r in tm_rows):
            r1 = [r for r in w1 if r["parser"] == name]
            r2 = [r for r in w2 if r["parser"] == name]
            docs = [f"{r['ok_docs']}/{r['docs']}" if r.get("status") == "ok" else "failed" for r in r1]
            bad = [
                f"{r['kb']} KB ({r['family']}): "
                + ("; ".join(r["problems"]) if r.get("status") == "ok" else r.get("error") or r.get("status"))
                for r in r2
                if r.get("status") != "ok" or r["problems"]
            ]
            out.append(
                f"- {name}: W1 docs correct {', '.join(docs) or '–'}; W2 streams correct "
                f"{len(r2) - len(bad)}/{len(r2)}" + (": " + " | ".join(bad) if bad else "")
            )
        out.append("")
    text = "\n".join(out)
    with open(os.path.join(RESULTS, "report.md"), "w") as f:
        f.write(text + "\n")
    print(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--workloads", default="w1,w2")
    ap.add_argument("--no-toolmend", action="store_true", help="peers only")
    ap.add_argument("--toolmend-format", help="use this toolmend format (e.g. auto) for every workload")
    ap.add_argument("--report-only", action="store_true", help="re-print the tables from results/")
    ap.add_argument("--run", nargs=2, metavar=("WORKLOAD", "FAMILY"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.run:
        return run_child(a.run[0], a.run[1], not a.no_toolmend, a.toolmend_format)
    fams = [f for f in a.families.split(",") if f]
    wls = [w for w in a.workloads.split(",") if w]
    if not os.path.exists(os.path.join(ANCHORS, "data", "w2_docs.json")):
        sys.exit(f"no workload data in {ANCHORS}/data: run gen.py there (bench_parsers.sh does)")
    os.makedirs(RESULTS, exist_ok=True)
    failed = []
    if not a.report_only:
        tmv = None if a.no_toolmend else toolmend_version()
        if not a.no_toolmend and tmv is None:
            print("!! toolmend is not installed in this interpreter: peers only", flush=True)
        t0 = time.time()
        for wl in wls:
            for fam in fams:
                print(f"== {wl} {fam}", flush=True)
                cmd = [sys.executable, "-u", os.path.abspath(__file__), "--run", wl, fam]
                cmd += ["--no-toolmend"] if a.no_toolmend else []
                cmd += ["--toolmend-format", a.toolmend_format] if a.toolmend_format else []
                if subprocess.run(cmd, env=family_env(fam), check=False).returncode:
                    failed.append(f"{wl}/{fam}")
        meta = {
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "elapsed_s": time.time() - t0,
            "toolmend": tmv,
            "toolmend_wheel": os.environ.get("TOOLMEND_WHEEL"),
            "toolmend_format": a.toolmend_format,
            "families": fams,
            "workloads": wls,
            "failed": failed,
            "python": platform.python_version(),
            "machine": platform.platform(),
            "cores": os.cpu_count(),
            "anchors": ANCHORS,
            "skipped_parsers": sorted(SKIP),
            "budgets": {k: os.environ.get(k) for k in ("ANCHOR_W1_TIMEOUT_S", "ANCHOR_W2_BUDGET_S")},
        }
        with open(os.path.join(RESULTS, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1)
        print(f"== done in {meta['elapsed_s']:.0f} s; toolmend {tmv or 'not run'}\n", flush=True)
    report(fams, wls)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
