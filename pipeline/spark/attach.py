"""``waflens spark attach DIR --db analyst.duckdb``: the analyst loop (workbench, ``cluster``, ``summarize``,
``label``) on a Spark output directory, through DuckDB reading its Parquet.

The database's traffic tables become views over ``read_parquet`` of ``DIR`` (hive partitions by day):
``requests`` (with ``source_id`` from a ``sources`` table made of ``DIR/sources`` and ``session_id`` from
``DIR/request_sessions``), ``request_features``, ``sessions``, ``session_features`` and ``quarantine``; the
views cast every column to the type of the DuckDB schema (read from the schema itself, not copied here).
Everything the analysts write — cluster runs, evidence, summaries, labels — goes to ordinary tables, created
by the usual code when first needed, so ``waflens cluster``, ``summarize``, ``retrain`` and the workbench run
unchanged. Writing traffic (``ingest``, ``sessionize``, ``purge``, ``sources forget``, ``retrain --source``, the
workbench's upload, forget and purge) into such a database makes no sense and fails with a clear error
(:func:`refuse_traffic_writes`). A remote ``DIR`` (``s3a://bucket/prefix``) is read by DuckDB's httpfs extension or,
where it cannot load, by an fsspec filesystem (``waflens[s3]``), on every connection to the database
(:mod:`waflens.data.remote_parquet`). Rerun ``attach`` after the Spark steps change ``DIR``'s files (the views read
the files at every query, but ``sources`` is filled at attach time).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import duckdb

from waflens.data.errors import InputError
from waflens.data.remote_parquet import ATTACHED_LOCATION_KEY, attached_location, open_remote_reader, remote_failure
from waflens.pipeline.spark import layout

MARKER = ATTACHED_LOCATION_KEY   # schema_info key: the Spark output directory the database reads
VIEWS = (layout.REQUEST_FEATURES, layout.SESSIONS, layout.SESSION_FEATURES)


class AttachSummary(NamedTuple):
    db: str
    directory: str
    files: int
    requests: int
    sessions: int


def _literal(text: str) -> str:
    """A SQL string literal (view definitions take no parameters; the text is the operator's own path)."""
    return "'" + text.replace("'", "''") + "'"


def _parquet(directory: str, name: str, partitioned: bool) -> str:
    glob = layout.path_of(directory, name) + ("/**/*.parquet" if partitioned else "/*.parquet")
    return f"read_parquet({_literal(glob)}, hive_partitioning = {'true' if partitioned else 'false'}, union_by_name = true)"


def _duckdb_location(directory: str) -> str:
    """DuckDB's name for the directory: s3a:// (Hadoop's) is s3:// (httpfs's); local paths made absolute."""
    if directory.startswith("s3a://"):
        return "s3://" + directory[len("s3a://"):]
    if "://" in directory:
        return directory
    return str(Path(directory).resolve())


def _schema_types() -> dict[str, list[tuple[str, str]]]:
    """(column, type) of every traffic table, from a scratch database with the waflens schema."""
    from waflens.data.db import ensure_schema

    scratch = duckdb.connect(":memory:")
    try:
        ensure_schema(scratch)
        rows = scratch.execute("""SELECT table_name, column_name, data_type FROM information_schema.columns
                                  ORDER BY table_name, ordinal_position""").fetchall()
    finally:
        scratch.close()
    tables: dict[str, list[tuple[str, str]]] = {}
    for table, column, dtype in rows:
        tables.setdefault(table, []).append((column, dtype))
    return tables


def _casts(columns: list[tuple[str, str]], alias: str, replaced: dict[str, str]) -> str:
    return ", ".join(f"CAST({replaced.get(c, f'{alias}.{c}')} AS {t}) AS {c}" for c, t in columns)


def attach_directory(directory: str, db: str | os.PathLike) -> AttachSummary:
    """Make (or refresh) ``db`` read the Spark output in ``directory``; see the module docstring."""
    from waflens.data.db import connect, private_files

    location = _duckdb_location(str(directory))
    probe = duckdb.connect(":memory:")   # before the database file exists: a failed attach leaves none behind
    try:
        open_remote_reader(probe, location)
        if not _holds_sources(probe, location):
            raise InputError(f"{location} holds no {layout.SOURCES}/: run `waflens spark ingest` (and `features`, "
                             "`sessionize`) with --out pointing there first")
    finally:
        probe.close()
    db = Path(db)
    private_files()
    con = duckdb.connect(str(db))
    try:
        _refuse_a_traffic_database(con, db, location)
        open_remote_reader(con, location)
        con.execute("SET TimeZone = 'UTC'")
        types = _schema_types()
        con.execute("BEGIN TRANSACTION")
        for table in (layout.REQUESTS, "quarantine", *VIEWS):
            con.execute(f"DROP VIEW IF EXISTS {table}")
        con.execute("CREATE TABLE IF NOT EXISTS schema_info (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)")
        con.execute("INSERT OR REPLACE INTO schema_info VALUES ($k, $v)", {"k": MARKER, "v": location})
        con.execute("DROP TABLE IF EXISTS sources")
        # the files the Spark ingest read, in its order (DIR/sources: records = parsed + quarantined, as DuckDB's)
        con.execute(f"CREATE TABLE sources AS SELECT {_casts(types['sources'], 's', {})} FROM ("
                    "SELECT row_number() OVER (ORDER BY first_request_id, file) AS source_id, file AS path, "
                    "regexp_extract(file, '[^/]*$') AS name, 'spark:' || sha256(file) AS sha256, format, "
                    "NULL AS log_format, records, parsed, quarantined, pseudonymized, $now AS ingested_at "
                    f"FROM {_parquet(location, layout.SOURCES, False)} "
                    "WHERE status IS DISTINCT FROM 'failed') AS s",   # a skipped file is no source, as in DuckDB
                    {"now": datetime.now(timezone.utc).replace(tzinfo=None)})
        request_columns = [(c, t) for c, t in types["requests"]]
        con.execute(f"CREATE VIEW requests AS SELECT {_casts(request_columns, 'r', {'source_id': 'src.source_id', 'session_id': 'm.session_id'})} "
                    f"FROM {_parquet(location, layout.REQUESTS, True)} AS r "
                    "JOIN sources AS src ON src.path = r.file "
                    f"LEFT JOIN {_parquet(location, layout.REQUEST_SESSIONS, False)} AS m ON m.request_id = r.request_id")
        for name in VIEWS:
            partitioned = name == layout.REQUEST_FEATURES
            con.execute(f"CREATE VIEW {name} AS SELECT {_casts(types[name], 'x', {})} "
                        f"FROM {_parquet(location, name, partitioned)} AS x")
        con.execute(f"CREATE VIEW quarantine AS SELECT {_casts(types['quarantine'], 'q', {'source_id': 'src.source_id'})} "
                    f"FROM {_parquet(location, layout.QUARANTINE, False)} AS q JOIN sources AS src ON src.path = q.file")
        con.execute("COMMIT")
    except duckdb.Error as error:
        reason = remote_failure(error)   # s3fs's (a missing bucket, a refused key) come as a bare duckdb.Error
        if reason is None and not isinstance(error, duckdb.IOException):
            raise
        credentials = (" or give credentials for it: a DuckDB secret with httpfs, the standard AWS environment with "
                       "s3fs (docs/scaling.md)") if "://" in location else ""
        raise InputError(f"cannot read the Parquet of {location}: {reason or str(error).splitlines()[0]} (run "
                         f"`waflens spark sessionize` there first{credentials}?)") from None
    finally:
        con.close()
    con = connect(db)   # the rest of the schema (labels, clusters, ...) as ordinary tables
    try:
        from waflens.pipeline.schema import ensure_schemas

        ensure_schemas(con)
        files, requests = con.execute("SELECT count(*), coalesce(sum(parsed), 0) FROM sources").fetchall()[0]
        sessions = con.execute("SELECT count(*) FROM sessions").fetchall()[0][0]
    finally:
        con.close()
    return AttachSummary(str(db), location, int(files), int(requests), int(sessions))


def _holds_sources(probe: duckdb.DuckDBPyConnection, location: str) -> bool:
    """Whether ``location`` has the Spark ingest's sources/. For object storage this is the first request to the
    bucket, so that a missing bucket or refused credentials fail here, before the database file is made. A
    recursive glob: s3fs lists a missing bucket as empty at one level, and says it is missing only when it recurses."""
    if "://" not in location:
        return Path(location, layout.SOURCES).is_dir()
    pattern = layout.path_of(location, layout.SOURCES) + "/**/*.parquet"
    try:
        return probe.execute("SELECT count(*) FROM glob($pattern)", {"pattern": pattern}).fetchall()[0][0] > 0
    except duckdb.Error as error:
        reason = remote_failure(error)
        if reason is None and not isinstance(error, duckdb.IOException):
            raise
        raise InputError(f"cannot list {layout.path_of(location, layout.SOURCES)}: "
                         f"{reason or str(error).splitlines()[0]} (check the bucket's name and the credentials: a "
                         "DuckDB secret with httpfs, the standard AWS environment with s3fs; docs/scaling.md)") from None


def _refuse_a_traffic_database(con: duckdb.DuckDBPyConnection, db: Path, location: str) -> None:
    kinds = dict(con.execute("SELECT table_name, table_type FROM information_schema.tables "
                             "WHERE table_name = 'requests'").fetchall())
    if kinds.get("requests") == "BASE TABLE":
        raise InputError(f"{db} holds ingested traffic of its own: attach {location} to a new database file "
                         "(--db analyst.duckdb)")


def spark_output_of(con: duckdb.DuckDBPyConnection) -> str | None:
    """The Spark output directory a database reads (None for an ordinary waflens database)."""
    return attached_location(con)


def refuse_traffic_writes(con: duckdb.DuckDBPyConnection, command: str) -> None:
    """Raise a clear error when ``command`` would write traffic into a database that reads Spark's Parquet."""
    directory = spark_output_of(con)
    if directory is not None:
        raise InputError(f"this database reads the Spark output in {directory} (`waflens spark attach`): "
                         f"`waflens {command}` cannot write traffic into it; run the Spark steps "
                         "(`waflens spark ingest|features|sessionize`) on new logs and attach again")
