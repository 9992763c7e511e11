"""Sessions and features: the derived tables, brought up to date after every ingest.

Both steps are incremental and idempotent: request features are computed for
requests that have none, sessions for requests that have none (plus the sessions
those requests may join or bridge), session features for the sessions touched.
A crash between steps is repaired by the next run.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import duckdb

from data.db import run_sql_file
from data.errors import InputError
from data.feature_spec import sql_parameters

DEFAULT_GAP_MINUTES = 30.0


class DerivedSummary(NamedTuple):
    request_features: int
    sessions_touched: int
    sessions_total: int
    seconds_features: float
    seconds_sessionize: float


def compute_request_features(con: duckdb.DuckDBPyConnection) -> int:
    """Request features for every request that has none yet; returns how many."""
    after = con.execute("SELECT coalesce(max(request_id), 0) FROM request_features").fetchall()[0][0]
    before = con.execute("SELECT count(*) FROM request_features").fetchall()[0][0]
    con.execute("BEGIN TRANSACTION")
    try:
        run_sql_file(con, "request_features", {"after_request_id": after, **sql_parameters()})
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return con.execute("SELECT count(*) FROM request_features").fetchall()[0][0] - before


def sessionize(con: duckdb.DuckDBPyConnection, gap_minutes: float = DEFAULT_GAP_MINUTES) -> int:
    """Assign sessions to unsessionized requests and refresh touched session features."""
    if not gap_minutes > 0:
        raise InputError(f"session gap must be positive minutes, got {gap_minutes}")
    compute_request_features(con)
    con.execute("BEGIN TRANSACTION")
    try:
        run_sql_file(con, "sessionize", {"gap_seconds": float(gap_minutes) * 60.0})
        run_sql_file(con, "session_features")
        touched = con.execute("SELECT count(*) FROM touched_sessions").fetchall()[0][0]
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return touched


def resessionize(con: duckdb.DuckDBPyConnection, gap_minutes: float = DEFAULT_GAP_MINUTES,
                 session_key: str | None = None) -> int:
    """Rebuild every session (after changing the gap or the session key)."""
    con.execute("BEGIN TRANSACTION")
    try:
        if session_key is not None:
            con.execute("UPDATE requests SET client_key = waflens_client_key(client_ip, user_agent, session_cookie, $m)",
                        {"m": session_key})
        con.execute("UPDATE requests SET session_id = NULL")
        con.execute("DELETE FROM sessions")
        con.execute("DELETE FROM session_features")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return sessionize(con, gap_minutes)


def update_derived(con: duckdb.DuckDBPyConnection, gap_minutes: float = DEFAULT_GAP_MINUTES) -> DerivedSummary:
    started = time.perf_counter()
    features = compute_request_features(con)
    middle = time.perf_counter()
    touched = sessionize(con, gap_minutes)
    total = con.execute("SELECT count(*) FROM sessions").fetchall()[0][0]
    return DerivedSummary(features, touched, total, middle - started, time.perf_counter() - middle)
