"""The step between the session matrix and HDBSCAN, shared by a run's fit (:mod:`waflens.clustering.run`)
and the placing of sessions in an existing run (:mod:`waflens.clustering.assign`), which must rebuild
exactly the same space."""

from __future__ import annotations

import numpy as np

HDBSCAN_DIMENSIONS = 12


def reduce_for_hdbscan(X: np.ndarray, seed: int, extra: np.ndarray | None = None, names: list[str] | None = None):
    """kd-tree Boruvka is fast in a dozen dimensions, slow in forty: PCA fitted on X (and applied to extra).
    The payload view's columns (``payload_*`` in ``names``) pass unreduced beside the PCA: they vary over
    the few sessions that carry payloads, so the PCA of all sessions would drop them; sessions without
    payloads are 0 there, so the kd-tree of the many benign sessions keeps its dimension."""
    from sklearn.decomposition import PCA

    keep = np.array([n.startswith("payload_") for n in names], dtype=bool) if names else np.zeros(X.shape[1], bool)
    rest = X[:, ~keep]
    if rest.shape[1] <= HDBSCAN_DIMENSIONS or X.shape[0] <= HDBSCAN_DIMENSIONS:
        return X, extra
    pca = PCA(n_components=HDBSCAN_DIMENSIONS, random_state=seed).fit(rest)
    reduced = np.hstack([pca.transform(rest), X[:, keep]])
    return reduced, (None if extra is None else np.hstack([pca.transform(extra[:, ~keep]), extra[:, keep]]))
