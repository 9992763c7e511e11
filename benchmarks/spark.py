"""Spark beside DuckDB, step by step, on real logs and then generated combined lines: one table for the pipeline.

    .venv/bin/python benchmarks/spark.py [--sizes 1000000 10000000] [--repeat 3] [--quick] [--ingest-only] [--no-real]

The first rows are the shared real access logs ($WAFLENS_SHARED_DATASETS/access_logs: third-party traffic, some
50,000 lines, so Spark's fixed costs weigh most there); then, for each size, a log is generated into a temporary
directory under /tmp (never the repository). Each step is timed on both engines on the same machine, median of
``--repeat`` runs:

============================  ========================================  ========================================
step                          DuckDB (a child process, every core)      Spark (``--master``, default local[2])
============================  ========================================  ========================================
ingest + request features     ``ingest_file`` + ``compute_request_...``  ``waflens spark features``
sessionize + score sessions   ``sessionize`` (sessions + features),      ``waflens spark sessionize --model``
                              then the next row                         (one pass: the tasks score the sessions)
score sessions again          the batch function of ``spark score`` on  ``waflens spark score`` (session model):
                              DuckDB's rows, scores written by DuckDB   rescoring with a new model
                              (one core: the Python of the batches)
score (request model)         the same, request model                   ``waflens spark score`` (request model)
cluster                       ``cluster_sessions`` (``waflens cluster``)  ``waflens spark cluster`` (fit on up to
                                                                        20,000 on the driver, place the rest)
whole pipeline                the rows above but the rescoring, per     the same
                              input line
============================  ========================================  ========================================

Spark runs in one session started before any timing (its ~10 s of JVM start are printed apart: a cluster pays
them once per job, not per step), after a small warm-up run that compiles the workers' numba kernels. The
ratio is DuckDB's rows per core-second over Spark's (a DuckDB step holds every core, but its scoring one; a
Spark step every core of the master); the goal of issue S is Spark within 3x per core.
``--quick`` is one size of 100,000 lines and two runs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KEY = b"benchmark-key-0123456789"
MODELS = REPO / "tests" / "runtime" / "fixtures"
STEPS = ("ingest + request features", "sessionize + score sessions", "score sessions again",
         "score (request model)", "cluster (suspicious sessions)")
WHOLE = "whole pipeline (lines)"   # every step but the rescoring, per input line


def timed(timings: dict, step: str, cores: int, work, rows: int | None = None):
    """Run ``work()``; record ``timings[step] = (rows, seconds, core-seconds)`` with ``cores`` held throughout
    (rows: the work's result unless given); return the result."""
    started = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - started
    timings[step] = (result if rows is None else rows, seconds, seconds * cores)
    return result


def duckdb_once(logs: list[Path], db: Path, ingest_only: bool, fmt: str) -> dict:
    """(rows, seconds, core-seconds) of each DuckDB step, in this (child) process: DuckDB's own steps use every
    core, the scoring steps one (the Python of the batches)."""
    from waflens.clustering.run import ClusterOptions, cluster_sessions
    from waflens.data.db import connect
    from waflens.data.ingest import IngestOptions, ingest_file
    from waflens.data.pseudonymize import Pseudonymizer
    from waflens.data.sessionize import compute_request_features, sessionize

    cores = os.cpu_count() or 1
    con = connect(db)
    timings = {}

    def ingest() -> int:
        for log in logs:
            ingest_file(con, log, IngestOptions(format=fmt), Pseudonymizer(KEY))
        compute_request_features(con)
        return con.execute("SELECT count(*) FROM requests").fetchall()[0][0]

    requests = timed(timings, STEPS[0], cores, ingest)
    if not ingest_only:
        timed(timings, "sessionize", cores, lambda: sessionize(con), rows=requests)
        timed(timings, STEPS[2], 1, lambda: score_in_duckdb(con, "session", db.with_suffix(".session-scores.parquet")))
        # Spark sessionizes and scores the sessions in one pass (--model); DuckDB's are the two steps above
        (_, sessionized, used), (_, scored, scoring) = timings.pop("sessionize"), timings[STEPS[2]]
        timings[STEPS[1]] = (requests, sessionized + scored, used + scoring)
        timed(timings, STEPS[3], 1, lambda: score_in_duckdb(con, "request", db.with_suffix(".request-scores.parquet")))
        timed(timings, STEPS[4], cores, lambda: cluster_sessions(con, ClusterOptions()).n_selected)
    con.close()
    return timings


def score_in_duckdb(con, level: str, output: Path) -> int:
    """The work of ``waflens spark score`` with DuckDB around it: the same batch function (the artifact loaded
    once, the runtime's features and ``score_batch``) over batches DuckDB reads, the scores written to Parquet
    by DuckDB. One core (the Python of the batches), as one Spark task does it."""
    import pyarrow as pa

    from waflens.data.feature_spec import feature_names
    from waflens.pipeline.spark.score import checked_model, request_scores, session_score_schema, session_scores

    model = checked_model(MODELS / level)
    name = Path(model.path).name
    if level == "request":   # mapInPandas in Spark: pandas batches
        query = "SELECT NULL AS file, record, request_id, NULL AS day, method, path, query, body, user_agent, referer FROM requests"
        batches = (batch.to_pandas() for batch in con.sql(query).to_arrow_reader(10_000))
        frames = [pa.Table.from_pandas(frame, preserve_index=False)
                  for frame in request_scores(batches, model.path, model.digest, name)]
    else:                    # mapInArrow in Spark: Arrow batches
        query = "SELECT session_id, " + ", ".join(feature_names("session")) + " FROM session_features"
        frames = [pa.Table.from_batches([batch]) for batch in session_scores(
            con.sql(query).to_arrow_reader(10_000), model.path, model.digest, name, session_score_schema(model))]
    scored = pa.concat_tables(frames) if frames else pa.table({})
    con.register("scored", scored)
    con.execute(f"COPY scored TO '{output}' (FORMAT parquet)")
    con.unregister("scored")
    output.unlink()
    return scored.num_rows


def duckdb_runs(logs: list[Path], tmp: Path, repeat: int, ingest_only: bool, fmt: str) -> list[dict]:
    runs = []
    for i in range(repeat):
        db = tmp / f"bench{i}.duckdb"
        child = [sys.executable, __file__, "--duckdb-child", str(db), fmt, *map(str, logs)] + \
            (["--ingest-only"] * ingest_only)
        out = subprocess.run(child, capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        for left in tmp.glob(f"bench{i}.duckdb*"):
            left.unlink()
    return runs


def spark_once(spark, logs: list[Path], out: Path, ingest_only: bool, fmt: str = "combined", cores: int = 2) -> dict:
    """(rows, seconds, core-seconds) of each Spark step: every step holds all ``cores`` of the master."""
    from waflens.data.ingest import IngestOptions
    from waflens.pipeline.spark.cluster import cluster_directory
    from waflens.pipeline.spark.ingest import ingest
    from waflens.pipeline.spark.score import score_directory
    from waflens.pipeline.spark.sessions import sessionize_directory

    timings = {}

    def ingested():
        result = ingest(spark, list(map(str, logs)), str(out), IngestOptions(format=fmt), KEY, with_features=True)
        result.release()
        return sum(f.parsed for f in result.files)

    requests = timed(timings, STEPS[0], cores, ingested)
    if not ingest_only:
        # one pass: sessions, their features and their scores (`spark sessionize --model`)
        sessions = timed(timings, STEPS[1], cores,
                         lambda: sessionize_directory(spark, str(out), model=str(MODELS / "session")), rows=requests)
        timed(timings, STEPS[2], cores, lambda: score_directory(spark, str(out), MODELS / "session"),
              rows=sessions.sessions)
        timed(timings, STEPS[3], cores, lambda: score_directory(spark, str(out), MODELS / "request"), rows=requests)
        timed(timings, STEPS[4], cores, lambda: cluster_directory(spark, str(out)).selected)
    shutil.rmtree(out)
    return timings


def real_logs() -> list[Path]:
    """The shared real access logs ($WAFLENS_SHARED_DATASETS/access_logs), or none when absent."""
    return sorted((shared_datasets() / "access_logs").glob("*.log.gz"))


def shared_datasets() -> Path:
    return Path(os.environ.get("WAFLENS_SHARED_DATASETS") or REPO.parent / "shared" / "datasets")


def median_by_step(runs: list[dict]) -> dict:
    """step -> (rows, median seconds, median core-seconds); with every step, the whole pipeline too."""
    if STEPS[-1] in runs[0]:   # each run's sum of its steps (the rescoring is not one)
        runs = [{**run, WHOLE: (run[STEPS[0]][0], *(sum(run[step][i] for step in STEPS if step != STEPS[2])
                                                    for i in (1, 2)))} for run in runs]
    return {step: (runs[0][step][0], *(statistics.median(run[step][i] for run in runs) for i in (1, 2)))
            for step in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 10_000_000],
                        help="generated lines per run (none: the real logs only)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="100,000 lines, two runs")
    parser.add_argument("--ingest-only", action="store_true", help="only ingest + request features")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g", help="local mode: the one JVM's heap")
    parser.add_argument("--no-real", action="store_true", help="skip the shared real logs (first row by default)")
    parser.add_argument("--duckdb-child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.duckdb_child:
        db, fmt, *logs = args.duckdb_child
        print(json.dumps(duckdb_once(list(map(Path, logs)), Path(db), args.ingest_only, fmt)))
        return
    if args.quick:
        args.sizes, args.repeat = [100_000], 2

    from waflens.data.synthetic import generate_traffic
    from waflens.pipeline.spark.session import local_cores, spark_session

    cores = local_cores(args.master) or int(os.environ.get("BENCH_SPARK_CORES", "1"))
    started = time.perf_counter()
    spark = spark_session(args.master, app_name="waflens-benchmark",
                          config={"spark.driver.memory": args.driver_memory})
    spark_start = time.perf_counter() - started
    table = []
    with tempfile.TemporaryDirectory(prefix="waflens-bench-spark-", dir="/tmp") as tmp_name:
        tmp = Path(tmp_name)
        warm = tmp / "warm.log"   # compile (or load) the workers' numba kernels and the JVM's code before timing
        generate_traffic(warm, 5_000, seed=2)
        spark_once(spark, [warm], tmp / "warm", args.ingest_only, cores=cores)
        real = [] if args.no_real else real_logs()
        if not real and not args.no_real:
            print(f"no real logs at {shared_datasets() / 'access_logs'}: set WAFLENS_SHARED_DATASETS", flush=True)
        if real:   # real third-party traffic first: small, so Spark's fixed costs weigh most here
            lines = sum(1 for log in real for _ in gzip.open(log, "rb"))
            print(f"real: {len(real)} shared access logs, {lines:,} lines", flush=True)
            duck = median_by_step(duckdb_runs(real, tmp, args.repeat, args.ingest_only, "auto"))
            on_spark = median_by_step([spark_once(spark, real, tmp / f"real{i}", args.ingest_only, "auto", cores)
                                       for i in range(args.repeat)])
            table.append((f"real {lines:,}", duck, on_spark))
        for size in args.sizes:
            log = tmp / f"bench-{size}.log"
            began = time.perf_counter()
            generate_traffic(log, size, seed=1)
            lines = sum(1 for _ in log.open("rb"))
            print(f"generated {lines:,} lines ({log.stat().st_size / 2**20:.0f} MiB) in "
                  f"{time.perf_counter() - began:.0f} s", flush=True)
            duck = median_by_step(duckdb_runs([log], tmp, args.repeat, args.ingest_only, "combined"))
            on_spark = median_by_step([spark_once(spark, [log], tmp / f"spark{i}", args.ingest_only, cores=cores)
                                       for i in range(args.repeat)])
            table.append((f"{lines:,}", duck, on_spark))
            log.unlink()
            print("  " + ", ".join(f"{step}: duckdb {duck[step][1]:.1f} s" if step in duck else step
                                   for step in on_spark) + "; " +
                  ", ".join(f"spark {seconds:.1f} s" for _, seconds, _ in on_spark.values()), flush=True)
    spark.stop()
    duck_cores = os.cpu_count() or 1
    print(f"\nmedian of {args.repeat} runs; Spark {args.master} (session start {spark_start:.1f} s, not counted); "
          f"DuckDB {duck_cores} threads (scoring: one core, the Python of the batches)\n")
    print(f"{'lines':>13}  {'step':<31}{'rows':>10}{'duckdb s':>10}{'rows/s/core':>13}{'spark s':>9}"
          f"{'rows/s/core':>13}{'ratio':>8}")
    over = {}   # lines -> the steps beyond 3x
    for lines, duck, on_spark in table:
        for step, (rows, seconds, core_seconds) in on_spark.items():
            spark_rate = rows / core_seconds
            if step in duck:
                duck_rate = duck[step][0] / duck[step][2]
                ratio = duck_rate / spark_rate
                if ratio > 3:
                    over.setdefault(lines, []).append(f"{step} {ratio:.2f}x")
                known = f"{duck[step][1]:>10.1f}{duck_rate:>13,.0f}"
                ratio_text = f"{ratio:>7.2f}x"
            else:
                known, ratio_text = f"{'-':>10}{'-':>13}", f"{'-':>8}"
            print(f"{lines:>13}  {step:<31}{rows:>10,}{known}{seconds:>9.1f}{spark_rate:>13,.0f}{ratio_text}")
    print("\ngoal: Spark within 3x of DuckDB per core")
    for lines, *_ in table:
        print(f"  {lines:>13}: " + ("met by every step" if lines not in over else "NOT met by " + ", ".join(over[lines])))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
