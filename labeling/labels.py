"""Analyst labels: recorded as append-only events, read as "the latest event per cluster".

Nothing is updated or deleted: who said what, when, stays. A label reaches the
cluster's member sessions whose membership probability is at least a threshold,
and their requests, for training (issue E).
"""

from __future__ import annotations

import getpass
from datetime import datetime, timezone
from importlib import resources

import duckdb

from data.db import split_statements
from data.errors import InputError
from labeling.taxonomy import FAMILIES, SOURCES, VERDICTS

DEFAULT_MEMBERSHIP = 0.5


def ensure_label_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the label tables and views if needed; on a read-only connection, do nothing.

    Readers on read-only connections check :func:`has_relation` before reading.
    """
    from clustering.run import ensure_cluster_schema  # the session_labels view reads cluster tables

    if con.execute("SELECT readonly FROM duckdb_databases() WHERE database_name = current_database()").fetchall()[0][0]:
        return
    ensure_cluster_schema(con)
    sql = resources.files("labeling").joinpath("sql", "schema.sql").read_text(encoding="utf-8")
    for statement in split_statements(sql):
        con.execute(statement)


def has_relation(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether a table or view of that name exists (a read-only database may predate it)."""
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = $n", {"n": name}).fetchall()[0][0]
                or con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = $n", {"n": name}).fetchall()[0][0])


def record_label(con: duckdb.DuckDBPyConnection, cluster_run_id: int, cluster_id: int, *, family: str, verdict: str,
                 source: str = "confirmed", analyst: str | None = None, note: str | None = None) -> int:
    """Append a label event after checking the cluster exists and the values are in the taxonomy."""
    if family not in FAMILIES:
        raise InputError(f"unknown family {family!r}: use one of {', '.join(FAMILIES)}")
    if verdict not in VERDICTS:
        raise InputError(f"unknown verdict {verdict!r}: use one of {', '.join(VERDICTS)}")
    if source not in SOURCES:
        raise InputError(f"unknown source {source!r}: use one of {', '.join(SOURCES)}")
    ensure_label_schema(con)
    exists = con.execute("SELECT count(*) FROM cluster_profiles WHERE cluster_run_id = $r AND cluster_id = $c",
                         {"r": cluster_run_id, "c": cluster_id}).fetchall()[0][0]
    if not exists:
        raise InputError(f"cluster {cluster_id} of run {cluster_run_id} does not exist: see `waflens cluster`")
    return con.execute(
        """INSERT INTO label_events (cluster_run_id, cluster_id, family, verdict, source, analyst, note, created_at)
           VALUES ($r, $c, $family, $verdict, $source, $analyst, $note, $at) RETURNING label_event_id""",
        {"r": cluster_run_id, "c": cluster_id, "family": family, "verdict": verdict, "source": source,
         "analyst": analyst or getpass.getuser(), "note": note,
         "at": datetime.now(timezone.utc).replace(tzinfo=None)}).fetchall()[0][0]


def latest_run(con: duckdb.DuckDBPyConnection) -> int:
    found = con.execute("SELECT max(cluster_run_id) FROM cluster_runs").fetchall()[0][0] \
        if con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'cluster_runs'").fetchall()[0][0] else None
    if found is None:
        raise InputError("no cluster run yet: run `waflens cluster` first")
    return found


def session_labels(con: duckdb.DuckDBPyConnection, cluster_run_id: int, min_probability: float = DEFAULT_MEMBERSHIP):
    """(session_id, family, verdict, source) of every member session with a current, non-rejected label."""
    ensure_label_schema(con)
    return con.execute(
        """SELECT c.session_id, l.family, l.verdict, l.source
           FROM session_clusters c JOIN current_labels l USING (cluster_run_id, cluster_id)
           WHERE c.cluster_run_id = $r AND c.probability >= $p AND l.source <> 'rejected'
           ORDER BY c.session_id""", {"r": cluster_run_id, "p": min_probability}).fetchall()
