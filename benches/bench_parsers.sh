#!/usr/bin/env bash
# toolmend vs SGLang / vLLM tool parsers on the bench-anchors workloads (W1 + W2), one command:
#   bash benches/bench_parsers.sh [--no-toolmend] [--rebuild] [bench_parsers.py options]
# Sets up the bench-anchors venv as its run.sh does (../shared/bench-anchors/venv, `pip install
# --no-deps -r requirements.lock`), installs the newest toolmend wheel from target/wheels/ into it
# (`maturin build --release` first if there is none, or with --rebuild), generates the workloads
# if missing, then runs benches/bench_parsers.py. When ../shared/bench-anchors is read-only, it
# is copied (without venv/ and data/) to ANCHORS_WORK (default target/bench-anchors) and the venv
# and workloads are made there. Env: ANCHORS_DIR, ANCHORS_WORK, ANCHOR_VENV,
# ANCHOR_W1_TIMEOUT_S (90), ANCHOR_W2_BUDGET_S (40). Results: benches/results/.
set -euo pipefail
BENCHES=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCHES")
export ANCHORS_DIR=${ANCHORS_DIR:-$(cd "$ROOT/../shared/bench-anchors" && pwd)}
if [ ! -w "$ANCHORS_DIR" ]; then
  WORK=${ANCHORS_WORK:-$ROOT/target/bench-anchors}
  mkdir -p "$WORK"
  # the harness's own files, unchanged (writable copies, so gen.py can write data/ beside them)
  (cd "$ANCHORS_DIR" && find . -path ./venv -prune -o -path ./data -prune -o -type f -print) |
    while read -r f; do mkdir -p "$WORK/$(dirname "$f")"; cp -f "$ANCHORS_DIR/$f" "$WORK/$f"; chmod u+w "$WORK/$f"; done
  export ANCHORS_DIR=$WORK
fi
VENV=${ANCHOR_VENV:-$ANCHORS_DIR/venv}
PY=$VENV/bin/python

TOOLMEND=1 REBUILD=0 ARGS=()
for a in "$@"; do
  case $a in
    --no-toolmend) TOOLMEND=0; ARGS+=("$a") ;;
    --rebuild) REBUILD=1 ;;
    *) ARGS+=("$a") ;;
  esac
done

if [ ! -x "$PY" ]; then python3 -m venv "$VENV"; fi
# run.sh's check, made with the shims (sglang/vllm package roots import torch without them)
if ! env PYTHONPATH="$ANCHORS_DIR/shim:$ANCHORS_DIR/shim_torch" "$PY" -W ignore -c \
    "import sglang.srt.function_call, vllm.tool_parsers, json_repair, fast_json_repair, jiter, partial_json_parser" \
    2>/dev/null; then
  # exact frozen set, installed WITHOUT dependency resolution (sglang/vllm would pull torch/CUDA)
  "$PY" -m pip install -q --no-deps -r "$ANCHORS_DIR/requirements.lock"
fi
if [ ! -f "$ANCHORS_DIR/data/w2_docs.json" ]; then (cd "$ANCHORS_DIR" && "$PY" gen.py); fi

newest_wheel() {  # newest toolmend wheel in target/wheels/ that this venv's python can install
  "$PY" - "$ROOT/target/wheels" <<'EOF'
import glob, os, sys
from packaging.tags import sys_tags
from packaging.utils import parse_wheel_filename
ok = set(sys_tags())
ws = [w for w in glob.glob(os.path.join(sys.argv[1], "toolmend-*.whl"))
      if ok & set(parse_wheel_filename(os.path.basename(w))[3])]
print(max(ws, key=os.path.getmtime) if ws else "")
EOF
}

if [ "$TOOLMEND" = 1 ]; then
  WHEEL=$(newest_wheel)
  if [ -z "$WHEEL" ] || [ "$REBUILD" = 1 ]; then
    MATURIN=$(command -v maturin || true)
    if [ -z "$MATURIN" ]; then "$PY" -m pip install -q "maturin>=1.7,<2"; MATURIN=$VENV/bin/maturin; fi
    (cd "$ROOT" && "$MATURIN" build --release -i "$PY")
    WHEEL=$(newest_wheel)
  fi
  [ -n "$WHEEL" ] || { echo "no toolmend wheel in $ROOT/target/wheels" >&2; exit 1; }
  NEWER=$(cd "$ROOT" && find rust bindings python Cargo.toml pyproject.toml -newer "$WHEEL" \
    \( -name '*.rs' -o -name '*.py' -o -name '*.pyi' -o -name '*.toml' \) 2>/dev/null | head -1)
  if [ -n "$NEWER" ]; then
    echo "!! sources are newer than $WHEEL: pass --rebuild to benchmark the current code" >&2
  fi
  echo "== installing $WHEEL"
  "$PY" -m pip install -q --no-deps --force-reinstall "$WHEEL"
  export TOOLMEND_WHEEL=$WHEEL
fi

exec "$PY" -u "$BENCHES/bench_parsers.py" "${ARGS[@]}"
