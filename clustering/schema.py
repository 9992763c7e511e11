"""The cluster runs' tables (``sql/schema.sql``): a module of its own, so that labeling, whose views read
these tables, can create them without importing the clustering itself."""

from __future__ import annotations

from importlib import resources

import duckdb

from waflens.data.db import split_statements


def ensure_cluster_schema(con: duckdb.DuckDBPyConnection) -> None:
    sql = resources.files("waflens.clustering").joinpath("sql", "schema.sql").read_text(encoding="utf-8")
    for statement in split_statements(sql):
        con.execute(statement)
