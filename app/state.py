"""Database access for the workbench pages.

DuckDB lets one process write *or* several read, so the workbench never holds the
database open: each query opens a short read-only connection, and results are
cached with ``st.cache_data`` keyed on the database file's modification time, so
they refresh by themselves when an ingest or a cron run changes the data.
"""

import os
from pathlib import Path

import pandas as pd
import streamlit as st

from data.db import connect, default_db_path
from data.errors import DatabaseError, WaflensError


def database_path() -> str:
    return os.environ.get("WAFLENS_DB") or str(default_db_path())


def _version(path: str) -> float:
    wal = Path(f"{path}.wal")
    return max(Path(path).stat().st_mtime, wal.stat().st_mtime if wal.exists() else 0.0)


@st.cache_data(show_spinner=False, max_entries=256)
def _cached_query(path: str, version: float, sql: str, params: tuple) -> pd.DataFrame:
    con = connect(path, read_only=True)
    try:
        return con.execute(sql, dict(params) or None).df()
    finally:
        con.close()


def query(sql: str, params: dict | None = None) -> pd.DataFrame:
    """A read-only query on the database; values are bound, never formatted into the SQL.

    A database that is missing or busy stops the page with the one-line message.
    """
    path = database_path()
    try:
        if not Path(path).exists():
            raise DatabaseError(f"no database at {path}: run `waflens demo` or `waflens ingest` first")
        return _cached_query(path, _version(path), sql, tuple(sorted((params or {}).items())))
    except WaflensError as error:
        st.error(str(error))
        st.stop()
