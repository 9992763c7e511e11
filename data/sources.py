"""Ingested files (``sources``): list them, and forget one so that it can be ingested again.

A file ingested with the wrong ``--format`` stays recorded by its sha256, and a
second ingest of it adds nothing; forgetting removes everything that came from it:
its requests and their features, its quarantine rows and its ingest record.
Sessions that held any of its requests go too, with their features and their
membership in cluster runs; the other sources' requests of those sessions are left
unsessionized, for the next ``sessionize`` (or ``retrain``) to put in sessions
again. Cluster runs, their profiles and the analysts' labels stay as the history
of what was seen then. Ids are never reused (a high-water mark in ``schema_info``),
so a forgotten request's id can never name another request later.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import duckdb

from waflens.data.errors import InputError

_FLOORS = {"requests": ("request_id", "request_id_floor"), "sources": ("source_id", "source_id_floor")}


class ForgetSummary(NamedTuple):
    source_id: int
    name: str
    path: str
    requests: int
    quarantined: int
    sessions: int              # sessions removed (they held a request of the source)
    cluster_memberships: int   # rows of session_clusters removed with them
    cluster_runs: int          # runs those memberships belonged to
    unsessionized: int         # other sources' requests that lost their session (sessionized again next)


def list_sources(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Every ingested file, newest first, with what it gave."""
    columns = ("source_id", "name", "path", "format", "log_format", "records", "parsed", "quarantined",
               "pseudonymized", "ingested_at", "sha256")
    rows = con.execute(f"SELECT {', '.join(columns)} FROM sources ORDER BY source_id DESC").fetchall()
    return [dict(zip(columns, row)) for row in rows]


def find_source(con: duckdb.DuckDBPyConnection, which: str) -> int:
    """A source id from an id, a sha256 (or a unique prefix of 8+ hex digits), a path or a unique name."""
    text = which.strip()
    if text.isdigit():
        rows = con.execute("SELECT source_id FROM sources WHERE source_id = $id", {"id": int(text)}).fetchall()
    else:
        rows = con.execute(
            """SELECT source_id FROM sources
               WHERE (length($w) >= 8 AND starts_with(sha256, lower($w))) OR path = $w OR path = $resolved
                     OR name = $w""",
            {"w": text, "resolved": str(Path(text).resolve())}).fetchall()
    if not rows:
        raise InputError(f"no ingested source matches {which!r}: see `waflens sources list` for ids")
    if len(rows) > 1:
        raise InputError(f"{len(rows)} sources match {which!r}: pass the source id (see `waflens sources list`)")
    return int(rows[0][0])


def next_id(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """The next id of ``requests`` or ``sources``: past every id ever used, forgotten ones included."""
    column, key = _FLOORS[table]
    return con.execute(
        f"""SELECT greatest(coalesce(max({column}), 0),
                            coalesce((SELECT max(try_cast(value AS BIGINT)) FROM schema_info WHERE key = $key), 0)) + 1
            FROM {table}""", {"key": key}).fetchall()[0][0]


def forget_in_transaction(con: duckdb.DuckDBPyConnection, source_id: int) -> ForgetSummary:
    """Remove a source and what depends on it; the caller owns the transaction (see the module docstring)."""
    found = con.execute("SELECT name, path FROM sources WHERE source_id = $s", {"s": source_id}).fetchall()
    if not found:
        raise InputError(f"no ingested source {source_id}: see `waflens sources list`")
    name, path = found[0]
    keep_id_high_water_marks(con)
    con.execute("CREATE OR REPLACE TEMP TABLE forgotten_requests AS SELECT request_id FROM requests "
                "WHERE source_id = $s", {"s": source_id})
    requests = _count(con, "SELECT count(*) FROM forgotten_requests")
    quarantined = _count(con, "SELECT count(*) FROM quarantine WHERE source_id = $s", source_id)
    dropped = remove_requests(con, "forgotten_requests")
    con.execute("DELETE FROM quarantine WHERE source_id = $s", {"s": source_id})
    con.execute("DELETE FROM sources WHERE source_id = $s", {"s": source_id})
    con.execute("DROP TABLE forgotten_requests")
    return ForgetSummary(source_id, name, path, requests, quarantined, *dropped)


def keep_id_high_water_marks(con: duckdb.DuckDBPyConnection) -> None:
    """Record the largest request and source ids ever used before rows go, so that no id is handed out twice."""
    for table, (_, key) in _FLOORS.items():
        con.execute("""INSERT INTO schema_info SELECT $key, CAST($value AS VARCHAR)
                       ON CONFLICT (key) DO UPDATE SET value = CAST(greatest(try_cast(value AS BIGINT), $value) AS VARCHAR)""",
                    {"key": key, "value": next_id(con, table) - 1})


class RemovedSessions(NamedTuple):
    sessions: int              # sessions removed (they held a removed request)
    cluster_memberships: int   # rows of session_clusters removed with them
    cluster_runs: int          # runs those memberships belonged to
    unsessionized: int         # remaining requests that lost their session (sessionized again next)


def remove_requests(con: duckdb.DuckDBPyConnection, table: str) -> RemovedSessions:
    """Delete the requests whose ids the temp table ``table`` lists, with their features; every session that held
    one goes too (features, cluster memberships) and its other requests wait for the next ``sessionize``. The
    caller owns the transaction and should call :func:`keep_id_high_water_marks` first."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE removed_sessions AS SELECT DISTINCT session_id FROM requests "
                f"WHERE request_id IN (SELECT request_id FROM {table}) AND session_id IS NOT NULL")
    sessions = _count(con, "SELECT count(*) FROM removed_sessions")
    con.execute(f"DELETE FROM request_features WHERE request_id IN (SELECT request_id FROM {table})")
    con.execute(f"DELETE FROM requests WHERE request_id IN (SELECT request_id FROM {table})")
    unsessionized = _count(con, "SELECT count(*) FROM requests WHERE session_id IN (SELECT session_id FROM "
                                "removed_sessions)")
    con.execute("UPDATE requests SET session_id = NULL WHERE session_id IN (SELECT session_id FROM removed_sessions)")
    con.execute("DELETE FROM session_features WHERE session_id IN (SELECT session_id FROM removed_sessions)")
    con.execute("DELETE FROM sessions WHERE session_id IN (SELECT session_id FROM removed_sessions)")
    memberships = runs = 0
    if _has_table(con, "session_clusters"):
        memberships, runs = con.execute(
            """SELECT count(*), count(DISTINCT cluster_run_id) FROM session_clusters
               WHERE session_id IN (SELECT session_id FROM removed_sessions)""").fetchall()[0]
        con.execute("DELETE FROM session_clusters WHERE session_id IN (SELECT session_id FROM removed_sessions)")
    con.execute("DROP TABLE removed_sessions")
    return RemovedSessions(sessions, int(memberships), int(runs), unsessionized)


def forget_source(con: duckdb.DuckDBPyConnection, source_id: int) -> ForgetSummary:
    """Forget one source in one transaction: all of it goes, or nothing does."""
    con.execute("BEGIN TRANSACTION")
    try:
        summary = forget_in_transaction(con, source_id)
        con.execute("COMMIT")
    except BaseException:
        rollback(con)
        raise
    return summary


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """ROLLBACK that never hides the error being handled (DuckDB may have ended the transaction already)."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass


def _count(con: duckdb.DuckDBPyConnection, sql: str, source_id: int | None = None) -> int:
    return int(con.execute(sql, {"s": source_id} if source_id is not None else None).fetchall()[0][0])


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = $n AND NOT temporary",
                            {"n": name}).fetchall()[0][0])
