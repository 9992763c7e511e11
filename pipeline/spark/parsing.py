"""What each Spark task runs on its lines: DuckDB ingest's own parse, redaction and pseudonymization.

A task opens a private in-memory DuckDB database with the waflens schema and feeds it its lines
through :func:`waflens.data.ingest.stage_lines` (the numba CLF kernel, the LogFormat compiler's RE2
regex, the JSON paths) or :func:`~waflens.data.ingest.stage_raw_http`, then
:func:`~waflens.data.ingest.finish_stage` (client choice, redaction, keyed pseudonyms,
``ingest_finish.sql``): the very code ``waflens ingest`` runs, so rows, quarantine reasons and tokens
are the same by construction. Nothing here parses or rewrites a field itself.

Lines come in scan order. A split of a file (``block``, its byte offset) is read by one task, whole
and in order, so a line's position in its block is counted here (``record`` below is 1-based within
the block); the driver adds the lines of the blocks before it (:mod:`waflens.pipeline.spark.ingest`).
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

import numpy as np
import pyarrow as pa

# rows buffered per DuckDB round trip: large enough that the ~15 statements of a finish are noise
FLUSH_ROWS = 100_000

REQUEST_COLUMNS = (
    ("ts", pa.timestamp("us")), ("client_key", pa.string()), ("client_ip", pa.string()),
    ("remote_user", pa.string()), ("session_cookie", pa.string()), ("vhost", pa.string()),
    ("method", pa.string()), ("path", pa.string()), ("query", pa.string()), ("path_decoded", pa.string()),
    ("query_decoded", pa.string()), ("protocol", pa.string()), ("status", pa.int16()), ("bytes", pa.int64()),
    ("referer", pa.string()), ("user_agent", pa.string()), ("duration_ms", pa.float64()),
    ("headers", pa.string()), ("body", pa.string()),
)
PARSED_SCHEMA = pa.schema([
    ("file_id", pa.int32()), ("block", pa.int64()), ("record", pa.int64()),
    ("reason", pa.string()), ("raw", pa.string()),   # set for quarantined records only
    *REQUEST_COLUMNS,
])


def parsed_schema(with_features: bool) -> pa.Schema:
    """PARSED_SCHEMA, followed by the request features when they are computed in the same pass."""
    if not with_features:
        return PARSED_SCHEMA
    from waflens.pipeline.spark.request_features import FEATURE_FIELDS

    return pa.schema([*PARSED_SCHEMA, *FEATURE_FIELDS])


_REQUEST_SELECT = "SELECT record, NULL AS reason, NULL AS raw, " + ", ".join(n for n, _ in REQUEST_COLUMNS) + \
                  " FROM requests ORDER BY record"


class FileTask(NamedTuple):
    """What a task needs to know of one input file (shipped to the executors with the function)."""
    file_id: int
    format: str            # as resolve_format named it: combined, json, raw-http, apache, nginx
    log_format: str | None


def parse_partitions(files: dict[int, FileTask], options, key: bytes | None, with_features: bool = False):
    """The ``mapInArrow`` function: (file_id, block, raw) batches in scan order -> ``parsed_schema`` batches.

    ``options`` is the :class:`waflens.data.ingest.IngestOptions`; ``key`` the pseudonymization key
    (None: lab mode), which reaches the executors inside the task closure like any other argument.
    ``with_features`` adds the request features (waflens.pipeline.spark.request_features) while the
    rows are at hand, saving a second trip of every request through Arrow."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        parser = _TaskParser(files, options, key, with_features)
        try:
            yield from parser.run(batches)
        finally:
            parser.close()

    return run


def task_database():
    """A task's private in-memory DuckDB database: the waflens schema and functions, UTC, one thread (Spark
    runs one task per core). Ingest parses in it; sessionize sessionizes in it."""
    import duckdb

    from waflens.data.db import ensure_schema
    from waflens.data.db_functions import register_functions

    con = duckdb.connect()
    con.execute("SET threads = 1")
    con.execute("SET TimeZone = 'UTC'")
    register_functions(con)
    ensure_schema(con)
    return con


class _TaskParser:
    def __init__(self, files: dict[int, FileTask], options, key: bytes | None, with_features: bool):
        import numba

        from waflens.data.pseudonymize import Pseudonymizer

        numba.set_num_threads(1)   # Spark runs one task per core: the kernels must not spread over the others
        self.files, self.options = files, options
        self.schema = parsed_schema(with_features)
        self.feature_tables = None
        if with_features:
            from waflens.pipeline.spark.request_features import token_tables

            self.feature_tables = token_tables()
        self.pseudonymizer = Pseudonymizer(key)
        self.con = task_database()
        self.line_formats: dict[int, object] = {}
        self.seen: dict[tuple[int, int], int] = {}   # (file_id, block) -> lines already parsed

    def close(self) -> None:
        self.con.close()

    def run(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        key, pending, pending_rows = None, [], 0
        for batch in batches:
            if batch.column("file_id").null_count:   # reading.read_records maps every row to a file: a bug if not
                raise RuntimeError("a line of a file no input maps to: Spark named the file unlike its listing")
            file_ids = batch.column("file_id").to_numpy()
            blocks = batch.column("block").to_numpy()
            raws = batch.column("raw")
            # runs of equal (file_id, block): a batch may end one split and start the next
            change = np.flatnonzero((file_ids[1:] != file_ids[:-1]) | (blocks[1:] != blocks[:-1])) + 1
            for lo, hi in zip(np.concatenate(([0], change)), np.concatenate((change, [len(file_ids)]))):
                run_key = (int(file_ids[lo]), int(blocks[lo]))
                if run_key != key and pending:
                    yield from self._flush(key, pending)
                    pending, pending_rows = [], 0
                key = run_key
                pending.append(raws.slice(lo, hi - lo))
                pending_rows += hi - lo
                if pending_rows >= FLUSH_ROWS:
                    yield from self._flush(key, pending)
                    pending, pending_rows = [], 0
        if pending:
            yield from self._flush(key, pending)

    def _flush(self, key: tuple[int, int], raws: list[pa.Array]) -> Iterator[pa.RecordBatch]:
        from waflens.data.ingest import stage_lines, stage_raw_http
        from waflens.data.parse_lines import STAGE_DDL

        file_id, block = key
        task = self.files[file_id]
        lines = pa.concat_arrays(raws)
        first = self.seen.get(key, 0)
        self.seen[key] = first + len(lines)
        self.con.execute(STAGE_DDL)
        if task.format == "raw-http":   # one row per file: the whole dump (its records span lines)
            for dump in lines.to_pylist():
                stage_raw_http(self.con, dump, self.options)
        else:
            content, starts, ends = _joined_lines(lines)
            stage_lines(self.con, content, starts, ends, first + 1, task.format, self._line_format(task),
                        self.options)
        yield from self._finish(file_id, block).to_batches()

    def _line_format(self, task: FileTask):
        from waflens.data.log_formats import COMBINED, compile_log_format

        if task.file_id not in self.line_formats:
            if task.format in ("json", "raw-http"):
                fmt = None
            elif task.log_format:
                fmt = compile_log_format(task.log_format)
            else:
                fmt = COMBINED
            self.line_formats[task.file_id] = fmt
        return self.line_formats[task.file_id]

    def _finish(self, file_id: int, block: int) -> pa.Table:
        from waflens.data.ingest import finish_stage

        finish_stage(self.con, 0, self.pseudonymizer, self.options)
        parsed = self.con.sql(_REQUEST_SELECT).to_arrow_table()
        rejected = self.con.sql("SELECT record, reason, raw FROM quarantine ORDER BY record").to_arrow_table()
        self.con.execute("DELETE FROM requests")
        self.con.execute("DELETE FROM quarantine")
        self.con.execute("DROP TABLE stage")
        if self.feature_tables is not None:
            from waflens.pipeline.spark.request_features import FEATURE_FIELDS, feature_arrays

            for field, values in zip(FEATURE_FIELDS, feature_arrays(parsed, self.feature_tables)):
                parsed = parsed.append_column(field, values)
        table = pa.concat_tables([_conform(parsed, self.schema), _conform(rejected, self.schema)])
        n = table.num_rows
        table = table.add_column(0, "file_id", pa.array(np.full(n, file_id, np.int32)))
        table = table.add_column(1, "block", pa.array(np.full(n, block, np.int64)))
        return table.select(self.schema.names).cast(self.schema)

def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with every column of ``schema`` after file_id and block, missing ones as nulls."""
    columns = []
    for field in schema:
        if field.name in ("file_id", "block"):
            continue
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.table(columns, names=[f.name for f in schema if f.name not in ("file_id", "block")])


def _joined_lines(lines: pa.Array) -> tuple[bytes, np.ndarray, np.ndarray]:
    """The lines as one buffer, each followed by ``\\n`` as in the file, and their (start, end) spans."""
    from waflens.data.arrow_buffers import text_buffers

    n = len(lines)
    data, offsets = text_buffers(lines)
    data = data[offsets[0]:offsets[-1]]
    shift = np.arange(n, dtype=np.int64)
    starts = offsets[:-1] - offsets[0] + shift
    newlines = offsets[1:] - offsets[0] + shift
    content = np.empty(data.size + n, dtype=np.uint8)
    keep = np.ones(content.size, dtype=np.bool_)
    keep[newlines] = False
    content[newlines] = 10
    content[keep] = data
    return content.tobytes(), starts, newlines + 1
