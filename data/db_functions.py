"""SQL functions waflens registers on every connection (temporary: nothing persists).

``waflens_url_decode(text, plus_as_space)`` decodes in DuckDB (vectorized) and falls
back to :func:`waflens.data.url_decoding.url_decode` only for the rare values DuckDB's
``url_decode`` refuses (escapes that are not UTF-8, such as Latin-1 ``%F1``).
"""

import duckdb
import numpy as np
import pyarrow as pa
from duckdb.sqltypes import BLOB, BOOLEAN, DOUBLE, VARCHAR

from waflens.data.url_decoding import url_decode


def _python_url_decode(text: str | None, plus_as_space: bool | None) -> str | None:
    return None if text is None else url_decode(text, bool(plus_as_space))


def _decode_bytes(raw: bytes | None) -> str | None:
    """Bytes that are not UTF-8, as text with Apache's \\xHH escapes for the bad bytes."""
    return None if raw is None else bytes(raw).decode("utf-8", "backslashreplace")


def _arrow_entropy(strings: pa.Array) -> pa.Array:
    """Byte entropy of every string of a vector, in one numba call (NULL counts as empty)."""
    from waflens.data.arrow_buffers import text_buffers
    from waflens.data.feature_kernels import entropy_of_strings

    data, offsets = text_buffers(strings)
    out = np.zeros(len(strings), dtype=np.float64)
    entropy_of_strings(data, offsets, out)
    return pa.array(out)


def _create_function(con: duckdb.DuckDBPyConnection, name: str, *args, **kwargs) -> None:
    # Connections to one file in one process share a database instance, and with it these functions.
    try:
        con.create_function(name, *args, **kwargs)
    except duckdb.CatalogException:
        pass


def register_functions(con: duckdb.DuckDBPyConnection) -> None:
    _create_function(con, "waflens_entropy", _arrow_entropy, [VARCHAR], DOUBLE, type="arrow", null_handling="special")
    _create_function(con, "waflens_decode_bytes", _decode_bytes, [BLOB], VARCHAR, null_handling="special")
    _create_function(con, "waflens_url_decode_py", _python_url_decode, [VARCHAR, BOOLEAN], VARCHAR,
                     null_handling="special")
    con.execute(
        """
        CREATE OR REPLACE TEMP MACRO waflens_url_decode(s, plus) AS
        CASE
            WHEN s IS NULL THEN ''
            WHEN NOT contains(s, '%') THEN (CASE WHEN plus THEN replace(s, '+', ' ') ELSE s END)
            ELSE coalesce(try(url_decode(CASE WHEN plus THEN replace(s, '+', ' ') ELSE s END)),
                          waflens_url_decode_py(s, plus))
        END
        """
    )
    register_macros(con)


def register_macros(con: duckdb.DuckDBPyConnection) -> None:
    # ASCII-only lower-casing, so SQL, Python and the numba runtime agree byte for byte;
    # lower() is the fast path when a string is pure ASCII (bytes == characters).
    con.execute(
        """
        CREATE OR REPLACE TEMP MACRO waflens_ascii_lower(s) AS
        CASE WHEN strlen(s) = length(s) THEN lower(s)
             ELSE translate(s, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') END
        """
    )
    # Distinct texts of a session as the runtime counts them in a fixed-size sketch
    # (waflens.runtime.session_state): exact up to `slots`, beyond that the K-minimum-values
    # estimate from the K-th smallest md5-based hash, rounded (at most len(texts)), so training sees what workers see.
    con.execute(
        """
        CREATE OR REPLACE TEMP MACRO waflens_distinct_count(texts, slots) AS
        CASE WHEN len(list_distinct(texts)) <= slots THEN len(list_distinct(texts))
             ELSE least(greatest(floor((slots - 1) / (list_sort(list_distinct(list_transform(texts,
                                         lambda t: md5_number_upper(t))))[slots]::DOUBLE / pow(2, 64)) + 0.5),
                                 slots + 1), len(texts))::BIGINT END
        """
    )
    # The key sessions are built on. Inputs are already pseudonymized tokens, so hashing them
    # again needs no secret; md5 only makes a compact, fixed-width key.
    con.execute(
        """
        CREATE OR REPLACE TEMP MACRO waflens_client_key(ip, ua, cookie, mode) AS
        substr(md5(CASE
            WHEN mode = 'cookie' AND cookie IS NOT NULL THEN 'cookie' || chr(31) || cookie
            WHEN ip IS NOT NULL THEN 'ip-ua' || chr(31) || ip || chr(31) || coalesce(ua, '')
            WHEN cookie IS NOT NULL THEN 'cookie' || chr(31) || cookie
            ELSE 'ua' || chr(31) || coalesce(ua, '')
        END), 1, 16)
        """
    )
