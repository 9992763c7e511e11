"""numba kernels for features SQL has no fast primitive for (imports only numpy and numba,
so the scoring runtime can use them too)."""

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def byte_entropy(data, start, end):
    """Shannon entropy, in bits per byte, of data[start:end]; 0 for an empty range."""
    n = end - start
    if n <= 0:
        return 0.0
    counts = np.zeros(256, dtype=np.int64)
    for i in range(start, end):
        counts[data[i]] += 1
    total = 0.0
    for c in counts:
        if c:
            p = c / n
            total -= p * np.log2(p)
    return total


@numba.njit(cache=True, nogil=True)
def entropy_of_strings(data, offsets, out):
    """Entropy of each string of an Arrow string array given as (data, offsets) buffers."""
    for i in range(out.size):
        out[i] = byte_entropy(data, offsets[i], offsets[i + 1])
