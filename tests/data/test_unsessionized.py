"""Finding 7: requests committed without sessions (ingest --no-sessionize, or Ctrl-C / kill -9 during
the sessionize step) are picked up by the next `sessionize` and the next `retrain`."""

import json

import pytest

from waflens.data.db import connect
from waflens.data.synthetic import generate_traffic
from tests.data.cli_process import waflens_here


@pytest.mark.slow
def test_sessionize_and_retrain_pick_up_requests_left_without_sessions(tmp_path, monkeypatch):
    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", "test-key-0123456789abcdef")
    log = tmp_path / "traffic.log"
    generate_traffic(log, 3000, seed=5)
    db, models = str(tmp_path / "w.duckdb"), str(tmp_path / "models")
    code, _, err = waflens_here("--db", db, "ingest", "--no-sessionize", str(log))
    assert code == 0, err
    # cron's retrain on the same file: "already ingested", yet its requests must be trained on
    code, report, err = waflens_here("--db", db, "--json", "retrain", "--source", str(log), "--models", models,
                                     "--trees", "10", "--no-promote")
    report = json.loads(report.splitlines()[-1])   # --json: a line per stage, then the run's summary
    con = connect(db, read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM requests WHERE session_id IS NULL").fetchall() == [(0,)]
        assert con.execute("SELECT sum(n_requests) FROM sessions").fetchall() == [(3000,)]
        sessions = con.execute("SELECT count(*) FROM sessions").fetchall()[0][0]
    finally:
        con.close()
    assert report["ingested"][0]["status"] == "already ingested", err
    assert report["unsessionized"] == 3000
    assert report["status"] in ("candidate", "gate_failed"), report["message"]
    assert 0 < report["fingerprint"]["data"]["sessions"] == sessions


def test_sessionize_takes_what_an_interrupted_ingest_left(tmp_path, monkeypatch):
    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", "test-key-0123456789abcdef")
    log = tmp_path / "traffic.log"
    generate_traffic(log, 1500, seed=6)
    db = str(tmp_path / "w.duckdb")
    assert waflens_here("--db", db, "ingest", "--no-sessionize", str(log))[0] == 0
    code, out, err = waflens_here("--db", db, "--json", "sessionize")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["requests_sessionized"] == 1500 and summary["sessions"] > 0
    code, out, _ = waflens_here("--db", db, "--json", "sessionize")
    assert json.loads(out)["requests_sessionized"] == 0
