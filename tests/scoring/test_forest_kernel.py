"""Runtime forest scores equal scikit-learn's score_samples on the same fitted forest."""

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from scoring.forest_export import flatten_isolation_forest
from scoring.forest_kernel import anomaly_score, anomaly_scores, sanitize


@pytest.mark.parametrize("max_features", [1.0, 0.6])
def test_scores_equal_sklearn(max_features):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(3000, 12)), rng.normal(5, 1, size=(30, 12))])
    X[:, 3] = np.round(X[:, 3])              # ties on thresholds
    forest = IsolationForest(n_estimators=60, max_features=max_features, random_state=1).fit(X)
    flat = flatten_isolation_forest(forest)
    test = np.vstack([rng.normal(size=(500, 12)) * 3, X[:50]])
    expected = -forest.score_samples(test)
    rows = sanitize(test)
    out = np.empty(rows.shape[0])
    anomaly_scores(rows, *flat, out)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-9)
    one = np.array([anomaly_score(rows[i], *flat) for i in range(len(rows))])
    np.testing.assert_allclose(one, expected, rtol=0, atol=1e-9)


def test_nan_and_infinity_get_defined_scores():
    X = np.random.default_rng(2).normal(size=(500, 3))
    flat = flatten_isolation_forest(IsolationForest(n_estimators=10, random_state=0).fit(X))
    rows = sanitize(np.array([[np.nan, np.inf, -np.inf]]))
    score = anomaly_score(rows[0], *flat)
    assert 0 < score <= 1
