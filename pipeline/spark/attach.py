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
(:func:`refuse_traffic_writes`). A remote ``DIR`` needs DuckDB's httpfs extension (:func:`load_remote_extension`). Rerun ``attach`` after the Spark steps change ``DIR``'s files (the views read
the files at every query, but ``sources`` is filled at attach time).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import duckdb

from waflens.data.errors import ConfigError, InputError
from waflens.pipeline.spark import layout

MARKER = "spark_output"   # schema_info key: the Spark output directory the database reads
VIEWS = (layout.REQUEST_FEATURES, layout.SESSIONS, layout.SESSION_FEATURES)
# The DuckDB extension that reads a remote DIR, by scheme (after s3a:// became s3://). Extensions are not in the
# duckdb wheel: `INSTALL` downloads them into ~/.duckdb/extensions, so a machine offline may not have them.
REMOTE_EXTENSIONS = {"s3": "httpfs", "r2": "httpfs", "gs": "httpfs", "gcs": "httpfs", "http": "httpfs",
                     "https": "httpfs", "hf": "httpfs", "az": "azure", "azure": "azure", "abfss": "azure"}


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


def load_remote_extension(con: duckdb.DuckDBPyConnection, location: str) -> None:
    """Load the extension that reads ``location`` (nothing for a local path), or say how to get it: DuckDB's own
    error is "An error occurred while trying to automatically install the required extension", as a bug."""
    scheme = location.split("://", 1)[0].lower() if "://" in location else None
    extension = REMOTE_EXTENSIONS.get(scheme or "")
    if extension is None:
        return
    try:
        con.execute(f"LOAD {extension}")
    except duckdb.Error as error:
        raise ConfigError(
            f"reading {location} needs DuckDB's {extension} extension, which cannot be loaded here "
            f"({str(error).splitlines()[0]}): run `INSTALL {extension}` once while this machine reaches the internet "
            f"(`python -c \"import duckdb; duckdb.sql('INSTALL {extension}')\"`; offline, copy the file from a machine "
            "with the same DuckDB version to that path), or copy the Parquet to a local directory and attach that. "
            "Credentials: a persistent DuckDB secret (docs/scaling.md, \"The analyst loop on Parquet\")") from None


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
        load_remote_extension(probe, location)
    finally:
        probe.close()
    if "://" not in location and not Path(location, layout.SOURCES).is_dir():
        raise InputError(f"{location} holds no {layout.SOURCES}/: run `waflens spark ingest` (and `features`, "
                         "`sessionize`) with --out pointing there first")
    db = Path(db)
    private_files()
    con = duckdb.connect(str(db))
    try:
        _refuse_a_traffic_database(con, db, location)
        load_remote_extension(con, location)
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
    except duckdb.IOException as error:
        credentials = " or give DuckDB credentials for it (a persistent secret: docs/scaling.md)" if "://" in location else ""
        raise InputError(f"cannot read the Parquet of {location}: {str(error).splitlines()[0]} (run `waflens spark "
                         f"sessionize` there first{credentials}?)") from None
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


def _refuse_a_traffic_database(con: duckdb.DuckDBPyConnection, db: Path, location: str) -> None:
    kinds = dict(con.execute("SELECT table_name, table_type FROM information_schema.tables "
                             "WHERE table_name = 'requests'").fetchall())
    if kinds.get("requests") == "BASE TABLE":
        raise InputError(f"{db} holds ingested traffic of its own: attach {location} to a new database file "
                         "(--db analyst.duckdb)")


def spark_output_of(con: duckdb.DuckDBPyConnection) -> str | None:
    """The Spark output directory a database reads (None for an ordinary waflens database)."""
    try:
        found = con.execute("SELECT value FROM schema_info WHERE key = $k", {"k": MARKER}).fetchall()
    except duckdb.Error:
        return None
    return found[0][0] if found else None


def refuse_traffic_writes(con: duckdb.DuckDBPyConnection, command: str) -> None:
    """Raise a clear error when ``command`` would write traffic into a database that reads Spark's Parquet."""
    directory = spark_output_of(con)
    if directory is not None:
        raise InputError(f"this database reads the Spark output in {directory} (`waflens spark attach`): "
                         f"`waflens {command}` cannot write traffic into it; run the Spark steps "
                         "(`waflens spark ingest|features|sessionize`) on new logs and attach again")
