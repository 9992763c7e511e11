"""pyspark's warning about pandas 3, silenced alone (a module of its own: :mod:`session` and
:mod:`submit_stderr` both call it, and each imports the other's module)."""

from __future__ import annotations

import warnings


def ignore_pandas_support_warning() -> None:
    """Hide pyspark's FutureWarning that it "does not yet fully support pandas >= 3.0.0", and no other warning.

    pyspark (4.0-4.3) gives it for every pandas-based call, and once when ``pyspark.testing.utils`` is first
    imported, which its Py4J converters do at the first JVM call with an argument. The pandas paths used here
    (mapInPandas for scoring, applyInPandas and toPandas for clustering) are held to the DuckDB pipeline's results
    by tests/spark with pandas 3; the warning says nothing about them. Called by :func:`spark_session` and, under
    ``spark-submit``, before waflens's first line to stderr goes through the JVM
    (:mod:`waflens.pipeline.spark.submit_stderr`): that write can be the first such call (an error refused before
    the session starts), and then the warning came before the error line."""
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
