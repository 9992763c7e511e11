"""Database access for the workbench pages.

DuckDB lets one process write *or* several read, and a cron ``waflens retrain`` (or
an ingest) must be able to take the write lock at any time. So the workbench never
holds the database open: each query opens a short read-only connection and closes
it, and writes go through :func:`waflens.data.writes.write` (a short write connection).
What *is* cached as a resource is only the configuration (:func:`config`: the
database path, the model registry and the upload folder), not a connection.

Query results are cached with ``st.cache_data`` keyed on the modification time of
the database file and its WAL, so they refresh by themselves when an ingest, a
cron run or the workbench itself changes the data (:func:`after_write` also
clears them at once). While another process writes, a query that cannot open the
database falls back to its last result, with a note that the data may be a little
old; a query never answered before says the database is busy and offers a retry,
instead of a traceback.
"""

from __future__ import annotations

import contextvars
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, NamedTuple

import duckdb
import pandas as pd
import streamlit as st

from waflens.app.render import escape_markdown
from waflens.data.writes import is_busy, write
from waflens.data.db import connect, default_db_path
from waflens.data.errors import DatabaseError, WaflensError

READ_TIMEOUT_S = 5.0     # how long a page waits for another process's write before saying the database is busy
WRITE_TIMEOUT_S = 10.0   # ... and a label or setting waits to be written
BUSY_MESSAGE = ("The database is busy (a retrain or ingest is writing); this page will work again in a moment.")
_STALE_ENTRIES = 128


class Config(NamedTuple):
    db_path: str
    models_root: Path
    uploads_dir: Path


@st.cache_resource(show_spinner=False)
def _config(db_env: str | None, models_env: str | None) -> Config:
    from waflens.scoring.registry import default_registry_root

    path = str(Path(db_env or default_db_path()).resolve())
    return Config(path, default_registry_root(path), Path(path).parent / "uploads")


def config() -> Config:
    """Where the workbench's database, model registry and uploads are (from the environment)."""
    return _config(os.environ.get("WAFLENS_DB"), os.environ.get("WAFLENS_MODELS"))


def database_path() -> str:
    return config().db_path


def _version(path: str) -> float:
    wal = Path(f"{path}.wal")
    return max(Path(path).stat().st_mtime, wal.stat().st_mtime if wal.exists() else 0.0)


def data_version() -> float:
    """Changes whenever the database changes: a cache key for anything derived from it."""
    path = database_path()
    return _version(path) if Path(path).exists() else 0.0


def read_connection(path: str, timeout_s: float | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection, waiting a few seconds while another process writes."""
    if timeout_s is None:
        timeout_s = float(os.environ.get("WAFLENS_APP_READ_TIMEOUT", READ_TIMEOUT_S))
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return connect(path, read_only=True, retries=0, retry_delay=0.0)
        except DatabaseError as error:
            if not is_busy(error) or time.monotonic() >= deadline:
                raise
            time.sleep(0.25)


# Once a page run found the database busy, its other queries try once instead of each waiting again.
_NO_WAIT: contextvars.ContextVar[bool] = contextvars.ContextVar("waflens_no_wait", default=False)


def _page_read_connection(path: str) -> duckdb.DuckDBPyConnection:
    return read_connection(path, 0.0 if _NO_WAIT.get() else None)


@st.cache_data(show_spinner=False, max_entries=256)
def _cached_query(path: str, version: float, sql: str, params: tuple) -> pd.DataFrame:
    con = _page_read_connection(path)
    try:
        return con.execute(sql, dict(params) or None).df()
    finally:
        con.close()


@st.cache_data(show_spinner=False, max_entries=128)
def _cached_read(path: str, version: float, name: str, args: tuple, _fn: Callable) -> Any:
    con = _page_read_connection(path)
    try:
        return _fn(con, *args)
    finally:
        con.close()


@st.cache_resource(show_spinner=False)
def _last_results() -> OrderedDict:
    """The latest result of each query, shown (marked as possibly old) while the database is busy."""
    return OrderedDict()


def _remember(key: tuple, value: Any) -> Any:
    stale = _last_results()
    stale[key] = value
    stale.move_to_end(key)
    while len(stale) > _STALE_ENTRIES:
        stale.popitem(last=False)
    return value


def _run(key: tuple, compute: Callable[[str, float], Any]) -> Any:
    path = database_path()
    key = (path, *key)
    token = _NO_WAIT.set(bool(st.session_state.get("_db_busy")))
    try:
        if not Path(path).exists():
            raise DatabaseError(f"no database at {path}: run `waflens demo` or `waflens ingest` first")
        return _remember(key, _computed(compute, path))
    except WaflensError as error:
        if is_busy(error):
            st.session_state["_db_busy"] = True
            if key in _last_results():
                if not st.session_state.get("_stale_warned"):
                    st.session_state["_stale_warned"] = True
                    st.warning("The database is busy (a retrain or ingest is writing): some of what this page "
                               "shows may be a minute old.", icon="⏳")
                value = _last_results()[key]
                return value.copy() if isinstance(value, pd.DataFrame) else value
            show_busy()
        else:
            st.error(escape_markdown(error))
        st.stop()
    finally:
        _NO_WAIT.reset(token)


def _computed(compute: Callable[[str, float], Any], path: str) -> Any:
    """``compute(path, version)``; an object store's refusal under an attached database's views (a key rotated, the
    files gone) becomes its one-line :class:`~waflens.data.errors.InputError`, shown as the page's error."""
    from waflens.data.remote_parquet import remote_read_fault

    try:
        return compute(path, _version(path))
    except duckdb.Error as error:
        known = remote_read_fault(error)
        if known is None:
            raise
        raise known from None


def query(sql: str, params: dict | None = None) -> pd.DataFrame:
    """A read-only query on the database; values are bound, never formatted into the SQL.

    A database that is missing stops the page with the one-line message; a busy one
    with :data:`BUSY_MESSAGE` and a retry button (or the last result, when there is one).
    """
    bound = tuple(sorted((params or {}).items()))
    return _run(("query", sql, bound), lambda path, version: _cached_query(path, version, sql, bound))


def read(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(con, *args)`` on a read-only connection, cached like :func:`query` (args must be hashable)."""
    name = f"{fn.__module__}.{fn.__qualname__}"
    return _run(("read", name, args), lambda path, version: _cached_read(path, version, name, args, fn))


def table_exists(name: str) -> bool:
    return bool(query("SELECT count(*) AS n FROM duckdb_tables() WHERE table_name = $name",
                      {"name": name}).n.iloc[0])


def _spark_output(con: duckdb.DuckDBPyConnection) -> str | None:
    from waflens.pipeline.spark.attach import spark_output_of

    return spark_output_of(con)


def _traffic_write_refusal(con: duckdb.DuckDBPyConnection, command: str) -> str | None:
    from waflens.pipeline.spark.attach import refuse_traffic_writes

    try:
        refuse_traffic_writes(con, command)
    except WaflensError as error:
        return str(error)
    return None


def spark_output() -> str | None:
    """The Spark output directory the database reads (made by ``waflens spark attach``), or None."""
    return read(_spark_output)


def refuse_traffic_write(command: str) -> bool:
    """Show why ``waflens command`` cannot write traffic into this database and return True (it reads a Spark
    output directory: its traffic is Parquet behind views), or return False. The CLI refuses too; asking first
    spares the subprocess, and an upload is not stored beside the database for nothing."""
    refusal = read(_traffic_write_refusal, command)
    if refusal:
        st.error(escape_markdown(refusal))
    return bool(refusal)


def show_busy() -> None:
    st.warning(BUSY_MESSAGE, icon="⏳")
    st.button("Retry", key="_busy_retry")


def after_write() -> None:
    """Forget cached results at once (the data changed)."""
    _cached_query.clear()
    _cached_read.clear()


def begin_page() -> None:
    """Called by the workbench before each page runs."""
    st.session_state["_stale_warned"] = False
    st.session_state["_db_busy"] = False


def write_or_warn(fn: Callable[[duckdb.DuckDBPyConnection], Any], *,
                  timeout_s: float | None = None) -> tuple[bool, Any]:
    """Run a short write; (True, result) or (False, None) after showing why it did not happen.

    A busy database is a warning, not an error: a retrain or an ingest is writing, and
    what the analyst typed stays in the form to submit again.
    """
    if timeout_s is None:
        timeout_s = float(os.environ.get("WAFLENS_APP_WRITE_TIMEOUT", WRITE_TIMEOUT_S))
    try:
        result = write(database_path(), fn, timeout_s=timeout_s)
    except DatabaseError as error:
        if is_busy(error):
            st.warning("Not saved: the database is busy (a retrain or ingest is writing). What you entered is kept; "
                       "try again in a moment.", icon="⏳")
        else:
            st.error(escape_markdown(error))
        return False, None
    except WaflensError as error:
        st.error(escape_markdown(error))
        return False, None
    after_write()
    return True, result


def settings() -> dict:
    """The workbench settings (defaults for those never set), read like any query."""
    from waflens.data.settings import get_settings

    return read(get_settings)
