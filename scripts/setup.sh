#!/usr/bin/env bash
# Create .venv and install waflens and waflens-runtime (runtime/) into it (editable; waflens depends on
# waflens-runtime, which pip finds here, not on an index). `setup.sh test` adds the test extra and the
# Debian chromium the browser tests drive.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# numba's on-disk caches name the modules their kernels came from; after an update that moved a module
# (e.g. scoring/ -> runtime/ into the waflens namespace) a stale cache fails to load with "No module named
# ...". Installing is the moment the code changes, so the checkout's caches go (they refill on first use).
find app data clustering labeling scoring runtime pipeline \( -name '*.nbi' -o -name '*.nbc' \) -delete 2>/dev/null || true
if [ "${1:-}" = "test" ]; then
    .venv/bin/python -m pip install --quiet -e ./runtime -e '.[test]'
    # The browser tests drive Debian's chromium through Playwright. Never `playwright install`: it
    # downloads browser builds, and test machines reach package registries only.
    # tests/spark run pyspark in local[2], which needs Java 17 or newer (Debian's headless JRE).
    missing=()
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    java_ok() { command -v java >/dev/null 2>&1 \
        && java -version 2>&1 | head -1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])'; }
    java_ok || missing+=(openjdk-17-jre-headless)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "setup.sh: installing Debian's ${missing[*]} for the browser and Spark tests" >&2
        if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else SUDO="none"; fi
        if [ "$SUDO" = "none" ] || ! { $SUDO apt-get update -qq \
                && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" \
                   >/dev/null; }; then
            echo "setup.sh: could not install ${missing[*]} (needs root or sudo, and apt-get); the browser and" \
                 "Spark tests will skip, or fail in CI: install them with 'apt-get install ${missing[*]}'" >&2
        fi
    fi
else
    .venv/bin/python -m pip install --quiet -e ./runtime -e .
fi
