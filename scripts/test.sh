#!/usr/bin/env bash
# Set up (venv + editable install with the test extra + Debian chromium for browser tests) and run
# the whole test suite. This is the README's second command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
export PYTHONHASHSEED=0
set +e
# Two workers (the machine's two cores), each taking whole test files: a file's module fixtures are built
# once and its tests keep their order. `bash scripts/test.sh -n 0` runs in one process (a later -n wins).
.venv/bin/python -m pytest -n 2 --dist loadfile "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
    echo "scripts/test.sh: no tests were collected: that is a failure" >&2
    exit 1
fi
exit "$code"
