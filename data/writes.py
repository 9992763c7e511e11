"""Short writes to the database from the workbench: a label, an allowlist rule, a setting.

DuckDB admits one writing process at a time, and a cron ``waflens retrain`` or an
ingest may hold the lock for minutes. So the workbench never keeps a write
connection: :func:`write` opens one, runs a small function, and closes it, waiting
(up to ``timeout_s``) while another process writes. No Streamlit here, so a test
(or a script) can call it from a plain process.
"""

from __future__ import annotations

import os
import time
from typing import Callable, TypeVar

import duckdb

from waflens.data.db import connect
from waflens.data.errors import DatabaseError

T = TypeVar("T")
RETRY_DELAY_S = 0.25


def is_busy(error: BaseException) -> bool:
    """Whether an error means "another connection holds the database" (worth retrying)."""
    text = str(error).lower()
    # another process holds the write lock; or, inside this process, a read-only connection of another
    # page run is open (DuckDB refuses a second configuration of the same file in one process)
    return "busy" in text or "lock" in text or "different configuration" in text


def write(db_path: str | os.PathLike, fn: Callable[[duckdb.DuckDBPyConnection], T], *,
          timeout_s: float = 30.0) -> T:
    """Run ``fn(con)`` on a short write connection and return its result.

    Waits while another process writes; raises :class:`DatabaseError` saying the
    database is busy when it still cannot get the lock after ``timeout_s`` seconds.
    Other errors (from ``fn`` too) propagate unchanged.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            con = connect(db_path, read_only=False, retries=0, retry_delay=0.0)
            break
        except DatabaseError as error:
            if not is_busy(error) or time.monotonic() >= deadline:
                if is_busy(error):
                    raise DatabaseError(f"database {db_path} is busy: another waflens process (a retrain or an "
                                        f"ingest) has been writing for over {timeout_s:.0f} s; try again when it "
                                        "finishes") from error
                raise
            time.sleep(min(RETRY_DELAY_S, max(0.0, deadline - time.monotonic())))
    try:
        return fn(con)
    finally:
        con.close()
