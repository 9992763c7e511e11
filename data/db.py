"""Opening the waflens DuckDB database and running the SQL files that ship with it.

DuckDB admits one writing process at a time. A second process that tries gets a
:class:`~waflens.data.errors.DatabaseError` saying the database is busy, after a short
retry, instead of a lock traceback.

The database holds personal data (pseudonymized, but still): a process that opens
it for writing adds 077 to its umask, so the database, its WAL (which DuckDB
deletes and recreates at every checkpoint, so a chmod would not last), spill files
and everything else the process writes are private to the user. A database file
that already exists keeps its mode (``loose_permissions`` says when others can read it).
"""

from __future__ import annotations

import os
import re
import stat
import time
from importlib import resources
from pathlib import Path

import duckdb

from waflens.data.db_functions import register_functions
from waflens.data.errors import DatabaseError

SCHEMA_VERSION = "1"
DB_ENV = "WAFLENS_DB"
DEFAULT_DB = "waflens.duckdb"
MEMORY_ENV = "WAFLENS_DUCKDB_MEMORY"
BUSY_WAIT_ENV = "WAFLENS_BUSY_WAIT"
DEFAULT_MEMORY_LIMIT = "1GB"


def default_db_path() -> Path:
    return Path(os.environ.get(DB_ENV) or DEFAULT_DB)


def load_sql(name: str) -> str:
    """The text of ``data/sql/<name>.sql``."""
    return resources.files("waflens.data").joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")


def run_sql_file(con: duckdb.DuckDBPyConnection, name: str, params: dict | None = None) -> None:
    """Run every statement of a SQL file; named parameters (``$name``) are bound per statement."""
    for statement in split_statements(load_sql(name)):
        named = set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", statement))
        used = {k: v for k, v in (params or {}).items() if k in named}
        con.execute(statement, used or None)


def split_statements(sql: str) -> list[str]:
    """Split a SQL file on ';' at line ends (our files keep one statement per ';\\n')."""
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in body.split(";\n") if s.strip().rstrip(";").strip()]


def connect(path: str | os.PathLike | None = None, *, read_only: bool = False,
            retries: int | None = None, retry_delay: float = 0.25) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the database with the schema applied, in UTC.

    While another process holds the database, retry for up to ``WAFLENS_BUSY_WAIT`` seconds
    (default 20; ``retries`` overrides it with a count), then fail saying it is busy."""
    if retries is None:
        retries = _retries_for(_busy_wait_seconds(), retry_delay)
    db_path = Path(path) if path is not None else default_db_path()
    if db_path.is_dir():
        raise DatabaseError(f"{db_path} is a directory: pass a database file with --db")
    if read_only and not db_path.exists():
        raise DatabaseError(f"no database at {db_path}: run `waflens ingest` first or pass --db")
    if not read_only:
        private_files()
    last_error: Exception | None = None
    for attempt in range(retries + 1):
        try:
            con = duckdb.connect(str(db_path), read_only=read_only)
            break
        except duckdb.IOException as error:  # lock held by another process, or unreadable file
            last_error = error
            if "lock" not in str(error).lower():
                raise DatabaseError(f"cannot open database {db_path}: {first_line(error)}") from error
            time.sleep(retry_delay * min(1 + attempt, 4))
        except duckdb.Error as error:
            raise DatabaseError(f"cannot open database {db_path}: {first_line(error)}") from error
    else:
        raise DatabaseError(
            f"database {db_path} is busy: another waflens process is writing to it; retry when it finishes"
        ) from last_error
    _open_attached_reader(con)
    con.execute("SET TimeZone = 'UTC'")
    # DuckDB's default (80% of RAM) lets one ingest take the machine; spill to disk instead.
    con.execute("SET memory_limit = $limit", {"limit": os.environ.get(MEMORY_ENV, DEFAULT_MEMORY_LIMIT)})
    register_functions(con)
    if not read_only:
        ensure_schema(con)
    elif _missing_session_features(con):
        con.close()
        raise DatabaseError(f"database {db_path} predates some session features: run `waflens sessionize` once "
                            "(it adds them) and try again")
    return con


def _open_attached_reader(con: duckdb.DuckDBPyConnection) -> None:
    """A database whose traffic views read Parquet in object storage (``waflens spark attach s3a://…``) needs the
    reader of that storage on every connection: the views keep the path, not the filesystem that read it."""
    from waflens.data.remote_parquet import attached_location, open_remote_reader

    location = attached_location(con)
    if location is None:
        return
    try:
        open_remote_reader(con, location)
    except Exception:
        con.close()
        raise


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    from waflens.data.feature_spec import feature_table_ddl  # late: the spec imports nothing of the db

    run_sql_file(con, "schema")
    for statement in feature_table_ddl():
        con.execute(statement)
    _add_new_session_features(con)
    con.execute(
        "INSERT INTO schema_info VALUES ('schema_version', $v) ON CONFLICT (key) DO NOTHING",
        {"v": SCHEMA_VERSION},
    )


def _add_new_session_features(con: duckdb.DuckDBPyConnection) -> None:
    """A database from before a session feature was added gets its column, and every session its value."""
    from waflens.data.feature_spec import sql_parameters

    missing = _missing_session_features(con)
    if not missing:
        return
    for feature in missing:
        con.execute(f"ALTER TABLE session_features ADD COLUMN {feature.name} {feature.dtype}")
    con.execute("CREATE OR REPLACE TEMP TABLE touched_sessions AS SELECT DISTINCT session_id FROM session_features")
    run_sql_file(con, "session_features", sql_parameters())


def _missing_session_features(con: duckdb.DuckDBPyConnection) -> list:
    from waflens.data.feature_spec import SESSION_FEATURES

    have = {row[0] for row in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'session_features'").fetchall()}
    return [f for f in SESSION_FEATURES if have and f.name not in have]


def private_files() -> None:
    """From now on this process creates files 0600 and directories 0700, whatever the umask said."""
    previous = os.umask(0o077)
    os.umask(previous | 0o077)


def loose_permissions(path: str | os.PathLike) -> str | None:
    """A warning when group or others may read the database file, else None."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None
    if mode & 0o077:
        return (f"{path} is readable by others (mode {mode:04o}) and holds personal data: "
                f"run `chmod 600 {path}` (waflens creates new databases 0600)")
    return None


def first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _busy_wait_seconds() -> float:
    value = os.environ.get(BUSY_WAIT_ENV, "20")
    try:
        return max(0.0, float(value))
    except ValueError:
        raise DatabaseError(f"{BUSY_WAIT_ENV}={value!r} is not a number of seconds") from None


def _retries_for(seconds: float, delay: float) -> int:
    """Attempts after the first whose waits (delay x 1, 2, 3, 4, 4, ...) add up to about ``seconds``."""
    retries, waited = 0, 0.0
    while delay > 0 and waited + delay * min(1 + retries, 4) <= seconds:
        waited += delay * min(1 + retries, 4)
        retries += 1
    return retries
