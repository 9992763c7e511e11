"""Sessions and session features from `waflens spark sessionize` equal DuckDB's on every request of the shared logs
(DuckDB and Spark each ingested them once: ``shared_db`` and the ``spark_pipeline`` fixture)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from waflens.data.db import connect
from waflens.data.feature_spec import SESSION_FEATURES
from waflens.pipeline.spark.sessions import sessionize_directory

from tests.spark.pipeline import read


def _spark_frames(out):
    requests = read(out, "requests")[["request_id", "file", "record"]]
    resolved = {f: str(Path(f).resolve()) for f in requests["file"].unique()}   # as DuckDB's sources.path
    requests["file"] = requests["file"].map(resolved)
    return requests, read(out, "request_sessions"), read(out, "sessions"), read(out, "session_features")


def _duckdb_frames(db):
    con = connect(db, read_only=True)
    try:
        requests = con.execute("""SELECT r.request_id, s.path AS file, r.record, r.session_id
                                  FROM requests r JOIN sources s USING (source_id)""").fetchdf()
        sessions = con.execute("SELECT * FROM sessions").fetchdf()
        features = con.execute("SELECT * FROM session_features").fetchdf()
    finally:
        con.close()
    return requests, sessions, features


def _by_first_request(sessions: pd.DataFrame, requests: pd.DataFrame) -> pd.DataFrame:
    """Sessions keyed by their first request's (file, record), with the last request's beside it."""
    where = requests.set_index("request_id")[["file", "record"]]
    first = where.loc[sessions["first_request_id"]].reset_index(drop=True)
    last = where.loc[sessions["last_request_id"]].reset_index(drop=True)
    keyed = sessions.reset_index(drop=True).assign(first_file=first["file"], first_record=first["record"],
                                                   last_file=last["file"], last_record=last["record"])
    return keyed.set_index(["first_file", "first_record"]).sort_index()


def test_sessions_equal_duckdb(spark_pipeline):
    requests, member, sessions, _ = _spark_frames(spark_pipeline.out)
    d_requests, d_sessions, _ = _duckdb_frames(spark_pipeline.db)
    summary = spark_pipeline.steps["sessionize"]
    assert summary["requests"] == len(d_requests) and summary["sessions"] == len(d_sessions) > 100
    assert d_requests["session_id"].notna().all()
    ours, theirs = _by_first_request(sessions, requests), _by_first_request(d_sessions, d_requests)
    assert ours.index.equals(theirs.index)
    for column in ("client_key", "n_requests", "last_file", "last_record"):
        assert (ours[column].to_numpy() == theirs[column].to_numpy()).all(), column
    for column in ("start_ts", "end_ts"):  # NULL for raw HTTP dumps
        a = pd.to_datetime(ours[column]).dt.tz_localize(None)
        b = pd.to_datetime(theirs[column])
        assert ((a == b) | (a.isna() & b.isna())).all(), column
    # every request is in the session DuckDB put it in (sessions named by their first request)
    named = requests.merge(member, on="request_id").merge(
        requests.rename(columns={"request_id": "session_id", "file": "s_file", "record": "s_record"}), on="session_id")
    d_named = d_requests.merge(
        d_requests[["request_id", "file", "record"]].rename(
            columns={"request_id": "session_id", "file": "s_file", "record": "s_record"}), on="session_id")
    key = ["file", "record"]
    joined = named.merge(d_named, on=key, suffixes=("", "_duckdb"))
    assert len(joined) == len(d_requests)
    assert (joined["s_file"] == joined["s_file_duckdb"]).all() and (joined["s_record"] == joined["s_record_duckdb"]).all()


def test_session_features_equal_duckdb(spark_pipeline):
    requests, _, sessions, features = _spark_frames(spark_pipeline.out)
    d_requests, d_sessions, d_features = _duckdb_frames(spark_pipeline.db)
    ours = _by_first_request(sessions.drop(columns="n_requests").merge(features, on="session_id"), requests)
    theirs = _by_first_request(d_sessions.drop(columns="n_requests").merge(d_features, on="session_id"), d_requests)
    assert ours.index.equals(theirs.index)
    worst = {}
    for feature in SESSION_FEATURES:
        a = ours[feature.name].to_numpy(dtype=np.float64)
        b = theirs[feature.name].to_numpy(dtype=np.float64)
        if feature.dtype == "DOUBLE":
            worst[feature.name] = float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))))
            assert np.allclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=False), feature.name
        else:
            assert (a == b).all(), feature.name
    assert max(worst.values()) < 1e-9, worst


@pytest.mark.parametrize("gap", [0, -5, float("nan")])
def test_gap_must_be_positive(spark, tmp_path, gap):
    from waflens.data.errors import InputError

    with pytest.raises(InputError, match="positive"):   # said before Spark looks for the (missing) inputs
        sessionize_directory(spark, str(tmp_path), gap)
