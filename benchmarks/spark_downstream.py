"""Throughput of the Spark steps downstream of ingest (sessionize, score, cluster) beside DuckDB's, same run.

    WAFLENS_PSEUDONYM_KEY=bench-key-0123456789 .venv/bin/python benchmarks/spark_downstream.py --requests 200000

Generates a log (``waflens generate``), ingests it with DuckDB (the ingest's own sessionizing is the
baseline: ``waflens sessionize --rebuild`` timed on the same database), exports the ingest's Parquet as
``waflens spark ingest``/``features`` write it (tests/spark/contract.py), then times each Spark step on
``local[2]``. Prints requests (or sessions) per second and per core. Spark's first step pays the JVM's warm-up.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()

    from waflens.app.cli import main as waflens
    from waflens.pipeline.spark.cluster import SparkClusterOptions, cluster_directory
    from waflens.pipeline.spark.score import score_directory
    from waflens.pipeline.spark.session import spark_session
    from waflens.pipeline.spark.sessions import sessionize_directory
    from tests.spark.contract import export_ingest_output

    cores = int(args.master[len("local["):-1]) if args.master.startswith("local[") else 0
    work = Path(tempfile.mkdtemp(prefix="waflens-spark-bench-"))
    log, db, out = work / "traffic.log", work / "bench.duckdb", work / "out"
    assert waflens(["generate", "--out", str(log), "--requests", str(args.requests)]) == 0
    assert waflens(["--db", str(db), "ingest", str(log)]) == 0
    started = time.perf_counter()
    assert waflens(["--db", str(db), "sessionize", "--rebuild"]) == 0
    rows = [("DuckDB sessionize + session features (--rebuild)", args.requests, time.perf_counter() - started, 2)]
    spark = spark_session(args.master, "waflens-bench", {"spark.sql.shuffle.partitions": str(max(2, 2 * cores))})
    export_ingest_output(spark, db, out)
    spark.range(1000).count()  # the JVM up before timing

    def timed(label, n, work):
        started = time.perf_counter()
        result = work()
        rows.append((label, n if n is not None else result, time.perf_counter() - started, cores))
        return result

    summary = timed("Spark sessionize + session features", args.requests,
                    lambda: sessionize_directory(spark, str(out)))
    timed("Spark score (request model)", args.requests,
          lambda: score_directory(spark, str(out), REPO / "tests/runtime/fixtures/request"))
    timed("Spark score (session model)", summary.sessions,
          lambda: score_directory(spark, str(out), REPO / "tests/runtime/fixtures/session"))
    clustered = timed("Spark cluster (suspicious sessions)", None,
                      lambda: cluster_directory(spark, str(out), SparkClusterOptions()).selected)
    print(f"{args.requests:,} generated requests, {summary.sessions:,} sessions, {clustered:,} suspicious; {args.master}")
    print(f"{'step':<52}{'rows':>10}{'seconds':>10}{'rows/s':>12}{'rows/s/core':>13}")
    for label, n, seconds, used in rows:
        print(f"{label:<52}{n:>10,}{seconds:>10.1f}{n / seconds:>12,.0f}{n / seconds / max(used, 1):>13,.0f}")
    spark.stop()


if __name__ == "__main__":
    main()
