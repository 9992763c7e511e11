"""The Models page through AppTest on a real registry: versions, details, promotion and rollback with a
confirmation, recorded with the analyst's name."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from waflens.scoring.registry import PRODUCTION, Registry
from tests.app.conftest import WORKBENCH, page


def open_models() -> AppTest:
    app = AppTest.from_file(WORKBENCH, default_timeout=60).run()
    app.switch_page(page("models")).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def registry(db) -> Registry:
    return Registry(db.parent / "models")


def test_models_page_lists_versions_and_shows_their_details(workbench):
    app = open_models()
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Production"] == "v0001" and metrics["Versions"] == "2"
    versions = app.dataframe[0].value
    assert list(versions.version) == ["v0002", "v0001"]
    assert versions.set_index("version").aliases["v0001"] == "production"
    assert versions.set_index("version").gates["v0002"] == "passed (2 checks)"
    assert app.selectbox(key="models_version").value == "v0001"     # production first
    app.selectbox(key="models_version").set_value("v0002").run()
    assert not app.exception
    shadow = [d.value for d in app.dataframe if "alert rate candidate" in d.value.columns]   # a table, not JSON
    assert len(shadow) == 1 and shadow[0]["alert rate candidate"].iloc[0] == "0.012"
    assert not app.json
    assert any("Model card v2" in m.value for m in app.markdown)
    assert any("<b>test</b>" in c.value for c in app.code)                       # the card as plain text too


def test_promotion_needs_confirmation_and_switches_production(workbench):
    app = open_models()
    app.selectbox(key="models_version").set_value("v0002").run()
    app.button(key="models_promote").click().run()
    assert registry(workbench).alias(PRODUCTION) == "v0001"          # not before the confirmation
    assert any("Promote v0002?" in w.value for w in app.warning)
    app.text_input(key="models_reason").input("better on last week's labels")
    app.button(key="models_yes").click().run()
    assert not app.exception
    assert registry(workbench).alias(PRODUCTION) == "v0002"
    last = registry(workbench).history(PRODUCTION)[-1]
    assert (last["actor"], last["reason"], last["action"]) == ("test-analyst", "better on last week's labels",
                                                               "promote")
    assert "v0001 → v0002" in app.success[0].value


def test_cancel_leaves_production_alone(workbench):
    app = open_models()
    app.selectbox(key="models_version").set_value("v0002").run()
    app.button(key="models_promote").click().run()
    app.button(key="models_no").click().run()
    assert registry(workbench).alias(PRODUCTION) == "v0001"
    assert not any("Promote v0002?" in w.value for w in app.warning)


def test_rollback_after_a_promotion(workbench):
    registry(workbench).promote("v0002", actor="cron", reason="gates passed")
    app = open_models()
    rollback = app.button(key="models_rollback")
    assert rollback.label == "Roll back to v0001" and not rollback.disabled
    rollback.click().run()
    app.button(key="models_yes").click().run()
    assert registry(workbench).alias(PRODUCTION) == "v0001"
    assert registry(workbench).history(PRODUCTION)[-1]["action"] == "rollback"
    assert app.button(key="models_rollback").disabled                 # nothing further back


def test_promotion_refused_when_production_changed_meanwhile(workbench):
    app = open_models()
    app.selectbox(key="models_version").set_value("v0002").run()
    app.button(key="models_promote").click().run()
    registry(workbench).promote("v0002", actor="cron")                # a cron retrain got there first
    app.button(key="models_yes").click().run()
    assert "changed to v0002 meanwhile" in app.error[0].value.replace("\\", "")


def test_empty_registry(workbench, monkeypatch):
    monkeypatch.setenv("WAFLENS_MODELS", str(workbench.parent / "empty"))
    app = open_models()
    assert any("No model versions yet" in i.value for i in app.info)


def test_version_selector_follows_a_new_production(workbench):
    """After a retrain (here or by cron) promotes a new version, the selector shows it, not the old one."""
    app = open_models()
    assert app.selectbox(key="models_version").value == "v0001"
    models = registry(workbench)
    info = models.register(models.path("v0002"), metrics={"alert_rate": 0.05}, training={}, parent="v0001",
                           move=False)                                      # as a retrain registers one
    models.promote(info.version, actor="cron", reason="gates passed")
    app.run()
    assert not app.exception
    assert app.selectbox(key="models_version").value == info.version == "v0003"
    assert {m.label: m.value for m in app.metric}["Production"] == "v0003"
    app.selectbox(key="models_version").set_value("v0001").run()      # the analyst's own choice then stays
    app.run()
    assert app.selectbox(key="models_version").value == "v0001"


def test_numbers_are_formatted_and_the_alert_threshold_is_the_manifests(workbench):
    import json

    app = open_models()
    table = app.dataframe[0].value
    assert "alert_rate" in table.columns
    values = app.dataframe[1].value.set_index("metric").value      # the Metrics tab of production (v0001)
    assert all(len(v) <= 12 for v in values), list(values)         # no 0.050670445553533415
    manifest = json.loads((workbench.parent / "models" / "versions" / "v0001" / "session" / "manifest.json")
                          .read_text())
    shown = [v for k, v in values.items() if k.startswith("alert threshold")]
    assert shown == [f"{manifest['thresholds']['likely_attack']:.4g}"]


def test_labels_on_the_held_out_window_are_announced(workbench):
    """Labels on the latest quarter's sessions judge the candidate but are not trained on until newer traffic
    arrives: the page says so, with counts computed here independently of the page's code."""
    import duckdb

    from waflens.labeling.labels import latest_run, record_label

    app = open_models()
    assert not [i for i in app.info if "held out" in i.value or "latest quarter" in i.value]   # no labels yet
    with duckdb.connect(str(workbench)) as con:
        run = latest_run(con)
        for (cluster,) in con.execute("SELECT DISTINCT cluster_id FROM session_clusters WHERE cluster_run_id = ? "
                                      "AND cluster_id >= 0", [run]).fetchall():
            record_label(con, run, cluster, family="sqli", verdict="malicious", analyst="t")
        split = con.execute("SELECT quantile_disc(start_ts, 0.75) FROM sessions WHERE start_ts IS NOT NULL").fetchone()[0]
        labelled, held = con.execute(
            """SELECT count(*), count(*) FILTER (WHERE NOT s.end_ts < ?) FROM sessions s
               WHERE s.session_id IN (SELECT session_id FROM session_clusters
                                      WHERE cluster_run_id = ? AND cluster_id >= 0 AND probability >= 0.5)""",
            [split, run]).fetchone()
    assert held > 0, "the fixture's clusters should reach into the latest quarter"
    app = open_models()
    notes = [i.value for i in app.info if "latest quarter" in i.value]
    assert len(notes) == 1, [i.value for i in app.info]
    assert notes[0].startswith(f"{held} labelled session") and f"of {labelled} " in notes[0], notes[0]
