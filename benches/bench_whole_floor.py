"""W1 whole parses: toolmend and vLLM's parsers side by side in one process, with the floor.

The floor is what any parser with a Python API pays at least: making the Python `str` objects
it returns (content, names and arguments) from their UTF-8 text, measured by decoding exactly
the strings toolmend returns. `ceiling x` = peer time / floor: the ratio a parser that cost
nothing at all beyond its result strings would reach. Timings are the best of N passes over the
64 W1 completions, the parsers alternating pass by pass.

Run it in the bench-anchors venv (benches/bench_parsers.sh makes it), with the anchors' shims:

    A=../shared/bench-anchors
    PYTHONPATH=$A/shim:$A/shim_torch $A/venv/bin/python benches/bench_whole_floor.py [--passes N]

ANCHORS_DIR overrides where the anchors are (bench_parsers.sh copies them to
target/bench-anchors when ../shared is read-only).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

BENCHES = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCHES)


def anchors_dir() -> str:
    env = os.environ.get("ANCHORS_DIR")
    if env:
        return env
    work = os.path.join(ROOT, "target", "bench-anchors")
    if os.path.isdir(os.path.join(work, "data")):
        return work
    return os.path.join(ROOT, "..", "shared", "bench-anchors")


def best_of(passes: int, funcs: dict) -> dict:
    """Best time in ms of each function, the functions alternating pass by pass."""
    best = {name: float("inf") for name in funcs}
    for _ in range(passes):
        for name, f in funcs.items():
            t0 = time.perf_counter()
            f()
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: t * 1e3 for name, t in best.items()}


def contenders(peer, tm, texts: list, parts: list) -> dict:
    """The three timed functions for one format: the peer, toolmend and the string floor."""
    return {
        "peer": lambda: [peer.parse_full(t) for t in texts],
        "toolmend": lambda: [tm.parse_full(t) for t in texts],
        "floor": lambda: [p.decode() for p in parts],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--passes", type=int, default=30)
    args = ap.parse_args()

    anchors = anchors_dir()
    sys.path[:0] = [anchors, os.path.join(anchors, "shim"), os.path.join(anchors, "shim_torch"), BENCHES]
    warnings.filterwarnings("ignore")
    import adapters  # the anchors' adapters (vLLM parsers behind parse_full)
    from toolmend_adapter import toolmend_adapters

    data = os.path.join(anchors, "data")
    with open(os.path.join(data, "tools.json")) as f:
        tools = json.load(f)
    with open(os.path.join(data, "w1_corpus.json")) as f:
        docs = json.load(f)["corpus"]
    peers = {a.fmt: a for a in adapters.vllm_adapters()}
    ours = {a.fmt: a for a in toolmend_adapters(tools)[0]}

    print(f"W1: {len(docs)} completions; best of {args.passes} alternating passes, one process")
    print("| format | peer | peer ms | toolmend ms | floor ms | toolmend × | ceiling × |")
    print("|---|---|---|---|---|---|---|")
    for fmt in ("hermes", "mistral", "llama3"):
        peer, tm = peers.get(fmt), ours.get(fmt)
        if peer is None or tm is None:
            continue
        texts = [d["text"][fmt] for d in docs]
        results = [tm.parse_full(t) for t in texts]
        parts = [(content or "").encode() for content, _ in results]
        parts += [s.encode() for _, calls in results for call in calls for s in call]
        times = best_of(args.passes, contenders(peer, tm, texts, parts))
        p, t, f = times["peer"], times["toolmend"], times["floor"]
        print(f"| {fmt} | {peer.name} | {p:.2f} | {t:.2f} | {f:.3f} | {p / t:.1f}× | {p / f:.0f}× |")


if __name__ == "__main__":
    main()
