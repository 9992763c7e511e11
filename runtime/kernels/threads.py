"""Run a nogil numba kernel over pieces of a batch on a shared pool of threads.

Why not numba's ``parallel=True``: a parallel kernel costs several CPU-seconds more to compile on a
cold cache (the first ingest, the first retrain, every CI run), and where the pieces are independent
(lines, blocks of rows) plain threads over a serial ``nogil`` kernel run as fast. Imports only the
standard library and numba (the scoring runtime uses it, and the ingest parser); honours ``numba.set_num_threads``.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_lock = threading.Lock()


def _forget_pool() -> None:
    """In a forked child the pool's threads are gone: start a new pool there when one is needed."""
    global _pool, _pool_size, _lock
    _pool, _pool_size, _lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def threads() -> int:
    """How many threads to spread a batch over: numba's (NUMBA_NUM_THREADS, set_num_threads)."""
    return max(1, numba.get_num_threads())


def in_threads(job, pieces: int) -> None:
    """``job(i)`` for every i in range(pieces); in the calling thread when one thread is all there is."""
    global _pool, _pool_size
    workers = threads()
    if pieces <= 1 or workers == 1:
        for i in range(pieces):
            job(i)
        return
    with _lock:
        if _pool is None or _pool_size != workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool, _pool_size = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="waflens-kernel"), workers
        pool = _pool
    for _ in pool.map(job, range(pieces)):  # re-raises the first error
        pass
