#!/usr/bin/env python3
"""Fill fuzz/corpus/<target>/ with seed inputs made from the project's test data.

Sources: the shared conformance corpus (`../shared/corpus/*.jsonl` beside the repository, or
$TOOLMEND_CORPUS): model outputs for `stream`, their expected call arguments for `repair` and
`scanner`; the repair corpus (`tests/repair_corpus/cases.jsonl`) inputs for `repair` and
`scanner`; and the kept reproducers in `fuzz/regressions/<target>/`.

The seeds are generated, not committed (fuzz/.gitignore). Input layouts are those the targets
decode (see fuzz/src/lib.rs): `stream` is `[format, flags, model]`, `0x00` (empty chunking
pattern: one char at a time), then the text (format byte `0xff`: the text's first line names
the format); `scanner` is `[flags]`, `0x00`, the text; `repair` is the text alone.

Usage: fuzz/seed.py
"""

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parent
# Longer seeds slow every execution and teach the fuzzer little more (tools/fuzz.sh runs with
# -max_len=8192).
MAX_SEED = 8192


def write(target: str, data: bytes, counts: dict[str, int]) -> None:
    if len(data) > MAX_SEED:
        return
    d = FUZZ / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    p = d / hashlib.sha1(data).hexdigest()
    if not p.exists():
        p.write_bytes(data)
        counts[target] = counts.get(target, 0) + 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.parse_args()

    corpus_dir = Path(os.environ.get("TOOLMEND_CORPUS", ROOT.parent / "shared" / "corpus"))
    counts: dict[str, int] = {}

    json_texts: list[str] = []
    repair_cases = ROOT / "tests" / "repair_corpus" / "cases.jsonl"
    if repair_cases.exists():
        for line in repair_cases.read_text(encoding="utf-8").splitlines():
            if line.strip():
                json_texts.append(json.loads(line)["input"])
    else:
        print(f"seed: no {repair_cases}", file=sys.stderr)

    if corpus_dir.is_dir():
        for f in sorted(corpus_dir.glob("*.jsonl")):
            for line in f.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                case = json.loads(line)
                output = case["output"].encode()
                flags = 0
                if "thinking enabled" in (case.get("notes") or ""):
                    flags |= 1
                if case.get("tools"):
                    flags |= 4
                # Auto-detection, and the case's own format named.
                write("stream", bytes([0, flags, 0, 0]) + output, counts)
                write("stream", bytes([0xFF, flags, 0, 0]) + case["format"].encode() + b"\n" + output, counts)
                write("repair", output, counts)
                for call in case["expected"].get("tool_calls") or []:
                    json_texts.append(json.dumps(call.get("arguments"), ensure_ascii=False))
    else:
        print(f"seed: no conformance corpus at {corpus_dir}", file=sys.stderr)

    for text in json_texts:
        data = text.encode()
        write("repair", data, counts)
        write("scanner", b"\x00\x00" + data, counts)  # lenient JSON
        write("scanner", b"\x02\x00" + data, counts)  # strict JSON
        if "'" in text or "True" in text or "None" in text:
            write("scanner", b"\x01\x00" + data, counts)  # Python literals

    regressions = FUZZ / "regressions"
    for target_dir in sorted(p for p in regressions.glob("*") if p.is_dir()):
        for f in sorted(target_dir.iterdir()):
            if f.is_file():
                write(target_dir.name, f.read_bytes(), counts)

    summary = ", ".join(f"{t}: {n}" for t, n in sorted(counts.items())) or "nothing new"
    print(f"seed: wrote {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
