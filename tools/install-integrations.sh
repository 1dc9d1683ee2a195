#!/usr/bin/env bash
# Installs what tests/test_integrations.py needs besides requirements-dev.txt, the lightweight way,
# into an existing virtualenv (see requirements-integrations.txt for what and why):
#   bash tools/install-integrations.sh VENV          # LiteLLM proxy pieces, vLLM and SGLang
#   bash tools/install-integrations.sh VENV light    # the LiteLLM proxy pieces only
# "all" takes ~3.2 GB of downloads (torch with its CUDA libraries: ~2.9 GB) and ~6.7 GB on disk;
# "light" ~25 MB. Without them the matching tests are skipped.
set -euo pipefail
VENV=${1:?usage: tools/install-integrations.sh VENV [light|all]}
PART=${2:-all}
case $PART in light | all) ;; *) echo "unknown part: $PART (light or all)" >&2; exit 2 ;; esac
REQ="$(cd "$(dirname "$0")/.." && pwd)/requirements-integrations.txt"
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# One file per "# == <part>" section of the requirements file.
awk -v dir="$TMP" '
    /^# == / { part = $3; sub(/:$/, "", part); next }
    /^[[:space:]]*(#|$)/ { next }
    part != "" { print > (dir "/" part ".txt") }' "$REQ"
start=$SECONDS
"${PIP[@]}" -r "$TMP/light.txt"
if [ "$PART" = all ]; then
    "${PIP[@]}" -r "$TMP/heavy.txt"
    "${PIP[@]}" --no-deps -r "$TMP/heavy-no-deps.txt"
fi
echo "integrations ($PART) installed into $VENV in $((SECONDS - start)) s"
