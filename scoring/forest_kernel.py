"""numba kernels: isolation-forest scoring over flat node arrays.

A forest is five arrays over all nodes of all trees (``feature`` = -1 marks a
leaf, whose ``value`` is its depth plus the average path length of the samples it
holds, minus one, as scikit-learn computes it) and the root of each tree. Features
are compared as float32, as scikit-learn's trees do. Signatures are explicit so
the arrays may be read-only (memory-mapped artifacts).
"""

import numba
import numpy as np

_NODE_ARRAYS = "float32[::1], int32[::1], float64[::1], int32[::1], int32[::1], float64[::1], int32[::1]"


@numba.njit(f"float64({_NODE_ARRAYS})", cache=True, nogil=True)
def path_length_sum(x, feature, threshold, left, right, value, roots):
    """Sum over trees of the path length of one row ``x``."""
    total = 0.0
    for t in range(roots.size):
        node = roots[t]
        while feature[node] >= 0:
            if x[feature[node]] <= threshold[node]:
                node = left[node]
            else:
                node = right[node]
        total += value[node]
    return total


@numba.njit(f"float64({_NODE_ARRAYS}, float64)", cache=True, nogil=True)
def anomaly_score(x, feature, threshold, left, right, value, roots, normaliser):
    """2 ** (-mean path length / c(max_samples)): in (0, 1], higher = more anomalous."""
    if normaliser == 0.0:
        return 1.0
    return 2.0 ** (-path_length_sum(x, feature, threshold, left, right, value, roots) / normaliser)


@numba.njit(cache=True, nogil=True, parallel=True)
def anomaly_scores(rows, feature, threshold, left, right, value, roots, normaliser, out):
    """Scores of many rows (float32, C-contiguous), in parallel over rows."""
    for i in numba.prange(rows.shape[0]):
        out[i] = anomaly_score(rows[i], feature, threshold, left, right, value, roots, normaliser)


def sanitize(rows: np.ndarray) -> np.ndarray:
    """float32 rows with NaN as 0 and infinities clipped: every input gets a defined score."""
    rows = np.nan_to_num(np.asarray(rows, dtype=np.float64), nan=0.0,
                         posinf=np.finfo(np.float32).max, neginf=np.finfo(np.float32).min)
    return np.ascontiguousarray(rows, dtype=np.float32)
