#!/usr/bin/env bash
# Install what is needed, then lint and run the test suite (CPU only, a few minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
bash scripts/setup.sh
"$PY" -m ruff check .
"$PY" -m pytest -q "$@"
