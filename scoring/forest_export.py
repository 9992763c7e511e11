"""A fitted scikit-learn IsolationForest as flat node arrays (no pickle anywhere)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.ensemble._iforest import _average_path_length


class FlatForest(NamedTuple):
    feature: np.ndarray     # int32, -1 at leaves; indexes the full feature row
    threshold: np.ndarray   # float64
    left: np.ndarray        # int32, absolute node index
    right: np.ndarray       # int32
    value: np.ndarray       # float64, path length contribution at leaves
    roots: np.ndarray       # int32, root node of each tree
    normaliser: float       # n_trees * c(max_samples)


def flatten_isolation_forest(forest: IsolationForest) -> FlatForest:
    """Node arrays that reproduce ``-forest.score_samples(X)`` exactly."""
    n_features = forest.n_features_in_
    subsample = forest._max_features != n_features  # as IsolationForest._compute_chunked_score_samples
    features, thresholds, lefts, rights, values, roots = [], [], [], [], [], []
    offset = 0
    for tree, tree_features in zip(forest.estimators_, forest.estimators_features_):
        t = tree.tree_
        leaf = t.children_left == -1
        mapped = np.asarray(tree_features)[np.maximum(t.feature, 0)] if subsample else np.maximum(t.feature, 0)
        features.append(np.where(leaf, -1, mapped).astype(np.int32))
        thresholds.append(t.threshold.astype(np.float64))
        lefts.append(np.where(leaf, -1, t.children_left + offset).astype(np.int32))
        rights.append(np.where(leaf, -1, t.children_right + offset).astype(np.int32))
        depth = t.compute_node_depths().astype(np.float64)
        values.append(np.where(leaf, depth + _average_path_length(t.n_node_samples) - 1.0, 0.0))
        roots.append(offset)
        offset += t.node_count
    normaliser = float(len(forest.estimators_) * _average_path_length([forest._max_samples])[0])
    return FlatForest(np.concatenate(features), np.concatenate(thresholds), np.concatenate(lefts),
                      np.concatenate(rights), np.concatenate(values), np.array(roots, dtype=np.int32), normaliser)
