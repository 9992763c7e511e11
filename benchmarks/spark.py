"""Spark beside DuckDB: lines per second of ingest + request features on generated combined lines.

    .venv/bin/python benchmarks/spark.py [--sizes 1000000 10000000] [--repeat 3] [--quick]

For each size, a log is generated into a temporary directory under /tmp (never the repository), then:

* DuckDB: ``ingest_file`` (parse, redact, pseudonymize, insert) and ``compute_request_features`` on a
  fresh database file, in a child process (DuckDB uses every core: 2 threads here);
* Spark: ``waflens spark features`` (ingest to Parquet, then the request-feature kernel) on
  ``--master`` (default ``local[2]``), in one Spark session started before the timing (its ~10 s of
  JVM start are printed apart: a cluster pays them once per job, not per file).

Both print the median of ``--repeat`` runs and lines per second per core; the goal is Spark within 3x
of DuckDB per core. ``--quick`` is one size of 100,000 lines and two runs.
"""

from __future__ import annotations

import argparse
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


def duckdb_once(log: Path, db: Path) -> float:
    """Seconds of DuckDB ingest + request features (run in a child process)."""
    from waflens.data.db import connect
    from waflens.data.ingest import IngestOptions, ingest_file
    from waflens.data.pseudonymize import Pseudonymizer
    from waflens.data.sessionize import compute_request_features

    con = connect(db)
    started = time.perf_counter()
    ingest_file(con, log, IngestOptions(format="combined"), Pseudonymizer(KEY))
    compute_request_features(con)
    seconds = time.perf_counter() - started
    con.close()
    return seconds


def duckdb_runs(log: Path, tmp: Path, repeat: int) -> list[float]:
    runs = []
    for i in range(repeat):
        db = tmp / f"bench{i}.duckdb"
        out = subprocess.run([sys.executable, __file__, "--duckdb-child", str(log), str(db)],
                             capture_output=True, text=True, check=True)
        runs.append(float(out.stdout.strip().splitlines()[-1]))
        for left in tmp.glob(f"bench{i}.duckdb*"):
            left.unlink()
    return runs


def spark_runs(spark, log: Path, tmp: Path, repeat: int) -> list[float]:
    from waflens.data.ingest import IngestOptions
    from waflens.pipeline.spark.ingest import ingest

    runs = []
    for i in range(repeat):
        out = tmp / f"spark{i}"
        started = time.perf_counter()
        ingest(spark, [str(log)], str(out), IngestOptions(format="combined"), KEY, with_features=True).release()
        runs.append(time.perf_counter() - started)
        shutil.rmtree(out)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="100,000 lines, two runs")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g", help="local mode: the one JVM's heap")
    parser.add_argument("--duckdb-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.duckdb_child:
        print(duckdb_once(Path(args.duckdb_child[0]), Path(args.duckdb_child[1])))
        return
    if args.quick:
        args.sizes, args.repeat = [100_000], 2
    cores = _cores(args.master)

    from waflens.data.synthetic import generate_traffic
    from waflens.pipeline.spark.session import spark_session

    started = time.perf_counter()
    spark = spark_session(args.master, app_name="waflens-benchmark",
                          config={"spark.driver.memory": args.driver_memory})
    spark_start = time.perf_counter() - started
    rows = []
    with tempfile.TemporaryDirectory(prefix="waflens-bench-spark-", dir="/tmp") as tmp_name:
        tmp = Path(tmp_name)
        warm = tmp / "warm.log"   # compile (or load) the workers' numba kernels before any timing
        generate_traffic(warm, 2_000, seed=2)
        spark_runs(spark, warm, tmp, 1)
        for size in args.sizes:
            log = tmp / f"bench-{size}.log"
            began = time.perf_counter()
            generate_traffic(log, size, seed=1)
            lines = sum(1 for _ in log.open("rb"))
            print(f"generated {lines:,} lines ({log.stat().st_size / 2**20:.0f} MiB) in "
                  f"{time.perf_counter() - began:.0f} s", flush=True)
            duck = statistics.median(duckdb_runs(log, tmp, args.repeat))
            on_spark = statistics.median(spark_runs(spark, log, tmp, args.repeat))
            rows.append((lines, duck, on_spark))
            log.unlink()
            print(f"  duckdb {duck:.1f} s, spark {on_spark:.1f} s", flush=True)
    spark.stop()
    duck_cores = os.cpu_count() or 1
    print(f"\ningest + request features, median of {args.repeat} runs; Spark {args.master} "
          f"(session start {spark_start:.1f} s, not counted); DuckDB {duck_cores} threads\n")
    print(f"{'lines':>12}{'duckdb s':>10}{'lines/s/core':>14}{'spark s':>10}{'lines/s/core':>14}{'ratio':>8}")
    for lines, duck, on_spark in rows:
        duck_rate, spark_rate = lines / duck / duck_cores, lines / on_spark / cores
        print(f"{lines:>12,}{duck:>10.1f}{duck_rate:>14,.0f}{on_spark:>10.1f}{spark_rate:>14,.0f}"
              f"{duck_rate / spark_rate:>7.2f}x")
    worst = max(((lines / duck / duck_cores) / (lines / on_spark / cores) for lines, duck, on_spark in rows), default=0)
    print(f"\ngoal: Spark within 3x of DuckDB per core: {'met' if worst <= 3 else 'NOT met'} (worst {worst:.2f}x)")


def _cores(master: str) -> int:
    """Cores of a local master (local[N], local[*]); 1 for anything else unless told."""
    if master.startswith("local["):
        inside = master[6:-1].split(",")[0]
        return (os.cpu_count() or 1) if inside == "*" else int(inside)
    return 1 if master == "local" else int(os.environ.get("BENCH_SPARK_CORES", "1"))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
