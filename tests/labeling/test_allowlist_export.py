"""Allowlist, decisions carried to the successor cluster, and the export of labelled sessions."""

import contextlib
import csv
import json
import shutil
from datetime import datetime, timedelta, timezone
from io import StringIO
from pathlib import Path

import duckdb
import pytest

from waflens.app.cli import main
from waflens.clustering.run import ClusterOptions
from waflens.data.db import connect
from waflens.data.errors import InputError
from waflens.labeling.allowlist import add_rule, allowlisted_sessions, list_rules, revoke_rule
from waflens.labeling.export import export_labelled_sessions, neutralise_cell
from waflens.labeling.labels import record_label
from waflens.labeling.summarize import summarize_run
from waflens.pipeline.cluster import cluster_window
from tests.data.helpers import generated_db

SCRAPER_UA = "python-requests/2.32.3"   # the generated scraper campaign's agent


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The ingested and sessionized traffic, built once for the module (each test works on a copy)."""
    tmp = tmp_path_factory.mktemp("allow")
    generated_db(tmp, 12_000, seed=11).con.close()
    return tmp / "test.duckdb"


@pytest.fixture()
def db(template, tmp_path):
    shutil.copyfile(template, tmp_path / "test.duckdb")
    con = connect(tmp_path / "test.duckdb")
    yield con
    con.close()


def _run(con):
    """A cluster run as `waflens cluster` and `waflens retrain` make it: the allowlist read and handed over."""
    return cluster_window(con, ClusterOptions(min_cluster_size=8)).cluster_run_id


def _selected(con, run_id):
    return {s for (s,) in con.execute("SELECT session_id FROM session_clusters WHERE cluster_run_id = $r",
                                      {"r": run_id}).fetchall()}


def test_allowlisted_sessions_leave_the_suspicious_selection(db):
    scraper_sessions = {s for (s,) in db.execute(
        "SELECT DISTINCT session_id FROM requests WHERE user_agent = $ua", {"ua": SCRAPER_UA}).fetchall()}
    assert scraper_sessions
    before = _selected(db, _run(db))
    assert scraper_sessions & before, "the scraper is suspicious without a rule"
    rule = add_rule(db, "user_agent", r"^python-requests/", reason="partner price monitor", author="ana")
    allowed = allowlisted_sessions(db)
    assert set(allowed) == scraper_sessions and set(allowed.values()) == {rule}
    after = _selected(db, _run(db))
    assert not (scraper_sessions & after) and (before - scraper_sessions) <= after | (before - after)
    revoke_rule(db, rule, author="bo")
    assert allowlisted_sessions(db) == {} and list_rules(db) == []
    assert list_rules(db, include_inactive=True)[0].revoked_by == "bo"
    assert scraper_sessions & _selected(db, _run(db))


def test_a_session_is_allowed_only_when_all_its_requests_are(db):
    session, n = db.execute("SELECT session_id, n_requests FROM sessions WHERE n_requests >= 3 ORDER BY session_id "
                            "LIMIT 1").fetchall()[0]
    paths = [p for (p,) in db.execute("SELECT DISTINCT path_decoded FROM requests WHERE session_id = $s",
                                      {"s": session}).fetchall()]
    if len(paths) < 2:
        pytest.skip("the first long session fetches one path only")
    add_rule(db, "path", "^" + duckdb.execute("SELECT regexp_escape($p)", {"p": paths[0]}).fetchall()[0][0] + "$",
             reason="health check", author="ana")
    assert session not in allowlisted_sessions(db)
    key = db.execute("SELECT client_key FROM sessions WHERE session_id = $s", {"s": session}).fetchall()[0][0]
    add_rule(db, "client_key", key, reason="our uptime monitor", author="ana")
    assert session in allowlisted_sessions(db)


def test_bad_rules_are_refused_and_expired_rules_do_not_apply(db):
    with pytest.raises(InputError, match="RE2"):
        add_rule(db, "path", "(unclosed", reason="x")
    with pytest.raises(InputError, match="reason"):
        add_rule(db, "path", "^/health$", reason="  ")
    with pytest.raises(InputError, match="kind"):
        add_rule(db, "ip", "10.0.0.1", reason="x")
    with pytest.raises(InputError, match="past"):
        add_rule(db, "path", "^/health$", reason="x", expires_at=datetime.now(timezone.utc) - timedelta(days=1))
    rule = add_rule(db, "user_agent", "python-requests", reason="short trial",
                    expires_at=datetime.now(timezone.utc) + timedelta(days=1))
    assert allowlisted_sessions(db)
    db.execute("UPDATE allowlist SET expires_at = now()::TIMESTAMP - INTERVAL 1 MINUTE WHERE rule_id = $r", {"r": rule})
    assert allowlisted_sessions(db) == {} and list_rules(db) == []


def test_a_decision_carries_over_to_the_successor_cluster(db):
    first = _run(db)
    summarize_run(db, first)
    cluster_id, family = db.execute(
        "SELECT cluster_id, family FROM current_labels WHERE cluster_run_id = $r AND verdict = 'malicious' "
        "ORDER BY cluster_id LIMIT 1", {"r": first}).fetchall()[0]
    other = "ssti" if family != "ssti" else "xxe"   # an analyst's edit the machine would not propose
    record_label(db, first, cluster_id, family=other, verdict="malicious", source="edited", analyst="ana",
                 note="seen before")
    second = _run(db)                                # same traffic: every cluster has its predecessor
    successor = db.execute("SELECT cluster_id FROM cluster_profiles WHERE cluster_run_id = $r AND predecessor_run_id = "
                           "$p AND predecessor_id = $c", {"r": second, "p": first, "c": cluster_id}).fetchall()
    assert successor, "the re-run links the cluster to its predecessor"
    results = {r["cluster_id"]: r for r in summarize_run(db, second)}
    succ = successor[0][0]
    n = db.execute("SELECT count(*) FROM session_clusters WHERE cluster_run_id = $r AND cluster_id = $c AND "
                   "probability >= 0.5", {"r": second, "c": succ}).fetchall()[0][0]
    assert results[succ]["carried_over"] == {"run": first, "cluster": cluster_id, "sessions": n, "of": n,
                                             "reviewed": True}
    # its sessions are all decided: the cluster shows the analyst's label, no suggestion is laid over it
    assert db.execute("SELECT count(*) FROM label_events WHERE cluster_run_id = $r AND cluster_id = $c",
                      {"r": second, "c": succ}).fetchall() == [(0,)]
    assert db.execute("SELECT family, source, analyst, note, inherited, reviewed FROM cluster_labels WHERE "
                      "cluster_run_id = $r AND cluster_id = $c", {"r": second, "c": succ}).fetchall() == \
        [(other, "edited", "ana", "seen before", True, True)]
    # the analyst confirms on the new run (the latest decision wins); a rerun of summarize adds nothing
    record_label(db, second, succ, family=other, verdict="malicious", analyst="bo")
    events = db.execute("SELECT count(*) FROM label_events").fetchall()[0][0]
    summarize_run(db, second)
    assert db.execute("SELECT source, analyst, inherited FROM cluster_labels WHERE cluster_run_id = $r AND "
                      "cluster_id = $c", {"r": second, "c": succ}).fetchall() == [("confirmed", "bo", False)]
    assert {a for (a,) in db.execute("SELECT DISTINCT analyst FROM session_labels WHERE cluster_run_id = $r AND "
                                     "cluster_id = $c", {"r": second, "c": succ}).fetchall()} == {"bo"}
    assert db.execute("SELECT count(*) FROM label_events").fetchall()[0][0] == events, "rerun adds no events"


def test_export_neutralises_formulas_in_csv_and_keeps_parquet_exact(db, tmp_path):
    run = _run(db)
    cluster_id = db.execute("SELECT min(cluster_id) FROM cluster_profiles WHERE cluster_run_id = $r",
                            {"r": run}).fetchall()[0][0]
    hostile = "=HYPERLINK(\"http://evil.example\",\"click\")"
    record_label(db, run, cluster_id, family="sqli", verdict="malicious", analyst="@ana", note=hostile)
    members = {s for (s,) in db.execute("SELECT session_id FROM session_clusters WHERE cluster_run_id = $r AND "
                                        "cluster_id = $c AND probability >= 0.5", {"r": run, "c": cluster_id}).fetchall()}
    n = export_labelled_sessions(db, tmp_path / "labels.csv")
    assert n == len(members) > 0
    with open(tmp_path / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {int(r["session_id"]) for r in rows} == members
    assert all(r["note"] == "'" + hostile and r["analyst"] == "'@ana" for r in rows)
    assert all(not cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r.values())
    export_labelled_sessions(db, tmp_path / "labels.parquet")
    exact = duckdb.execute("SELECT DISTINCT note, analyst FROM read_parquet($p)",
                           {"p": str(tmp_path / "labels.parquet")}).fetchall()
    assert exact == [(hostile, "@ana")]
    with pytest.raises(InputError, match="parquet or .csv"):
        export_labelled_sessions(db, tmp_path / "labels.xlsx")
    assert neutralise_cell("-1+1") == "'-1+1" and neutralise_cell(-1) == -1 and neutralise_cell("a=b") == "a=b"


def test_cli_lists_labelled_sessions_and_manages_the_allowlist(db, tmp_path):
    run = _run(db)
    db_file = db.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()[0][0]
    record_label(db, run, 0, family="scanner", verdict="malicious", analyst="ana")
    db.close()

    def call(*args):
        out = StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["--db", db_file, "--json", *args])
        return code, (json.loads(out.getvalue()) if out.getvalue().strip() else None)

    code, listed = call("labels", "sessions", "--limit", "3")
    assert code == 0 and listed["total"] > 0 and len(listed["sessions"]) <= 3
    assert {s["family"] for s in listed["sessions"]} == {"scanner"}
    code, added = call("allowlist", "add", "--path", "^/healthz$", "--reason", "k8s probe", "--days", "7")
    assert code == 0
    assert call("allowlist", "add", "--path", "^/x$", "--user-agent", "y", "--reason", "r")[0] == 3
    code, rules = call("allowlist", "list")
    assert [r["pattern"] for r in rules["rules"]] == ["^/healthz$"]
    assert call("allowlist", "revoke", str(added["rule_id"]))[0] == 0
    assert call("allowlist", "revoke", str(added["rule_id"]))[0] == 3      # already revoked
    call("allowlist", "add", "--user-agent", "^python-requests/", "--reason", "price monitor")
    code, clustered = call("cluster", "--min-cluster-size", "8")             # `waflens cluster` heeds the allowlist
    con = connect(db_file, read_only=True)
    scraper = {s for (s,) in con.execute("SELECT DISTINCT session_id FROM requests WHERE user_agent = $ua",
                                         {"ua": SCRAPER_UA}).fetchall()}
    assert code == 0 and scraper and not (scraper & _selected(con, clustered["cluster_run_id"]))
    con.close()
    code, exported = call("labels", "export", "--out", str(tmp_path / "s.parquet"))
    assert code == 0 and exported["sessions"] == listed["total"]
    con = connect(db_file, read_only=True)
    assert con.execute("SELECT count(*) FROM allowlist WHERE revoked_at IS NOT NULL").fetchall()[0][0] == 1
    con.close()
