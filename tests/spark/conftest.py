"""One real Spark (``local[2]``) for every Spark test of a run: starting one costs ~10 s.

Java or pyspark missing skips these tests on a user's machine, but fails them in CI (``CI=true``), where
``scripts/setup.sh test`` installs both."""

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
