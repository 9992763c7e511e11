"""``waflens cluster``: HDBSCAN over (suspicious) sessions of a window, stored as a cluster run.

A run stores its parameters, window, timings, every clustered session's cluster
(-1 for noise), membership probability, GLOSH outlier score and map coordinates,
and one profile per cluster (see :mod:`waflens.clustering.profiles`), linked to the
previous run's clusters (see :mod:`waflens.clustering.emerging`), whose ids carry on.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Collection, NamedTuple

import duckdb
import numpy as np

from waflens.data.errors import InputError
from waflens.data.session_matrix import session_feature_matrix, session_feature_rows
from waflens.clustering.matrix import build_matrix
from waflens.clustering.reduction import HDBSCAN_DIMENSIONS, reduce_for_hdbscan
from waflens.clustering.schema import ensure_cluster_schema
from waflens.clustering.select import suspicious_mask


@dataclass
class ClusterOptions:
    since: datetime | None = None
    until: datetime | None = None
    min_cluster_size: int = 10
    min_samples: int | None = None       # default: min(min_cluster_size, 5)
    select: str = "suspicious"           # suspicious | all
    svd_components: int = 16
    # HDBSCAN's cluster_selection_epsilon, in the matrix's robust-scaled units: clusters closer than this
    # merge. 1.5 joins the sub-behaviours of one campaign (e.g. stuffing with and without a GET /login
    # first) that plain EOM splits; on generated traffic it lifts ARI over attack sessions 0.59 -> 0.99.
    merge_distance: float = 1.5
    seed: int = 0
    # PCA components HDBSCAN sees beside the payload view (waflens.clustering.reduction); stored with the run so
    # that placing sessions in it later (waflens.clustering.assign) rebuilds the same space
    hdbscan_dimensions: int = HDBSCAN_DIMENSIONS


class RunSummary(NamedTuple):
    cluster_run_id: int
    n_sessions: int
    n_selected: int
    n_clusters: int
    n_noise: int
    emerging: list[int]
    message: str | None
    seconds: dict


def cluster_sessions(con: duckdb.DuckDBPyConnection, options: ClusterOptions | None = None,
                     allowlisted: Collection[int] = ()) -> RunSummary:
    """Cluster the window's sessions and store the run; a run with no clusters says why.

    ``allowlisted``: ids of known good sessions, left out of a ``suspicious`` selection. The caller reads
    them (``waflens.labeling.allowlist.allowlisted_sessions``; ``waflens.pipeline.clustering`` does):
    the allowlist is the analysts' decision, downstream of clustering."""
    from waflens.clustering.assign import place
    from waflens.clustering.emerging import carried_ids, link_to_previous_run, max_cluster_id, previous_run
    from waflens.clustering.profiles import build_profiles

    options = options or ClusterOptions()
    if options.select not in ("suspicious", "all"):
        raise InputError(f"unknown selection {options.select!r}: use suspicious or all")
    if options.min_cluster_size < 2:
        raise InputError("--min-cluster-size must be at least 2")
    if options.hdbscan_dimensions < 1:
        raise InputError(f"hdbscan_dimensions {options.hdbscan_dimensions} must be at least 1")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    ensure_cluster_schema(con)
    session_ids, numeric = session_feature_matrix(
        con, "($since IS NULL OR s.start_ts >= $since) AND ($until IS NULL OR s.start_ts < $until)",
        {"since": options.since, "until": options.until})
    numeric = np.nan_to_num(numeric, nan=0.0, posinf=0.0, neginf=0.0)  # a defined value for every feature
    mask = suspicious_mask(numeric) if options.select == "suspicious" else np.ones(len(session_ids), dtype=bool)
    if options.select == "suspicious" and len(allowlisted):  # known good traffic stays out of alerts
        mask &= ~np.isin(session_ids, np.fromiter(allowlisted, dtype=np.int64, count=len(allowlisted)))
    selected_ids, selected = session_ids[mask], numeric[mask]
    previous = previous_run(con, options)
    before_ids = np.fromiter(previous.clusters, dtype=np.int64) if previous else np.zeros(0, dtype=np.int64)
    before_ids = before_ids[~np.isin(before_ids, selected_ids)]  # sessions in both runs need no placing
    timings["load"] = time.perf_counter() - started

    labels = np.full(len(selected_ids), -1, dtype=np.int64)
    probabilities = np.zeros(len(selected_ids))
    outliers = np.zeros(len(selected_ids))
    coordinates = np.zeros((len(selected_ids), 2))
    message = None
    placed: dict[int, int] = {}   # the previous run's sessions -> this run's clusters
    if len(session_ids) == 0:
        message = "no sessions in the window"
    elif len(selected_ids) < options.min_cluster_size:
        message = (f"{len(selected_ids)} sessions selected, fewer than min-cluster-size {options.min_cluster_size}: "
                   "all are noise (lower --min-cluster-size or widen the window)")
    else:
        step = time.perf_counter()
        # the previous run's sessions go through the same fitted transforms, to be placed in this run's clusters
        matrix, before = build_matrix(
            con, selected_ids, selected, options.svd_components, options.seed,
            extra_ids=before_ids if len(before_ids) else None,
            extra_numeric=session_feature_rows(con, before_ids) if len(before_ids) else None)
        X, before = reduce_for_hdbscan(matrix.X, options.seed, before, matrix.names, options.hdbscan_dimensions)
        timings["matrix"] = time.perf_counter() - step
        step = time.perf_counter()
        labels, probabilities, outliers = _hdbscan(X, options)
        timings["hdbscan"] = time.perf_counter() - step
        coordinates = _map_coordinates(matrix.X, options.seed)
        if labels.max() < 0:
            message = "no dense group found: every selected session is noise"
        elif previous:
            step = time.perf_counter()
            now = dict(zip(selected_ids.tolist(), labels.tolist()))
            placed = {s: now[s] for s in previous.clusters if s in now}   # in both runs: this run's label
            if len(before_ids):
                placed.update(zip(before_ids.tolist(), place(X, labels, before).tolist()))
            timings["placing"] = time.perf_counter() - step
        if labels.max() >= 0:  # a pattern keeps its id from run to run (waflens.clustering.emerging)
            ids = carried_ids(labels, previous.clusters if previous else {}, placed, max_cluster_id(con))
            labels = np.array([ids.get(c, -1) for c in labels.tolist()], dtype=np.int64)
            placed = {s: ids.get(c, -1) for s, c in placed.items()}

    run_id = con.execute("SELECT coalesce(max(cluster_run_id), 0) + 1 FROM cluster_runs").fetchall()[0][0]
    n_clusters = len(np.unique(labels[labels >= 0]))
    params = {**asdict(options), "since": _iso(options.since), "until": _iso(options.until),
              "min_samples": options.min_samples or min(options.min_cluster_size, 5)}
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            """INSERT INTO cluster_runs VALUES ($id, $at, $start, $end, $select, $params, $n, $selected, $clusters,
                                                $noise, '{}', $message)""",
            {"id": run_id, "at": datetime.now(timezone.utc).replace(tzinfo=None), "start": options.since,
             "end": options.until, "select": options.select, "params": json.dumps(params), "n": len(session_ids),
             "selected": len(selected_ids), "clusters": n_clusters, "noise": int((labels < 0).sum()), "message": message})
        if len(selected_ids):
            con.register("clustered", {"cluster_run_id": np.full(len(selected_ids), run_id, dtype=np.int64),
                                       "session_id": selected_ids, "cluster_id": labels.astype(np.int32),
                                       "probability": probabilities, "outlier_score": outliers,
                                       "map_x": coordinates[:, 0], "map_y": coordinates[:, 1]})
            con.execute("INSERT INTO session_clusters BY NAME SELECT * FROM clustered")
            con.unregister("clustered")
        step = time.perf_counter()
        profiles = build_profiles(con, run_id, labels, selected_ids, selected, numeric, probabilities) if n_clusters else []
        timings["profiles"] = time.perf_counter() - step
        emerging = link_to_previous_run(con, run_id, options, profiles, previous, placed)
        timings["total"] = time.perf_counter() - started
        con.execute("UPDATE cluster_runs SET seconds = $s WHERE cluster_run_id = $id",
                    {"s": json.dumps({k: round(v, 3) for k, v in timings.items()}), "id": run_id})
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return RunSummary(run_id, len(session_ids), len(selected_ids), n_clusters, int((labels < 0).sum()), emerging, message,
                      timings)


def _hdbscan(X: np.ndarray, options: ClusterOptions):
    """HDBSCAN over X (already reduced with :func:`reduce_for_hdbscan`)."""
    import hdbscan

    unique = np.unique(X, axis=0)
    if len(unique) == 1:  # all sessions identical: one cluster, by definition
        return np.zeros(len(X), dtype=np.int64), np.ones(len(X)), np.zeros(len(X))
    # core_dist_n_jobs=1: above 16,384 rows hdbscan splits the core-distance query over joblib worker
    # processes, each sent a copy of the kd-tree; on 30k generated sessions that took 12.2 s wall and 12.8 s CPU
    # against 6.1 s and 6.1 s in-process, with identical labels (issue C2)
    model = hdbscan.HDBSCAN(min_cluster_size=options.min_cluster_size,
                            min_samples=options.min_samples or min(options.min_cluster_size, 5),
                            cluster_selection_epsilon=options.merge_distance, core_dist_n_jobs=1,
                            allow_single_cluster=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    outliers = np.nan_to_num(np.asarray(model.outlier_scores_, dtype=np.float64), nan=0.0)
    return model.labels_.astype(np.int64), np.asarray(model.probabilities_, dtype=np.float64), outliers


def _map_coordinates(X: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    if X.shape[0] < 3:
        return np.zeros((X.shape[0], 2))
    return PCA(n_components=2, random_state=seed).fit_transform(X)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
