"""Retention: delete traffic older than a number of days (personal data is not kept forever).

Requests older than the cut-off go, with their features, the sessions they made up
(and those sessions' cluster memberships) and their quarantine rows (by the source's
ingest time: quarantined records have no trusted timestamp). A session that straddles
the cut-off goes too; its newer requests are put in sessions again by the next
``sessionize`` or ``retrain``. This is ``sources forget``'s removal (data/sources.py),
with its id high-water marks. Sources stay, so the same file is not ingested again;
cluster runs, profiles and labels stay as the history of what was seen then.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import NamedTuple

import duckdb

from waflens.data.errors import InputError
from waflens.data.sources import keep_id_high_water_marks, remove_requests, rollback


class PurgeSummary(NamedTuple):
    cutoff: datetime
    requests: int
    sessions: int
    quarantined: int
    cluster_memberships: int = 0   # rows of session_clusters of the removed sessions
    unsessionized: int = 0         # newer requests of sessions that straddled the cut-off (sessionized again next)


def purge_older_than(con: duckdb.DuckDBPyConnection, days: float, now: datetime | None = None) -> PurgeSummary:
    if not days > 0:
        raise InputError(f"retention must be a positive number of days, got {days}")
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    cutoff = now - timedelta(days=days)
    con.execute("BEGIN TRANSACTION")
    try:
        keep_id_high_water_marks(con)  # a purged request's id must never name a later request (as `sources forget`)
        # whole sessions that ended before the cut-off, and older requests of sessions that straddle it
        con.execute("""CREATE OR REPLACE TEMP TABLE expired_requests AS SELECT request_id FROM requests
                       WHERE ts < $c OR session_id IN (SELECT session_id FROM sessions WHERE end_ts < $c)""",
                    {"c": cutoff})
        requests = con.execute("SELECT count(*) FROM expired_requests").fetchall()[0][0]
        removed = remove_requests(con, "expired_requests")
        con.execute("DROP TABLE expired_requests")
        quarantined = con.execute(
            "SELECT count(*) FROM quarantine WHERE source_id IN (SELECT source_id FROM sources WHERE ingested_at < $c)",
            {"c": cutoff}).fetchall()[0][0]
        con.execute("DELETE FROM quarantine WHERE source_id IN (SELECT source_id FROM sources WHERE ingested_at < $c)",
                    {"c": cutoff})
        con.execute("COMMIT")
    except BaseException:
        rollback(con)
        raise
    return PurgeSummary(cutoff, requests, removed.sessions, quarantined, removed.cluster_memberships,
                        removed.unsessionized)
