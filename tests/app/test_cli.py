"""The CLI as cron and scripts use it: JSON summaries, exit codes, global options."""

import contextlib
import csv
import json
import subprocess
import sys
from io import StringIO

from waflens.app.cli import main
from waflens.data.db import connect
from tests.data.helpers import at, combined_line, write_log


def run(*args: str, env_db=None, monkeypatch=None) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_json_ingest_summary_contract(tmp_path, monkeypatch):
    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", "cli-test-key-0123456789")
    log = write_log(tmp_path / "a.log", [combined_line("10.0.0.1", at(i), "GET / HTTP/1.1") for i in range(3)] + ["junk"])
    code, out, _ = run("--db", str(tmp_path / "c.duckdb"), "--json", "ingest", str(log))
    assert code == 0
    summary = json.loads(out)
    assert summary["files"] == [{**summary["files"][0], "path": str(log), "format": "combined",
                                 "records": 4, "parsed": 3, "quarantined": 1}]
    assert summary["sessions"] == 1


def test_db_from_environment_and_status(tmp_path, monkeypatch):
    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", "cli-test-key-0123456789")
    db = tmp_path / "env.duckdb"
    monkeypatch.setenv("WAFLENS_DB", str(db))
    log = write_log(tmp_path / "a.log", [combined_line("10.0.0.1", at(0), "GET / HTTP/1.1")])
    assert run("ingest", str(log))[0] == 0
    assert db.exists()
    code, out, _ = run("--json", "status")
    assert code == 0 and json.loads(out)["requests"] == 1


def test_usage_errors_and_help(tmp_path):
    code, _, err = run("--db", str(tmp_path / "x.duckdb"), "ingest", "--format", "nope", "x.log")
    assert code == 2 and "nope" in err
    code, out, _ = run("--help")
    assert code == 0 and "Exit codes" in out and "130" in out


def test_one_line_error_for_a_busy_database(tmp_path, monkeypatch):
    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", "cli-test-key-0123456789")
    monkeypatch.setenv("WAFLENS_BUSY_WAIT", "1.5")  # give up sooner than the default 20 s
    db = tmp_path / "busy.duckdb"
    connect(db).close()
    holder = subprocess.Popen([sys.executable, "-c",
                               f"import duckdb,time; c=duckdb.connect({str(db)!r}); print('ok', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ok"
        log = write_log(tmp_path / "a.log", [combined_line("10.0.0.1", at(0), "GET / HTTP/1.1")])
        result = subprocess.run([sys.executable, "-m", "waflens.app.cli", "--db", str(db), "ingest", str(log)],
                                capture_output=True, text=True, timeout=120)
    finally:
        holder.kill()
    assert result.returncode == 4
    assert result.stderr.strip().count("\n") == 0 and "busy" in result.stderr


def test_generate_writes_log_and_truth(tmp_path):
    out = tmp_path / "gen.log"
    code, stdout, _ = run("--json", "generate", "--out", str(out), "--requests", "3000", "--seed", "5")
    assert code == 0
    summary = json.loads(stdout)
    lines = out.read_text().splitlines()
    assert len(lines) == summary["requests"] == 3000
    with open(f"{out}.truth.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["record"]) for r in rows] == list(range(1, 3001))
    assert {r["campaign"] for r in rows} > {"benign"}


def test_demo_pipeline_without_app(tmp_path, monkeypatch):
    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", "cli-test-key-0123456789")
    db = tmp_path / "demo.duckdb"
    code, _, err = run("--db", str(db), "demo", "--dir", str(tmp_path / "demo"), "--requests", "4000", "--no-app")
    assert code == 0, err
    con = connect(db, read_only=True)
    counts = con.execute("""SELECT (SELECT count(*) FROM requests), (SELECT count(*) FROM sessions),
                                   (SELECT count(*) FROM request_features), (SELECT count(*) FROM session_features)""").fetchall()[0]
    assert counts[0] == 4000 and counts[2] == 4000
    assert counts[1] > 10 and counts[3] == counts[1]
    from waflens.runtime.scorer import Scorer, SessionScorer
    scorer = Scorer.load(tmp_path / "models" / "production" / "request")    # the registry beside the database
    assert scorer.score_request("GET", "/", {"User-Agent": "Mozilla/5.0"}).score_class != "error"
    SessionScorer.load(tmp_path / "models" / "production" / "session")
    con = connect(db, read_only=True)
    assert con.execute("SELECT count(*) FROM cluster_runs").fetchall()[0][0] == 1
    clusters = con.execute("SELECT count(*) FROM cluster_profiles").fetchall()[0][0]
    assert con.execute("SELECT count(*) FROM current_labels WHERE source = 'suggested'").fetchall()[0][0] == clusters > 0


def test_score_takes_a_registry_version_and_its_level(workbench_template, tmp_path, monkeypatch):
    """`waflens score --model models/production` scores with production/request (or /session with --level)
    instead of failing on a missing manifest.json; a folder with no model says which path to give."""
    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", "cli-test-key-0123456789")
    production = workbench_template / "models" / "production"
    log = write_log(tmp_path / "a.log", [combined_line("10.0.0.1", at(i), f"GET /item/{i}?q=1 HTTP/1.1")
                                         for i in range(4)])
    db = str(tmp_path / "unused.duckdb")
    for level, rows in (("request", 4), ("session", 1)):
        out = tmp_path / f"{level}.csv"
        code, stdout, err = run("--db", db, "--json", "score", "--model", str(production), "--level", level,
                                "--output", str(out), str(log))
        assert code == 0, err
        assert json.loads(stdout)["scored"] == rows
        with open(out) as handle:
            assert len(list(csv.DictReader(handle))) == rows
    code, _, err = run("--db", db, "score", "--model", str(tmp_path), "--output", str(tmp_path / "x.csv"), str(log))
    assert code == 3 and err.count("\n") == 1
    assert "--level" in err and "models/production" in err
