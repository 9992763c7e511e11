#!/usr/bin/env bash
# The README's first command: set up, generate demo traffic, run every pipeline stage into
# ./waflens.duckdb, then start the workbench on http://localhost:8501 (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/waflens demo "$@"
