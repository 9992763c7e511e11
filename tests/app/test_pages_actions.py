"""Long work started from the workbench runs as a `waflens` subprocess with its progress shown:
clustering, summarizing, retraining and purging, each checked in the database or the registry."""

from __future__ import annotations


from waflens.data.db import connect
from waflens.data.settings import set_setting
from waflens.scoring.registry import PRODUCTION, Registry
from tests.app.conftest import open_page, scalar


def test_cluster_button_runs_a_new_cluster_run_with_the_settings_size(workbench):
    con = connect(workbench)
    set_setting(con, "min_cluster_size", 12, "ana")
    con.close()
    app = open_page("emerging")
    app.button(key="run_cluster").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert scalar(workbench, "SELECT count(*) FROM cluster_runs") == 2
    assert '"min_cluster_size": 12' in scalar(workbench, "SELECT params FROM cluster_runs WHERE cluster_run_id = 2")
    assert app.selectbox(key="emerging_run").options[0].startswith("run 2")    # the page shows it at once


def test_summarize_button_proposes_labels(workbench):
    con = connect(workbench)
    con.execute("DELETE FROM label_events")
    con.execute("DELETE FROM cluster_summaries")
    con.close()
    app = open_page("emerging")
    app.button(key="run_summarize").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    clusters = scalar(workbench, "SELECT count(*) FROM cluster_profiles")
    proposed = scalar(workbench, "SELECT count(DISTINCT cluster_id) FROM label_events WHERE source = 'suggested'")
    assert proposed == clusters


def test_retrain_button_streams_progress_and_promotes(workbench):
    app = open_page("models")
    app.button(key="models_retrain").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert any("retrain: gates" in c.value for c in app.code)              # its stderr progress lines
    registry = Registry(workbench.parent / "models")
    assert len(registry.versions()) == 3
    assert any("Retrain finished" in i.value for i in app.info)
    assert {m.label: m.value for m in app.metric}["Versions"] == "3"         # the page shows the new version
    assert registry.alias(PRODUCTION) in ("v0001", "v0003")                  # promoted, or a gate kept v0001


def test_purge_needs_confirmation_and_applies_the_retention(workbench):
    con = connect(workbench)
    set_setting(con, "retention_days", 1, "ana")   # the traffic is from 2026-11: older than a day
    con.close()
    before = scalar(workbench, "SELECT count(*) FROM requests")
    app = open_page("settings")
    app.button(key="settings_purge").click().run()
    assert scalar(workbench, "SELECT count(*) FROM requests") == before
    app.button(key="settings_purge_yes").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert scalar(workbench, "SELECT count(*) FROM requests") < before
