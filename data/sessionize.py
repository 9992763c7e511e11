"""Sessions and features: the derived tables, brought up to date after every ingest.

Both steps are incremental and idempotent: request features are computed for
requests that have none, sessions for requests that have none (plus the sessions
those requests may join or bridge), session features for the sessions touched.
A crash between steps is repaired by the next run: requests in no session (after
``ingest --no-sessionize``, Ctrl-C or ``kill -9`` during this step, or a forgotten
source) are what the next run starts from (:func:`pending_requests`).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, NamedTuple, TypeVar

import duckdb

from waflens.data.db import run_sql_file
from waflens.data.errors import InputError
from waflens.data.feature_spec import sql_parameters
from waflens.data.interrupts import DeferredInterrupt, InterruptedDerived, was_interrupted
from waflens.data.sources import rollback

T = TypeVar("T")

DEFAULT_GAP_MINUTES = 30.0


class DerivedSummary(NamedTuple):
    request_features: int
    sessions_touched: int
    sessions_total: int
    seconds_features: float
    seconds_sessionize: float


def compute_request_features(con: duckdb.DuckDBPyConnection, interrupt: DeferredInterrupt | None = None) -> int:
    """Request features for every request that has none yet; returns how many."""
    after = con.execute("SELECT coalesce(max(request_id), 0) FROM request_features").fetchall()[0][0]
    before = con.execute("SELECT count(*) FROM request_features").fetchall()[0][0]
    _in_transaction(con, interrupt, lambda: run_sql_file(
        con, "request_features", {"after_request_id": after, **sql_parameters()}))
    return con.execute("SELECT count(*) FROM request_features").fetchall()[0][0] - before


def pending_requests(con: duckdb.DuckDBPyConnection) -> int:
    """Requests in no session yet: ingested with --no-sessionize, or whose sessionizing was cut short
    (Ctrl-C, kill -9), or left by a forgotten source. The next :func:`update_derived` takes them."""
    return int(con.execute("SELECT count(*) FROM requests WHERE session_id IS NULL").fetchall()[0][0])


def checked_gap_minutes(gap_minutes: float) -> float:
    """The session gap as a float; InputError unless it is a positive number of minutes (NaN is not)."""
    if not gap_minutes > 0:
        raise InputError(f"session gap must be positive minutes, got {gap_minutes}")
    return float(gap_minutes)


def sessionize(con: duckdb.DuckDBPyConnection, gap_minutes: float = DEFAULT_GAP_MINUTES,
               interrupt: DeferredInterrupt | None = None) -> int:
    """Assign sessions to unsessionized requests and refresh touched session features."""
    gap_minutes = checked_gap_minutes(gap_minutes)
    compute_request_features(con, interrupt)

    def work() -> int:
        run_sql_file(con, "sessionize", {"gap_seconds": float(gap_minutes) * 60.0})
        run_sql_file(con, "session_features", sql_parameters())
        return con.execute("SELECT count(*) FROM touched_sessions").fetchall()[0][0]

    return _in_transaction(con, interrupt, work)


def resessionize(con: duckdb.DuckDBPyConnection, gap_minutes: float = DEFAULT_GAP_MINUTES,
                 session_key: str | None = None) -> int:
    """Rebuild every session (after changing the gap or the session key)."""
    def reset() -> None:
        if session_key is not None:
            con.execute("UPDATE requests SET client_key = waflens_client_key(client_ip, user_agent, session_cookie, $m)",
                        {"m": session_key})
        con.execute("UPDATE requests SET session_id = NULL")
        con.execute("DELETE FROM sessions")
        con.execute("DELETE FROM session_features")

    with _safe_points() as interrupt:
        _in_transaction(con, interrupt, reset)
        return sessionize(con, gap_minutes, interrupt)


def update_derived(con: duckdb.DuckDBPyConnection, gap_minutes: float = DEFAULT_GAP_MINUTES) -> DerivedSummary:
    """Features and sessions for every request that lacks them (see the module docstring).

    Ctrl-C is acted on between statements' transactions (see data/interrupts.py: inside DuckDB's
    Python functions or numba it is not safe) and raises :class:`InterruptedDerived`."""
    started = time.perf_counter()
    with _safe_points() as interrupt:
        features = compute_request_features(con, interrupt)
        middle = time.perf_counter()
        interrupt.check()
        touched = sessionize(con, gap_minutes, interrupt)
    total = con.execute("SELECT count(*) FROM sessions").fetchall()[0][0]
    return DerivedSummary(features, touched, total, middle - started, time.perf_counter() - middle)


@contextmanager
def _safe_points():
    """Defer Ctrl-C to the checks; whatever KeyboardInterrupt comes out says which step it stopped."""
    try:
        with DeferredInterrupt() as interrupt:
            yield interrupt
    except InterruptedDerived:
        raise
    except KeyboardInterrupt:
        raise InterruptedDerived() from None
    if interrupt.requested:  # it landed in the last COMMIT: everything is in
        raise InterruptedDerived(done=True)


def _in_transaction(con: duckdb.DuckDBPyConnection, interrupt: DeferredInterrupt | None, work: Callable[[], T]) -> T:
    con.execute("BEGIN TRANSACTION")
    try:
        result = work()
        if interrupt is not None:
            interrupt.check()
        con.execute("COMMIT")
    except BaseException as error:
        rollback(con)
        if was_interrupted(error) and not isinstance(error, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        raise
    return result
