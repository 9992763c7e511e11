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
# Node indexes are unsigned (uint64) and feature ids uint8: numba adds a negative-index wrap-around
# to every signed array access, which tripled the instructions of each step of a walk.


def float32_floor(threshold: np.ndarray) -> np.ndarray:
    t32 = threshold.astype(np.float32)
    above = t32.astype(np.float64) > threshold
    t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
    return t32


_ONE = np.uint64(1)
_TWO = np.uint64(2)
_ROOT = np.uint64(0)
GROUP = 16  # rows walking a tree together in perfect_scores: independent chains of loads overlap


def perfect_layout(feature, threshold32, left, right, value, roots, depth):
    """(feat uint8, thr float32, val float64), each (n_trees, ...), of the forest in the perfect layout."""
    if feature.size and int(feature.max()) > 255:
        raise ValueError("more than 256 features: the perfect layout indexes features with one byte")
    return _perfect_layout(feature, threshold32, left, right, value, roots, depth)


@numba.njit(cache=True, nogil=True)
def _perfect_layout(feature, threshold32, left, right, value, roots, depth):
    n_trees = roots.size
    internal = 2 ** depth - 1
    feat = np.zeros((n_trees, internal), dtype=np.uint8)
    thr = np.full((n_trees, internal), np.inf, dtype=np.float32)
    val = np.zeros((n_trees, internal + 1), dtype=np.float64)
    stack_node = np.empty(internal + 1, dtype=np.int64)
    stack_index = np.empty(internal + 1, dtype=np.int64)
    stack_level = np.empty(internal + 1, dtype=np.int64)
    for t in range(n_trees):
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


@numba.njit(cache=True, nogil=True, inline="always")
def _step(x, f, th, i):
    """One level down a perfect tree: node i's left child, or its right one when x[f[i]] > th[i]."""
    return _TWO * i + _ONE + np.uint64(x[f[i]] > th[i])


@numba.njit(cache=True, nogil=True)
def leaf_of(x, f, th, depth):
    """Leaf index (0 .. 2**depth - 1) of float32 row ``x`` in the perfect tree (f, th)."""
    i = _ROOT
    for _ in range(depth):
        i = _step(x, f, th, i)
    return i - np.uint64(2 ** depth - 1)


@numba.njit(cache=True, nogil=True)
def perfect_path_sum(x, feat, thr, val, depth):
    """Sum over trees of the leaf values row ``x`` reaches; eight trees are walked together, so that one
    row's walks overlap instead of waiting on each other's loads."""
    n_trees = feat.shape[0]
    internal = np.uint64(2 ** depth - 1)
    total = 0.0
    t = 0
    while t + 8 <= n_trees:
        f0, f1, f2, f3, f4, f5, f6, f7 = feat[t], feat[t + 1], feat[t + 2], feat[t + 3], feat[t + 4], feat[t + 5], \
            feat[t + 6], feat[t + 7]
        h0, h1, h2, h3, h4, h5, h6, h7 = thr[t], thr[t + 1], thr[t + 2], thr[t + 3], thr[t + 4], thr[t + 5], \
            thr[t + 6], thr[t + 7]
        i0 = i1 = i2 = i3 = i4 = i5 = i6 = i7 = _ROOT
        for _ in range(depth):
            i0 = _step(x, f0, h0, i0)
            i1 = _step(x, f1, h1, i1)
            i2 = _step(x, f2, h2, i2)
            i3 = _step(x, f3, h3, i3)
            i4 = _step(x, f4, h4, i4)
            i5 = _step(x, f5, h5, i5)
            i6 = _step(x, f6, h6, i6)
            i7 = _step(x, f7, h7, i7)
        total += (val[t, i0 - internal] + val[t + 1, i1 - internal] + val[t + 2, i2 - internal]
                  + val[t + 3, i3 - internal] + val[t + 4, i4 - internal] + val[t + 5, i5 - internal]
                  + val[t + 6, i6 - internal] + val[t + 7, i7 - internal])
        t += 8
    while t < n_trees:
        total += val[t, leaf_of(x, feat[t], thr[t], depth)]
        t += 1
    return total


@numba.njit(cache=True, nogil=True, parallel=True, fastmath=True)
def perfect_scores(rows, feat, thr, val, depth, normaliser, out):
    """Scores of float32 rows; groups of GROUP rows walk each tree together (independent loads overlap)."""
    n = rows.shape[0]
    n_trees = feat.shape[0]
    internal = np.uint64(2 ** depth - 1)
    groups = (n + GROUP - 1) // GROUP
    for g in numba.prange(groups):
        lo = g * GROUP
        if lo + GROUP > n:
            for i in range(lo, n):
                out[i] = normalise(perfect_path_sum(rows[i], feat, thr, val, depth), normaliser)
            continue
        r0, r1, r2, r3 = rows[lo + 0], rows[lo + 1], rows[lo + 2], rows[lo + 3]
        r4, r5, r6, r7 = rows[lo + 4], rows[lo + 5], rows[lo + 6], rows[lo + 7]
        r8, r9, r10, r11 = rows[lo + 8], rows[lo + 9], rows[lo + 10], rows[lo + 11]
        r12, r13, r14, r15 = rows[lo + 12], rows[lo + 13], rows[lo + 14], rows[lo + 15]
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = a9 = a10 = a11 = a12 = a13 = a14 = a15 = 0.0
        for t in range(n_trees):
            f = feat[t]
            th = thr[t]
            v = val[t]
            i0 = i1 = i2 = i3 = i4 = i5 = i6 = i7 = i8 = i9 = i10 = i11 = i12 = i13 = i14 = i15 = _ROOT
            for _ in range(depth):
                i0 = _step(r0, f, th, i0)
                i1 = _step(r1, f, th, i1)
                i2 = _step(r2, f, th, i2)
                i3 = _step(r3, f, th, i3)
                i4 = _step(r4, f, th, i4)
                i5 = _step(r5, f, th, i5)
                i6 = _step(r6, f, th, i6)
                i7 = _step(r7, f, th, i7)
                i8 = _step(r8, f, th, i8)
                i9 = _step(r9, f, th, i9)
                i10 = _step(r10, f, th, i10)
                i11 = _step(r11, f, th, i11)
                i12 = _step(r12, f, th, i12)
                i13 = _step(r13, f, th, i13)
                i14 = _step(r14, f, th, i14)
                i15 = _step(r15, f, th, i15)
            a0 += v[i0 - internal]; a1 += v[i1 - internal]; a2 += v[i2 - internal]; a3 += v[i3 - internal]
            a4 += v[i4 - internal]; a5 += v[i5 - internal]; a6 += v[i6 - internal]; a7 += v[i7 - internal]
            a8 += v[i8 - internal]; a9 += v[i9 - internal]; a10 += v[i10 - internal]; a11 += v[i11 - internal]
            a12 += v[i12 - internal]; a13 += v[i13 - internal]; a14 += v[i14 - internal]; a15 += v[i15 - internal]
        out[lo + 0] = normalise(a0, normaliser); out[lo + 1] = normalise(a1, normaliser)
        out[lo + 2] = normalise(a2, normaliser); out[lo + 3] = normalise(a3, normaliser)
        out[lo + 4] = normalise(a4, normaliser); out[lo + 5] = normalise(a5, normaliser)
        out[lo + 6] = normalise(a6, normaliser); out[lo + 7] = normalise(a7, normaliser)
        out[lo + 8] = normalise(a8, normaliser); out[lo + 9] = normalise(a9, normaliser)
        out[lo + 10] = normalise(a10, normaliser); out[lo + 11] = normalise(a11, normaliser)
        out[lo + 12] = normalise(a12, normaliser); out[lo + 13] = normalise(a13, normaliser)
        out[lo + 14] = normalise(a14, normaliser); out[lo + 15] = normalise(a15, normaliser)


@numba.njit(cache=True, nogil=True)
def normalise(total, normaliser):
    return 1.0 if normaliser == 0.0 else 2.0 ** (-total / normaliser)
