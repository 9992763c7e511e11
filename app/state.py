"""Connections and cached queries shared by the workbench pages."""

import os

import pandas as pd
import streamlit as st

from data.db import connect, default_db_path


def database_path() -> str:
    return os.environ.get("WAFLENS_DB") or str(default_db_path())


@st.cache_resource
def _connection(path: str):
    return connect(path, read_only=True)


def query(sql: str, params: dict | None = None) -> pd.DataFrame:
    """A read-only query on the database; never formats values into the SQL."""
    cursor = _connection(database_path()).cursor()
    try:
        return cursor.execute(sql, params or None).df()
    finally:
        cursor.close()
