"""A cluster run that leaves the analysts' allowlisted sessions out: clustering knows nothing of labels,
so they are read here (``waflens cluster`` and ``waflens retrain`` both run it)."""

from __future__ import annotations

import duckdb

from waflens.clustering.run import ClusterOptions, RunSummary, cluster_sessions
from waflens.labeling.allowlist import allowlisted_sessions


def cluster_window(con: duckdb.DuckDBPyConnection, options: ClusterOptions | None = None) -> RunSummary:
    """:func:`waflens.clustering.run.cluster_sessions` with the allowlisted sessions out of a
    ``suspicious`` selection (known good traffic raises no alert)."""
    options = options or ClusterOptions()
    allowlisted = allowlisted_sessions(con) if options.select == "suspicious" else {}
    return cluster_sessions(con, options, allowlisted=allowlisted)
