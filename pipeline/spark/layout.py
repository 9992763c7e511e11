"""Where each step reads and writes in the output directory ``DIR`` (the contract of ``waflens.pipeline.spark``).

``DIR`` is a local path or a Hadoop URI (``s3a://bucket/prefix``); paths are joined with ``/`` for both.
A step that finds an input missing says which step writes it.
"""

from __future__ import annotations

from waflens.data.errors import InputError

REQUESTS = "requests"
QUARANTINE = "quarantine"
SOURCES = "sources"
REQUEST_FEATURES = "request_features"
REQUEST_SESSIONS = "request_sessions"   # request_id -> session_id (the DuckDB requests.session_id column)
SESSIONS = "sessions"
SESSION_FEATURES = "session_features"
SESSION_TARGETS = "session_targets"     # each session's first distinct targets (the clustering documents)
SCORES = "scores"
CLUSTER_ASSIGNMENTS = "cluster_assignments"

WRITTEN_BY = {REQUESTS: "waflens spark ingest", QUARANTINE: "waflens spark ingest", SOURCES: "waflens spark ingest",
              REQUEST_FEATURES: "waflens spark features", REQUEST_SESSIONS: "waflens spark sessionize",
              SESSIONS: "waflens spark sessionize", SESSION_FEATURES: "waflens spark sessionize",
              SESSION_TARGETS: "waflens spark sessionize",
              SCORES: "waflens spark score", CLUSTER_ASSIGNMENTS: "waflens spark cluster"}


def path_of(out: str, name: str) -> str:
    return str(out).rstrip("/") + "/" + name


def read_table(spark, out: str, name: str):
    """The Parquet dataset ``DIR/<name>`` (day partitions read as a column), or a clear error when absent."""
    from pyspark.errors import AnalysisException

    try:
        return spark.read.parquet(path_of(out, name))
    except AnalysisException as error:
        if "PATH_NOT_FOUND" in str(error) or "Path does not exist" in str(error) or "UNABLE_TO_INFER_SCHEMA" in str(error):
            raise InputError(f"{path_of(out, name)} is missing or empty: run `{WRITTEN_BY[name]}` first") from None
        raise


def write_table(frame, out: str, name: str, partition_by: str | None = None) -> None:
    """Write ``frame`` as ``DIR/<name>``, replacing what an earlier run wrote there."""
    writer = frame.write.mode("overwrite")
    if partition_by:
        writer = writer.partitionBy(partition_by)
    writer.parquet(path_of(out, name))
