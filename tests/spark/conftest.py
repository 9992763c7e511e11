"""One real SparkSession (``local[2]``) for every Spark test, and a Spark output directory built from DuckDB.

Spark starts in ~8 s: one session per test run, shared at session scope. Java missing is a failure, not a
skip (issue S: the tests run in CI, where scripts/setup.sh test installs Debian's JRE 17).
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def spark():
    from waflens.pipeline.spark.session import spark_session

    session = spark_session("local[2]", "waflens-tests", {"spark.sql.shuffle.partitions": "4",
                                                         "spark.default.parallelism": "2"})
    yield session
    session.stop()


@pytest.fixture(scope="session")
def shared_spark_dir(tmp_path_factory, shared_db, spark):
    """(DIR, DuckDB database): every shared access log and raw HTTP dump, ingested once by ``waflens ingest``
    (the ``shared_db`` fixture), exported as ``waflens spark ingest`` and ``features`` would write them."""
    from tests.spark.contract import export_ingest_output

    db, _, _ = shared_db
    out = tmp_path_factory.mktemp("spark-shared") / "out"
    export_ingest_output(spark, db, out)
    return out, db


@pytest.fixture(scope="session")
def sessionized(spark, shared_spark_dir):
    """(DIR, DuckDB database, summary) after ``waflens spark sessionize`` of the shared logs' output directory."""
    from waflens.pipeline.spark.sessions import sessionize_directory

    out, db = shared_spark_dir
    summary = sessionize_directory(spark, str(out))
    return out, db, summary
