#!/usr/bin/env bash
# The whole test suite, from a fresh clone:
#   1. Rust unit and conformance tests (cargo test),
#   2. the release abi3 wheel, built once with maturin,
#   3. a fresh virtualenv with that wheel installed,
#   4. the npm client projects of the end-to-end tests (tests/js, npm ci), and the servers the
#      drop-in adapters plug into (vLLM, SGLang, the LiteLLM proxy: tools/install-integrations.sh;
#      TOOLMEND_INTEGRATIONS=light skips the ~3 GB vLLM/SGLang part, whose tests then skip),
#   5. pytest against the installed wheel (never the source tree).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${TOOLMEND_TEST_VENV:-$ROOT/.venv-test}

echo "== cargo test"
cargo test --workspace --locked

echo "== test virtualenv ($VENV)"
python3 -m venv --clear "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r requirements-dev.txt

echo "== release wheel"
rm -rf dist
"$VENV/bin/maturin" build --release --locked --out dist -i "$VENV/bin/python"
"$VENV/bin/pip" install -q --disable-pip-version-check --force-reinstall dist/toolmend-*.whl

echo "== servers for the drop-in adapters (${TOOLMEND_INTEGRATIONS:-all})"
bash tools/install-integrations.sh "$VENV" "${TOOLMEND_INTEGRATIONS:-all}"

echo "== AI SDK clients (npm)"
bash tests/js/setup.sh

echo "== pytest (installed wheel)"
cd "$ROOT/tests"
"$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
