"""numba kernels: isolation-forest scoring.

The artifact stores a forest as flat node arrays over all trees (``feature`` = -1
marks a leaf, whose ``value`` is its depth plus the average path length of the
samples it holds, minus one, as scikit-learn computes it; children; roots). For
scoring, each tree is laid out as a perfect binary tree (below). Features are
compared as float32, as scikit-learn's trees do.
"""

import numba
import numpy as np

def sanitize(rows: np.ndarray) -> np.ndarray:
    """float32 rows with NaN as 0 and infinities clipped: every input gets a defined score."""
    rows = np.nan_to_num(np.asarray(rows, dtype=np.float64), nan=0.0,
                         posinf=np.finfo(np.float32).max, neginf=np.finfo(np.float32).min)
    return np.ascontiguousarray(rows, dtype=np.float32)


# --- the perfect-tree layout the runtime scores with ---
# Every tree becomes a complete binary tree of depth D (children of node i at 2i+1 and 2i+2): a leaf
# above depth D is replicated over the subtree below it behind "always left" nodes (threshold +inf).
# Traversal is then exactly D branch-free steps, and rows can be interleaved to hide memory latency.
# Thresholds are rounded *down* to float32, so for float32 x, x <= t32 exactly when x <= t.


def float32_floor(threshold: np.ndarray) -> np.ndarray:
    t32 = threshold.astype(np.float32)
    above = t32.astype(np.float64) > threshold
    t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
    return t32


@numba.njit(cache=True, nogil=True)
def perfect_layout(feature, threshold32, left, right, value, roots, depth):
    n_trees = roots.size
    internal = 2 ** depth - 1
    feat = np.zeros((n_trees, internal), dtype=np.int32)
    thr = np.full((n_trees, internal), np.inf, dtype=np.float32)
    val = np.zeros((n_trees, internal + 1), dtype=np.float64)
    stack_node = np.empty(internal + 1, dtype=np.int64)
    stack_index = np.empty(internal + 1, dtype=np.int64)
    stack_level = np.empty(internal + 1, dtype=np.int64)
    for t in range(n_trees):
        top = 0
        stack_node[0] = roots[t]
        stack_index[0] = 0
        stack_level[0] = 0
        top = 1
        while top > 0:
            top -= 1
            node = stack_node[top]
            index = stack_index[top]
            level = stack_level[top]
            if feature[node] < 0 or level == depth:
                span = 2 ** (depth - level)
                first = (index - (2 ** level - 1)) * span
                val[t, first:first + span] = value[node]
                continue
            feat[t, index] = feature[node]
            thr[t, index] = threshold32[node]
            for child, offset in ((left[node], 1), (right[node], 2)):
                stack_node[top] = child
                stack_index[top] = 2 * index + offset
                stack_level[top] = level + 1
                top += 1
    return feat, thr, val


@numba.njit(cache=True, nogil=True)
def perfect_path_sum(x, feat, thr, val, depth):
    internal = 2 ** depth - 1
    total = 0.0
    for t in range(feat.shape[0]):
        f = feat[t]
        th = thr[t]
        index = 0
        for _ in range(depth):
            index = 2 * index + 1 + (x[f[index]] > th[index])
        total += val[t, index - internal]
    return total


@numba.njit(cache=True, nogil=True, parallel=True, fastmath=True)
def perfect_scores(rows, feat, thr, val, depth, normaliser, out):
    """Scores of float32 rows; groups of 8 rows walk each tree together (independent loads overlap)."""
    n = rows.shape[0]
    n_trees = feat.shape[0]
    internal = 2 ** depth - 1
    groups = (n + 7) // 8
    for g in numba.prange(groups):
        lo = g * 8
        if lo + 8 <= n:
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
            r0, r1, r2, r3 = rows[lo], rows[lo + 1], rows[lo + 2], rows[lo + 3]
            r4, r5, r6, r7 = rows[lo + 4], rows[lo + 5], rows[lo + 6], rows[lo + 7]
            for t in range(n_trees):
                f = feat[t]
                th = thr[t]
                v = val[t]
                i0 = i1 = i2 = i3 = i4 = i5 = i6 = i7 = 0
                for _ in range(depth):
                    i0 = 2 * i0 + 1 + (r0[f[i0]] > th[i0])
                    i1 = 2 * i1 + 1 + (r1[f[i1]] > th[i1])
                    i2 = 2 * i2 + 1 + (r2[f[i2]] > th[i2])
                    i3 = 2 * i3 + 1 + (r3[f[i3]] > th[i3])
                    i4 = 2 * i4 + 1 + (r4[f[i4]] > th[i4])
                    i5 = 2 * i5 + 1 + (r5[f[i5]] > th[i5])
                    i6 = 2 * i6 + 1 + (r6[f[i6]] > th[i6])
                    i7 = 2 * i7 + 1 + (r7[f[i7]] > th[i7])
                a0 += v[i0 - internal]
                a1 += v[i1 - internal]
                a2 += v[i2 - internal]
                a3 += v[i3 - internal]
                a4 += v[i4 - internal]
                a5 += v[i5 - internal]
                a6 += v[i6 - internal]
                a7 += v[i7 - internal]
            out[lo] = normalise(a0, normaliser)
            out[lo + 1] = normalise(a1, normaliser)
            out[lo + 2] = normalise(a2, normaliser)
            out[lo + 3] = normalise(a3, normaliser)
            out[lo + 4] = normalise(a4, normaliser)
            out[lo + 5] = normalise(a5, normaliser)
            out[lo + 6] = normalise(a6, normaliser)
            out[lo + 7] = normalise(a7, normaliser)
        else:
            for i in range(lo, n):
                out[i] = normalise(perfect_path_sum(rows[i], feat, thr, val, depth), normaliser)


@numba.njit(cache=True, nogil=True)
def normalise(total, normaliser):
    return 1.0 if normaliser == 0.0 else 2.0 ** (-total / normaliser)
