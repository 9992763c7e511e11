"""``waflens labels import``: per-session analyst labels from a '<session cookie> <label>' file."""

from __future__ import annotations

import contextlib
import json
from io import StringIO

import pytest

from waflens.app.cli import main
from waflens.data.db import connect
from waflens.labeling.label_import import label_decision
from waflens.scoring.feedback import analyst_classes, label_snapshot

LOG_FORMAT = '%h %l %t "%r" %>s %b "%{Referer}i" %{PHPSESSID}C "%{User-Agent}i"'


def run(*args: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture()
def db(tmp_path, monkeypatch):
    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", "label-import-key-0123456789")
    lines = [f'- - [01/Nov/2019:10:{m:02d}:{s:02d} +0000] "GET /page{s % 3}.php HTTP/1.1" 200 100 "-" {cookie} '
             f'"Mozilla/5.0 (X11; Linux x86_64) Firefox/70.0"'
             for m, cookie in enumerate(("aaa111", "bbb222", "ccc333")) for s in range(0, 50, 10)]
    log = tmp_path / "access.log"
    log.write_text("\n".join(lines) + "\n")
    path = tmp_path / "w.duckdb"
    code, _, err = run("--db", str(path), "ingest", "--log-format", LOG_FORMAT, "--session-key", "cookie",
                       "--session-cookie", "PHPSESSID", str(log))
    assert code == 0, err
    return path


def test_import_labels_the_sessions_of_each_cookie(db, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("aaa111 human\nbbb222 moderate_bot\n# a comment\nzzz999 human\n")
    code, out, err = run("--db", str(db), "--json", "labels", "import", str(labels), "--analyst", "ann")
    assert code == 0, err
    assert json.loads(out) == {"ids": 3, "sessions": 2, "not_found": 1}
    con = connect(db)
    classes = analyst_classes(con)
    by_cookie = dict(con.execute("SELECT DISTINCT session_id, session_cookie FROM requests").fetchall())
    assert sorted(classes.values()) == ["benign", "scraping"] and set(classes) <= set(by_cookie)
    assert label_snapshot(con)["analyst_events"] == 2       # a retrain sees new labels
    # the raw cookie values never reach the database
    assert not con.execute("SELECT count(*) FROM requests WHERE session_cookie IN ('aaa111', 'bbb222')").fetchall()[0][0]
    con.close()
    # a later import wins for a session
    labels.write_text("aaa111 bot\n")
    assert run("--db", str(db), "labels", "import", str(labels))[0] == 0
    con = connect(db)
    assert sorted(analyst_classes(con).values()) == ["scraping", "scraping"]


@pytest.mark.parametrize("text, message", [
    ("aaa111 martian\n", "unknown label 'martian'"),
    ("aaa111 human extra\n", "line 1: expected '<session id> <label>'"),
    ("\n# nothing\n", "holds no labels"),
])
def test_a_bad_label_file_is_an_input_error_and_writes_nothing(db, tmp_path, text, message):
    labels = tmp_path / "labels.txt"
    labels.write_text(text)
    code, _, err = run("--db", str(db), "labels", "import", str(labels))
    assert code == 3 and message in err and "internal error" not in err
    con = connect(db)
    assert analyst_classes(con) == {}


def test_label_names():
    assert label_decision("Human") == ("benign", "benign")
    assert label_decision("advanced_bot") == ("scraping", "suspicious")
    assert label_decision("sqli") == ("sqli", "malicious")
