"""Ingest throughput: N generated combined-format lines into a fresh DuckDB file.

    .venv/bin/python benchmarks/ingest.py [--lines 1000000] [--repeat 3]

Prints, per stage, the median of ``--repeat`` runs on a fresh database each time:
parse + insert (one transaction, pseudonymization included), sessionize, request
features and session features; lines per second end to end (parse + insert +
sessionize, the goal's definition: >= 200,000 lines/s on 2 cores); the floor —
DuckDB merely reading the same lines into a table — measured in the same run, and
the ratio to it; and the peak RSS of each run (goal <= 1.5 GiB), measured in a
child process so the generator's memory does not count.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_once(log: Path, db: Path) -> dict:
    """One measured run, in this (child) process."""
    sys.path.insert(0, str(REPO))
    import duckdb

    from waflens.data.db import connect
    from waflens.data.ingest import IngestOptions, ingest_file
    from waflens.data.pseudonymize import Pseudonymizer
    from waflens.data.db import run_sql_file
    from waflens.data.sessionize import compute_request_features

    timings = {}
    floor_con = duckdb.connect(str(db.with_suffix(".floor.duckdb")))
    started = time.perf_counter()
    floor_con.execute(
        "CREATE TABLE lines AS SELECT * FROM read_csv($p, columns={'line': 'VARCHAR'}, delim=chr(1), quote='', "
        "escape='', header=false, auto_detect=false)", {"p": str(log)})
    timings["floor_read_lines"] = time.perf_counter() - started
    floor_con.close()

    con = connect(db)
    if os.environ.get("BENCH_MEMORY_LIMIT"):
        con.execute(f"SET memory_limit = '{os.environ['BENCH_MEMORY_LIMIT']}'")
    started = time.perf_counter()
    summary = ingest_file(con, log, IngestOptions(format="combined"), Pseudonymizer(b"benchmark-key-0123456789"))
    timings["parse_insert"] = time.perf_counter() - started
    started = time.perf_counter()
    con.execute("BEGIN TRANSACTION")
    run_sql_file(con, "sessionize", {"gap_seconds": 1800.0})
    con.execute("COMMIT")
    timings["sessionize"] = time.perf_counter() - started
    started = time.perf_counter()
    compute_request_features(con)
    timings["request_features"] = time.perf_counter() - started
    started = time.perf_counter()
    con.execute("BEGIN TRANSACTION")
    run_sql_file(con, "session_features")
    con.execute("COMMIT")
    timings["session_features"] = time.perf_counter() - started
    timings["records"] = summary.records
    timings["parsed"] = summary.parsed
    timings["sessions"] = con.execute("SELECT count(*) FROM sessions").fetchall()[0][0]
    timings["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_once(Path(args.child[0]), Path(args.child[1]))))
        return

    sys.path.insert(0, str(REPO))
    from waflens.data.synthetic import generate_traffic

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "bench.log"
        started = time.perf_counter()
        generate_traffic(log, args.lines, seed=1)
        print(f"generated {args.lines:,} lines ({log.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - started:.1f} s")
        runs = []
        for i in range(args.repeat):
            db = Path(tmp) / f"run{i}.duckdb"
            out = subprocess.run([sys.executable, __file__, "--child", str(log), str(db)],
                                 capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            for extra in Path(tmp).glob(f"run{i}*.duckdb*"):
                extra.unlink()

    def median(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    end_to_end = median("parse_insert") + median("sessionize")
    floor = median("floor_read_lines")
    print(f"\n{args.lines:,} lines, {runs[0]['parsed']:,} parsed, {runs[0]['sessions']:,} sessions; "
          f"median of {len(runs)} runs (each on a fresh database)\n")
    print(f"{'stage':<28}{'seconds':>10}{'lines/s':>14}")
    for key in ("floor_read_lines", "parse_insert", "sessionize", "request_features", "session_features"):
        print(f"{key:<28}{median(key):>10.2f}{args.lines / median(key):>14,.0f}")
    print(f"{'end to end (parse+insert+sessionize)':<38}{end_to_end:>0.2f} s  {args.lines / end_to_end:>12,.0f} lines/s")
    print(f"ratio to the floor (DuckDB reading the lines): {end_to_end / floor:.1f}x")
    print(f"peak RSS per run: max {max(r['peak_rss_mib'] for r in runs):.0f} MiB (goal <= 1536 MiB)")
    print(f"goal >= 200,000 lines/s: {'met' if args.lines / end_to_end >= 200_000 else 'NOT met'}")


if __name__ == "__main__":
    main()
