#!/usr/bin/env bash
# Run the gateway. With no arguments: the embedded default (SQLite in ./omnigw-data, one
# webchat channel, the demo page at http://127.0.0.1:8080/). Any `omnigw serve` flags
# pass through, e.g. scripts/serve.sh --config omnigw.toml --port 9000
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/omnigw ] || [ pyproject.toml -nt .venv/.installed ]; then
  [ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e .
  touch .venv/.installed
fi
exec .venv/bin/omnigw serve "$@"
