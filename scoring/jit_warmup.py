"""Compile training's and the gates' numba kernels in a second process while retrain ingests.

On a fresh checkout numba's on-disk cache is empty, and compiling the kernels that
training and the gates call took most of a first ``waflens retrain`` (minutes on a
busy 2-core machine; seconds once cached). Compilation is single-threaded, so a
child process that trains and gates a tiny model — through the very functions
retrain calls, hence with the same argument types and the same cache entries —
fills the cache on the other core while the parent ingests, sessionizes and
clusters. The parent then waits for it before training and loads the kernels from
the cache. When the cache is already filled (every later run), no child starts.

It is only an optimisation: whatever goes wrong in the child, the parent compiles
what it needs itself. It starts only when the machine has a spare core (see
:func:`spare_core`); ``WAFLENS_JIT_WARMUP=1`` starts it regardless, ``0`` never.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ENV = "WAFLENS_JIT_WARMUP"
_CLIENTS = 80
_REQUESTS_PER_CLIENT = 5


def cache_is_warm() -> bool:
    """Whether numba's cache holds the kernels training and the gates need (a cheap look at index files)."""
    try:
        from waflens.runtime.kernels.forest import _score_rows
        from waflens.runtime.kernels.profile import profile_deviations
        from waflens.runtime.kernels.score import features_one, score_one

        for kernel in (_score_rows, profile_deviations, features_one, score_one):
            cache = kernel._cache  # numba's FunctionCache; its index file lists the compiled signatures
            index = Path(cache._cache_path) / cache._cache_file._index_name
            source = Path(kernel.py_func.__code__.co_filename)
            if not index.is_file() or index.stat().st_mtime < source.stat().st_mtime:
                return False
        return True
    except Exception:  # another numba version: assume cold, the child costs little when it is not
        return False


def spare_core() -> bool:
    """Whether a second process would get a core of its own. On a machine already busy (load average
    above cores - 1) the child only competes with the parent: measured on a shared 2-core machine at
    load 7-18, the first run then took as much CPU time as compiling in one process, or more."""
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        return False
    return cores >= 2 and load <= cores - 1


class Warmup:
    """The child process (or nothing, when the cache is warm or warm-up is turned off)."""

    def __init__(self, process: subprocess.Popen | None):
        self.process = process
        self.started = time.perf_counter()

    @classmethod
    def start(cls) -> "Warmup":
        setting = os.environ.get(ENV, "auto")
        if setting == "0" or cache_is_warm() or (setting != "1" and not spare_core()):
            return cls(None)
        root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        try:
            process = subprocess.Popen([sys.executable, "-m", "waflens.scoring.jit_warmup"], env=env,
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        except OSError:
            return cls(None)
        return cls(process)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait(self, timeout_s: float = 900.0) -> None:
        """Until the child has filled the cache (or failed: the parent then compiles for itself)."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()

    def stop(self) -> None:
        if self.running:
            self.process.kill()
            self.process.wait()


def warm_up(workdir: Path) -> None:
    """Train and gate a tiny model on generated requests, as retrain does (types matter, sizes do not)."""
    import numpy as np
    import pyarrow as pa

    from waflens.data.db import connect
    from waflens.data.sessionize import update_derived
    from waflens.labeling.labels import ensure_label_schema
    from waflens.scoring.gates import GateConfig
    from waflens.scoring.evaluation import evaluate, holdout_split
    from waflens.scoring.train import TrainingOptions, train_request_model, train_session_model

    con = connect(workdir / "warmup.duckdb")
    rng = np.random.default_rng(0)
    start = datetime(2026, 1, 1)
    rows = []
    for client in range(_CLIENTS):
        for k in range(_REQUESTS_PER_CLIENT):
            post = k == 4 and client % 2 == 0
            rows.append({
                "request_id": len(rows) + 1, "source_id": 1, "record": len(rows) + 1,
                "ts": start + timedelta(minutes=client * 40 + k), "client_key": f"c{client}",
                "method": "POST" if post else "GET", "path": f"/item/{rng.integers(1, 99)}",
                "query": "" if post else f"id={rng.integers(1, 999)}&q=a%20b", "path_decoded": "/item/1",
                "query_decoded": "", "status": 200, "bytes": 100, "user_agent": "Mozilla/5.0", "referer": "-",
                "body": "user=u&pass=p" if post else None})
    con.register("warmup_rows", pa.Table.from_pylist(rows))
    con.execute("INSERT INTO requests BY NAME SELECT * FROM warmup_rows")
    con.unregister("warmup_rows")
    update_derived(con, 30.0)
    ensure_label_schema(con)
    split = holdout_split(con, 0.25)
    options = TrainingOptions(until=split, n_estimators=10, max_samples=64)
    train_request_model(con, workdir / "request", options)
    train_session_model(con, workdir / "session", options)
    evaluate(con, workdir, None, split, GateConfig(parity_sample=20, latency_sample=20))
    con.close()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="waflens-warmup-") as tmp:
        warm_up(Path(tmp))
