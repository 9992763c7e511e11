"""`waflens spark cluster` on real Spark: fitted on a driver sample, the rest placed on executors, in agreement with
the clustering package run on DuckDB's own tables."""

from __future__ import annotations

import numpy as np

from waflens.clustering.assign import place
from waflens.clustering.matrix import build_matrix
from waflens.clustering.reduction import reduce_for_hdbscan
from waflens.clustering.run import ClusterOptions, _hdbscan
from waflens.data.db import connect
from waflens.data.feature_spec import feature_names
from waflens.data.session_matrix import session_feature_rows
from waflens.pipeline.spark.cluster import SparkClusterOptions

from tests.spark.pipeline import MIN_CLUSTER_SIZE, duckdb_request_ids, read, suspicious_duckdb_sessions


def test_fit_on_a_sample_and_place_the_rest_as_clustering_does(spark_pipeline):
    summary = spark_pipeline.steps["cluster"]
    options = SparkClusterOptions(min_cluster_size=MIN_CLUSTER_SIZE, seed=0)   # the fixture's options
    to_duckdb = duckdb_request_ids(spark_pipeline)   # a session is named by its first request on both sides
    got = read(spark_pipeline.out, "cluster_assignments")
    got["duckdb_id"] = got["session_id"].map(to_duckdb)
    got = got.set_index("duckdb_id").sort_index()
    suspicious = suspicious_duckdb_sessions(spark_pipeline.db)
    # the same sessions as waflens cluster selects, each once, about half of them fitted (by client)
    assert summary["sessions"] == spark_pipeline.steps["sessionize"]["sessions"]
    assert summary["selected"] == len(suspicious) == len(got)
    assert np.array_equal(got.index.to_numpy(), suspicious)
    assert 0.2 * len(suspicious) < summary["fitted"] < 0.8 * len(suspicious) and summary["placed"] > 100
    assert summary["clusters"] >= 2 and (got.loc[~got["fitted"], "cluster_id"] >= 0).any()
    assert got.loc[got["fitted"], "probability"].notna().all() and got.loc[~got["fitted"], "probability"].isna().all()
    # the reference: the clustering package on DuckDB's full tables (documents, clients), the same sample and
    # the rest in one call. The numbers are Spark's session features: they equal DuckDB's within 1e-9
    # (test_sessions), but Spark's sums run in task order, and a last-bit change may flip a near-tie in HDBSCAN.
    sample = got.index[got["fitted"]].to_numpy(np.int64)
    rest = got.index[~got["fitted"]].to_numpy(np.int64)
    features = read(spark_pipeline.out, "session_features")
    features = features.set_index(features["session_id"].map(to_duckdb))[feature_names("session")]
    spark_rows = {name: features.loc[ids].to_numpy(dtype=np.float64) for name, ids in (("sample", sample),
                                                                                       ("rest", rest))}
    con = connect(spark_pipeline.db, read_only=True)
    try:
        assert np.allclose(session_feature_rows(con, sample), spark_rows["sample"], rtol=1e-9, atol=1e-9)
        matrix, extra = build_matrix(con, sample, spark_rows["sample"], options.svd_components, options.seed,
                                     extra_ids=rest, extra_numeric=spark_rows["rest"])
    finally:
        con.close()
    X, Y = reduce_for_hdbscan(matrix.X, options.seed, extra, matrix.names)
    labels, _, _ = _hdbscan(X, ClusterOptions(min_cluster_size=MIN_CLUSTER_SIZE, seed=0))
    fitted_differ = int((got.loc[sample, "cluster_id"].to_numpy() != labels).sum())
    assert fitted_differ == 0, f"{fitted_differ} of {len(sample)} fitted sessions differ"
    placed = place(X, labels, Y)
    # Executors rebuild the space in their own processes, where PySpark sets OMP_NUM_THREADS to the task's
    # cores: the SVD's BLAS then sums in another order and the last bits differ, which can flip a session that
    # sits at a near-tie between two members or on a cluster's radius. Allowed: 1 in 100.
    differ = int((got.loc[rest, "cluster_id"].to_numpy() != placed).sum())
    assert differ <= 0.01 * len(rest), f"{differ} of {len(rest)} placed sessions differ from the reference"
