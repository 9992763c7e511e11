"""Emerging patterns: link each cluster to its predecessor in the previous run, and rate its growth.

The previous run is the latest earlier run with the same selection whose window
ends at or before this one starts (a windowed run never follows an unbounded one);
a run without a lower bound follows the latest earlier run.

What a cluster looked like before is measured, not guessed from names: the previous
run's sessions are placed in this run's clusters, in the same fit as the run itself, by
the rule that assigns new sessions (:func:`waflens.clustering.assign.place`). A cluster's
*earlier size* is how many of them it receives, its predecessor the previous cluster
most of those came from. This survives merges and splits: a campaign that hid in a
mixed cluster last window and now forms clusters of its own is still seen to grow.
Sizes are compared per hour of window when both windows are bounded.

Status: ``new`` when it has no predecessor — no earlier session lands in it, they were
all noise then, or it split off a cluster whose main part carries on elsewhere (a
pattern the analyst has not seen on its own) —, else by growth: ``growing`` (>= 1.5x),
``fading`` (<= 0.67x), ``stable``. Growth is reported for new clusters too, when
earlier sessions landed in them. Emerging = new, or growing at >= 2x; new clusters that
started most recently come first. In a first run nothing came before: every cluster
is new, those that started last first.

Ids carry on: a cluster with a predecessor is stored under its predecessor's id, so the
analyst finds a pattern under the same number run after run; any other cluster gets an id
above every id a run has used (a new pattern never takes the number of one that vanished).
In a split only one part has the predecessor, so only it keeps the id. Noise stays -1.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import NamedTuple

import duckdb
import numpy as np

from waflens.clustering.profiles import profile_json

GROWING, FADING, EMERGING_GROWTH = 1.5, 0.67, 2.0


def _hours(start, end) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds() / 3600.0, 1e-9)


class PreviousRun(NamedTuple):
    cluster_run_id: int
    window_start: datetime | None
    window_end: datetime | None
    clusters: dict[int, int]      # session id -> its cluster then (-1 noise), for sessions that still exist


def previous_run(con: duckdb.DuckDBPyConnection, options) -> PreviousRun | None:
    """The run a new run with these options follows (see the module docstring), or None."""
    found = con.execute(
        """SELECT cluster_run_id, window_start, window_end FROM cluster_runs
           WHERE selection = $select AND ($start IS NULL OR (window_end IS NOT NULL AND window_end <= $start))
           ORDER BY coalesce(window_end, window_start) DESC NULLS LAST, cluster_run_id DESC LIMIT 1""",
        {"select": options.select, "start": options.since}).fetchall()
    if not found:
        return None
    run_id, start, end = found[0]
    clusters = dict(con.execute(
        """SELECT c.session_id, c.cluster_id FROM session_clusters c JOIN sessions s USING (session_id)
           WHERE c.cluster_run_id = $r ORDER BY c.session_id""", {"r": run_id}).fetchall())
    return PreviousRun(run_id, start, end, clusters)


def link_to_previous_run(con: duckdb.DuckDBPyConnection, run_id: int, options, profiles: list[dict],
                         previous: PreviousRun | None, placed: dict[int, int]) -> list[int]:
    """Store the profiles with status and growth; return the emerging cluster ids, most emerging first.
    ``placed``: the cluster of this run each of the previous run's sessions falls in (-1: none)."""
    earlier: dict[int, tuple[int, int | None]] = {}
    scale = 1.0
    prev_id = None
    if previous:
        prev_id = previous.cluster_run_id
        earlier = _earlier_sizes(previous.clusters, placed, {p["cluster_id"]: p["n_sessions"] for p in profiles})
        now_hours, then_hours = _hours(options.since, options.until), _hours(previous.window_start, previous.window_end)
        if now_hours and then_hours:
            scale = then_hours / now_hours
    emerging = []
    for profile in profiles:
        count, predecessor = earlier.get(profile["cluster_id"], (0, None))
        growth = profile["n_sessions"] * scale / count if count else None
        status = "new" if predecessor is None else _status(growth)
        is_emerging = status == "new" or (growth is not None and growth >= EMERGING_GROWTH)
        if is_emerging:
            emerging.append((profile["cluster_id"], status == "new", growth or 0.0, profile["n_sessions"]))
        con.execute(
            """INSERT INTO cluster_profiles VALUES ($run, $cluster, $n, $clients, $requests, $first, $last, $status,
                                                    $prev_run, $prev, $growth, $emerging, $profile)""",
            {"run": run_id, "cluster": profile["cluster_id"], "n": profile["n_sessions"], "clients": profile["n_clients"],
             "requests": profile["n_requests"], "first": profile["first_ts"], "last": profile["last_ts"],
             "status": status, "prev_run": prev_id if predecessor is not None else None, "prev": predecessor,
             "growth": growth, "emerging": is_emerging, "profile": profile_json(profile)})
    # new before growing; among new ones the most recent start first (what began late is what emerges),
    # among growing ones the fastest first
    first_ts = {p["cluster_id"]: p["first_ts"] for p in profiles}

    def rank(item):
        cluster, new, growth, n = item
        started = first_ts[cluster].timestamp() if first_ts[cluster] else 0.0
        return (0, -started, -n) if new else (1, -growth, -n)

    return [item[0] for item in sorted(emerging, key=rank)]


def max_cluster_id(con: duckdb.DuckDBPyConnection) -> int:
    """The highest cluster id any run has used (-1: none); profiles outlive forgotten sessions' memberships."""
    return con.execute("""SELECT greatest(coalesce((SELECT max(cluster_id) FROM cluster_profiles), -1),
                                          coalesce((SELECT max(cluster_id) FROM session_clusters), -1))"""
                       ).fetchall()[0][0]


def carried_ids(labels, before: dict[int, int], placed: dict[int, int], max_used: int) -> dict[int, int]:
    """The id each of this run's clusters (HDBSCAN's ``labels``) is stored under: its predecessor's id when it has
    one, else the next id above ``max_used``. ``before``: the previous run's sessions and their clusters then;
    ``placed``: those sessions in this run's clusters (both empty in a first run)."""
    clusters, counts = np.unique(np.asarray(labels)[np.asarray(labels) >= 0], return_counts=True)
    earlier = _earlier_sizes(before, placed, dict(zip(clusters.tolist(), counts.tolist())))
    ids, fresh = {}, max_used
    for cluster in clusters.tolist():
        predecessor = earlier.get(cluster, (0, None))[1]
        if predecessor is None:
            fresh += 1
            ids[cluster] = fresh
        else:
            ids[cluster] = predecessor
    return ids


def _status(growth: float) -> str:
    return "growing" if growth >= GROWING else "fading" if growth <= FADING else "stable"


def _earlier_sizes(before: dict[int, int], placed: dict[int, int],
                   sizes: dict[int, int] | None = None) -> dict[int, tuple[int, int | None]]:
    """Per cluster of this run: (sessions of the previous run placed in it, its predecessor). The predecessor is
    the previous cluster most of them were in, if this cluster is where most of that cluster's sessions went
    (a tie: the larger cluster now, then the smaller id); None when they were noise there, or when this cluster
    split off a cluster that carries on elsewhere. ``sizes``: sessions per cluster of this run."""
    sizes = sizes or {}
    came_from: dict[int, Counter] = {}
    went_to: dict[int, Counter] = {}
    for session, cluster in placed.items():
        if cluster >= 0 and session in before:
            came_from.setdefault(cluster, Counter())[before[session]] += 1
            went_to.setdefault(before[session], Counter())[cluster] += 1
    out = {}
    for cluster, sources in came_from.items():
        known = sorted(((n, c) for c, n in sources.items() if c >= 0), reverse=True)
        predecessor = known[0][1] if known else None
        if predecessor is not None:
            heir = max(went_to[predecessor].items(), key=lambda t: (t[1], sizes.get(t[0], 0), -t[0]))[0]
            if heir != cluster:
                predecessor = None
        out[cluster] = (sum(sources.values()), predecessor)
    return out
