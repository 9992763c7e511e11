"""``waflens spark ingest``: log files in, ``DIR/requests``, ``DIR/quarantine`` and ``DIR/sources`` out.

The same guarantees as DuckDB ingest: every record is a row of ``requests`` or of ``quarantine`` (with
the reason, its text redacted), so ``parsed + quarantined == records`` for each file, as
``DIR/sources`` records. The parsing itself is DuckDB ingest's, run on the executors
(:mod:`waflens.pipeline.spark.parsing`).

Numbering:

* ``record`` is the 1-based record number in its file, as DuckDB ingest numbers it: the line number
  for line formats (each split counts its lines, and the driver adds the lines of the splits before
  it), the request's position for raw HTTP dumps.
* ``request_id`` = (records of the files before it on the command line) + ``record``: increasing in
  input order like DuckDB's ``$base_request_id + record``, with gaps where records were quarantined.
  It equals DuckDB's ids when DuckDB ingests the same files, in that order, into an empty database and
  no file ends in quarantined records (DuckDB starts a file after the highest id used, not after
  the records read).
* ``day`` partitions ``requests``: the UTC date of ``ts``. Requests without a time (raw HTTP dumps)
  land in Spark's partition for NULL, ``day=__HIVE_DEFAULT_PARTITION__``, and read back with a NULL day.
"""

from __future__ import annotations

from typing import NamedTuple

from waflens.pipeline.spark import layout
from waflens.pipeline.spark.layout import write_table
from waflens.pipeline.spark.parsing import REQUEST_COLUMNS, parse_partitions, parsed_schema
from waflens.pipeline.spark.reading import SparkInput, read_records, resolve_inputs

REQUESTS_COLUMNS = ("file", "record", "request_id", *(name for name, _ in REQUEST_COLUMNS), "day")
QUARANTINE_COLUMNS = ("file", "record", "raw", "reason")


class FileResult(NamedTuple):
    file: str
    format: str
    records: int
    parsed: int
    quarantined: int
    first_request_id: int     # request_id of its record 1 (its base + 1)
    status: str               # "ingested" | "nothing parsed"
    pseudonymized: bool       # False with --no-pseudonymize (raw client IPs: labs only)
    hint: str | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in self._asdict().items() if v is not None}


class IngestResult(NamedTuple):
    files: list[FileResult]
    requests: object          # the DataFrame of parsed requests (REQUESTS_COLUMNS), persisted until release()
    parsed: object            # what it was derived from, persisted

    def release(self) -> None:
        self.parsed.unpersist()


def ingest(spark, paths: list[str], out: str, options, key: bytes | None, *,
           with_features: bool = False) -> IngestResult:
    """Parse ``paths`` and write ``out``/requests, quarantine and sources, and with ``with_features``
    ``out``/request_features, computed in the same pass. The parsed rows stay cached for the caller
    until :meth:`IngestResult.release`."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    inputs = resolve_inputs(spark, paths, options)
    tasks = {item.file_id: item.task() for item in inputs}
    parsed = (read_records(spark, inputs)
              .mapInArrow(parse_partitions(tasks, options, key, with_features),
                          from_arrow_schema(parsed_schema(with_features)))
              .persist())
    counts = (parsed.groupBy("file_id", "block")
              .agg(F.count(F.lit(1)).alias("records"), F.count_if(F.col("reason").isNull()).alias("parsed"))
              .collect())
    bases, files = _numbering(inputs, counts, options, pseudonymized=key is not None)
    numbering = spark.createDataFrame(bases, "file_id int, block long, file string, record_base long, "
                                             "request_base long")
    numbered = (parsed.join(F.broadcast(numbering), ["file_id", "block"])
                .withColumn("record", F.col("record_base") + F.col("record")))
    parsed_requests = (numbered.where(F.col("reason").isNull())
                       .withColumn("request_id", F.col("request_base") + F.col("record"))
                       .withColumn("day", F.to_date("ts")))
    requests = parsed_requests.select(*REQUESTS_COLUMNS)
    write_table(requests, out, layout.REQUESTS, partition_by="day")
    if with_features:
        from waflens.pipeline.spark.request_features import FEATURES_SCHEMA

        write_table(parsed_requests.select(*FEATURES_SCHEMA.names), out, layout.REQUEST_FEATURES, partition_by="day")
    write_table(numbered.where(F.col("reason").isNotNull()).select(*QUARANTINE_COLUMNS), out, layout.QUARANTINE)
    write_table(spark.createDataFrame([f._asdict() for f in files], _SOURCES_SCHEMA).coalesce(1), out, layout.SOURCES)
    return IngestResult(files, requests, parsed)


_SOURCES_SCHEMA = ("file string, format string, records long, parsed long, quarantined long, "
                   "first_request_id long, status string, pseudonymized boolean, hint string")


def _numbering(inputs: list[SparkInput], counts, options, *, pseudonymized: bool
               ) -> tuple[list[tuple], list[FileResult]]:
    """Per split: where its records start in its file and where the file's request ids start."""
    by_file: dict[int, list] = {item.file_id: [] for item in inputs}
    for row in counts:
        by_file[row["file_id"]].append(row)
    bases, files, request_base = [], [], 0
    for item in inputs:
        records = parsed = 0
        for row in sorted(by_file[item.file_id], key=lambda r: r["block"]):
            bases.append((item.file_id, row["block"], item.path, records, request_base))
            records += row["records"]
            parsed += row["parsed"]
        status, hint = "ingested", None
        if records and not parsed:
            status, hint = "nothing parsed", _hint(item, options)
        files.append(FileResult(item.path, item.format, records, parsed, records - parsed, request_base + 1,
                                status, pseudonymized, hint))
        request_base += records
    return bases, files


def _hint(item: SparkInput, options) -> str:
    """DuckDB ingest's advice for a file of which nothing parsed, from the head it was sniffed on."""
    from waflens.data.ingest import format_hint

    return format_hint(item.head, item.format, options)
