"""Retention: delete traffic older than a number of days (personal data is not kept forever).

Requests older than the cut-off go, with their features, the sessions they made up
and their quarantine rows (by the source's ingest time: quarantined records have
no trusted timestamp). Sources stay, so the same file is not ingested again.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import NamedTuple

import duckdb

from data.errors import InputError


class PurgeSummary(NamedTuple):
    cutoff: datetime
    requests: int
    sessions: int
    quarantined: int


def purge_older_than(con: duckdb.DuckDBPyConnection, days: float, now: datetime | None = None) -> PurgeSummary:
    if not days > 0:
        raise InputError(f"retention must be a positive number of days, got {days}")
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    cutoff = now - timedelta(days=days)
    con.execute("BEGIN TRANSACTION")
    try:
        # whole sessions go: a session that ended before the cut-off
        con.execute("CREATE OR REPLACE TEMP TABLE expired_sessions AS SELECT session_id FROM sessions WHERE end_ts < $c",
                    {"c": cutoff})
        con.execute("""CREATE OR REPLACE TEMP TABLE expired_requests AS SELECT request_id FROM requests
                       WHERE ts < $c OR session_id IN (SELECT session_id FROM expired_sessions)""", {"c": cutoff})
        requests = con.execute("SELECT count(*) FROM expired_requests").fetchall()[0][0]
        sessions = con.execute("SELECT count(*) FROM expired_sessions").fetchall()[0][0]
        con.execute("DELETE FROM request_features WHERE request_id IN (SELECT request_id FROM expired_requests)")
        con.execute("DELETE FROM requests WHERE request_id IN (SELECT request_id FROM expired_requests)")
        con.execute("DELETE FROM session_features WHERE session_id IN (SELECT session_id FROM expired_sessions)")
        con.execute("DELETE FROM sessions WHERE session_id IN (SELECT session_id FROM expired_sessions)")
        quarantined = con.execute(
            "SELECT count(*) FROM quarantine WHERE source_id IN (SELECT source_id FROM sources WHERE ingested_at < $c)",
            {"c": cutoff}).fetchall()[0][0]
        con.execute("DELETE FROM quarantine WHERE source_id IN (SELECT source_id FROM sources WHERE ingested_at < $c)",
                    {"c": cutoff})
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return PurgeSummary(cutoff, requests, sessions, quarantined)
