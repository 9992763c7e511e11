"""Analyst decisions last across cluster runs and keep reaching training; the feedback_coverage gate (issue D3).

One real database and registry, driven through the CLI as a user would: ingest, cluster and summarize a
window; an analyst confirms clusters and rejects one proposal; a new log arrives and `waflens retrain`
makes cluster run 2 and the first model. Then a rejection loses labelled sessions, and the gate speaks.
"""

import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from waflens.data.synthetic import generate_traffic
from waflens.data.synthetic_campaigns import SPECS
from waflens.scoring.registry import Registry
from tests.app.conftest import WORKBENCH, page
from tests.data.cli_process import json_summary, waflens_here
from tests.data.helpers import campaign_of_sessions

pytestmark = pytest.mark.slow     # three CLI retrains (about a minute in all); CI runs them

# these tests are about labels: the alert-rate and regression gates are opened wide so only ours can fail
RETRAIN = ("--trees", "20", "--max-alert-rate", "1", "--tolerance", "0.5")


def cli(*args, as_json: bool = True):
    if not as_json:
        return waflens_here(*args)
    code, out, err = waflens_here("--json", *args)
    return code, json_summary(out), err


def rows(db: Path, sql: str, params: dict | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or {}).fetchall()
    finally:
        con.close()


def members(db: Path, run: int, cluster: int) -> set[int]:
    """Member sessions of a cluster (membership probability >= 0.5), straight from the clustering table."""
    return {s for (s,) in rows(db, "SELECT session_id FROM session_clusters WHERE cluster_run_id = $r AND "
                                   "cluster_id = $c AND probability >= 0.5", {"r": run, "c": cluster})}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("retrain-labels")
    first, later = tmp / "first.log", tmp / "later.log"
    generate_traffic(first, 8000, seed=7)
    generate_traffic(later, 1000, seed=8, start=datetime(2026, 11, 4, tzinfo=timezone.utc), days=0.5,
                     attack_share=0.05)
    db, models = tmp / "w.duckdb", tmp / "models"
    for command in (["ingest", str(first)], ["cluster", "--min-cluster-size", "10"], ["summarize"]):
        code, _, err = cli("--db", str(db), *command)
        assert code == 0, err
    # the analyst confirms the three largest clusters with their true family and rejects the next proposal
    con = duckdb.connect(str(db))
    try:
        campaign = campaign_of_sessions(con, first)
    finally:
        con.close()
    clusters = rows(db, "SELECT cluster_id, list(session_id) FROM session_clusters WHERE cluster_run_id = 1 AND "
                        "cluster_id >= 0 GROUP BY 1 ORDER BY count(*) DESC, 1")
    confirmed = {}
    for cluster_id, sessions in clusters[:3]:
        name = Counter(campaign[s] for s in sessions).most_common(1)[0][0]
        family, verdict = ("benign", "benign") if name == "benign" else (SPECS[name].family, "malicious")
        code, _, err = cli("--db", str(db), "label", str(cluster_id), "--verdict", verdict, "--family", family,
                           "--analyst", "ana", "--run", "1")
        assert code == 0, err
        confirmed[cluster_id] = family
    rejected_cluster = next(c for c, _ in clusters[3:] if rows(
        db, "SELECT family FROM current_labels WHERE cluster_run_id = 1 AND cluster_id = $c",
        {"c": c})[0][0] not in ("benign", "other"))
    family, verdict = rows(db, "SELECT family, verdict FROM current_labels WHERE cluster_run_id = 1 AND "
                               "cluster_id = $c", {"c": rejected_cluster})[0]
    code, _, err = cli("--db", str(db), "label", str(rejected_cluster), "--verdict", verdict, "--family", family,
                       "--reject", "--note", "not what it looks like", "--analyst", "bo", "--run", "1")
    assert code == 0, err
    code, report, err = cli("--db", str(db), "retrain", "--source", str(later), "--models", str(models), *RETRAIN)
    assert code == 0, (err, report)
    return {"db": db, "models": models, "first": first, "later": later, "confirmed": confirmed,
            "rejected": (rejected_cluster, family), "report": report}


def test_confirmed_labels_reach_training_after_a_new_cluster_run(site):
    db, report = site["db"], site["report"]
    assert report["cluster_run"]["id"] == 2                     # the new log made a second cluster run
    version = Registry(site["models"]).get(report["candidate_version"])
    classes = version.metrics["feedback_classes"]
    assert classes, "the model learnt nothing from the analysts' labels"
    split = datetime.fromisoformat(report["holdout_from"])
    ended = dict(rows(db, "SELECT session_id, end_ts FROM sessions"))
    training = Counter(family for cluster_id, family in site["confirmed"].items()
                       for s in members(db, 1, cluster_id) if ended[s] < split)
    learnt = {family: n for family, n in training.items() if n >= 5}   # smaller classes are left out
    assert learnt and set(learnt) <= set(classes)
    assert version.metrics["analyst_labelled_sessions"] == sum(learnt.values())


def test_labels_sessions_lists_every_labelled_session_of_any_run(site):
    db = site["db"]
    code, listed, err = cli("--db", str(db), "labels", "sessions", "--limit", "100000")
    assert code == 0, err
    expected = {s: family for cluster_id, family in site["confirmed"].items() for s in members(db, 1, cluster_id)}
    assert {s["session_id"]: s["family"] for s in listed["sessions"]} == expected and listed["total"] == len(expected)
    assert {(s["source"], s["analyst"], s["cluster_run_id"]) for s in listed["sessions"]} == {("confirmed", "ana", 1)}


def test_a_rejected_label_is_not_proposed_again_for_the_successor(site):
    db = site["db"]
    cluster, family = site["rejected"]
    rejected_sessions = members(db, 1, cluster)
    placed = Counter(c for s, c in rows(db, "SELECT session_id, cluster_id FROM session_clusters WHERE "
                                            "cluster_run_id = 2") if s in rejected_sessions and c >= 0)
    assert placed, "the rejected cluster's sessions form a cluster in run 2"
    successor = placed.most_common(1)[0][0]
    proposed = rows(db, "SELECT family FROM label_events WHERE cluster_run_id = 2 AND cluster_id = $c AND "
                        "source = 'suggested'", {"c": successor})
    assert (family,) not in proposed
    summary = json.loads(rows(db, "SELECT summary FROM cluster_summaries WHERE cluster_run_id = 2 AND cluster_id = $c "
                                  "ORDER BY created_at DESC LIMIT 1", {"c": successor})[0][0])
    assert summary["family"] != family and f"Not {family}: bo rejected it" in summary["summary"]
    # its history shows the rejection made on run 1, and the rejected sessions carry no label
    code, history, err = cli("--db", str(db), "labels", "history", str(successor))
    assert code == 0, err
    made_before = [e for e in history["events"] if not e["own"]]
    assert [(e["cluster_run_id"], e["cluster_id"], e["source"], e["family"], e["analyst"]) for e in made_before] \
        == [(1, cluster, "rejected", family, "bo")]
    assert made_before[0]["sessions_reached"] == len(rejected_sessions & members(db, 2, successor)) > 0
    code, listed, _ = cli("--db", str(db), "labels", "sessions", "--limit", "100000")
    assert not rejected_sessions & {s["session_id"] for s in listed["sessions"]}
    assert cli("--db", str(db), "labels", "history", "999")[0] == 3      # no such cluster: an input error


def test_feedback_coverage_gate_fails_on_lost_labels_unless_allowed(site, monkeypatch):
    db, models = site["db"], site["models"]
    registry = Registry(models)
    production = registry.alias("production")
    before = registry.get(production).metrics["analyst_labelled_sessions"]
    assert before > 0
    # the analyst rejects the run-2 cluster that carries most confirmed sessions: they stop being labelled
    confirmed = {s for c in site["confirmed"] for s in members(db, 1, c)}
    cluster, _ = max(((c, len(members(db, 2, c) & confirmed)) for (c,) in rows(
        db, "SELECT cluster_id FROM cluster_profiles WHERE cluster_run_id = 2")), key=lambda t: t[1])
    family, verdict = rows(db, "SELECT family, verdict FROM cluster_labels WHERE cluster_run_id = 2 AND "
                               "cluster_id = $c", {"c": cluster})[0]
    assert cli("--db", str(db), "label", str(cluster), "--verdict", verdict, "--family", family, "--reject",
               "--analyst", "bo")[0] == 0

    code, text, _ = cli("--db", str(db), "retrain", "--force", "--models", str(models), *RETRAIN, as_json=False)
    assert code == 11 and registry.alias("production") == production
    line = next(line for line in text.splitlines() if "feedback_coverage" in line and line.strip().startswith("["))
    assert line.strip().startswith("[FAIL]") and "--allow-label-loss" in line and f"from {before}" in line
    report = json.loads(Path(text.strip().splitlines()[-1].removeprefix("report: ")).read_text())
    failed = [g for g in report["gates"] if g["passed"] is False]
    assert [g["name"] for g in failed] == ["feedback_coverage"] and failed[0]["limit"] == before
    assert failed[0]["value"] == report["metrics"]["analyst_labelled_sessions"] < before
    refused = report["candidate_version"]

    code, report, err = cli("--db", str(db), "retrain", "--force", "--allow-label-loss", "--models", str(models),
                            *RETRAIN)
    assert code == 0, (err, report.get("message"))
    coverage = next(g for g in report["gates"] if g["name"] == "feedback_coverage")
    assert coverage["passed"] is True and "allowed by --allow-label-loss" in coverage["warning"]
    assert report["warnings"] == [coverage["warning"]] and "warning:" in report["message"]
    allowed = report["production_version"]
    assert registry.get(allowed).metrics["analyst_labelled_sessions"] < before

    # the Models page says why the refused candidate was kept out, and that the other passed on leave
    monkeypatch.setenv("WAFLENS_DB", str(db))
    monkeypatch.setenv("WAFLENS_MODELS", str(models))
    app = AppTest.from_file(WORKBENCH, default_timeout=60).run()
    app.switch_page(page("models")).run()
    app.selectbox(key="models_version").set_value(refused).run()
    assert not app.exception, [e.value for e in app.exception]
    assert any("feedback\\_coverage failed" in e.value and "allow\\-label\\-loss" in e.value for e in app.error)
    app.selectbox(key="models_version").set_value(allowed).run()
    assert any("feedback\\_coverage" in w.value and "fewer analyst" in w.value for w in app.warning)
