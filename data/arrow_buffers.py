"""The bytes behind an Arrow column of texts, for numba kernels that take one buffer and offsets."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def text_buffers(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 data, int64 offsets) of a string or binary column: text ``i`` is ``data[offsets[i]:offsets[i + 1]]``,
    a NULL an empty text. No copy of the bytes when the column is one large chunk already."""
    binary = pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)
    column = column.cast(pa.large_binary() if binary else pa.large_string()).fill_null(b"" if binary else "")
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    _, offset_buffer, data_buffer = column.buffers()
    offsets = np.frombuffer(offset_buffer, dtype=np.int64)[column.offset:column.offset + len(column) + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    return data, np.ascontiguousarray(offsets)
