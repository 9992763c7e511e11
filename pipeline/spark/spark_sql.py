"""The Spark SQL files of ``pipeline/spark/sql/``: loaded as package data, run with named parameters.

As for DuckDB (:func:`waflens.data.db.run_sql_file`), SQL lives in ``.sql`` files and values travel as
named parameters (``:name``), never formatted into the text. Lists become Spark ``array(...)`` literals.
"""

from __future__ import annotations

import re
from importlib import resources


_MARKER = re.compile(r"(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)")


def load_spark_sql(name: str) -> str:
    """The text of ``pipeline/spark/sql/<name>.sql`` without its comment lines."""
    text = resources.files("waflens.pipeline.spark").joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))


def spark_sql(spark, name: str, params: dict | None = None):
    """The DataFrame of the one query in ``sql/<name>.sql``, with the parameters it names bound."""
    text = load_spark_sql(name)
    return spark.sql(text, args=_bound(text, params or {}))


def _bound(text: str, params: dict) -> dict:
    from pyspark.sql import functions as F

    named = set(_MARKER.findall(text))
    missing = named - set(params)
    if missing:
        raise KeyError(f"no value for SQL parameters {sorted(missing)}")
    return {k: (F.array(*[F.lit(x) for x in v]) if isinstance(v, (list, tuple)) else v)
            for k, v in params.items() if k in named}
