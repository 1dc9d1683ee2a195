"""W2 streaming: toolmend and vLLM's parsers in paired, alternating runs.

bench_parsers.sh measures each parser's row in one stretch, minutes apart from its peer's row;
this machine has slow phases lasting tens of seconds, which can halve one row's speed and not
the other's. Here every round streams the same deltas once with toolmend and once with the
peer, back to back (the order alternating round by round), each run in a freshly forked child
with the anchors' own timing code (bench.stream_once inside bench.run_guarded, exactly as
bench.run_w2 does). Each round gives a ratio peer / toolmend of the stream's total and of its
p50 per delta; a slow phase slows both runs of a round. Reported: the median over rounds of
those ratios, with their spread, and the median totals.

Run it in the bench-anchors venv (benches/bench_parsers.sh makes it) with the anchors' shims:

    A=../shared/bench-anchors
    PYTHONPATH=$A/shim:$A/shim_torch $A/venv/bin/python benches/bench_stream_paired.py \
        [--formats hermes,mistral] [--kb 16] [--rounds 21]

ANCHORS_DIR overrides where the anchors are (bench_parsers.sh copies them to
target/bench-anchors when ../shared is read-only).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import warnings

BENCHES = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCHES)

from bench_whole_floor import anchors_dir  # noqa: E402

# bench-anchors workload format -> the vLLM parser that reads it
PEERS = {
    "hermes": "vllm.Hermes2ProToolParser",
    "llama3": "vllm.Llama3JsonToolParser",
    "mistral": "vllm.MistralToolParser",
    "pythonic": "vllm.PythonicToolParser",
}


def one_run(bench, ad, deltas: list) -> tuple[float, float]:
    """(total ms, p50 µs) of one stream in a forked child, as bench.run_w2 times it."""
    got, err = bench.run_guarded(lambda: list(bench.stream_once(ad, deltas, bench.W2_BUDGET_S)), bench.W2_BUDGET_S + 30)
    if got is None:
        raise SystemExit(f"{ad.name}: {err}")
    lat, aborted, _ = got
    if aborted:
        raise SystemExit(f"{ad.name}: over the anchors' {bench.W2_BUDGET_S} s budget")
    return sum(lat) / 1e6, bench.pct(lat, 0.5) / 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--formats", default="hermes,mistral", help="workload formats (hermes, llama3, mistral, pythonic)")
    ap.add_argument("--kb", type=int, default=16, help="argument size of the W2 stream (1, 4, 16 or 64)")
    ap.add_argument("--rounds", type=int, default=21)
    args = ap.parse_args()

    anchors = anchors_dir()
    sys.path[:0] = [anchors]
    warnings.simplefilter("ignore")
    import adapters
    import bench
    from toolmend_adapter import toolmend_adapters

    docs = [d for d in bench.load("w2_docs.json") if d["kb"] == args.kb]
    if not docs:
        raise SystemExit(f"no W2 stream of {args.kb} KB")
    doc = docs[0]
    peers = {a.name: a for a in adapters.get("vllm")}
    fmts = args.formats.split(",")
    mine = {a.fmt: a for a in toolmend_adapters(adapters.TOOLS, fmts)[0]}
    print(f"W2 {args.kb} KB, {args.rounds} rounds; each run in a forked child (bench.run_guarded + stream_once)")
    print("| format | peer | toolmend total | peer total | × total (median, min–max) | × p50 (median) |")
    print("|---|---|---|---|---|---|")
    for fmt in fmts:
        peer, tm = peers[PEERS[fmt]], mine[fmt]
        deltas = doc["deltas"][fmt]
        rows = []
        for r in range(args.rounds):
            pair = (tm, peer) if r % 2 == 0 else (peer, tm)
            res = {a.name: one_run(bench, a, deltas) for a in pair}
            rows.append((res[tm.name], res[peer.name]))
        ratios = sorted(p[0] / t[0] for t, p in rows)
        p50s = [p[1] / t[1] for t, p in rows]
        print(
            f"| {fmt} | {peer.name} | {statistics.median(t[0] for t, _ in rows):.2f} ms "
            f"| {statistics.median(p[0] for _, p in rows):.1f} ms "
            f"| **{statistics.median(ratios):.0f}×** ({ratios[0]:.0f}–{ratios[-1]:.0f}×) "
            f"| {statistics.median(p50s):.0f}× |",
            flush=True,
        )


if __name__ == "__main__":
    main()
