"""The Spark output directory of the shared logs, built once per test run through the real CLI, and what the
tests need to compare it with DuckDB's ``shared_db``.

The same files as ``shared_db`` (every shared access log, then the raw HTTP dump), in the same order, with
the same pseudonym key: ``waflens spark features FILES --out DIR``, then ``spark sessionize DIR``, ``spark score
DIR`` with the request and the session test models, and ``spark cluster DIR`` fitted on half of the suspicious
sessions (so that the other half is placed on the executors). DuckDB ingested those files once (``shared_db``),
Spark once (here): every Spark test compares against these two.

Built once per run, not once per xdist worker, as ``shared_db`` is: the first worker to need it builds it under a
file lock in the run's directory and the other waits or finds it done; a worker that only reads never starts Spark.

Spark's ``request_id`` is (records of the earlier files) + ``record``, DuckDB's (the highest id so far) +
``record``: equal unless a file ends in quarantined records, so the tests match requests by (file, record) and
translate ids with :func:`duckdb_request_ids` rather than assume them equal.
"""

from __future__ import annotations

import contextlib
import json
from io import StringIO
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from tests.conftest import REPO_ROOT, once_per_run
from tests.data.cli_process import KEY, json_summary

MODELS = REPO_ROOT / "tests" / "runtime" / "fixtures"
MIN_CLUSTER_SIZE = 5


class SparkPipeline(NamedTuple):
    out: Path            # the Spark output directory
    db: Path             # DuckDB's database of the same files (shared_db): the reference
    files: list[Path]    # the files, in the order both ingested them
    steps: dict          # each CLI step's --json summary: features, sessionize, score_request, score_session, cluster


def build_once(tmp_path_factory, shared_db, start_spark: Callable[[], object]) -> SparkPipeline:
    import pytest

    db, files, _ = shared_db
    with once_per_run(tmp_path_factory, "spark-pipeline") as home:
        out, done = home / "out", home / "steps.json"
        if not done.exists():
            start_spark()                 # the session the CLI steps find active (skips without Java outside CI)
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("WAFLENS_PSEUDONYM_KEY", KEY)
                done.write_text(json.dumps(_build(out, db, files)))
    return SparkPipeline(out, db, files, json.loads(done.read_text()))


def _build(out: Path, db: Path, files: list[Path]) -> dict:
    steps = {"features": _cli("spark", "features", *map(str, files), "--out", str(out)),
             "sessionize": _cli("spark", "sessionize", str(out)),
             "score_request": _cli("spark", "score", str(out), "--model", str(MODELS / "request")),
             "score_session": _cli("spark", "score", str(out), "--model", str(MODELS / "session"))}
    sample = max(10, len(suspicious_duckdb_sessions(db)) // 2)
    steps["cluster"] = _cli("spark", "cluster", str(out), "--sample", str(sample),
                            "--min-cluster-size", str(MIN_CLUSTER_SIZE))
    return steps


class Attached(NamedTuple):
    db: Path             # the database `waflens spark attach` made of the pipeline's output, clustered and summarized
    steps: dict          # each CLI step's --json summary: attach, cluster, summarize


def attach_once(tmp_path_factory, pipeline: SparkPipeline) -> Attached:
    """``waflens spark attach`` of the pipeline's output into a new database, then ``waflens cluster`` (minimum size
    :data:`MIN_CLUSTER_SIZE`) and ``summarize --provider offline`` on it: once per run, as the pipeline itself.
    Read it only; a test that writes copies it (a few MB: the traffic stays in the Parquet its views read)."""
    with once_per_run(tmp_path_factory, "spark-attached") as home:
        db, done = home / "analyst.duckdb", home / "steps.json"
        if not done.exists():
            for left in home.glob("analyst.duckdb*"):   # a build that failed on the other worker
                left.unlink()
            steps = {"attach": _cli("spark", "attach", str(pipeline.out), "--db", str(db)),
                     "cluster": _cli("--db", str(db), "cluster", "--min-cluster-size", str(MIN_CLUSTER_SIZE)),
                     "summarize": _cli("--db", str(db), "summarize", "--provider", "offline")}
            done.write_text(json.dumps(steps))
    return Attached(db, json.loads(done.read_text()))


def _cli(*args: str) -> dict:
    """``waflens --json ARGS`` in this process (the Spark session is this process's): its JSON summary."""
    from waflens.app.cli import main

    stdout, stderr = StringIO(), StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["--json", *args])
    assert code == 0, (args[:2], stderr.getvalue()[-3000:])
    return json_summary(stdout.getvalue())


def suspicious_duckdb_sessions(db: Path) -> np.ndarray:
    """DuckDB's session ids that ``waflens cluster`` would select, sorted."""
    from waflens.clustering.select import suspicious_mask
    from waflens.data.db import connect
    from waflens.data.session_matrix import session_feature_matrix

    con = connect(db, read_only=True)
    try:
        ids, numeric = session_feature_matrix(con)
    finally:
        con.close()
    return ids[suspicious_mask(np.nan_to_num(numeric, nan=0.0, posinf=0.0, neginf=0.0))]


def read(out: Path, name: str) -> pd.DataFrame:
    """``DIR/<name>`` as pandas, read with pyarrow (hive partitions as columns; no Spark needed)."""
    return ds.dataset(str(out / name), format="parquet", partitioning="hive").to_table().to_pandas()


def duckdb_request_ids(pipeline: SparkPipeline) -> pd.Series:
    """DuckDB's request_id of each Spark request_id (index), matched by (file, record). A session is named by
    its first request on both sides, so this also translates session ids."""
    from waflens.data.db import connect

    spark_ids = read(pipeline.out, "requests")[["file", "record", "request_id"]]
    con = connect(pipeline.db, read_only=True)
    try:
        duck = con.execute("SELECT s.path AS file, r.record, r.request_id AS duckdb_id FROM requests r "
                           "JOIN sources s USING (source_id)").fetchdf()
    finally:
        con.close()
    resolved = {f: str(Path(f).resolve()) for f in spark_ids["file"].unique()}   # DuckDB stores resolved paths
    spark_ids["file"] = spark_ids["file"].map(resolved)
    matched = spark_ids.merge(duck, on=["file", "record"], how="left")
    assert matched["duckdb_id"].notna().all(), "a request Spark parsed is not in DuckDB's database"
    return matched.set_index("request_id")["duckdb_id"].astype(np.int64)
