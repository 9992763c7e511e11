"""Runtime forest scores equal scikit-learn's score_samples on the same fitted forest."""

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from waflens.scoring.forest_export import flatten_isolation_forest
from waflens.runtime.kernels.forest import BLOCK, float32_floor, perfect_layout, perfect_path_sum, perfect_scores, sanitize
from waflens.runtime.kernels.score import score_row


def _perfect(forest):
    flat = flatten_isolation_forest(forest)
    depth = int(np.ceil(np.log2(max(forest._max_samples, 2))))
    trees = perfect_layout(flat.feature, float32_floor(flat.threshold), flat.left, flat.right, flat.value,
                           flat.roots, depth)
    return trees, depth, flat.normaliser


@pytest.mark.parametrize("max_features, max_samples", [(1.0, 256), (0.6, 256), (1.0, 100), (1.0, 2000), (1.0, 8)])
def test_scores_equal_sklearn(max_features, max_samples):
    # max_samples 8 makes trees shallower than the batch kernel's vectorised top levels
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(3000, 12)), rng.normal(5, 1, size=(30, 12))])
    X[:, 3] = np.round(X[:, 3])              # ties on thresholds
    X[:, 5] = X[:, 5] * 1e-3 + 1 / 3         # thresholds that float32 cannot represent
    forest = IsolationForest(n_estimators=60, max_features=max_features, max_samples=max_samples,
                             random_state=1).fit(X)
    (feat, thr, val), depth, normaliser = _perfect(forest)
    test = np.vstack([rng.normal(size=(501, 12)) * 3, X[:57], X[:, :][::-1][:40]])
    expected = -forest.score_samples(test)
    rows = sanitize(test)
    assert rows.shape[0] > BLOCK and rows.shape[0] % BLOCK  # whole blocks and a remainder
    out = np.empty(rows.shape[0])
    perfect_scores(rows, feat, thr, val, depth, normaliser, out)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-9)
    one = np.array([2.0 ** (-perfect_path_sum(rows[i], feat, thr, val, depth) / normaliser) for i in range(len(rows))])
    np.testing.assert_allclose(one, expected, rtol=0, atol=1e-9)
    # the runtime's per-request path: float64 rows in, compact uint8 features
    runtime = np.array([score_row(row, feat.astype(np.uint8), thr, val, depth, normaliser) for row in test])
    np.testing.assert_allclose(runtime, expected, rtol=0, atol=1e-9)


def test_float32_floor_keeps_comparisons_exact():
    t = np.array([1 / 3, 0.1, -0.7, 1e30, 2.5], dtype=np.float64)
    t32 = float32_floor(t)
    x = np.array([np.float32(v) for v in t] + [np.nextafter(np.float32(v), np.float32(np.inf)) for v in t], np.float32)
    for value in x:
        assert list(value <= t32) == list(np.float64(value) <= t)


def test_nan_and_infinity_get_defined_scores():
    X = np.random.default_rng(2).normal(size=(500, 3))
    (feat, thr, val), depth, normaliser = _perfect(IsolationForest(n_estimators=10, random_state=0).fit(X))
    rows = sanitize(np.array([[np.nan, np.inf, -np.inf]]))
    out = np.empty(1)
    perfect_scores(rows, feat, thr, val, depth, normaliser, out)
    assert 0 < out[0] <= 1


def test_pieces_scored_on_threads_equal_one_thread():
    """perfect_scores hands pieces of 32 blocks to a pool of threads: the scores must not depend on how many."""
    import numba

    rng = np.random.default_rng(3)
    X = rng.normal(size=(2000, 9))
    (feat, thr, val), depth, normaliser = _perfect(IsolationForest(n_estimators=20, random_state=2).fit(X))
    rows = sanitize(rng.normal(size=(40 * BLOCK + 77, 9)) * 2)   # 2 pieces of whole blocks and a remainder
    alone, shared = np.empty(rows.shape[0]), np.empty(rows.shape[0])
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        perfect_scores(rows, feat, thr, val, depth, normaliser, alone)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        perfect_scores(rows, feat, thr, val, depth, normaliser, shared)
    finally:
        numba.set_num_threads(previous)
    assert np.array_equal(alone, shared)
    expected = np.array([2.0 ** (-perfect_path_sum(r, feat, thr, val, depth) / normaliser) for r in rows])
    np.testing.assert_allclose(shared, expected, rtol=0, atol=1e-9)


def test_batch_kernels_compile_serially():
    """Cold compile is the first retrain's and every CI run's cost: a parallel=True kernel cost seconds more to
    compile than a pool of threads over a serial nogil kernel (waflens.runtime.kernels.threads), at the same speed."""
    import numba

    from waflens.data import clf_kernel, feature_kernels
    from waflens.runtime.kernels import forest as forest_kernel

    parallel = [f"{module.__name__}.{name}" for module in (clf_kernel, feature_kernels, forest_kernel)
                for name, kernel in vars(module).items()
                if isinstance(kernel, numba.core.registry.CPUDispatcher) and kernel.targetoptions.get("parallel")]
    assert parallel == []


def test_a_forked_child_scores_batches_on_its_own_pool():
    """A pre-forking server may score a batch before it forks: the child must not wait on the parent's threads."""
    import multiprocessing

    rng = np.random.default_rng(4)
    (feat, thr, val), depth, normaliser = _perfect(IsolationForest(n_estimators=10, random_state=2).fit(
        rng.normal(size=(500, 5))))
    rows = sanitize(rng.normal(size=(70 * BLOCK, 5)))
    out = np.empty(rows.shape[0])
    perfect_scores(rows, feat, thr, val, depth, normaliser, out)   # the parent's pool exists now
    with multiprocessing.get_context("fork").Pool(1) as pool:
        child = pool.apply_async(_score_in_child, (rows, feat, thr, val, depth, normaliser)).get(timeout=60)
    assert np.array_equal(child, out)


def _score_in_child(rows, feat, thr, val, depth, normaliser):
    out = np.empty(rows.shape[0])
    perfect_scores(rows, feat, thr, val, depth, normaliser, out)
    return out
