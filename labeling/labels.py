"""Analyst labels: recorded as append-only events on a cluster of a run; they judge its sessions.

Nothing is updated or deleted: who said what, when, stays. An analyst's decision
(confirmed, edited, rejected) reaches the cluster's member sessions of that run
(membership probability >= 0.5) and stays with them across cluster runs: the
latest decision per session wins (views in ``sql/schema.sql``). A new run's
clusters therefore show what the analysts already decided about their sessions,
only clusters with undecided sessions need review, and training sees every
confirmed session whichever run it was confirmed on (issue E).
"""

from __future__ import annotations

import getpass
from datetime import datetime, timezone
from importlib import resources

import duckdb

from waflens.clustering.schema import ensure_cluster_schema
from waflens.data.db import split_statements
from waflens.data.errors import InputError
from waflens.labeling.taxonomy import FAMILIES, SOURCES, VERDICTS

DEFAULT_MEMBERSHIP = 0.5


def ensure_label_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the label tables and views if needed; on a read-only connection, do nothing.

    Readers on read-only connections check :func:`has_relation` before reading.
    """
    if con.execute("SELECT readonly FROM duckdb_databases() WHERE database_name = current_database()").fetchall()[0][0]:
        return
    ensure_cluster_schema(con)   # the session_labels view reads the cluster tables
    sql = resources.files("waflens.labeling").joinpath("sql", "schema.sql").read_text(encoding="utf-8")
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


def _sql(name: str) -> str:
    return resources.files("waflens.labeling").joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")


def _dicts(cursor) -> list[dict]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def cluster_label(con: duckdb.DuckDBPyConnection, cluster_run_id: int, cluster_id: int) -> dict | None:
    """The label a cluster shows, with how many of its members are decided (a row of ``cluster_labels``)."""
    ensure_label_schema(con)
    found = _dicts(con.execute("SELECT * FROM cluster_labels WHERE cluster_run_id = $r AND cluster_id = $c",
                               {"r": cluster_run_id, "c": cluster_id}))
    return found[0] if found else None


def rejected_families(con: duckdb.DuckDBPyConnection, cluster_run_id: int, cluster_id: int) -> dict[str, dict]:
    """Families rejected for the cluster's member sessions (on any run) and not confirmed for them since:
    family -> {sessions, analyst, rejected_at, cluster_run_id, cluster_id} of the latest rejection."""
    ensure_label_schema(con)
    rows = _dicts(con.execute(_sql("rejected_families"), {"run": cluster_run_id, "cluster": cluster_id}))
    return {row.pop("family"): row for row in rows}


def carried_label(con: duckdb.DuckDBPyConnection, cluster_run_id: int, cluster_id: int,
                  exclude: tuple[str, ...] | list[str] = ()) -> dict | None:
    """The analyst label most of the cluster's decided members carry (families in ``exclude`` left out)."""
    ensure_label_schema(con)
    found = _dicts(con.execute(_sql("carried_label"), {"run": cluster_run_id, "cluster": cluster_id,
                                                        "rejected": list(exclude)}))
    return found[0] if found else None


def label_history(con: duckdb.DuckDBPyConnection, cluster_run_id: int, cluster_id: int) -> list[dict]:
    """A cluster's label events, with the decisions made on clusters of other runs that reached its sessions."""
    ensure_label_schema(con)
    exists = con.execute("SELECT count(*) FROM cluster_profiles WHERE cluster_run_id = $r AND cluster_id = $c",
                         {"r": cluster_run_id, "c": cluster_id}).fetchall()[0][0]
    if not exists:
        raise InputError(f"cluster {cluster_id} of run {cluster_run_id} does not exist: see `waflens cluster` "
                         "(or pass --run)")
    return _dicts(con.execute(_sql("label_history"), {"run": cluster_run_id, "cluster": cluster_id}))


def latest_run(con: duckdb.DuckDBPyConnection) -> int:
    found = con.execute("SELECT max(cluster_run_id) FROM cluster_runs").fetchall()[0][0] \
        if con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'cluster_runs'").fetchall()[0][0] else None
    if found is None:
        raise InputError("no cluster run yet: run `waflens cluster` first")
    return found


def session_labels(con: duckdb.DuckDBPyConnection, cluster_run_id: int, min_probability: float = DEFAULT_MEMBERSHIP):
    """(session_id, family, verdict, source) of the run's member sessions whose cluster's own current label
    is not a rejection: what was said about this run's clusters (``session_labels`` is what sessions carry)."""
    ensure_label_schema(con)
    return con.execute(
        """SELECT c.session_id, l.family, l.verdict, l.source
           FROM session_clusters c JOIN current_labels l USING (cluster_run_id, cluster_id)
           WHERE c.cluster_run_id = $r AND c.probability >= $p AND l.source <> 'rejected'
           ORDER BY c.session_id""", {"r": cluster_run_id, "p": min_probability}).fetchall()
