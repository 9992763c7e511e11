"""Emerging patterns: link each cluster to its predecessor in the previous run, and rate its growth.

The previous run is the latest earlier run with the same selection whose window
ends at or before this one starts (a windowed run never follows an unbounded one);
a run without a lower bound follows the latest earlier run. Clusters are matched by the Jaccard similarity of their signatures — the
sets of their top path templates, parameter names and user agents — which do not
depend on either run's feature scaling. Sizes are compared per hour of window when
both windows are bounded.

Status: ``new`` (no predecessor at similarity >= 0.25), ``growing`` (>= 1.5x),
``fading`` (<= 0.67x), else ``stable``. Emerging = new, or growing at >= 2x; new
clusters that started most recently come first. A run with no previous run compares
the second half of its own time span with the first (a cluster with no session in
the first half is new).
"""

from __future__ import annotations

import json

import duckdb

from clustering.profiles import profile_json

MATCH_SIMILARITY = 0.25
GROWING, FADING, EMERGING_GROWTH = 1.5, 0.67, 2.0


def signature(profile: dict) -> set[str]:
    return ({f"path:{p}" for p, _ in profile["top_paths"]} | {f"param:{p}" for p, _ in profile["top_params"]}
            | {f"ua:{u}" for u, _ in profile["top_user_agents"][:3]})


def _jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def _hours(start, end) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds() / 3600.0, 1e-9)


def link_to_previous_run(con: duckdb.DuckDBPyConnection, run_id: int, options, profiles: list[dict]) -> list[int]:
    """Store the profiles with status and growth; return the emerging cluster ids, most emerging first."""
    previous = con.execute(
        """SELECT cluster_run_id, window_start, window_end FROM cluster_runs
           WHERE cluster_run_id < $run AND selection = $select
             AND ($start IS NULL OR (window_end IS NOT NULL AND window_end <= $start))
           ORDER BY coalesce(window_end, window_start) DESC NULLS LAST, cluster_run_id DESC LIMIT 1""",
        {"run": run_id, "select": options.select, "start": options.since}).fetchall()
    predecessors: list[tuple[int, int, set]] = []
    scale = 1.0
    prev_id = None
    if previous:
        prev_id, prev_start, prev_end = previous[0]
        for cluster_id, n, text in con.execute(
                "SELECT cluster_id, n_sessions, profile FROM cluster_profiles WHERE cluster_run_id = $r", {"r": prev_id}).fetchall():
            predecessors.append((cluster_id, n, signature(json.loads(text))))
        now_hours, then_hours = _hours(options.since, options.until), _hours(prev_start, prev_end)
        if now_hours and then_hours:
            scale = then_hours / now_hours
    halves = _halves(con, run_id) if not previous else {}
    emerging = []
    for profile in profiles:
        mine = signature(profile)
        best = max(((cid, n, _jaccard(mine, sig)) for cid, n, sig in predecessors), key=lambda t: t[2], default=None)
        predecessor = None
        if not previous:  # the first run: compare the second half of its own span with the first
            early, late = halves.get(profile["cluster_id"], (0, 0))
            growth = None if early == 0 else late / early
            status = "new" if early == 0 else _status(growth)
        elif best is None or best[2] < MATCH_SIMILARITY:
            status, growth = "new", None
        else:
            predecessor = best[0]
            growth = profile["n_sessions"] * scale / best[1]
            status = _status(growth)
        is_emerging = status == "new" or (growth is not None and growth >= EMERGING_GROWTH)
        if is_emerging:
            emerging.append((profile["cluster_id"], growth if growth is not None else float("inf"), profile["n_sessions"]))
        con.execute(
            """INSERT INTO cluster_profiles VALUES ($run, $cluster, $n, $clients, $requests, $first, $last, $status,
                                                    $prev_run, $prev, $growth, $emerging, $profile)""",
            {"run": run_id, "cluster": profile["cluster_id"], "n": profile["n_sessions"], "clients": profile["n_clients"],
             "requests": profile["n_requests"], "first": profile["first_ts"], "last": profile["last_ts"],
             "status": status, "prev_run": prev_id if predecessor is not None else None, "prev": predecessor,
             "growth": growth, "emerging": is_emerging, "profile": profile_json(profile)})
    # new before growing; among new ones the most recent start first (what began late is what emerges)
    first_ts = {p["cluster_id"]: p["first_ts"] for p in profiles}
    emerging.sort(key=lambda item: (-item[1], -(first_ts[item[0]].timestamp() if first_ts[item[0]] else 0), -item[2]))
    return [cluster for cluster, _, _ in emerging]


def _status(growth: float) -> str:
    return "growing" if growth >= GROWING else "fading" if growth <= FADING else "stable"


def _halves(con: duckdb.DuckDBPyConnection, run_id: int) -> dict[int, tuple[int, int]]:
    """Per cluster: sessions starting in the first and in the second half of the run's time span."""
    rows = con.execute(
        """WITH member AS (
               SELECT c.cluster_id, s.start_ts FROM session_clusters c JOIN sessions s USING (session_id)
               WHERE c.cluster_run_id = $run AND s.start_ts IS NOT NULL),
           span AS (SELECT min(start_ts) AS lo, max(start_ts) AS hi FROM member)
           SELECT cluster_id,
                  count(*) FILTER (WHERE start_ts < lo + (hi - lo) / 2),
                  count(*) FILTER (WHERE start_ts >= lo + (hi - lo) / 2)
           FROM member, span WHERE cluster_id >= 0 GROUP BY 1""", {"run": run_id}).fetchall()
    return {cluster: (early, late) for cluster, early, late in rows}
