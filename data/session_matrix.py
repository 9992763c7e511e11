"""Session features as a matrix: the one query training, clustering, retraining and the app share.

    ids, X = session_feature_matrix(con, "s.start_ts >= $since", {"since": t})
    X = session_feature_rows(con, ids)          # given sessions, in the given order

``where`` and ``order`` are SQL over ``s`` (sessions) and ``f`` (session_features), written
by us, never from input; values travel as parameters. Columns of X follow
``feature_names("session")``; NULLs become NaN.
"""

from __future__ import annotations

import duckdb
import numpy as np

from waflens.data.errors import InputError
from waflens.data.feature_spec import feature_names


def session_feature_matrix(con: duckdb.DuckDBPyConnection, where: str = "TRUE", params: dict | None = None, *,
                           order: str = "s.session_id", limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(session ids, float64 features) of the sessions matching ``where``, sorted by ``order``."""
    names = feature_names("session")
    rows = con.execute(
        f"""SELECT s.session_id, {", ".join("f." + n for n in names)}
            FROM sessions s JOIN session_features f USING (session_id)
            WHERE {where} ORDER BY {order}{" LIMIT " + str(int(limit)) if limit is not None else ""}""",
        params or {}).fetchnumpy()
    ids = np.asarray(rows["session_id"], dtype=np.int64)
    if len(ids) == 0:
        return ids, np.empty((0, len(names)))
    return ids, np.column_stack([np.asarray(rows[n], dtype=np.float64) for n in names])


def session_feature_rows(con: duckdb.DuckDBPyConnection, session_ids: np.ndarray) -> np.ndarray:
    """The features of the given sessions, one row each in the order given."""
    names = feature_names("session")
    con.register("wanted", {"session_id": session_ids, "position": np.arange(len(session_ids))})
    try:
        rows = con.execute(f"""SELECT {", ".join("f." + n for n in names)} FROM wanted w
                               JOIN session_features f USING (session_id) ORDER BY w.position""").fetchall()
    finally:
        con.unregister("wanted")
    if len(rows) != len(session_ids):
        raise InputError("some sessions have no features: run `waflens sessionize` first")
    return np.array(rows, dtype=np.float64).reshape(len(session_ids), len(names))
