"""``waflens spark cluster DIR``: HDBSCAN over the suspicious sessions of a Spark output directory.

Suspicious sessions are chosen as ``waflens cluster`` chooses them (:func:`waflens.clustering.select.suspicious_mask`
on the session features, non-finite values as 0). HDBSCAN is fitted on the driver, on a sample of them
(``--sample``, default :data:`DEFAULT_SAMPLE`: about what ``waflens cluster`` fits in a minute on one core);
the sample is drawn by client (a client's sessions are all in it or all out), because the clustering matrix
blends each session with its client's other sessions. The rest are placed on the executors with the rule of
``waflens cluster`` (:func:`waflens.clustering.assign.place`: the cluster of the nearest fitted session, if no
farther than that cluster's members are from each other) in the same matrix space: each task rebuilds the
fitted space from the broadcast sample (:func:`waflens.clustering.matrix.build_matrix` with the task's sessions
as its extra rows; seeded, so every task gets the driver's space) and then places its sessions against the
broadcast labels. Tasks group whole clients (client buckets), as ``build_matrix`` blends by client.

Written to ``DIR/cluster_assignments/``: session_id, cluster_id (-1 noise), probability (HDBSCAN's membership for
fitted sessions, NULL for placed ones) and ``fitted``. Known cost: each task refits the space on the sample
(seconds for 20,000 sessions); a fit/transform split of build_matrix would let the fitted space itself travel.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import NamedTuple

import duckdb
import numpy as np
import pandas as pd

from waflens.clustering.assign import place
from waflens.clustering.matrix import build_matrix
from waflens.clustering.reduction import reduce_for_hdbscan
from waflens.clustering.run import ClusterOptions, _hdbscan
from waflens.data.feature_spec import feature_names
from waflens.pipeline.spark import layout
from waflens.pipeline.spark.selection import feature_matrix, suspicious_batches

DEFAULT_SAMPLE = 20_000
CLIENT_BUCKETS_PER_CORE = 2   # tasks per core that place sessions (each refits the space once)
_FIT: list = []               # per Python worker: [(broadcast, the fit it holds)], the last one, unpickled once


@dataclass
class SparkClusterOptions:
    sample_size: int = DEFAULT_SAMPLE
    min_cluster_size: int = 10
    min_samples: int | None = None
    svd_components: int = 16
    merge_distance: float = 1.5
    seed: int = 0

    def clustering(self) -> ClusterOptions:
        return ClusterOptions(min_cluster_size=self.min_cluster_size, min_samples=self.min_samples,
                              svd_components=self.svd_components, merge_distance=self.merge_distance, seed=self.seed)


class ClusterSummary(NamedTuple):
    sessions: int
    selected: int
    fitted: int
    placed: int
    clusters: int
    noise: int
    output: str


class Fit(NamedTuple):
    """What the executors need to rebuild the driver's space and place sessions in it."""
    session_ids: np.ndarray
    client_keys: np.ndarray
    numeric: np.ndarray
    targets: pd.DataFrame
    labels: np.ndarray
    svd_components: int
    seed: int


def documents_db(sessions: pd.DataFrame, targets: pd.DataFrame) -> duckdb.DuckDBPyConnection:
    """An in-memory database with the ``sessions`` and ``requests`` columns the clustering matrix reads."""
    con = duckdb.connect(":memory:")
    con.register("given_sessions", sessions[["session_id", "client_key"]])
    con.register("given_targets", targets[["request_id", "session_id", "client_key", "path_decoded", "query_decoded"]])
    con.execute("CREATE TABLE sessions AS SELECT * FROM given_sessions")
    con.execute("CREATE TABLE requests AS SELECT * FROM given_targets")
    con.unregister("given_sessions")
    con.unregister("given_targets")
    return con


def fitted_space(fit: Fit, extra: pd.DataFrame | None = None, extra_targets: pd.DataFrame | None = None):
    """(X of the fitted sessions, Y of the extra ones or None): the space ``waflens cluster`` builds."""
    sessions = pd.DataFrame({"session_id": fit.session_ids, "client_key": fit.client_keys})
    targets = fit.targets
    if extra is not None:
        sessions = pd.concat([sessions, extra[["session_id", "client_key"]]], ignore_index=True)
        targets = pd.concat([targets, extra_targets], ignore_index=True)
    con = documents_db(sessions, targets)
    try:
        names = feature_names("session")
        matrix, extra_matrix = build_matrix(
            con, fit.session_ids, fit.numeric, fit.svd_components, fit.seed,
            extra_ids=None if extra is None else extra["session_id"].to_numpy(np.int64),
            extra_numeric=None if extra is None else feature_matrix(extra, names))
    finally:
        con.close()
    return reduce_for_hdbscan(matrix.X, fit.seed, extra_matrix, matrix.names)


def broadcast_fit(spark, fit: Fit):
    """Broadcast the fit as pickled bytes, for :func:`broadcast_fit_value` in the tasks.

    pyspark cannot broadcast a numpy array when the cluster encrypts its I/O (``spark.io.encryption.enabled``,
    as a cluster holding personal data should): the encrypted writer takes the pickler's out-of-band buffers
    for bytes and fails with "object of type 'pickle.PickleBuffer' has no len()". Bytes it can write."""
    return spark.sparkContext.broadcast(pickle.dumps(fit, protocol=pickle.HIGHEST_PROTOCOL))


def broadcast_fit_value(broadcast) -> Fit:
    """The fit of :func:`broadcast_fit`, unpickled once per Python worker (the last one only is kept; a worker
    holds one object per broadcast for as long as it lives)."""
    if not _FIT or _FIT[0][0] is not broadcast:
        _FIT[:] = [(broadcast, pickle.loads(broadcast.value))]
    return _FIT[0][1]


def place_group(fit: Fit, sessions: pd.DataFrame, targets: pd.DataFrame) -> pd.DataFrame:
    """Cluster (or -1) of each session of one client bucket, in the fitted space (see the module docstring)."""
    if len(sessions) == 0:
        return pd.DataFrame({"session_id": np.zeros(0, np.int64), "cluster_id": np.zeros(0, np.int32)})
    X, Y = fitted_space(fit, sessions, targets)
    return pd.DataFrame({"session_id": sessions["session_id"].to_numpy(np.int64),
                         "cluster_id": place(X, fit.labels, Y).astype(np.int32)})


def cluster_directory(spark, out: str, options: SparkClusterOptions | None = None) -> ClusterSummary:
    """Fit on a sample of DIR's suspicious sessions, place the rest; write ``DIR/cluster_assignments``."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    options = options or SparkClusterOptions()
    names = feature_names("session")
    features = layout.read_table(spark, out, layout.SESSION_FEATURES)
    sessions = layout.read_table(spark, out, layout.SESSIONS).select("session_id", "client_key")
    joined = sessions.join(features.select("session_id", *names), "session_id")
    # counts ride along with the jobs that run anyway (Observation), instead of a job each
    all_sessions = Observation("sessions")
    selected = joined.observe(all_sessions, F.count(F.lit(1)).alias("n")) \
        .mapInPandas(suspicious_batches, joined.schema).cache()
    n_selected = selected.count()
    n_sessions = all_sessions.get["n"]
    # by client: a client's sessions are all in the sample or all out of it (the matrix blends by client)
    fraction = min(1.0, options.sample_size / max(n_selected, 1))
    draw = (F.abs(F.xxhash64("client_key", F.lit(options.seed))) % 1_000_000) / 1_000_000.0
    selected = selected.withColumn("fitted", draw < F.lit(fraction))
    # each session's first targets, found by `spark sessionize` (sql/session_targets.sql) while it had the requests
    # (client_key re-aliased: both sides of the placement's cogroup derive from `selected`, and Spark refuses
    # a column it cannot tell apart)
    targets = layout.read_table(spark, out, layout.SESSION_TARGETS) \
        .join(selected.select("session_id", F.col("client_key").alias("owner"), "fitted"), "session_id") \
        .withColumnRenamed("owner", "client_key")

    sample = selected.where("fitted").toPandas().sort_values("session_id", kind="stable")
    sample_targets = targets.where("fitted").drop("fitted").toPandas()
    fit = Fit(sample["session_id"].to_numpy(np.int64), sample["client_key"].to_numpy(object),
              feature_matrix(sample, names), sample_targets, np.zeros(0, np.int64), options.svd_components, options.seed)
    labels, probabilities = _fit(fit, options)
    fit = fit._replace(labels=labels)
    fitted_rows = spark.createDataFrame(pd.DataFrame({
        "session_id": fit.session_ids, "cluster_id": labels.astype(np.int32), "probability": probabilities,
        "fitted": np.ones(len(labels), dtype=bool)}), "session_id long, cluster_id int, probability double, fitted boolean")

    rest = selected.where("NOT fitted").drop("fitted")
    broadcast = broadcast_fit(spark, fit)
    buckets = max(1, CLIENT_BUCKETS_PER_CORE * spark.sparkContext.defaultParallelism)
    bucket = F.pmod(F.xxhash64("client_key"), F.lit(buckets))

    def placed_bucket(group_sessions: pd.DataFrame, group_targets: pd.DataFrame) -> pd.DataFrame:
        return place_group(broadcast_fit_value(broadcast), group_sessions, group_targets)

    if len(fit.labels) and (fit.labels >= 0).any():
        placed = rest.withColumn("bucket", bucket).groupBy("bucket").cogroup(
            targets.where("NOT fitted").drop("fitted").withColumn("bucket", bucket).groupBy("bucket")) \
            .applyInPandas(placed_bucket, "session_id long, cluster_id int")
    else:  # nothing to join: every other session is noise too
        placed = rest.select("session_id", F.lit(-1).cast("int").alias("cluster_id"))
    placed = placed.select("session_id", "cluster_id", F.lit(None).cast("double").alias("probability"),
                           F.lit(False).alias("fitted"))
    placed_counts = Observation("placed")
    placed = placed.observe(placed_counts, F.count(F.lit(1)).alias("n"),
                            F.coalesce(F.sum((F.col("cluster_id") < 0).cast("int")), F.lit(0)).alias("noise"))
    layout.write_table(fitted_rows.unionByName(placed), out, layout.CLUSTER_ASSIGNMENTS)
    selected.unpersist()
    # a placed session joins a fitted cluster: the clusters are the fitted ones
    return ClusterSummary(int(n_sessions), int(n_selected), len(labels), int(placed_counts.get["n"]),
                          len(np.unique(labels[labels >= 0])), int((labels < 0).sum() + placed_counts.get["noise"]),
                          layout.path_of(out, layout.CLUSTER_ASSIGNMENTS))


def _fit(fit: Fit, options: SparkClusterOptions) -> tuple[np.ndarray, np.ndarray]:
    """HDBSCAN labels and membership probabilities of the sample (all noise when too few sessions)."""
    n = len(fit.session_ids)
    if n < options.min_cluster_size:
        return np.full(n, -1, dtype=np.int64), np.zeros(n)
    X, _ = fitted_space(fit)
    labels, probabilities, _ = _hdbscan(X, options.clustering())
    return labels, probabilities
