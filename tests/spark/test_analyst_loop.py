"""End to end through the CLI: shared access logs -> Spark steps -> Parquet -> `waflens spark attach` ->
`waflens cluster`, `summarize` and `label` on the attached database, unchanged; traffic writes refused."""

from __future__ import annotations

import json

import duckdb
import pytest

from waflens.app.cli import main

from tests.conftest import REPO_ROOT
from tests.data.cli_process import KEY
from tests.spark.contract import export_ingest_output

LOGS = ("hackers-access.log.gz", "scanner_w3af.log.gz", "secrepo_2022-12-22.log.gz")


def _run(capsys, *args: str) -> dict:
    code = main(["--json", *args])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out.strip().splitlines()[-1])


def test_spark_output_through_the_analyst_loop(spark, shared_datasets, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", KEY)
    ingested = tmp_path / "ingest.duckdb"
    _run(capsys, "--db", str(ingested), "ingest",
         *[str(shared_datasets / "access_logs" / name) for name in LOGS])
    out = tmp_path / "out"
    export_ingest_output(spark, ingested, out)          # what `waflens spark ingest` + `features` write

    sessions = _run(capsys, "spark", "sessionize", str(out))
    assert sessions["sessions"] > 50
    scores = _run(capsys, "spark", "score", str(out), "--model", str(REPO_ROOT / "tests/runtime/fixtures/session"))
    assert scores["scored"] == sessions["sessions"]
    clusters = _run(capsys, "spark", "cluster", str(out), "--sample", "200", "--min-cluster-size", "5")
    assert clusters["selected"] > 0 and clusters["fitted"] + clusters["placed"] == clusters["selected"]

    analyst = tmp_path / "analyst.duckdb"
    attached = _run(capsys, "spark", "attach", str(out), "--db", str(analyst))
    assert attached["files"] == len(LOGS) and attached["sessions"] == sessions["sessions"]
    run = _run(capsys, "--db", str(analyst), "cluster", "--min-cluster-size", "5")
    assert run["n_sessions"] == sessions["sessions"] and run["n_clusters"] >= 1
    summary = _run(capsys, "--db", str(analyst), "summarize", "--provider", "offline")
    assert summary["clusters"] and all(not c["status"].startswith("error") for c in summary["clusters"])
    first = summary["clusters"][0]["cluster_id"]
    label = _run(capsys, "--db", str(analyst), "label", str(first), "--verdict", "malicious", "--family", "scanner")
    assert label["cluster_id"] == first

    con = duckdb.connect(str(analyst), read_only=True)
    try:
        kinds = dict(con.execute("SELECT table_name, table_type FROM information_schema.tables").fetchall())
        assert kinds["requests"] == "VIEW" and kinds["session_features"] == "VIEW"
        assert kinds["session_clusters"] == "BASE TABLE"   # the analysts' writes are ordinary tables
        assert con.execute("SELECT count(*) FROM requests WHERE session_id IS NULL").fetchall()[0][0] == 0
    finally:
        con.close()

    for command in (["ingest", str(shared_datasets / "access_logs" / LOGS[0])], ["sessionize"],
                    ["purge", "--older-than-days", "1"]):
        assert main(["--db", str(analyst), *command]) == 3
        assert "reads the Spark output" in capsys.readouterr().err
