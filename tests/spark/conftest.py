"""One real SparkSession (``local[2]``) for every Spark test of a run (starting one costs ~10 s), and a Spark
output directory of the shared logs.

Java or pyspark missing skips these tests on a user's machine, but fails them in CI (``CI=true``), where
``scripts/setup.sh test`` installs both (issue S: missing Java in CI is a failure, not a skip).
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def spark():
    from waflens.pipeline.spark.session import SparkUnavailable, spark_session

    try:
        session = spark_session("local[2]", app_name="waflens-tests",
                                config={"spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "2"})
    except SparkUnavailable as error:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{error} (required in CI)")
        pytest.skip(str(error))
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
