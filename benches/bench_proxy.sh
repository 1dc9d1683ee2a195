#!/usr/bin/env bash
# Proxy overhead, side by side: direct-to-backend, toolmend and LiteLLM's proxy in front of the
# same scripted backend, with the shared harness (../shared/bench-anchors/proxy; see its README).
#   benches/bench_proxy.sh [WHICH...]   WHICH: toolmend (requests without tools: forwarded as they
#   are), toolmend-tools (a tool added to every request, so every chunk goes through the mender;
#   benches/serve_with_tools.py), litellm. Default: all three, ~7 min each.
# Needs toolmend installed in TOOLMEND_VENV (default .venv). WORKERS=N runs toolmend with N worker
# processes (default 1). Knobs of the harness (CONCURRENCY,
# DELAYS, DURATION, ...) pass through. Reports: $PB_WORK/results/*/report.md; the combined
# report is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS=$(cd ../shared/bench-anchors/proxy && pwd)
VENV=${TOOLMEND_VENV:-$PWD/.venv}
WHAT=${*:-toolmend toolmend-tools litellm}
WORKERS=${WORKERS:-1}
SUFFIX=$([ "$WORKERS" = 1 ] || echo "-w$WORKERS")
export PB_WORK=${PB_WORK:-/tmp/proxybench}
dirs=()
for which in $WHAT; do
  case $which in
    toolmend) LABEL=toolmend$SUFFIX VERSION_CMD="$VENV/bin/toolmend --version" \
      bash "$HARNESS/run.sh" "$VENV/bin/toolmend serve --backend {backend_url} --port {port} --workers $WORKERS --log-level warning" ;;
    toolmend-tools) LABEL=toolmend-tools$SUFFIX VERSION_CMD="$VENV/bin/toolmend --version" \
      bash "$HARNESS/run.sh" "$VENV/bin/python $PWD/benches/serve_with_tools.py --backend {backend_url} --port {port} --workers $WORKERS" ;;
    litellm) bash "$HARNESS/litellm.sh" ;;
    *) echo "unknown: $which" >&2; exit 2 ;;
  esac
  dirs+=("$(ls -dt "$PB_WORK"/results/*-"$which"* | head -1)")
done
"$PB_WORK/venv/bin/python" "$HARNESS/report.py" "${dirs[@]}"
