-- SQL functions the Spark steps share, the twins of data/db_functions.py's macros.
-- waflens_distinct_count: distinct texts as the runtime's fixed-size sketch counts them
-- (waflens.runtime.session_state): exact up to `slots`, beyond that the K-minimum-values estimate from the
-- K-th smallest md5-based hash, rounded (at most the texts counted). The hash is DuckDB's md5_number_upper:
-- the first 8 bytes of the md5, read little-endian, as an unsigned 64-bit number (DECIMAL(20,0) here; Spark
-- has no unsigned type). Spark refuses a SQL function inside a lambda, so the hash is written out inline; it is
-- taken once per distinct text (md5 once, then its bytes reordered), which gives DuckDB's set of hashes.
CREATE OR REPLACE TEMPORARY FUNCTION waflens_distinct_count(texts ARRAY<STRING>, slots INT) RETURNS BIGINT
RETURN CASE
    WHEN size(array_distinct(texts)) <= slots THEN size(array_distinct(texts))
    ELSE CAST(least(greatest(floor((slots - 1) / (CAST(element_at(array_sort(array_distinct(transform(
             transform(array_distinct(texts), t -> md5(t)),
             m -> CAST(conv(concat(substr(m, 15, 2), substr(m, 13, 2), substr(m, 11, 2), substr(m, 9, 2),
                                   substr(m, 7, 2), substr(m, 5, 2), substr(m, 3, 2), substr(m, 1, 2)),
                            16, 10) AS DECIMAL(20, 0))))), slots) AS DOUBLE) / pow(2, 64)) + 0.5),
                             slots + 1), size(texts)) AS BIGINT)
END;
