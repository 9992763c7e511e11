"""numba kernel: :func:`waflens.runtime.kernels.request.request_features` over many requests at once.

The texts arrive as Arrow-style columns (one UTF-8 byte buffer and int64 offsets per column), so a
batch of a million requests costs one call from Python instead of a million: what the Spark executors
(``waflens.pipeline.spark``) use on each partition. The per-request definitions stay in one kernel.
"""

from __future__ import annotations

import numba

from waflens.runtime.kernels.request import request_features


@numba.njit(cache=True, nogil=True)
def request_features_rows(method_codes, path_data, path_offsets, query_data, query_offsets, body_data, body_offsets,
                          ua_data, ua_offsets, has_referer, tables_data, tables_offsets, tables_group, by_first,
                          order, ext_data, ext_offsets, ext_class, out):
    """Fill ``out[i]`` (float64, n x N_REQUEST_FEATURES) with the features of request ``i``.

    Text ``i`` of a column is ``data[offsets[i]:offsets[i + 1]]``; a missing body or user agent is empty."""
    for i in range(method_codes.size):
        request_features(method_codes[i], path_data[path_offsets[i]:path_offsets[i + 1]],
                         query_data[query_offsets[i]:query_offsets[i + 1]],
                         body_data[body_offsets[i]:body_offsets[i + 1]],
                         ua_data[ua_offsets[i]:ua_offsets[i + 1]], has_referer[i],
                         tables_data, tables_offsets, tables_group, by_first, order, ext_data, ext_offsets,
                         ext_class, out[i])

