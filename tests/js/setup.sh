#!/usr/bin/env bash
# Installs the pinned AI SDK client projects used by the end-to-end tests (npm ci, from
# package-lock.json). A project is skipped when its node_modules was installed after the last
# change to its package.json and package-lock.json, so running this again is quick.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "tests/js/setup.sh: node and npm are required" >&2
  exit 1
fi

for project in ai-sdk-2 ai-sdk-3; do
  stamp=$project/node_modules/.package-lock.json
  if [[ -f $stamp && $stamp -nt $project/package-lock.json && $stamp -nt $project/package.json ]]; then
    echo "tests/js/$project: node_modules up to date"
    continue
  fi
  echo "tests/js/$project: npm ci"
  (cd "$project" && npm ci --no-audit --no-fund --loglevel=error)
done
