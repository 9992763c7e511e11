"""``DIR/request_features``: the runtime's numba request-feature kernel on every parsed request.

Each Arrow batch of requests goes to :func:`waflens.runtime.kernels.request_batch.request_features_rows`
in one call (the kernel WAF workers score with, held equal to ``data/sql/request_features.sql`` by the
tests); the columns are the spec's names and DuckDB types (:data:`waflens.runtime.feature_spec.REQUEST_FEATURES`),
after ``file``, ``record`` and ``request_id``; partitioned by ``day`` like ``DIR/requests``.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pyarrow as pa

from waflens.runtime.feature_spec import REQUEST_FEATURES

KEY_COLUMNS = ("file", "record", "request_id", "day")
INPUT_COLUMNS = (*KEY_COLUMNS, "method", "path", "query", "body", "user_agent", "referer")
ARROW_TYPES = {  # the spec's DuckDB type names -> Arrow's
   "TINYINT": pa.int8(), "SMALLINT": pa.int16(), "INTEGER": pa.int32(), "BIGINT": pa.int64(),
                "DOUBLE": pa.float64()}
FEATURE_FIELDS = tuple(pa.field(f.name, ARROW_TYPES[f.dtype]) for f in REQUEST_FEATURES)
FEATURES_SCHEMA = pa.schema([("file", pa.string()), ("record", pa.int64()), ("request_id", pa.int64()),
                             ("day", pa.date32()), *FEATURE_FIELDS])


def write_request_features(requests, out: str) -> None:
    """Compute the features of the ``requests`` DataFrame (columns of ``DIR/requests``) into ``out``."""
    from pyspark.sql.pandas.types import from_arrow_schema

    from waflens.pipeline.spark import layout

    features = requests.select(*INPUT_COLUMNS).mapInArrow(features_of_batches, from_arrow_schema(FEATURES_SCHEMA))
    layout.write_table(features, out, layout.REQUEST_FEATURES, partition_by="day")


def features_of_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function: request batches -> FEATURES_SCHEMA batches."""
    import numba

    numba.set_num_threads(1)
    tables = token_tables()
    for batch in batches:
        yield features_of_batch(batch, tables)


def features_of_batch(batch: pa.RecordBatch, tables=None) -> pa.RecordBatch:
    """FEATURES_SCHEMA: the key columns of ``batch`` and the features of its requests."""
    columns = [batch.column(name) for name in KEY_COLUMNS]
    columns += feature_arrays(batch, tables)
    return pa.RecordBatch.from_arrays(columns, schema=FEATURES_SCHEMA)


def feature_arrays(requests, tables=None) -> list[pa.Array]:
    """One array per request feature (spec order, DuckDB types) of a batch or table with the ``requests``
    columns method, path, query, body, user_agent and referer."""
    import pyarrow.compute as pc

    from waflens.data.arrow_buffers import text_buffers
    from waflens.runtime.feature_spec import METHOD_CODES, METHOD_OTHER
    from waflens.runtime.kernels.request import N_REQUEST_FEATURES
    from waflens.runtime.kernels.request_batch import request_features_rows

    tables = token_tables() if tables is None else tables
    n = requests.num_rows
    names = list(METHOD_CODES)
    position = pc.index_in(requests.column("method"), value_set=pa.array(names, pa.string()))
    lookup = np.array([METHOD_CODES[name] for name in names] + [METHOD_OTHER], dtype=np.int64)
    method_codes = lookup[position.fill_null(len(names)).to_numpy(zero_copy_only=False).astype(np.int64)]
    referer = requests.column("referer")
    # as the SQL's coalesce(referer NOT IN ('', '-'), false): a NULL referer is none
    has_referer = pc.and_(pc.is_valid(referer), pc.invert(pc.is_in(referer, value_set=pa.array(["", "-"]))))
    has_referer = has_referer.to_numpy(zero_copy_only=False).astype(np.bool_)
    out = np.zeros((n, N_REQUEST_FEATURES), dtype=np.float64)
    if n:
        texts = [part for name in ("path", "query", "body", "user_agent") for part in text_buffers(requests.column(name))]
        request_features_rows(method_codes, *texts, has_referer, *tables, out)
    return [pa.array(out[:, i].astype(ARROW_TYPES[feature.dtype].to_pandas_dtype()))
            for i, feature in enumerate(REQUEST_FEATURES)]


def token_tables():
    from waflens.data.feature_spec import sql_parameters
    from waflens.runtime.kernels.request import build_token_tables

    return build_token_tables(sql_parameters())
