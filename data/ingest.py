"""``waflens ingest``: files in, requests and quarantine rows out, one transaction per file.

Every record read is either a row of ``requests`` or a row of ``quarantine`` with
the reason, so ``parsed + quarantined == records`` for each file. A file whose
bytes were ingested before (same sha256) adds nothing, unless nothing of it parsed
then (a wrong ``--format``): that attempt is replaced (see data/sources.py). A failure or Ctrl-C inside
a file rolls the whole file back: the database never holds half of one.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, NamedTuple

import duckdb
import numpy as np
import pyarrow as pa

from waflens.data.db import first_line, run_sql_file
from waflens.data.errors import DatabaseError, InputError, StorageError, WaflensError, storage_fault
from waflens.data.interrupts import DeferredInterrupt, InterruptedAfterFile, was_interrupted  # noqa: F401 (re-exported)
from waflens.data.log_file import binary_lines, line_spans, read_log_file, sniff_format, span_chunks
from waflens.data.log_formats import COMBINED, LineFormat, compile_log_format
from waflens.data.parse_lines import DEFAULT_JSON_FIELDS, STAGE_DDL, stage_clf_batch, stage_json_batch, stage_line_batch
from waflens.data.pseudonymize import Pseudonymizer
from waflens.data.redact_stage import choose_stage_clients, redact_quarantine, redact_stage
from waflens.data.redaction import choose_client, trusted_proxies_from_env
from waflens.data.raw_http import RawHttpReject, iter_raw_http
from waflens.data.sources import forget_in_transaction, next_id, rollback

SESSION_KEYS = ("ip-ua", "cookie")
RAW_HTTP_BATCH = 20_000
# Headers whose values identify a client: tokenized like the client IP.
_IP_HEADERS = ("x-forwarded-for", "x-real-ip", "forwarded", "true-client-ip", "cf-connecting-ip", "x-client-ip")
_SESSION_COOKIES = ("jsessionid", "phpsessid", "asp.net_sessionid", "sessionid", "session", "sid",
                    "connect.sid", "laravel_session", "_session_id", "session_id")


@dataclass
class IngestOptions:
    format: str = "auto"
    log_format: str | None = None          # Apache LogFormat / nginx log_format / preset name
    source: str | None = None              # name recorded in `sources` (default: file name)
    session_key: str = "ip-ua"             # what client_key is built from (see data/sessionize.py)
    session_cookie: str | None = None      # cookie name that carries the session, if any
    json_fields: dict[str, list[str]] = field(default_factory=dict)
    # our proxies (ip_network), skipped when walking X-Forwarded-For for the client; see data/redaction.py
    trusted_proxies: tuple = field(default_factory=trusted_proxies_from_env)


class FileSummary(NamedTuple):
    path: str
    format: str
    records: int
    parsed: int
    quarantined: int
    source_id: int
    status: str  # "ingested" | "re-ingested" | "already ingested" | "nothing parsed"
    seconds: float
    hint: str | None = None        # "nothing parsed": which format to try; "re-ingested": what was replaced

    def as_dict(self) -> dict:
        return self._asdict()


def ingest_file(con: duckdb.DuckDBPyConnection, path: str | os.PathLike, options: IngestOptions,
                pseudonymizer: Pseudonymizer) -> FileSummary:
    """Ingest one file in one transaction; see the module docstring for the guarantees.

    A file ingested before with nothing parsed (wrong ``--format``) is ingested again, replacing
    that attempt; a file of which nothing parses now is kept (its quarantine shows why) with
    status "nothing parsed" and a hint of the format to try."""
    started = time.perf_counter()
    check_json_fields(con, options.json_fields)
    with DeferredInterrupt() as interrupt:
        log = read_log_file(path)
        fmt_name, line_format = resolve_format(log.content, options, Path(path))
        # find the lines while the file's hash is computed (both release the GIL)
        spans = line_spans(log.content) if line_format is COMBINED else None
        interrupt.check()
        known = con.execute(
            "SELECT source_id, format, records, parsed, quarantined FROM sources WHERE sha256 = $sha",
            {"sha": log.sha256},
        ).fetchall()
        replaced = None
        if known:
            source_id, fmt, records, parsed, quarantined = known[0]
            if parsed or not records:
                return FileSummary(str(path), fmt, records, parsed, quarantined, source_id, "already ingested",
                                   time.perf_counter() - started)
            replaced = (source_id, fmt)
        con.execute("BEGIN TRANSACTION")
        try:
            if replaced:
                forget_in_transaction(con, replaced[0])
            records, parsed, quarantined, source_id = _ingest_in_transaction(
                con, path, log, fmt_name, line_format, spans, options, pseudonymizer, interrupt)
            interrupt.check()
            con.execute("COMMIT")
        except BaseException as error:
            rollback(con)
            if was_interrupted(error):  # Ctrl-C inside DuckDB surfaces as its own errors; say what happened
                raise KeyboardInterrupt from None
            real = _real_error(error, path)
            if real is error:
                raise
            raise real from error
    if interrupt.requested:  # Ctrl-C between the last check and COMMIT: the file is in; stop before the next one
        raise InterruptedAfterFile(str(path))
    status, hint = "ingested", None
    if replaced:
        status, hint = "re-ingested", (f"its earlier ingest (source {replaced[0]}, as {replaced[1]}) parsed nothing "
                                       "and was replaced")
    if records and not parsed:
        status, hint = "nothing parsed", format_hint(log.content, fmt_name, options)
    return FileSummary(str(path), fmt_name, records, parsed, quarantined, source_id, status,
                       time.perf_counter() - started, hint)


def parse_json_fields(values: tuple[str, ...]) -> dict[str, list[str]]:
    """``--json-field COLUMN=PATH[,PATH]`` options as :attr:`IngestOptions.json_fields`."""
    fields: dict[str, list[str]] = {}
    for value in values:
        column, sep, paths = value.partition("=")
        if not sep or not column or not paths:
            raise InputError(f"--json-field wants COLUMN=$.path[,$.other], got {value!r}")
        fields[column.strip()] = [p.strip() for p in paths.split(",") if p.strip()]
    return fields


def check_json_fields(con: duckdb.DuckDBPyConnection, fields: dict[str, list[str]]) -> None:
    """Refuse an unknown ``--json-field`` column or a path DuckDB cannot read, before any transaction."""
    for column, paths in fields.items():
        if column not in DEFAULT_JSON_FIELDS:
            raise InputError(f"--json-field {column}=...: unknown column {column!r}; use one of "
                             f"{', '.join(DEFAULT_JSON_FIELDS)}")
        for json_path in paths:
            if not json_path.startswith("$"):
                raise InputError(f"--json-field {column}={json_path}: a path starts with '$' (e.g. $.client.address)")
            try:  # the way stage_json_batch uses it: a path from a list is not a constant to DuckDB
                con.execute("SELECT list_transform($p, lambda p: json_extract_string('{}'::JSON, p))",
                            {"p": [json_path]}).fetchall()
            except duckdb.Error as error:
                raise InputError(f"--json-field {column}={json_path}: not a JSON path DuckDB understands "
                                 f"({first_line(error)}); e.g. $.client.address or $.\"dotted.key\"") from None


def format_hint(content: bytes, fmt_name: str, options: IngestOptions) -> str:
    """What to try when no record of a file parsed with the format given."""
    try:
        sniffed = sniff_format(content)
    except InputError:
        sniffed = None
    if options.log_format:
        if sniffed and sniffed != "combined":
            return f"it looks like {sniffed}: try --format {sniffed} without --log-format"
        return ("--log-format matched no line: copy the LogFormat / log_format line from the server's "
                "configuration, or try without it (combined is sniffed)")
    if sniffed and sniffed != fmt_name:
        return f"it looks like {sniffed}: try --format {sniffed} (or --format auto)"
    if fmt_name == "json":
        return "no line had a request field: map fields with --json-field (e.g. target=$.request.uri)"
    if fmt_name == "combined":
        return "no line is common/combined: pass --log-format with the server's LogFormat / log_format string"
    return "try --format auto, another --format, or --log-format"


def _real_error(error: BaseException, path) -> BaseException:
    """The error to report: disk full as one line; DuckDB's "transaction is aborted" replaced by what aborted it."""
    full = storage_fault(error)
    if full is not None:
        return StorageError(f"{path}: nothing was ingested: {full}")
    while isinstance(error, duckdb.Error) and "transaction is aborted" in str(error).lower() \
            and error.__context__ is not None:
        error = error.__context__
    if isinstance(error, duckdb.OutOfMemoryException):
        return DatabaseError(f"{path}: DuckDB ran out of memory ({first_line(error)}); nothing was ingested: "
                             f"raise WAFLENS_DUCKDB_MEMORY (default 1GB) or split the file")
    return error


def _ingest_in_transaction(con, path, log, fmt_name: str, line_format: LineFormat | None, spans,
                           options: IngestOptions, pseudonymizer: Pseudonymizer, interrupt: DeferredInterrupt):
    """Stage, convert and record one file inside the caller's transaction; (records, parsed, quarantined, id)."""
    con.execute(STAGE_DDL)
    if fmt_name == "raw-http":
        stage_raw_http(con, log.content, options, interrupt)
    else:
        starts, ends = spans if spans is not None else line_spans(log.content)
        for lo, hi in span_chunks(starts):
            stage_lines(con, log.content, starts[lo:hi], ends[lo:hi], lo + 1, fmt_name, line_format, options)
            interrupt.check()
    source_id = next_id(con, "sources")
    records, parsed, quarantined = finish_stage(con, source_id, pseudonymizer, options)
    con.execute(
        """INSERT INTO sources VALUES ($id, $path, $name, $sha, $format, $log_format, $records, $parsed,
                                       $quarantined, $pseudonymized, $at)""",
        {"id": source_id, "path": str(Path(path).resolve()), "name": options.source or Path(path).name,
         "sha": log.sha256, "format": fmt_name, "log_format": options.log_format, "records": records,
         "parsed": parsed, "quarantined": quarantined, "pseudonymized": pseudonymizer.enabled,
         "at": datetime.now(timezone.utc).replace(tzinfo=None)},
    )
    con.execute("DROP TABLE stage")
    return records, parsed, quarantined, source_id


def stage_lines(con: duckdb.DuckDBPyConnection, content: bytes, starts, ends, first_record: int, fmt_name: str,
                line_format: LineFormat | None, options: IngestOptions) -> None:
    """Parse consecutive lines (byte spans of ``content``, numbered from ``first_record``) into ``stage``.

    The one dispatch from format to parser, shared by this module and the Spark executors
    (:mod:`waflens.pipeline.spark.parsing`), so both read a line the same way."""
    if line_format is COMBINED:
        stage_clf_batch(con, content, starts, ends, first_record, line_format)
        return
    batch = binary_lines(content, starts, ends, np.arange(first_record, first_record + len(starts), dtype=np.int64))
    if fmt_name == "json":
        stage_json_batch(con, batch, options.json_fields)
    else:
        stage_line_batch(con, batch, line_format, unwrap_quotes=False, session_cookie=options.session_cookie)


def ingest_files(con: duckdb.DuckDBPyConnection, paths: list[str | os.PathLike], options: IngestOptions,
                 pseudonymizer: Pseudonymizer,
                 on_error: Callable[[Path, WaflensError], None] | None = None) -> list[FileSummary]:
    """Ingest several files; a file that fails is reported through ``on_error`` and skipped."""
    summaries = []
    for path in paths:
        try:
            summaries.append(ingest_file(con, path, options, pseudonymizer))
        except WaflensError as error:
            if on_error is None:
                raise
            on_error(Path(path), error)
    return summaries


def resolve_format(content: bytes, options: IngestOptions, path: Path) -> tuple[str, LineFormat | None]:
    """The format's name and line parser (None for json and raw-http); ``content`` is sniffed for auto."""
    if options.session_key not in SESSION_KEYS:
        raise InputError(f"unknown session key {options.session_key!r}: use one of {', '.join(SESSION_KEYS)}")
    if options.log_format:
        fmt = compile_log_format(options.log_format)
        return ("combined" if fmt is COMBINED else fmt.name), fmt
    name = options.format
    if name == "auto":
        try:
            name = sniff_format(content)
        except InputError as error:
            raise InputError(f"{path}: {error}") from None
    if name in ("combined", "common"):
        return "combined", COMBINED
    if name in ("json", "raw-http"):
        return name, None
    raise InputError(f"unknown format {name!r}: use auto, combined, common, json or raw-http")


def finish_stage(con: duckdb.DuckDBPyConnection, source_id: int, pseudonymizer: Pseudonymizer,
                 options: IngestOptions) -> tuple[int, int, int]:
    """Pick clients, redact and pseudonymize, then move stage rows into requests and quarantine.

    Each Spark task runs it too, on a private in-memory database (waflens.pipeline.spark.parsing)."""
    choose_stage_clients(con, options.trusted_proxies)
    redactor = pseudonymizer.redactor()
    redact_stage(con, redactor)
    values = con.execute(
        """SELECT DISTINCT v FROM (
               SELECT client_ip AS v FROM stage WHERE reason IS NULL
               UNION ALL SELECT remote_user FROM stage WHERE reason IS NULL
               UNION ALL SELECT session_cookie FROM stage WHERE reason IS NULL) WHERE v IS NOT NULL"""
    ).fetchall()
    plain = [v for (v,) in values]
    tokens = pa.table({"value": pa.array(plain, pa.string()),
                       "token": pa.array([pseudonymizer.token(v) for v in plain], pa.string())})
    con.register("pseudonym_values", tokens)
    con.execute("CREATE OR REPLACE TEMP TABLE pseudonyms AS SELECT * FROM pseudonym_values")
    con.unregister("pseudonym_values")
    base = next_id(con, "requests") - 1
    run_sql_file(con, "ingest_finish", {"base_request_id": base, "source_id": source_id,
                                        "session_key": options.session_key})
    rejected = redact_quarantine(con, redactor)
    if rejected:
        quarantine = pa.table({
            "source_id": pa.array([source_id] * len(rejected), pa.int64()),
            "record": pa.array([r[0] for r in rejected], pa.int64()),
            "raw": pa.array([r[1] for r in rejected], pa.string()),
            "reason": pa.array([r[2] for r in rejected], pa.string()),
        })
        con.register("quarantine_rows", quarantine)
        con.execute("INSERT INTO quarantine BY NAME SELECT * FROM quarantine_rows")
        con.unregister("quarantine_rows")
    con.execute("DROP TABLE pseudonyms")
    records, parsed = con.execute("SELECT count(*), count(*) FILTER (reason IS NULL) FROM stage").fetchall()[0]
    return records, parsed, records - parsed


def stage_raw_http(con: duckdb.DuckDBPyConnection, content: bytes, options: IngestOptions,
                   interrupt: DeferredInterrupt | None = None) -> None:
    """Parse a raw HTTP dump in Python (it is small next to access logs) into ``stage``."""
    rows: list[dict] = []
    for item in iter_raw_http(content.decode("latin-1")):
        rows.append(_raw_http_row(item, options))
        if len(rows) >= RAW_HTTP_BATCH:
            _insert_stage_rows(con, rows)
            rows = []
            if interrupt is not None:
                interrupt.check()
    if rows:
        _insert_stage_rows(con, rows)


def _raw_http_row(item, options: IngestOptions) -> dict:
    """One stage row; its text (headers included) is redacted with every other path's, in finish_stage."""
    if isinstance(item, RawHttpReject):
        return {"record": item.record, "raw": item.raw, "reason": item.reason}
    headers: dict[str, str] = {}
    for name, value in item.headers:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    cookies = _parse_cookies(headers.get("cookie", ""))
    session_cookie = _pick_session_cookie(cookies, options.session_cookie)
    forwarded = next((headers[name] for name in _IP_HEADERS if name in headers), None)
    client_ip = choose_client(None, forwarded, options.trusted_proxies)
    return {
        "record": item.record, "raw": None, "reason": None, "client_ip": client_ip,
        "session_cookie": session_cookie, "vhost": _utf8(item.authority) or None, "ts": None,
        "method": item.method, "target": _utf8(item.target), "protocol": item.protocol or None,
        "referer": _utf8(headers.get("referer")), "user_agent": _utf8(headers.get("user-agent")),
        "headers": json.dumps({k: _utf8(v) for k, v in headers.items()}, ensure_ascii=False),
        "body": _utf8(item.body) or None,
    }


def _utf8(text: str | None) -> str | None:
    """A field of a dump read as Latin-1 (for exact byte lengths), as UTF-8 when its bytes are UTF-8."""
    if text is None or text.isascii():
        return text
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def _parse_cookies(header: str) -> list[tuple[str, str]]:
    pairs = []
    for piece in header.split(";"):
        name, _, value = piece.strip().partition("=")
        if name:
            pairs.append((name, value))
    return pairs


def _pick_session_cookie(cookies: list[tuple[str, str]], wanted: str | None) -> str | None:
    names = (wanted.lower(),) if wanted else _SESSION_COOKIES
    for name, value in cookies:
        if name.lower() in names and value:
            return value
    return None


_STAGE_SCHEMA = pa.schema([
    ("record", pa.int64()), ("raw", pa.string()), ("reason", pa.string()), ("client_ip", pa.string()),
    ("session_cookie", pa.string()), ("vhost", pa.string()), ("ts", pa.timestamp("us")),
    ("method", pa.string()), ("target", pa.string()), ("protocol", pa.string()), ("referer", pa.string()),
    ("user_agent", pa.string()), ("headers", pa.string()), ("body", pa.string()),
])


def _insert_stage_rows(con: duckdb.DuckDBPyConnection, rows: list[dict]) -> None:
    table = pa.Table.from_pylist(rows, schema=_STAGE_SCHEMA)
    con.register("stage_rows", table)
    try:
        con.execute("INSERT INTO stage BY NAME SELECT * FROM stage_rows")
    finally:
        try:
            con.unregister("stage_rows")
        except duckdb.Error:  # the transaction is aborted: let the error that aborted it through
            pass
