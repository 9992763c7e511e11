"""The output of ``waflens spark ingest`` and ``features`` (the contract in ``waflens.pipeline.spark``), made
from a DuckDB database: until part A of issue S lands, this is how the downstream steps get their input.

``DIR/requests/day=…/``: the columns of ``requests`` with ``file`` (the source's path) and ``record`` for
source_id (and without session_id, which sessionizing adds); ``DIR/request_features/day=…/``: ``file``,
``record``, ``request_id`` and every request feature. Times become Spark timestamps (the session is UTC).
"""

from __future__ import annotations

from pathlib import Path

from waflens.data.db import connect
from waflens.data.feature_spec import feature_names
from waflens.pipeline.spark.layout import REQUEST_FEATURES, REQUESTS, path_of

_DAY = "CAST(CAST(r.ts AS DATE) AS VARCHAR) AS day"


def export_ingest_output(spark, db: Path, out: Path) -> None:
    from pyspark.sql import functions as F

    staging = Path(str(out) + ".staging")
    staging.mkdir(parents=True)
    con = connect(db, read_only=True)
    try:
        con.execute(f"""COPY (SELECT s.path AS file, r.* EXCLUDE (source_id, session_id), {_DAY}
                              FROM requests r JOIN sources s USING (source_id) ORDER BY r.request_id)
                        TO '{staging / "requests.parquet"}' (FORMAT parquet)""")
        features = ", ".join("f." + name for name in feature_names("request"))
        con.execute(f"""COPY (SELECT s.path AS file, r.record, r.request_id, {features}, {_DAY}
                              FROM requests r JOIN request_features f USING (request_id) JOIN sources s USING (source_id)
                              ORDER BY r.request_id)
                        TO '{staging / "request_features.parquet"}' (FORMAT parquet)""")
    finally:
        con.close()
    requests = spark.read.parquet(str(staging / "requests.parquet")).withColumn("ts", F.col("ts").cast("timestamp"))
    requests.write.partitionBy("day").parquet(path_of(str(out), REQUESTS))
    spark.read.parquet(str(staging / "request_features.parquet")).write.partitionBy("day") \
        .parquet(path_of(str(out), REQUEST_FEATURES))
