"""Sessions and session features on Spark: ``DIR/requests`` + ``DIR/request_features`` -> ``DIR/request_sessions``,
``DIR/sessions``, ``DIR/session_features``.

The same rules as DuckDB's (``data/sql/sessionize.sql``, ``data/sql/session_features.sql``), computed over every
request at once with window functions (``sql/sessionize.sql``, ``sql/session_features.sql``): a session is a run
of one client's requests with no gap longer than the gap, requests without a time never start one, ties go by
request_id, and session_id is the smallest request_id of the session. DuckDB's requests.session_id column is
``DIR/request_sessions`` here (``DIR/requests`` is the ingest's and is not rewritten). Every constant comes from
the feature spec through :func:`waflens.data.feature_spec.sql_parameters`.

request_id must increase in ingest order (file by file, record by record), as DuckDB's does: it breaks
ties between requests of the same second and names the session.
"""

from __future__ import annotations

from typing import NamedTuple

from waflens.data.errors import InputError
from waflens.data.feature_spec import SESSION_FEATURES, sql_parameters
from waflens.data.sessionize import DEFAULT_GAP_MINUTES
from waflens.pipeline.spark import layout
from waflens.pipeline.spark.layout import read_table, write_table
from waflens.pipeline.spark.spark_sql import define_functions, spark_sql

# DuckDB type names of the spec -> Spark's
SPARK_TYPES = {"TINYINT": "TINYINT", "SMALLINT": "SMALLINT", "INTEGER": "INT", "BIGINT": "BIGINT", "DOUBLE": "DOUBLE"}


class SessionsSummary(NamedTuple):
    requests: int
    sessions: int


def gap_micros(gap_minutes: float) -> int:
    """The gap in microseconds (DuckDB compares timestamps, which count microseconds)."""
    if not gap_minutes > 0:
        raise InputError(f"session gap must be positive minutes, got {gap_minutes}")
    return int(round(float(gap_minutes) * 60.0 * 1_000_000))


def assign_sessions(spark, requests, gap_minutes: float = DEFAULT_GAP_MINUTES):
    """(request_id, client_key, ts, session_id) of every request (a DataFrame with those columns)."""
    requests.select("request_id", "client_key", "ts").createOrReplaceTempView("requests")
    return spark_sql(spark, "sessionize", {"gap_micros": gap_micros(gap_minutes)})


def session_table(assigned):
    """The DuckDB ``sessions`` table's rows from the assigned requests."""
    from pyspark.sql import functions as F

    return assigned.groupBy("session_id").agg(
        F.first("client_key").alias("client_key"), F.min("ts").alias("start_ts"), F.max("ts").alias("end_ts"),
        F.count(F.lit(1)).alias("n_requests"), F.min("request_id").alias("first_request_id"),
        F.max("request_id").alias("last_request_id"))


def session_features(spark, requests, request_features, request_sessions):
    """session_id and every session feature (the spec's names and types) of every session."""
    from pyspark.sql import functions as F

    define_functions(spark)
    requests.join(request_sessions.select("request_id", "session_id"), "request_id") \
        .createOrReplaceTempView("requests")
    request_features.createOrReplaceTempView("request_features")
    frame = spark_sql(spark, "session_features", sql_parameters())
    return frame.select("session_id", *[F.col(f.name).cast(SPARK_TYPES[f.dtype]).alias(f.name)
                                        for f in SESSION_FEATURES])


def sessionize_directory(spark, out: str, gap_minutes: float = DEFAULT_GAP_MINUTES) -> SessionsSummary:
    """Write ``DIR/request_sessions``, ``DIR/sessions`` and ``DIR/session_features`` from the ingest's output."""
    requests = read_table(spark, out, layout.REQUESTS)
    request_features = read_table(spark, out, layout.REQUEST_FEATURES)
    assigned = assign_sessions(spark, requests, gap_minutes)
    # written first and read back: sessions and their features start from it, not from the windows again
    write_table(assigned.select("request_id", "session_id"), out, layout.REQUEST_SESSIONS)
    request_sessions = read_table(spark, out, layout.REQUEST_SESSIONS)
    membership = request_sessions.join(requests.select("request_id", "client_key", "ts"), "request_id")
    write_table(session_table(membership), out, layout.SESSIONS)
    write_table(session_features(spark, requests, request_features.drop("file", "record", "day"), request_sessions),
                out, layout.SESSION_FEATURES)
    return SessionsSummary(request_sessions.count(), read_table(spark, out, layout.SESSIONS).count())
