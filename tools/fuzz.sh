#!/usr/bin/env bash
# Fuzz toolmend-core with cargo-fuzz (libFuzzer) on the stable toolchain: the JSON repair
# (`repair`), the incremental JSON scanner (`scanner`) and the tool-call tokenizer (`stream`).
# See fuzz/fuzz_targets/*.rs for what each checks, and docs/design.md ("Fuzzing").
#
#   tools/fuzz.sh [SECONDS]      each target for SECONDS (default 20; CI's short run)
#   tools/fuzz.sh 600            the longer run, before a release or after a parser change
#   FUZZ_TARGETS="stream" tools/fuzz.sh 300    some targets only
#   FUZZ_RUNS=20000 tools/fuzz.sh              a fixed number of inputs per target with a fixed
#                                              seed: deterministic, what CI runs
#
# Steps: install cargo-fuzz if missing (from crates.io), build the instrumented targets, seed
# fuzz/corpus/<target>/ from the test corpora (fuzz/seed.py), replay the kept reproducers in
# fuzz/regressions/<target>/, then fuzz each target. A crash's input is written to
# fuzz/artifacts/<target>/; the script goes on with the other targets and exits non-zero.
# Reproduce one with `cargo fuzz run --sanitizer none -a <target> <file>`.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS="${1:-20}"
read -r -a TARGETS <<<"${FUZZ_TARGETS:-repair scanner stream}"
# No sanitizer: the fuzzed code is safe Rust, and ASan needs a nightly compiler. Debug
# assertions and overflow checks stay on.
FLAGS=(--sanitizer none --release --debug-assertions)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

echo "== cargo fuzz build"
cargo fuzz build "${FLAGS[@]}"

HOST="$(rustc -vV | sed -n 's/^host: //p')"
TARGET_DIR="${CARGO_TARGET_DIR:-fuzz/target}"
BIN="$TARGET_DIR/$HOST/release"

echo "== seeding fuzz/corpus"
python3 fuzz/seed.py

failed=()
for t in "${TARGETS[@]}"; do
    shopt -s nullglob
    kept=(fuzz/regressions/"$t"/*)
    shopt -u nullglob
    if ((${#kept[@]})); then
        echo "== $t: replaying ${#kept[@]} kept reproducer(s)"
        if ! "$BIN/$t" "${kept[@]}" >"fuzz/$t-regressions.log" 2>&1; then
            tail -n 40 "fuzz/$t-regressions.log"
            failed+=("$t (regressions)")
            continue
        fi
    fi
    if [ -n "${FUZZ_RUNS:-}" ]; then
        LIMIT=(-runs="$FUZZ_RUNS" -seed=1)
        echo "== $t: fuzzing ${FUZZ_RUNS} inputs (seed 1)"
    else
        LIMIT=(-max_total_time="$SECS")
        echo "== $t: fuzzing for ${SECS}s"
    fi
    mkdir -p "fuzz/artifacts/$t"
    if ! cargo fuzz run "${FLAGS[@]}" "$t" -- \
        "${LIMIT[@]}" -max_len=8192 -timeout=10 -print_final_stats=1 \
        >"fuzz/$t.log" 2>&1; then
        grep -v '^#' "fuzz/$t.log" | tail -n 60
        failed+=("$t")
    else
        grep -E '^stat::number_of_executed_units|^Done' "fuzz/$t.log" || true
    fi
done

if ((${#failed[@]})); then
    echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/, logs in fuzz/*.log)"
    exit 1
fi
if [ -n "${FUZZ_RUNS:-}" ]; then AMOUNT="$FUZZ_RUNS inputs"; else AMOUNT="${SECS}s"; fi
echo "fuzz: no crash in ${TARGETS[*]} ($AMOUNT each)"
