"""toolmend streaming: cost per delta against argument size (needs only toolmend).

One hermes `write_file` call whose `content` argument is 1/4/16/64 KB of code-like text (quotes,
backslashes, tabs, newlines, non-ASCII), streamed in ~4-char deltas; `<tool_call>` and
`</tool_call>` arrive whole, as the single tokens they are. Only `feed()` is timed, per delta.
If feed() is O(1) amortized per delta, the per-delta cost ratio 64KB/1KB is ~1; a parser that
rescans its buffer on every delta shows ~50-64.

usage: python benches/bench_stream_scaling.py [--sizes 1,4,16,64] [--chunk 4] [--reps 5]
                                              [--json PATH]
"""

import argparse
import gc
import json
import random
import statistics
import time

from toolmend import StreamParser

LINES = [
    "def handler(event, ctx):",
    '    """Return the parsed body."""',
    "    body = json.loads(event['body'])  # {'k': \"v\"}",
    '    path = "C:\\\\Users\\\\zoë\\\\data.csv"',
    '    msg = f"héllo {name!r} — 東京 🌸\\n"',
    "\tif re.match(r'^\\d+\\.\\d*$', s):",
    '        return {"ok": True, \'n\': -1.5e-7, "tags": ["a", "b\\"c"]}',
    "",
    "// end of block } ] ) \\u00e9",
]


def payload(nbytes, seed):
    r = random.Random(seed)
    out, size = [], 0
    while size < nbytes:
        line = r.choice(LINES)
        out.append(line)
        size += len(line.encode()) + 1
    return "\n".join(out)[:nbytes]


def chunk(s, n):
    return [s[i : i + n] for i in range(0, len(s), n)]


def make_doc(kb, n):
    args = {"path": "src/app/main.py", "content": payload(kb * 1024, kb), "overwrite": True, "mode": 420}
    call = json.dumps({"name": "write_file", "arguments": args}, ensure_ascii=False)
    return args, [*chunk("I'll write the file now.\n", n), "<tool_call>", *chunk(f"\n{call}\n", n), "</tool_call>"]


def stream_once(deltas):
    p = StreamParser(format="hermes")
    lat, events = [], []
    pc = time.perf_counter_ns
    gc.collect()
    gc.disable()
    try:
        for d in deltas:
            t0 = pc()
            ev = p.feed(d)
            lat.append(pc() - t0)
            events += ev
        t0 = pc()
        events += p.finish()
        fin = pc() - t0
    finally:
        gc.enable()
    return lat, fin, events, p.result()


def correct(args, events, result):
    name = "".join(e.name or "" for e in events if e.kind == "tool_call_start")
    streamed = "".join(e.text or "" for e in events if e.kind == "tool_call_args")
    try:
        calls = result.tool_calls
        return (
            name == "write_file"
            and json.loads(streamed) == args
            and len(calls) == 1
            and json.loads(calls[0].arguments) == args
        )
    except ValueError:
        return False


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1,4,16,64", help="argument sizes in KB")
    ap.add_argument("--chunk", type=int, default=4, help="chars per delta")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", help="also write the results here")
    a = ap.parse_args()
    rows = []
    print("| args KB | deltas | total ms | mean µs/delta | p50 µs | p99 µs | last 10% mean µs | finish µs | correct |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kb in map(int, a.sizes.split(",")):
        args, deltas = make_doc(kb, a.chunk)
        stream_once(deltas)  # warm-up
        runs = sorted((stream_once(deltas) for _ in range(a.reps)), key=lambda x: sum(x[0]))
        lat, fin, events, result = runs[len(runs) // 2]  # the median run by total
        row = {
            "kb": kb,
            "deltas": len(deltas),
            "total_ms": sum(lat) / 1e6,
            "mean_us": statistics.mean(lat) / 1e3,
            "p50_us": pct(lat, 0.5) / 1e3,
            "p99_us": pct(lat, 0.99) / 1e3,
            "last10_mean_us": statistics.mean(lat[-len(lat) // 10 :]) / 1e3,
            "finish_us": fin / 1e3,
            "correct": correct(args, events, result),
        }
        rows.append(row)
        print(
            f"| {kb} | {len(deltas):,} | {row['total_ms']:.2f} | {row['mean_us']:.3f} | {row['p50_us']:.3f} | "
            f"{row['p99_us']:.3f} | {row['last10_mean_us']:.3f} | {row['finish_us']:.1f} | "
            f"{'yes' if row['correct'] else 'NO'} |",
            flush=True,
        )
    lo, hi = rows[0], rows[-1]
    ratios = {k: hi[k] / lo[k] for k in ("mean_us", "p50_us", "last10_mean_us")}
    print(
        f"\nper-delta cost ratio {hi['kb']}KB/{lo['kb']}KB: mean {ratios['mean_us']:.2f}, "
        f"p50 {ratios['p50_us']:.2f}, last 10% {ratios['last10_mean_us']:.2f}  (~1 = O(1) per delta, "
        f"~{hi['kb'] / lo['kb']:.0f} = rescans the buffer)"
    )
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"chunk": a.chunk, "reps": a.reps, "rows": rows, "ratios": ratios}, f, indent=1)


if __name__ == "__main__":
    main()
