"""Many small files through Spark ingest: one scan of them all against the old scan per file, and the driver's checks.

    .venv/bin/python benchmarks/spark_files.py [--counts 1 100 1000] [--lines 20] [--parse-up-to 100]

For each count, that many small combined logs (``--lines`` lines each) are generated under /tmp (never the
repository) and read on ``local[2]`` two ways, each timed from building the DataFrame to collecting the lines per
(file, block), i.e. planning + the scan:

* ``per-file union``: the baseline, what ``read_records`` did before: a ``spark.read.text`` per file, chained
  with ``unionByName`` (the plan grows with the files);
* ``one scan``: ``waflens.pipeline.spark.reading.read_records`` now.

Up to ``--parse-up-to`` files, both are also timed with the executors' parse (``mapInArrow``) on top, which is
what ``waflens spark ingest`` runs: the baseline has a task (and a DuckDB parser set up) per file. The driver's
checks (``resolve_inputs``) are timed with ``--format auto`` (a status call and a 64 KB read per file, to sniff)
and with the format given (a status call per file). Spark starts once, before any timing, with a warm-up run.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def per_file_union(spark, inputs):
    """The baseline: read_records as it was, one scan per file."""
    from pyspark.sql import functions as F

    frames = []
    for item in inputs:
        if item.format == "raw-http":
            text = spark.read.text(item.location, wholetext=True)
        else:
            text = spark.read.option("lineSep", "\n").text(item.location)
        frames.append(text.select(F.lit(item.file_id).cast("int").alias("file_id"),
                                  F.expr("input_file_block_start()").alias("block"),
                                  F.col("value").cast("binary").alias("raw")))
    records = frames[0]
    for frame in frames[1:]:
        records = records.unionByName(frame)
    return records


def generate(home: Path, count: int, lines: int) -> list[str]:
    rng = random.Random(count)
    paths = []
    for i in range(count):
        path = home / f"access-{i:05d}.log"
        path.write_text("".join(
            f'10.0.{rng.randrange(256)}.{rng.randrange(256)} - - [01/Nov/2026:12:{rng.randrange(60):02d}:00 +0000] '
            f'"GET /p/{rng.randrange(1000)} HTTP/1.1" 200 {rng.randrange(9999)} "-" "agent"\n' for _ in range(lines)))
        paths.append(str(path))
    return paths


def timed(function) -> tuple[float, object]:
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def run(spark, reader, inputs, options, parse: bool) -> int:
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    from waflens.pipeline.spark.parsing import parse_partitions, parsed_schema

    frame = reader(spark, inputs)
    if parse:
        tasks = {item.file_id: item.task() for item in inputs}
        frame = frame.mapInArrow(parse_partitions(tasks, options, b"k" * 16), from_arrow_schema(parsed_schema(False)))
    rows = frame.groupBy("file_id", "block").agg(F.count(F.lit(1)).alias("n")).collect()
    return sum(row["n"] for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--lines", type=int, default=20)
    parser.add_argument("--parse-up-to", type=int, default=100)
    args = parser.parse_args()

    from waflens.data.ingest import IngestOptions
    from waflens.pipeline.spark.reading import read_records, resolve_inputs
    from waflens.pipeline.spark.session import spark_session

    spark = spark_session("local[2]")
    spark.sparkContext.setLogLevel("ERROR")
    options = IngestOptions()
    home = Path(tempfile.mkdtemp(prefix="waflens-spark-files-"))
    try:
        (home / "warm").mkdir()
        warm = generate(home / "warm", 2, args.lines)
        inputs, _ = resolve_inputs(spark, warm, options)
        run(spark, read_records, inputs, options, parse=True)
        print(f"| files | driver checks, sniffing (files/s) | driver checks, format given (files/s) | what "
              f"| per-file union (s) | one scan (s) | speed-up |")
        print("|---:|---:|---:|---|---:|---:|---:|")
        for count in args.counts:
            folder = home / str(count)
            folder.mkdir()
            paths = generate(folder, count, args.lines)
            sniff, (inputs, failures) = timed(lambda: resolve_inputs(spark, paths, options))
            given, _ = timed(lambda: resolve_inputs(spark, paths, IngestOptions(format="combined")))
            assert not failures
            kinds = [False, True] if count <= args.parse_up_to else [False]
            for parse in kinds:
                old, old_rows = timed(lambda: run(spark, per_file_union, inputs, options, parse))
                new, new_rows = timed(lambda: run(spark, read_records, inputs, options, parse))
                assert old_rows == new_rows == count * args.lines, (old_rows, new_rows)
                what = "scan + parse" if parse else "scan"
                print(f"| {count} | {count / sniff:,.0f} | {count / given:,.0f} | {what} | {old:.2f} | {new:.2f} "
                      f"| {old / new:.1f}x |", flush=True)
    finally:
        shutil.rmtree(home, ignore_errors=True)
        spark.stop()


if __name__ == "__main__":
    main()
