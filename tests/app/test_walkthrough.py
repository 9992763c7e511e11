"""A newcomer's walk-through in a real browser: the labels an analyst confirms last.

The issue's "done when" as one test, on a small demo database started as a newcomer does
(`waflens demo --no-app`, then `waflens app`): confirm a label in the Label queue, retrain
from the Models page, upload a new day of traffic on the Data page, retrain again from the
command line as cron would (a new cluster run over old and new sessions), and the confirmed
label is still in force and visible: the Label queue shows who confirmed it and when on
the new run's cluster, the new production version learned from its sessions (model card,
`waflens models show`), and `waflens labels sessions` lists them.

Before decisions followed sessions, the second retrain's new cluster run hid the label:
`labels sessions` was empty, the new version had no feedback model, and the queue started
over. Browser plumbing (chromium, settle, the tab that records dialogs) comes from
test_browser.py; the server here is `waflens app` itself, as a newcomer starts it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pytest

from tests.app.test_browser import (  # noqa: F401  (browser and page are fixtures used by name)
    REPO, _cli, _free_port, _require_browser, assert_no_exception, assert_stays_on_the_host, browser, click_and_settle, page,
    settle, wait_until_serving)

ANALYST = "newcomer"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo as a newcomer runs it, on little traffic: v0001 in production, cluster run 1 summarized."""
    _require_browser()
    root = tmp_path_factory.mktemp("walkthrough")
    db = root / "waflens.duckdb"
    _cli(db, "demo", "--no-app", "--requests", "3000", "--dir", str(root / "demo"), cwd=root)
    return db


@pytest.fixture(scope="module")
def server(demo):
    """`waflens app` on a free port; stopped with SIGTERM as an operator would."""
    port = _free_port()
    log = open(demo.parent / "app.log", "w")
    env = {key: value for key, value in os.environ.items() if key not in ("WAFLENS_MODELS", "WAFLENS_DB")}
    env.update(WAFLENS_ANALYST=ANALYST, PYTHONPATH=str(REPO))
    process = subprocess.Popen([sys.executable, "-m", "waflens.app.cli", "--db", str(demo), "app", "--port", str(port)],
                               cwd=demo.parent, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    wait_until_serving(base, process, lambda: os.killpg(process.pid, signal.SIGKILL), demo.parent / "app.log")
    yield base
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
    log.close()


def _rows(db: Path, sql: str, params: dict | None = None) -> list[tuple]:
    for _ in range(40):   # the workbench and its jobs close their connections at once; a moment's overlap is possible
        try:
            con = duckdb.connect(str(db), read_only=True)
            break
        except duckdb.IOException:
            time.sleep(0.25)
    try:
        return con.execute(sql, params or {}).fetchall()
    finally:
        con.close()


def _json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


@pytest.mark.timeout(900)   # ~75 CPU-seconds in all (setup included): minutes on a shared, loaded machine
def test_confirmed_labels_last_through_an_upload_and_two_retrains(server, page, demo, tmp_path):
    from waflens.data.synthetic import generate_traffic
    from waflens.scoring.registry import Registry

    cwd = demo.parent
    registry = Registry(cwd / "models")
    assert registry.alias("production") == "v0001"

    # 1. The Label queue: confirm the proposal for the first cluster it offers.
    page.goto(f"{server}/label_queue")
    settle(page, "Label queue")
    assert page.locator('[data-testid="stAppDeployButton"]').count() == 0   # `waflens app` hides Deploy
    page.locator("button", has_text="Confirm").first.click()
    page.get_by_text("confirmed as").first.wait_for(timeout=30_000)
    settle(page)
    assert_no_exception(page)
    [(run, cluster, verdict, family, at)] = _rows(
        demo, "SELECT cluster_run_id, cluster_id, verdict, family, created_at FROM label_events "
              "WHERE source = 'confirmed' AND analyst = $who", {"who": ANALYST})
    judged = {s for (s,) in _rows(demo, "SELECT session_id FROM session_clusters WHERE cluster_run_id = $r "
                                        "AND cluster_id = $c AND probability >= 0.5", {"r": run, "c": cluster})}
    assert judged
    learnt_class = "benign" if "benign" in (verdict, family) else family

    # 2. The Models page: "Retrain now" trains v0002 on the label.
    page.goto(f"{server}/models")
    settle(page, "Models")
    page.locator("button", has_text="Retrain now").click()
    page.get_by_text("Retrain finished").first.wait_for(timeout=180_000)
    settle(page)
    assert "production is now v0002" in page.inner_text("body")
    # The queue offers the latest campaigns first, whose sessions are in the held-out window: v0002 records the
    # label and the gates compare on it; training learns from those sessions once newer traffic comes.
    v2 = registry.get("v0002")
    assert v2.labels["analyst_events"] == 1 and registry.alias("production") == "v0002"

    # 3. The Data page: upload the next day's traffic.
    upload = tmp_path / "next-day.log"
    # a day busier than the demo's: its sessions alone are the latest quarter that the next retrain holds out
    generate_traffic(upload, 1500, seed=11, start=datetime(2026, 11, 4, tzinfo=timezone.utc), days=1.0)
    page.goto(f"{server}/data_sources")
    settle(page, "Data")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(upload))
    page.get_by_text("next-day.log").first.wait_for(timeout=30_000)
    page.locator("button", has_text="Ingest").click()
    page.get_by_text("1,500 records = 1,500 parsed + 0 quarantined").first.wait_for(timeout=120_000)
    settle(page)
    assert_no_exception(page)
    assert _rows(demo, "SELECT count(*) FROM sources WHERE name = 'next-day.log'") == [(1,)]

    # 4. The cron job: a new cluster run over old and new sessions, and v0003.
    retrain = _json(_cli(demo, "--json", "retrain", cwd=cwd))
    assert retrain["status"] == "promoted" and retrain["production_version"] == "v0003", retrain
    new_run = retrain["cluster_run"]["id"]
    assert new_run > run

    # 5. The label is still in force, and visible.
    listed = _json(_cli(demo, "--json", "labels", "sessions", "--limit", "100000", cwd=cwd))["sessions"]
    mine = {r["session_id"] for r in listed if r["analyst"] == ANALYST and r["source"] == "confirmed"}
    assert mine == judged
    shown = _json(_cli(demo, "--json", "models", "show", "production", cwd=cwd))
    learnt = shown["metrics"]["analyst_labelled_sessions"]
    assert shown["version"] == "v0003" and learnt_class in shown["metrics"]["feedback_classes"]
    assert 0 < learnt <= len(judged) and learnt >= v2.metrics["analyst_labelled_sessions"]

    page.goto(f"{server}/models")
    settle(page, "Models")
    assert page.locator('input[aria-label="Version"]').input_value() == "v0003 (production)"
    page.get_by_role("tab", name="Model card").click()
    card = page.locator('[data-testid="stTabPanel"]').filter(has_text="Labels used").first
    card.wait_for(timeout=10_000)
    assert f"analyst_labelled_sessions\t{learnt}" in card.inner_text()

    # the new run's cluster holding most of those sessions shows who confirmed them, and when
    [(successor,)] = _rows(demo, "SELECT cluster_id FROM session_clusters WHERE cluster_run_id = $r AND cluster_id >= 0 "
                                 "AND list_contains($judged, session_id) GROUP BY cluster_id "
                                 "ORDER BY count(*) DESC, cluster_id LIMIT 1", {"r": new_run, "judged": sorted(judged)})
    page.goto(f"{server}/label_queue")
    settle(page, "Label queue")
    assert f"Cluster run {new_run}:" in page.inner_text("body")
    click_and_settle(page, page.get_by_text("Show reviewed clusters too"))
    page.locator('input[aria-label="Cluster"]').click()
    click_and_settle(page, page.get_by_role("option", name=f"cluster {successor} —").first)
    text = page.inner_text("body")
    assert (f"confirmed {verdict} {family} by {ANALYST}, {at:%Y-%m-%d %H:%M} UTC on cluster {cluster} of run {run}"
            in text), text[:3000]
    assert_no_exception(page)
    assert_stays_on_the_host(page, server)
    assert page.dialogs == []
