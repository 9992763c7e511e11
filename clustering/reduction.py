"""The step between the session matrix and HDBSCAN, shared by a run's fit (:mod:`waflens.clustering.run`)
and the placing of sessions in an existing run (:mod:`waflens.clustering.assign`), which must rebuild
exactly the same space."""

from __future__ import annotations

import numpy as np

# PCA components of the behaviour and n-gram blocks that HDBSCAN sees. HDBSCAN's kd-tree (core distances and
# Boruvka) is what a 100k-session run costs, and its time grows steeply with dimensions: on 96k generated
# sessions (benchmarks/clustering.py --scaling) 12 components took 19.6 s CPU, 10 took 15.2 s, 8 took 9.8 s,
# 6 took 7.8 s, with the same clusters (ARI 0.9997 against 12). Quality (benchmarks/clustering.py, worst seed,
# 12 -> 8): 60k requests, seeds 7-12: coupled identical (ARI 0.970, F1 0.939); neutral ARI 0.975 -> 0.980,
# F1 0.954 -> 0.963; real logs (seeds 8-12) ARI 0.976 -> 0.965, F1 0.941 -> 0.923 (sqli, seed 12); 200k
# requests, seeds 7-9: coupled identical, neutral ARI 0.982 -> 0.982, F1 0.961 -> 0.958. Within noise of the
# seeds and far above the goals (ARI 0.9, F1 0.85); 6 was not tried on quality.
HDBSCAN_DIMENSIONS = 8
# What runs stored before the run parameters named the dimensions were made with.
LEGACY_HDBSCAN_DIMENSIONS = 12


def reduce_for_hdbscan(X: np.ndarray, seed: int, extra: np.ndarray | None = None, names: list[str] | None = None,
                       dimensions: int = HDBSCAN_DIMENSIONS):
    """kd-tree Boruvka is fast in a few dimensions, slow in forty: PCA fitted on X (and applied to extra).
    The payload view's columns (``payload_*`` in ``names``) pass unreduced beside the PCA: they vary over
    the few sessions that carry payloads, so the PCA of all sessions would drop them; sessions without
    payloads are 0 there, so the kd-tree of the many benign sessions keeps its dimension."""
    from sklearn.decomposition import PCA

    keep = np.array([n.startswith("payload_") for n in names], dtype=bool) if names else np.zeros(X.shape[1], bool)
    rest = X[:, ~keep]
    if rest.shape[1] <= dimensions or X.shape[0] <= dimensions:
        return X, extra
    pca = PCA(n_components=dimensions, random_state=seed).fit(rest)
    reduced = np.hstack([pca.transform(rest), X[:, keep]])
    return reduced, (None if extra is None else np.hstack([pca.transform(extra[:, ~keep]), extra[:, keep]]))
