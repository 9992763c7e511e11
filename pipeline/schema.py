"""Every package's tables and views above data's, in one go and in layer order: the cluster runs', the
labels' (whose views read the cluster tables) and the imported session labels'. Data's own tables come
with every write connection (:func:`waflens.data.db.connect`). A database that never saw a cluster run
or a label, or an in-memory copy of some of its tables (retrain's snapshot), then answers every reader."""

from __future__ import annotations

import duckdb

from waflens.clustering.schema import ensure_cluster_schema
from waflens.labeling.label_import import ensure_import_schema
from waflens.labeling.labels import ensure_label_schema


def ensure_schemas(con: duckdb.DuckDBPyConnection) -> None:
    """Create what is missing (nothing on a read-only connection)."""
    if con.execute("SELECT readonly FROM duckdb_databases() WHERE database_name = current_database()").fetchall()[0][0]:
        return
    ensure_cluster_schema(con)
    ensure_label_schema(con)
    ensure_import_schema(con)
