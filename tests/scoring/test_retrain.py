"""`waflens retrain` end to end on a real database and registry: promote, nothing new, labels, gates, lock."""

import fcntl
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from waflens.data.db import connect
from waflens.data.feature_spec import feature_names
from waflens.data.synthetic import generate_traffic
from waflens.data.synthetic_campaigns import SPECS
from waflens.labeling.labels import latest_run, record_label
from waflens.scoring.gates import GateConfig, labelled_holdout_gate, parity_gate, score_sanity_gate
from waflens.scoring.registry import Registry
from waflens.runtime.scorer import Scorer
from tests.data.cli_process import json_summary, waflens_here
from tests.data.helpers import campaign_of_sessions

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args):
    code, out, err = waflens_here(*args)
    return code, json_summary(out), err


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("retrain")
    log = tmp / "traffic.log"
    generate_traffic(log, 12_000, seed=7)
    return tmp, log, tmp / "w.duckdb", tmp / "models"


def retrain(site, *extra):
    tmp, log, db, models = site
    return run_cli("--db", str(db), "--json", "retrain", "--source", str(log), "--models", str(models),
                   "--trees", "50", *extra)


def confirm_clusters(db: Path, log: Path, how_many: int) -> int:
    """An analyst confirms the largest clusters of the latest run with their true family."""
    con = connect(db)
    try:
        campaign = campaign_of_sessions(con, log)
        run = latest_run(con)
        clusters = con.execute("SELECT cluster_id, list(session_id) FROM session_clusters WHERE cluster_run_id = $r "
                               "AND cluster_id >= 0 GROUP BY 1 ORDER BY count(*) DESC", {"r": run}).fetchall()
        for cluster_id, sessions in clusters[:how_many]:
            name = Counter(campaign[s] for s in sessions).most_common(1)[0][0]
            family, verdict = ("benign", "benign") if name == "benign" else (SPECS[name].family, "malicious")
            record_label(con, run, cluster_id, family=family, verdict=verdict, analyst="ana")
        return min(how_many, len(clusters))
    finally:
        con.close()


def test_first_run_promotes_and_a_rerun_does_nothing(site, tmp_path):
    tmp, log, db, models = site
    textfile = tmp_path / "waflens.prom"
    code, report, err = retrain(site, "--prometheus", str(textfile))
    assert code == 0, err
    assert report["status"] == "promoted" and report["production_version"] == "v0001"
    assert [g["name"] for g in report["gates"] if g["passed"] is False] == []
    assert {"ingest", "cluster", "summarize", "train", "gates"} <= set(report["stages"])
    assert Path(report["report_path"]).is_file()
    registry = Registry(models)
    assert registry.alias("production") == "v0001" and (registry.get("v0001").path / "MODEL_CARD.md").is_file()
    Scorer.load(models / "production" / "request")                  # what a worker loads
    metrics = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(textfile.read_text()) for s in family.samples}
    assert metrics[("waflens_retrain_last_run_exit_code", ())] == 0
    assert metrics[("waflens_retrain_last_run_status", (("status", "promoted"),))] == 1

    code, report, _ = retrain(site)
    assert code == 10 and report["status"] == "nothing_to_do"
    assert [v.version for v in registry.versions()] == ["v0001"]


def test_confirmed_labels_promote_a_better_model(site):
    tmp, log, db, models = site
    assert confirm_clusters(db, log, 4) >= 2
    code, report, err = retrain(site)
    assert code == 0, (err, report.get("gates"))
    assert report["production_version"] == "v0002"
    metrics = report["metrics"]
    assert metrics["labelled_holdout_sessions"] > 0
    if "production_auc" in metrics:
        assert metrics["candidate_auc"] >= metrics["production_auc"] - 0.02
    assert report["shadow"]["compared"] is True
    info = Registry(models).get("v0002")
    assert info.parent == "v0001" and info.labels["analyst_events"] >= 2
    assert info.metrics["feedback_classes"]
    card = Registry(models).card("v0002")
    assert "## Gates" in card and "## Shadow run" in card and "Feedback model" in card
    code, report, _ = retrain(site)
    assert code == 10


@pytest.mark.parametrize("option, value, gate", [("--max-alert-rate", "0.0001", "time_holdout_alert_rate"),
                                                 ("--max-p99-us", "1", "latency")])
def test_a_failed_gate_keeps_production_and_says_which(site, option, value, gate):
    tmp, log, db, models = site
    before = Registry(models).alias("production")
    code, report, _ = retrain(site, "--force", option, value)
    assert code == 11 and report["status"] == "gate_failed"
    assert gate in report["message"] and [g["name"] for g in report["gates"] if g["passed"] is False] == [gate]
    assert Registry(models).alias("production") == before
    assert Registry(models).alias("candidate") == report["candidate_version"] != before


def test_lock_contention_exits_75(site):
    tmp, log, db, models = site
    models.mkdir(exist_ok=True)
    with open(models / "retrain.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, report, _ = retrain(site, "--force")
    assert code == 75 and report["status"] == "lock_held"


def test_gate_functions_fail_on_regression_mismatch_and_degenerate_scores(site):
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(50), np.zeros(200)].astype(int)
    good = np.r_[rng.uniform(0.6, 1, 50), rng.uniform(0, 0.5, 200)]
    noisy = rng.uniform(0, 1, 250)
    config = GateConfig()
    regressed = labelled_holdout_gate(y, noisy, good, 0.55, 0.55, config)
    assert [g["passed"] for g in regressed] == [False, False]
    assert [g["passed"] for g in labelled_holdout_gate(y, good, noisy, 0.55, 0.55, config)] == [True, True]
    assert score_sanity_gate(np.full(10, 0.5))["passed"] is False
    assert score_sanity_gate(np.r_[0.1, np.nan])["passed"] is False
    tmp, log, db, models = site
    scorer = Scorer.load(models / "production" / "request")
    requests = [("GET", "/search?q=1", {"User-Agent": "x"}, b""), ("POST", "/login", {"User-Agent": "y"}, b"a=1")]
    expected = np.array([scorer.request_features(*r)[:30] for r in requests])
    assert parity_gate(scorer, requests, expected)["passed"] is True
    expected[1, 3] += 1e-6                                             # the SQL disagreeing with the runtime
    assert parity_gate(scorer, requests, expected)["passed"] is False


LABEL_WRITER = textwrap.dedent("""
    import sys, time
    from waflens.data.writes import write
    from waflens.labeling.labels import latest_run, record_label
    db, n = sys.argv[1], int(sys.argv[2])
    for i in range(n):
        write(db, lambda con: record_label(con, latest_run(con), 0, family="scanner", verdict="malicious",
                                           analyst="app", note=f"concurrent {i}"), timeout_s=300)
        time.sleep(0.05)
""")


def test_app_label_writes_and_a_retrain_in_separate_processes(site):
    tmp, log, db, models = site
    con = connect(db, read_only=True)
    before = con.execute("SELECT count(*) FROM label_events WHERE analyst = 'app'").fetchall()[0][0]
    con.close()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writer = subprocess.Popen([sys.executable, "-c", LABEL_WRITER, str(db), "40"], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    trainer = subprocess.Popen([sys.executable, "-m", "waflens.app.cli", "--db", str(db), "retrain", "--force", "--models",
                                str(models), "--trees", "50"], env=env, cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writer_out = writer.communicate(timeout=600)
    trainer_out = trainer.communicate(timeout=600)
    assert writer.returncode == 0, writer_out[1][-2000:]
    assert trainer.returncode in (0, 11), trainer_out[1][-2000:]
    con = connect(db, read_only=True)
    notes = {n for (n,) in con.execute("SELECT note FROM label_events WHERE analyst = 'app'").fetchall()}
    con.close()
    assert len(notes) - before == 40 or {f"concurrent {i}" for i in range(40)} <= notes


def test_drift_command_compares_training_and_latest_windows(site):
    tmp, log, db, models = site
    if not Registry(models).alias("production"):      # run alone: the first retrain makes production
        assert retrain(site)[0] == 0
    code, report, err = run_cli("--db", str(db), "--json", "drift", "--models", str(models))
    assert code == 0, err
    assert report["split"] == Registry(models).get("production").training["until"]
    statuses = {f["name"]: f["status"] for f in report["features"]}
    assert list(statuses) == feature_names("session") and set(statuses.values()) <= {"ok", "warn", "drift", "insufficient_data"}
    code, same, _ = run_cli("--db", str(db), "--json", "drift", "--split", "2000-01-01")
    assert code == 0 and same["status"] == "insufficient_data"       # nothing before the split
