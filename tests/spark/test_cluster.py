"""Clustering at scale on real Spark: fitted on a driver sample, the rest placed on executors, in agreement with
the clustering package run on DuckDB's own tables."""

from __future__ import annotations

import numpy as np

from waflens.clustering.assign import place
from waflens.clustering.matrix import build_matrix
from waflens.clustering.reduction import reduce_for_hdbscan
from waflens.clustering.run import ClusterOptions, _hdbscan
from waflens.clustering.select import suspicious_mask
from waflens.data.db import connect
from waflens.data.session_matrix import session_feature_matrix, session_feature_rows
from waflens.pipeline.spark.cluster import SparkClusterOptions, cluster_directory


def test_fit_on_a_sample_and_place_the_rest_as_clustering_does(spark, sessionized):
    out, db, _ = sessionized
    con = connect(db, read_only=True)
    try:
        ids, numeric = session_feature_matrix(con)
        suspicious = ids[suspicious_mask(np.nan_to_num(numeric, nan=0.0, posinf=0.0, neginf=0.0))]
        options = SparkClusterOptions(sample_size=len(suspicious) // 2, min_cluster_size=5, seed=0)
        summary = cluster_directory(spark, str(out), options)
        got = spark.read.parquet(summary.output).toPandas().set_index("session_id").sort_index()
        # the same sessions as waflens cluster selects, each once, about half of them fitted (by client)
        assert summary.sessions == len(ids) and summary.selected == len(suspicious) == len(got)
        assert np.array_equal(got.index.to_numpy(), np.sort(suspicious))
        assert 0.2 * len(suspicious) < summary.fitted < 0.8 * len(suspicious) and summary.placed > 100
        assert summary.clusters >= 2 and (got.loc[~got["fitted"], "cluster_id"] >= 0).any()
        assert got.loc[got["fitted"], "probability"].notna().all() and got.loc[~got["fitted"], "probability"].isna().all()
        # the reference: the clustering package on DuckDB's full tables, the same sample and the rest in one call
        sample = got.index[got["fitted"]].to_numpy(np.int64)
        rest = got.index[~got["fitted"]].to_numpy(np.int64)
        matrix, extra = build_matrix(con, sample, session_feature_rows(con, sample), options.svd_components,
                                     options.seed, extra_ids=rest, extra_numeric=session_feature_rows(con, rest))
    finally:
        con.close()
    X, Y = reduce_for_hdbscan(matrix.X, options.seed, extra, matrix.names)
    labels, _, _ = _hdbscan(X, ClusterOptions(min_cluster_size=5, seed=0))
    assert np.array_equal(got.loc[sample, "cluster_id"].to_numpy(), labels)
    placed = place(X, labels, Y)
    assert np.array_equal(got.loc[rest, "cluster_id"].to_numpy(), placed)
