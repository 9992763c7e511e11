"""waflens train and waflens score, as cron and scripts call them."""

import contextlib
import csv
import json
from io import StringIO

from waflens.app.cli import main
from waflens.data.synthetic import generate_traffic


def run(*args):
    out, err = StringIO(), StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_train_then_score_files_to_csv(tmp_path, monkeypatch):
    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", "cli-scoring-key-0123456789")
    db = str(tmp_path / "s.duckdb")
    log = tmp_path / "traffic.log"
    generate_traffic(log, 3000, seed=2, attack_share=0.05)
    assert run("--db", db, "ingest", str(log))[0] == 0
    code, out, err = run("--db", db, "--json", "train", "--out", str(tmp_path / "model"), "--trees", "20")
    assert code == 0, err
    assert json.loads(out)["training"]["requests"] == 3000
    other = tmp_path / "other.log"
    other.write_text(log.read_text().splitlines()[0] + "\nnot a log line\n" + log.read_text().splitlines()[1] + "\n")
    code, out, err = run("--json", "score", "--model", str(tmp_path / "model"), "--output", str(tmp_path / "s.csv"),
                         "--format", "combined", str(other))
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["scored"], summary["unparsed"]) == (2, 1)
    with open(tmp_path / "s.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["record"] for r in rows] == ["1", "3"] and all(0 < float(r["score"]) <= 1 for r in rows)
    assert list(rows[0]) == ["file", "record", "score"]


def test_train_refuses_small_data_with_exit_code_6(tmp_path, monkeypatch):
    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", "cli-scoring-key-0123456789")
    db = str(tmp_path / "small.duckdb")
    log = tmp_path / "t.log"
    generate_traffic(log, 50, seed=1)
    assert run("--db", db, "ingest", str(log))[0] == 0
    code, _, err = run("--db", db, "train", "--out", str(tmp_path / "m"))
    assert code == 6 and "at least" in err


def test_score_refuses_a_corrupt_model(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "manifest.json").write_text("{not json")
    log = tmp_path / "a.log"
    log.write_text('1.2.3.4 - - [01/Nov/2026:00:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "x"\n')
    code, _, err = run("score", "--model", str(model), "--output", str(tmp_path / "o.csv"), str(log))
    assert code == 3 and "not valid JSON" in err


def test_score_sessions_to_csv(tmp_path, monkeypatch):
    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", "cli-scoring-key-0123456789")
    db = str(tmp_path / "s.duckdb")
    log = tmp_path / "traffic.log"
    generate_traffic(log, 4000, seed=5, attack_share=0.05)
    assert run("--db", db, "ingest", str(log))[0] == 0
    assert run("--db", db, "train", "--level", "session", "--out", str(tmp_path / "sm"), "--trees", "20")[0] == 0
    code, out, err = run("--db", db, "--json", "score", "--level", "session", "--model", str(tmp_path / "sm"),
                         "--output", str(tmp_path / "sessions.csv"), str(log))
    assert code == 0, err
    with open(tmp_path / "sessions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["file", "client", "first_record", "last_record", "requests", "score", "bot_score",
                             "reasons"]
    assert all(1 <= int(r["bot_score"]) <= 99 for r in rows)
    assert sum(int(r["requests"]) for r in rows) == 4000 and json.loads(out)["scored"] == len(rows) > 50
    assert all(len(r["client"]) == 16 and int(r["first_record"]) <= int(r["last_record"]) for r in rows)
    from waflens.data.db import connect
    stored = {k for (k,) in connect(db, read_only=True).execute("SELECT DISTINCT client_key FROM sessions").fetchall()}
    assert {r["client"] for r in rows} == stored      # the same pseudonymized keys as the database
    code, _, err = run("score", "--model", str(tmp_path / "sm"), "--output", str(tmp_path / "x.csv"), str(log))
    assert code == 3 and "session" in err              # a session model cannot score requests
