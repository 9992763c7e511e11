"""End to end through the CLI: the shared access logs -> `waflens spark features` -> `spark sessionize` -> `spark
score` -> `spark cluster` (the ``spark_pipeline`` fixture runs those steps through ``waflens --json``) -> `spark
attach` -> `waflens cluster` and `summarize` (the ``spark_attached`` fixture, shared with the workbench tests) -> `label`
on the attached database, unchanged; traffic writes refused."""

from __future__ import annotations

import json
import shutil

import duckdb

from waflens.app.cli import main


def _run(capsys, *args: str) -> dict:
    code = main(["--json", *args])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out.strip().splitlines()[-1])


def test_spark_output_through_the_analyst_loop(spark_pipeline, spark_attached, tmp_path, capsys):
    steps = spark_pipeline.steps
    files = steps["features"]["files"]
    assert [f["file"] for f in files] == list(map(str, spark_pipeline.files))
    assert all(f["status"] == "ingested" and f["parsed"] + f["quarantined"] == f["records"] for f in files)
    parsed = sum(f["parsed"] for f in files)
    assert steps["sessionize"]["requests"] == parsed and steps["sessionize"]["sessions"] > 50
    assert steps["score_request"]["scored"] == parsed
    assert steps["score_session"]["scored"] == steps["sessionize"]["sessions"]
    clusters = steps["cluster"]
    assert clusters["selected"] > 0 and clusters["fitted"] + clusters["placed"] == clusters["selected"]

    attached = spark_attached.steps["attach"]
    assert attached["files"] == len(files) and attached["requests"] == parsed
    assert attached["sessions"] == steps["sessionize"]["sessions"]
    run = spark_attached.steps["cluster"]
    assert run["n_sessions"] == steps["sessionize"]["sessions"] and run["n_clusters"] >= 1
    summary = spark_attached.steps["summarize"]
    assert summary["clusters"] and all(not c["status"].startswith("error") for c in summary["clusters"])
    analyst = tmp_path / "analyst.duckdb"
    shutil.copyfile(spark_attached.db, analyst)
    first = summary["clusters"][0]["cluster_id"]
    label = _run(capsys, "--db", str(analyst), "label", str(first), "--verdict", "malicious", "--family", "scanner")
    assert label["cluster_id"] == first

    con = duckdb.connect(str(analyst), read_only=True)
    try:
        kinds = dict(con.execute("SELECT table_name, table_type FROM information_schema.tables").fetchall())
        assert kinds["requests"] == "VIEW" and kinds["session_features"] == "VIEW" and kinds["quarantine"] == "VIEW"
        assert kinds["session_clusters"] == "BASE TABLE"   # the analysts' writes are ordinary tables
        assert con.execute("SELECT count(*) FROM requests WHERE session_id IS NULL").fetchall()[0][0] == 0
        # the sources table is the Spark ingest's own account: records = parsed + quarantined, as DuckDB's
        assert con.execute("SELECT sum(records), sum(parsed), sum(quarantined) FROM sources").fetchall()[0] == \
            (sum(f["records"] for f in files), parsed, sum(f["quarantined"] for f in files))
        assert con.execute("SELECT count(*) FROM quarantine").fetchall()[0][0] == sum(f["quarantined"] for f in files)
    finally:
        con.close()

    for command in (["ingest", str(spark_pipeline.files[0])], ["sessionize"], ["purge", "--older-than-days", "1"],
                    ["sources", "forget", "1", "--yes"], ["retrain", "--source", str(spark_pipeline.files[0])]):
        assert main(["--db", str(analyst), *command]) == 3
        assert "reads the Spark output" in capsys.readouterr().err
