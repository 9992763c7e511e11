"""Fill numba's on-disk cache once, before parallel test workers start.

On a fresh clone (every CI run) the cache is empty, and compiling our kernels costs about a minute
and a half of CPU: training's and the gates' kernels ~70 s, parsing and feature kernels ~20 s.
Run serially, the first test that needs a kernel pays for it once; with two xdist workers, both
workers compile the same kernels at the same time and pay twice. So the controller compiles them
first, in two processes at once (one a core), through the project's own entry points, hence with
the argument types later processes look up: ``python -m waflens.scoring.jit_warmup`` (what a first
``waflens retrain`` runs) and a ``waflens ingest`` of a small generated log. When the cache is
already filled, nothing starts.

Only an optimisation: a warm-up that fails or times out leaves the kernels to whichever test needs
them first, as without it (what went wrong is printed in the run's header).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 900


def _cached(kernel) -> bool:
    """Whether numba's cache index of a ``cache=True`` kernel exists and is newer than its source."""
    cache = kernel._cache
    index = Path(cache._cache_path) / cache._cache_file._index_name
    source = Path(kernel.py_func.__code__.co_filename)
    return index.is_file() and index.stat().st_mtime >= source.stat().st_mtime


def _ingest_is_cached() -> bool:
    from waflens.data.clf_kernel import _copy_field, _parse_block
    from waflens.data.feature_kernels import entropy_of_strings

    return _cached(_parse_block) and _cached(_copy_field) and _cached(entropy_of_strings)


def warm(log=print) -> None:
    """Compile what is not cached yet, both halves at once; wait for them."""
    try:
        from waflens.scoring.jit_warmup import cache_is_warm

        commands = []
        with tempfile.TemporaryDirectory(prefix="waflens-test-jit-") as tmp:
            if not _ingest_is_cached():
                from waflens.data.synthetic import generate_traffic

                generate_traffic(Path(tmp) / "warm.log", 400, seed=1)
                commands.append([sys.executable, "-m", "waflens.app.cli", "--db", str(Path(tmp) / "warm.duckdb"), "ingest",
                                 str(Path(tmp) / "warm.log")])
            if not cache_is_warm():
                commands.append([sys.executable, "-m", "waflens.scoring.jit_warmup"])
            if not commands:
                return
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
                   "WAFLENS_PSEUDONYM_KEY": "jit-warm-up-key-0123456789abcdef", "WAFLENS_JIT_WARMUP": "0"}
            processes = [subprocess.Popen(command, cwd=tmp, env=env, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                         for command in commands]
            for command, process in zip(commands, processes):
                try:
                    _, err = process.communicate(timeout=TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    _, err = process.communicate()
                if process.returncode != 0:
                    log(f"numba warm-up `{' '.join(command[1:4])}` failed ({process.returncode}); the tests compile "
                        f"instead: {err.strip()[-500:]}")
    except Exception as error:  # never fail the run for an optimisation
        log(f"numba warm-up skipped: {type(error).__name__}: {error}")
