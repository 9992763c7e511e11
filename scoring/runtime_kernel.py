"""numba kernel: one request from raw fields to score, in a single compiled call.

Calling numba costs about 50 ns per array argument, so the whole model travels as
three packed arrays (ints, floats, bytes) and a layout of their sections; the
kernel slices them (no copies) and runs feature extraction, profile lookups and
the perfect-tree forest. Imports only numpy, numba and our kernels.
"""

from __future__ import annotations

import numba
import numpy as np

from scoring.forest_kernel import normalise, perfect_path_sum
from scoring.profile_kernel import N_PROFILE_FEATURES, profile_deviations
from scoring.request_kernel import N_REQUEST_FEATURES, request_features

INT_SECTIONS = ("tok_offsets", "tok_group", "tok_by_first", "tok_order", "ext_offsets", "ext_class",
                "endpoint_keys", "endpoint_count", "param_keys", "param_index", "enum_keys")
FLOAT_SECTIONS = ("length_mean", "length_std", "length_max")
BYTE_SECTIONS = ("tok_data", "ext_data", "seen_bytes", "is_enum")
N_FEATURES = N_REQUEST_FEATURES + N_PROFILE_FEATURES
_F32_MAX = float(np.finfo(np.float32).max)


def pack(sections: dict[str, np.ndarray], n_param_rows: int, n_trees: int, depth: int, normaliser: float):
    """(ints, floats, bytes, layout, normaliser) for :func:`features_one`; the forest travels apart, compact
    (uint8 features, float32 thresholds: a 10-level forest of 100 trees stays within ~1.3 MB)."""
    layout = []
    packed = []
    for names, dtype in ((INT_SECTIONS, np.int64), (FLOAT_SECTIONS, np.float64), (BYTE_SECTIONS, np.uint8)):
        parts, start = [], 0
        for name in names:
            part = np.ascontiguousarray(sections[name]).astype(dtype).ravel()
            parts.append(part)
            layout += [start, start + part.size]
            start += part.size
        packed.append(np.concatenate(parts) if parts else np.zeros(0, dtype))
    layout += [n_param_rows, n_trees, depth]
    return packed[0], packed[1], packed[2], np.array(layout, dtype=np.int64), float(normaliser)


@numba.njit(cache=True, nogil=True)
def _section(array, layout, k):
    return array[layout[2 * k]:layout[2 * k + 1]]


@numba.njit(cache=True, nogil=True)
def features_one(method_code, path_bytes, query_bytes, body_bytes, ua_bytes, has_referer, I, F, B, L, row):
    """Fill ``row`` with the request's features (the model's order)."""
    path = np.frombuffer(path_bytes, np.uint8)
    query = np.frombuffer(query_bytes, np.uint8)
    body = np.frombuffer(body_bytes, np.uint8)
    ua = np.frombuffer(ua_bytes, np.uint8)
    n_int, n_float = 11, 3
    request_features(method_code, path, query, body, ua, has_referer,
                     _section(B, L, n_int + n_float + 0), _section(I, L, 0), _section(I, L, 1), _section(I, L, 2),
                     _section(I, L, 3), _section(B, L, n_int + n_float + 1), _section(I, L, 4), _section(I, L, 5),
                     row[:N_REQUEST_FEATURES])
    n_rows = L[2 * (n_int + n_float + 4)]
    seen = _section(B, L, n_int + n_float + 2).reshape((n_rows, 256))
    profile_deviations(method_code, path, query, body,
                       _section(I, L, 6), _section(I, L, 7), _section(I, L, 8), _section(I, L, 9),
                       _section(F, L, n_int + 0), _section(F, L, n_int + 1), _section(F, L, n_int + 2),
                       seen, _section(B, L, n_int + n_float + 3), _section(I, L, 10), row[N_REQUEST_FEATURES:])


@numba.njit(cache=True, nogil=True)
def score_row(row, feat, thr, val, depth, normaliser):
    """Score a feature row with the perfect-tree forest (float32 semantics, NaN as 0)."""
    x = np.empty(row.size, dtype=np.float32)
    for j in range(row.size):
        v = row[j]
        if v != v:
            v = 0.0
        elif v > _F32_MAX:
            v = _F32_MAX
        elif v < -_F32_MAX:
            v = -_F32_MAX
        x[j] = v
    return normalise(perfect_path_sum(x, feat, thr, val, depth), normaliser)


@numba.njit(cache=True, nogil=True)
def score_one(method_code, path_bytes, query_bytes, body_bytes, ua_bytes, has_referer, I, F, B, L, normaliser,
              feat, thr, val, row):
    features_one(method_code, path_bytes, query_bytes, body_bytes, ua_bytes, has_referer, I, F, B, L, row)
    return score_row(row, feat, thr, val, L[2 * (11 + 3 + 4) + 2], normaliser)
