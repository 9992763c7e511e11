"""Cluster runs, clusters with their current label and summary: the queries several pages share."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from waflens.app.state import query, read, table_exists
from waflens.labeling.labels import has_relation

STATUS_ORDER = "CASE p.status WHEN 'new' THEN 0 WHEN 'growing' THEN 1 WHEN 'stable' THEN 2 ELSE 3 END"
BENIGN_LAST = "coalesce(l.verdict = 'benign', false)"   # known good traffic is not what an analyst looks for first
CARRIED_PREFIX = "carried-over:"
# How a table of clusters shows its columns: narrow numbers, short times, room for the label.
CLUSTER_COLUMNS = {
    "cluster_id": st.column_config.NumberColumn("cluster", width="small"),
    "emerging": st.column_config.CheckboxColumn("emerging", width="small"),
    "status": st.column_config.TextColumn("status", width="small"),
    "growth": st.column_config.NumberColumn("growth", format="×%.2f", width="small",
                                            help="sessions now / sessions of the previous run that fall in this "
                                                 "cluster, per hour of window (empty: new)"),
    "n_sessions": st.column_config.NumberColumn("sessions", width="small"),
    "n_clients": st.column_config.NumberColumn("clients", width="small"),
    "n_requests": st.column_config.NumberColumn("requests", width="small"),
    "first_ts": st.column_config.DatetimeColumn("first seen", format="YYYY-MM-DD HH:mm"),
    "last_ts": st.column_config.DatetimeColumn("last seen", format="YYYY-MM-DD HH:mm"),
    "label": st.column_config.TextColumn("label", width="large"),
}


def has_clusters() -> bool:
    return table_exists("cluster_runs") and bool(query("SELECT count(*) AS n FROM cluster_runs").n.iloc[0])


def runs() -> pd.DataFrame:
    return query("""SELECT cluster_run_id, created_at, window_start, window_end, selection, n_sessions, n_selected,
                           n_clusters, n_noise, message FROM cluster_runs ORDER BY cluster_run_id DESC""")


def latest_run() -> int | None:
    if not has_clusters():
        return None
    return int(query("SELECT max(cluster_run_id) AS r FROM cluster_runs").r.iloc[0])


def clusters(run: int) -> pd.DataFrame:
    """The run's clusters, most emerging first (clusters labelled benign last), with their current label and
    latest summary.

    A cluster whose member sessions were all decided by analysts (on this run or earlier
    ones) is ``reviewed`` and shows that decision (``inherited`` when made on another run)."""
    labelled = table_exists("label_events")
    decided = labelled and read(has_relation, "cluster_labels")   # what analysts decided about the sessions, any run
    summarized = table_exists("cluster_summaries")
    label_columns = ("l.family, l.verdict, l.source AS label_source, l.analyst AS label_analyst, "
                     "l.note AS label_note, l.created_at AS labelled_at" if labelled else
                     "NULL AS family, NULL AS verdict, NULL AS label_source, NULL AS label_analyst, "
                     "NULL AS label_note, NULL AS labelled_at")
    label_columns += (", l.n_members, l.n_decided, l.n_labelled, l.reviewed, l.inherited, l.decided_family, "
                      "l.decided_verdict, l.decided_source, l.decided_by, l.decided_at, l.decided_run_id, "
                      "l.decided_cluster_id" if decided else
                      ", NULL AS n_members, NULL AS n_decided, NULL AS n_labelled, "
                      "l.source IS NOT NULL AND l.source <> 'suggested' AS reviewed, FALSE AS inherited, "
                      "NULL AS decided_family, NULL AS decided_verdict, NULL AS decided_source, NULL AS decided_by, "
                      "NULL AS decided_at, NULL AS decided_run_id, NULL AS decided_cluster_id" if labelled else
                      ", NULL AS n_members, NULL AS n_decided, NULL AS n_labelled, FALSE AS reviewed, "
                      "FALSE AS inherited, NULL AS decided_family, NULL AS decided_verdict, NULL AS decided_source, "
                      "NULL AS decided_by, NULL AS decided_at, NULL AS decided_run_id, NULL AS decided_cluster_id")
    summary_columns = "s.summary AS summary_json, s.status AS summary_status" if summarized else \
        "NULL AS summary_json, NULL AS summary_status"
    joins = ""
    if labelled:
        joins += (f" LEFT JOIN {'cluster_labels' if decided else 'current_labels'} l"
                  " ON l.cluster_run_id = p.cluster_run_id AND l.cluster_id = p.cluster_id")
    if summarized:
        joins += """ LEFT JOIN (SELECT * FROM cluster_summaries WHERE cluster_run_id = $run
                                QUALIFY row_number() OVER (PARTITION BY cluster_id ORDER BY created_at DESC) = 1) s
                     ON s.cluster_id = p.cluster_id"""
    return query(
        f"""SELECT p.cluster_id, p.status, p.emerging, p.growth, p.n_sessions, p.n_clients, p.n_requests,
                   p.first_ts, p.last_ts, p.predecessor_run_id, p.predecessor_id, {label_columns}, {summary_columns}
            FROM cluster_profiles p {joins}
            WHERE p.cluster_run_id = $run
            ORDER BY {BENIGN_LAST if labelled else "false"}, p.emerging DESC, {STATUS_ORDER}, p.last_ts DESC NULLS LAST,
                     p.n_sessions DESC, p.cluster_id""",
        {"run": run})


def profile(run: int, cluster: int) -> dict:
    found = query("SELECT profile FROM cluster_profiles WHERE cluster_run_id = $run AND cluster_id = $c",
                  {"run": run, "c": cluster})
    return json.loads(found.profile.iloc[0]) if len(found) else {}


def summary(row) -> dict | None:
    """The stored summary JSON of a cluster row, parsed (None when there is none)."""
    text = row.get("summary_json") if hasattr(row, "get") else None
    if text is None or (isinstance(text, float) and pd.isna(text)):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def label_text(row) -> str:
    """"malicious sqli (confirmed by ana)" — or "unlabelled"."""
    source = row.get("label_source")
    if source is None or pd.isna(source):
        return "unlabelled"
    who = str(row.get("label_analyst") or "")
    if source == "suggested" and who.startswith(CARRIED_PREFIX):
        return f"{row['verdict']} {row['family']} (carried over from {who[len(CARRIED_PREFIX):]}'s label)"
    if flag(row.get("inherited")):
        return (f"{row['verdict']} {row['family']} ({source} by {who} on cluster {int(row['decided_cluster_id'])} "
                f"of run {int(row['decided_run_id'])})")
    return f"{row['verdict']} {row['family']} ({source} by {who})"


def needs_review(table: pd.DataFrame) -> pd.Series:
    """Clusters with sessions no analyst has decided on (in this run or an earlier one): the Label queue."""
    return ~table.reviewed.map(flag).astype(bool) if len(table) else pd.Series([], dtype=bool, index=table.index)


def flag(value) -> bool:
    """A flag from a nullable column (None, NaN or pd.NA count as false)."""
    return value is not None and not pd.isna(value) and bool(value)


def cluster_caption(row) -> str:
    growth = row.get("growth")
    grown = "" if growth is None or pd.isna(growth) else f", ×{growth:.1f}"
    flag = "emerging, " if bool(row.get("emerging")) else ""
    return (f"cluster {int(row['cluster_id'])} — {flag}{row['status']}{grown} — {int(row['n_sessions'])} sessions"
            f" — {label_text(row)}")


def window_text(start, end) -> str:
    """A cluster run's window in words: "all traffic", "traffic from X", "traffic up to Y", "window X to Y"."""
    start = None if start is None or pd.isna(start) else start
    end = None if end is None or pd.isna(end) else end
    if start is None and end is None:
        return "window: all traffic"
    if end is None:
        return f"window: traffic from {start} on"
    if start is None:
        return f"window: traffic before {end}"
    return f"window {start} to {end}"
