"""One real SparkSession (``local[2]``) per test process (starting one costs ~10 s), and the shared logs through
every Spark step once per run.

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
def spark_pipeline(request, tmp_path_factory, shared_db):
    """The shared logs (the files of ``shared_db``, in its order) through the real CLI, once per run:
    ``waflens spark features`` -> ``sessionize`` -> ``score`` (request and session model) -> ``cluster``.
    See :mod:`tests.spark.pipeline`. Read it only; a test that writes Spark output makes its own directory."""
    from tests.spark.pipeline import build_once

    return build_once(tmp_path_factory, shared_db, lambda: request.getfixturevalue("spark"))


@pytest.fixture(scope="session")
def spark_attached(tmp_path_factory, spark_pipeline):
    """A database made by ``waflens spark attach`` over ``spark_pipeline``'s output, then ``waflens cluster`` and
    ``summarize`` (offline), once per run: the analyst loop on Spark output (``.db``, and each step's JSON summary
    in ``.steps``). Read it only; copy the file to write (its views read the one output directory)."""
    from tests.spark.pipeline import attach_once

    return attach_once(tmp_path_factory, spark_pipeline)
