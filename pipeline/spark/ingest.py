"""``waflens spark ingest``: log files in, ``DIR/requests``, ``DIR/quarantine`` and ``DIR/sources`` out.

The same guarantees as DuckDB ingest: every record is a row of ``requests`` or of ``quarantine`` (with
the reason, its text redacted), so ``parsed + quarantined == records`` for each file, as
``DIR/sources`` records. The parsing itself is DuckDB ingest's, run on the executors
(:mod:`waflens.pipeline.spark.parsing`).

Numbering:

* ``record`` is the 1-based record number in its file, as DuckDB ingest numbers it: the line number
  for line formats (each split counts its lines, and the driver adds the lines of the splits before
  it), the request's position for raw HTTP dumps.
* ``request_id`` = (records of the *ingested* files before it on the command line) + ``record``:
  increasing in input order like DuckDB's ``$base_request_id + record``, with gaps where records were
  quarantined. A failed file (below) counts no records, as it gets no source in DuckDB.
  It equals DuckDB's ids when DuckDB ingests the same files, in that order, into an empty database and
  no file ends in quarantined records (DuckDB starts a file after the highest id used, not after
  the records read).
* ``day`` partitions ``requests``: the UTC date of ``ts``. Requests without a time (raw HTTP dumps)
  land in Spark's partition for NULL, ``day=__HIVE_DEFAULT_PARTITION__``, and read back with a NULL day.

A file that cannot be ingested is skipped, as ``waflens ingest`` skips it: missing, a directory, empty
(or only whitespace), not gzip under a ``.gz`` name, of no format ``--format auto`` recognises, or unreadable
on the executors (a .gz corrupt past its head, a file deleted after it was checked: the scan runs again
without it). The others are ingested; the failed one has a row in ``DIR/sources`` with ``status`` "failed",
the error as ``hint`` and no records (``format`` and ``first_request_id`` NULL when unknown), and the CLI warns
and exits with the failure's code. When every file fails nothing is written (:class:`NothingIngested`).
"""

from __future__ import annotations

from typing import NamedTuple

from waflens.data.errors import InputError, WaflensError
from waflens.pipeline.spark import layout
from waflens.pipeline.spark.layout import write_table
from waflens.pipeline.spark.parsing import REQUEST_COLUMNS, parse_partitions, parsed_schema
from waflens.pipeline.spark.reading import (SNIFF_BYTES, InputFailure, SparkInput, escape_glob, java_message,
                                            read_head, read_records, resolve_inputs)
from waflens.pipeline.spark.session import quiet_task_failures

REQUESTS_COLUMNS = ("file", "record", "request_id", *(name for name, _ in REQUEST_COLUMNS), "day")
QUARANTINE_COLUMNS = ("file", "record", "raw", "reason")


class FileResult(NamedTuple):
    file: str
    format: str
    records: int
    parsed: int
    quarantined: int
    first_request_id: int | None   # request_id of its record 1 (its base + 1); None for a failed file
    status: str               # "ingested" | "nothing parsed" | "failed" (skipped: hint says why)
    pseudonymized: bool       # False with --no-pseudonymize (raw client IPs: labs only)
    hint: str | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in self._asdict().items() if v is not None}


class IngestResult(NamedTuple):
    files: list[FileResult]
    requests: object          # the DataFrame of parsed requests (REQUESTS_COLUMNS), persisted until release()
    parsed: object            # what it was derived from, persisted
    failures: tuple = ()      # InputFailure of each file skipped, in command-line order

    def release(self) -> None:
        self.parsed.unpersist()


def ingest(spark, paths: list[str], out: str, options, key: bytes | None, *,
           with_features: bool = False) -> IngestResult:
    """Parse ``paths`` and write ``out``/requests, quarantine and sources, and with ``with_features``
    ``out``/request_features, computed in the same pass. The parsed rows stay cached for the caller
    until :meth:`IngestResult.release`. A file that cannot be ingested is skipped (see the module
    docstring); :class:`NothingIngested` when that is every file, and then nothing is written."""
    from pyspark.sql import functions as F

    inputs, failures = resolve_inputs(spark, paths, options)
    inputs, read_failures, parsed, counts = scan_inputs(spark, inputs, options, key, with_features)
    bases, results, empty = _numbering(spark, inputs, counts, options, pseudonymized=key is not None)
    failures = sorted([*failures, *read_failures, *empty], key=lambda f: f.file_id)
    if not bases:
        if parsed is not None:
            parsed.unpersist()
        raise NothingIngested(failures)
    numbering = spark.createDataFrame(bases, "file_id int, block long, file string, record_base long, "
                                             "request_base long")
    numbered = (parsed.join(F.broadcast(numbering), ["file_id", "block"])   # inner: drops the files failed after reading
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
    files = [row for _, row in sorted([*((r.file_id, r.result) for r in results),
                                       *((f.file_id, _failed_result(f, key is not None)) for f in failures)])]
    write_table(spark.createDataFrame([f._asdict() for f in files], _SOURCES_SCHEMA).coalesce(1), out, layout.SOURCES)
    return IngestResult(files, requests, parsed, tuple(failures))


class NothingIngested(WaflensError):
    """Every file failed: nothing was written. Exits with the first failure's code, as ``waflens ingest``."""

    def __init__(self, failures: list[InputFailure]):
        self.failures = failures
        self.exit_code = failures[0].error.exit_code if failures else InputError.exit_code
        if len(failures) == 1:
            message = f"{failures[0].error} (nothing was written)"
        else:
            message = f"none of the {len(failures)} files could be ingested, nothing was written"
        super().__init__(message)


def scan_inputs(spark, inputs: list[SparkInput], options, key: bytes | None, with_features: bool):
    """The parsed rows (persisted) and their counts per split, after one scan of every file.

    A file that fails only on the executors (a .gz corrupt past its head, a file deleted since it was
    checked) fails the whole job; the error names it, so it is set aside as an :class:`InputFailure`
    and the scan runs again without it. (Spark's ``ignoreCorruptFiles`` would keep the lines read before
    the corruption and only log a warning: records lost silently; ``ignoreMissingFiles`` the same for a
    file deleted while it is read.)"""
    failures: list[InputFailure] = []
    while inputs:
        try:
            with quiet_task_failures(spark):
                parsed, counts = _scan(spark, inputs, options, key, with_features)
            return inputs, failures, parsed, counts
        except Exception as error:
            failure = read_failure(error, inputs)
            if failure is None:
                raise
            failures.append(failure)
            inputs = [item for item in inputs if item.file_id != failure.file_id]
    return inputs, failures, None, []


def _scan(spark, inputs: list[SparkInput], options, key: bytes | None, with_features: bool):
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    tasks = {item.file_id: item.task() for item in inputs}
    parsed = (read_records(spark, inputs)
              .mapInArrow(parse_partitions(tasks, options, key, with_features),
                          from_arrow_schema(parsed_schema(with_features)))
              .persist())
    try:
        counts = (parsed.groupBy("file_id", "block")
                  .agg(F.count(F.lit(1)).alias("records"), F.count_if(F.col("reason").isNull()).alias("parsed"))
                  .collect())
    except BaseException:
        parsed.unpersist()
        raise
    return parsed, counts


_SOURCES_SCHEMA = ("file string, format string, records long, parsed long, quarantined long, "
                   "first_request_id long, status string, pseudonymized boolean, hint string")


class _Ingested(NamedTuple):
    file_id: int
    result: FileResult


def _numbering(spark, inputs: list[SparkInput], counts, options, *, pseudonymized: bool
               ) -> tuple[list[tuple], list[_Ingested], list[InputFailure]]:
    """Per split: where its records start in its file and where the file's request ids start; the
    files ingested, and those that turned out empty (no record; or, with the format given and so not
    sniffed, nothing but whitespace), which get no base and so no rows."""
    by_file: dict[int, list] = {item.file_id: [] for item in inputs}
    for row in counts:
        by_file[row["file_id"]].append(row)
    bases, files, empty, request_base = [], [], [], 0
    for item in inputs:
        blocks = sorted(by_file[item.file_id], key=lambda r: r["block"])
        records, parsed = sum(r["records"] for r in blocks), sum(r["parsed"] for r in blocks)
        status, hint = "ingested", None
        if records and not parsed:
            head = _head(spark, item)
            if not head.strip() and len(head) < SNIFF_BYTES:
                records = 0
            else:
                from waflens.data.ingest import format_hint

                status, hint = "nothing parsed", format_hint(head, item.format, options)
        if not records:
            empty.append(InputFailure(item.file_id, item.path, InputError(f"{item.path} is empty: nothing to ingest"),
                                      item.format))
            continue
        first = 0
        for row in blocks:
            bases.append((item.file_id, row["block"], item.path, first, request_base))
            first += row["records"]
        files.append(_Ingested(item.file_id, FileResult(item.path, item.format, records, parsed, records - parsed,
                                                        request_base + 1, status, pseudonymized, hint)))
        request_base += records
    return bases, files, empty


def _head(spark, item: SparkInput) -> bytes:
    """The bytes the format was sniffed on, or (format given) the file's first bytes now; b"" if unreadable."""
    if item.head is not None:
        return item.head
    try:
        return read_head(spark, item.path)
    except InputError:
        return b""


def _failed_result(failure: InputFailure, pseudonymized: bool) -> FileResult:
    return FileResult(failure.path, failure.format, 0, 0, 0, None, "failed", pseudonymized, str(failure.error))


def read_failure(error: Exception, inputs: list[SparkInput]) -> InputFailure | None:
    """The input file a Spark read error is about, as an InputFailure saying what to do; None if none is named.

    Spark names it in FAILED_READ_FILE (executors: ``file:///dir/a%20b.log``, the URI) and PATH_NOT_FOUND
    (driver, at listing: ``file:/dir/a b\\[1\\].log``, as given it); the longest match wins (``a.log`` is in
    ``a.log.gz``)."""
    text = str(error)
    if "FAILED_READ_FILE" not in text and "PATH_NOT_FOUND" not in text:
        return None
    def named(item: SparkInput) -> int:   # the length of its longest spelling in the message
        spellings = (item.uri, item.location, escape_glob(item.location))
        return max((len(spelling) for spelling in spellings if spelling in text), default=0)

    item = max(inputs, key=named, default=None)
    if item is None or not named(item):
        return None
    cause = java_root_cause(error)
    if "PATH_NOT_FOUND" in text or "FILE_NOT_EXIST" in text or "FileNotFoundException" in cause:
        message = f"{item.path}: no such file (deleted or moved after it was checked); skipped"
    else:
        gzip = " (`gzip -t` tests a .gz)" if item.location.endswith(".gz") else ""
        message = (f"{item.path}: cannot be read ({cause}); skipped, the other files were ingested without it: "
                   f"repair or replace it{gzip} and run the ingest again")
    return InputFailure(item.file_id, item.path, InputError(message), item.format)


def java_root_cause(error: Exception) -> str:
    """The innermost Java cause of a py4j error, as ``ExceptionClass: message`` on one line."""
    cause = getattr(error, "java_exception", None)
    if cause is None:
        return java_message(error)
    while cause.getCause() is not None:
        cause = cause.getCause()
    message = (cause.getMessage() or "").strip().splitlines()
    return cause.getClass().getSimpleName() + (f": {message[0]}" if message else "")
