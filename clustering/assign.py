"""Assigning sessions to an existing cluster run, deterministically and in agreement with the fit.

HDBSCAN's ``approximate_predict`` is known to disagree with the fit, so we do not
use it. The run's feature space is rebuilt exactly — the same member sessions, the
same seeded transforms (scaler, TF-IDF, SVD, PCA) — and a session joins the
cluster of its nearest member, if it is no farther from it than that cluster's
members are from each other (its largest nearest-neighbour distance); otherwise it
is noise (-1). Identical sessions (one-request bots make many) can sit in a cluster
and in noise at once: a session at the same distance from several members takes
the label most of them have, if it is a majority, else the smallest (noise first).
A member assigned again gets its own fitted label.
"""

from __future__ import annotations

import json

import duckdb
import numpy as np
from sklearn.neighbors import NearestNeighbors

from waflens.clustering.matrix import build_matrix
from waflens.clustering.reduction import LEGACY_HDBSCAN_DIMENSIONS, reduce_for_hdbscan
from waflens.data.errors import InputError
from waflens.data.session_matrix import session_feature_rows

TIES = 16   # neighbours looked at to break ties between identical sessions


def assign_sessions(con: duckdb.DuckDBPyConnection, cluster_run_id: int, session_ids) -> dict[int, int]:
    """Cluster id (or -1) for each session, in the space of run ``cluster_run_id``."""
    found = con.execute("SELECT params FROM cluster_runs WHERE cluster_run_id = $r", {"r": cluster_run_id}).fetchall()
    if not found:
        raise InputError(f"no cluster run {cluster_run_id}: see `waflens cluster`")
    params = json.loads(found[0][0])
    members = con.execute("""SELECT session_id, cluster_id FROM session_clusters WHERE cluster_run_id = $r
                             ORDER BY session_id""", {"r": cluster_run_id}).fetchall()
    wanted = np.asarray(list(session_ids), dtype=np.int64)
    if not members or len(wanted) == 0:
        return {int(s): -1 for s in wanted}
    member_ids = np.array([m[0] for m in members], dtype=np.int64)
    labels = np.array([m[1] for m in members], dtype=np.int64)
    matrix, extra = build_matrix(con, member_ids, session_feature_rows(con, member_ids), params["svd_components"],
                                 params["seed"], extra_ids=wanted, extra_numeric=session_feature_rows(con, wanted))
    X, Y = reduce_for_hdbscan(matrix.X, params["seed"], extra, matrix.names,
                              params.get("hdbscan_dimensions", LEGACY_HDBSCAN_DIMENSIONS))
    placed = place(X, labels, Y)
    fitted = dict(zip(member_ids.tolist(), labels.tolist()))  # a member keeps its fitted label
    return {int(s): int(fitted.get(int(s), label)) for s, label in zip(wanted, placed)}


def place(X: np.ndarray, labels: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Cluster (or -1) for each row of Y, in the space of members X with fitted ``labels``: the cluster of
    the nearest member, if no farther than that cluster's members are from each other."""
    if len(Y) == 0 or len(X) == 0:
        return np.full(len(Y), -1, dtype=np.int64)
    radii = _cluster_radii(X, labels)
    index = NearestNeighbors(n_neighbors=min(2, len(X))).fit(X)
    distance, nearest = index.kneighbors(Y)
    label = labels[nearest[:, 0]]
    tied_rows = np.flatnonzero(distance[:, -1] <= distance[:, 0] + 1e-12) if len(X) > 1 else np.zeros(0, int)
    if len(tied_rows):  # identical sessions are common (one-request bots): vote among the equally near
        d, i = index.kneighbors(Y[tied_rows], n_neighbors=min(TIES, len(X)))
        for row, dist, idx in zip(tied_rows, d, i):
            tied = labels[idx[dist <= dist[0] + 1e-12]]
            votes = np.bincount(tied[tied >= 0]) if (tied >= 0).any() else None
            label[row] = int(np.argmax(votes)) if votes is not None and votes.max() * 2 > len(tied) else int(tied.min())
    radius = np.array([radii.get(int(c), 0.0) for c in label])
    return np.where((label >= 0) & (distance[:, 0] <= radius + 1e-12), label, -1).astype(np.int64)


def _cluster_radii(X: np.ndarray, labels: np.ndarray) -> dict[int, float]:
    """Per cluster, the largest distance from a member to its nearest fellow member."""
    radii = {}
    for cluster in np.unique(labels[labels >= 0]):
        points = X[labels == cluster]
        if len(points) < 2:
            radii[int(cluster)] = 0.0
            continue
        d, _ = NearestNeighbors(n_neighbors=2).fit(points).kneighbors(points)
        radii[int(cluster)] = float(d[:, 1].max())
    return radii
