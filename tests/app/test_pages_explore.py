"""Overview, Emerging patterns and Sessions through AppTest, on a small real database and registry."""

from __future__ import annotations

import json

import duckdb
from streamlit.testing.v1 import AppTest

from tests.app.conftest import XSS_AGENT, XSS_PATH, open_page


def metrics(app: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def test_overview_shows_traffic_production_model_and_emerging_clusters(workbench):
    app = open_page("overview")
    values = metrics(app)
    con = duckdb.connect(str(workbench), read_only=True)
    requests, sessions = con.execute(
        "SELECT (SELECT count(*) FROM requests), (SELECT count(*) FROM sessions)").fetchall()[0]
    emerging = con.execute("SELECT count(*) FROM cluster_profiles WHERE emerging").fetchall()[0][0]
    con.close()
    assert values["Requests"] == f"{requests:,}" and values["Sessions"] == f"{sessions:,}"
    assert values["Production model"] == "v0001"
    assert values["Alert rate"].endswith("%")
    assert values["Drift"] == "—" and any(c.value == "not computed yet" for c in app.caption)
    shown = app.dataframe[-1].value
    assert len(shown) == min(10, emerging) and {"cluster_id", "status", "label"} <= set(shown.columns)


def test_overview_reads_drift_from_the_latest_retrain_report(workbench):
    runs = workbench.parent / "models" / "runs"
    runs.mkdir()
    (runs / "20261104T000000Z.json").write_text(json.dumps(
        {"status": "promoted", "drift": {"status": "warn", "counts": {"ok": 20, "warn": 3}}}))
    values = metrics(open_page("overview"))
    assert values["Drift"] == "warn"


def test_overview_without_a_production_model_says_so(workbench, monkeypatch):
    monkeypatch.setenv("WAFLENS_MODELS", str(workbench.parent / "no-registry"))
    app = open_page("overview")
    assert metrics(app)["Production model"] == "none"
    assert any("No production model yet" in i.value for i in app.info)


def test_emerging_patterns_lists_clusters_by_emergence_with_map_and_profile(workbench):
    app = open_page("emerging")
    clusters = app.dataframe[0].value
    assert list(clusters.emerging) == sorted(clusters.emerging, reverse=True)   # emerging first
    assert app.get("plotly_chart"), "the 2-D map"
    chosen = app.selectbox(key="emerging_cluster")
    assert chosen.value == clusters.cluster_id.iloc[0]
    last = int(clusters.cluster_id.iloc[-1])
    chosen.set_value(last).run()
    assert not app.exception
    assert metrics(app)["Sessions"] == f"{int(clusters.set_index('cluster_id').n_sessions[last]):,}"
    exemplars = app.dataframe[-1].value
    assert {"kind", "path", "user_agent"} <= set(exemplars.columns) and len(exemplars)
    app.radio(key="map_colour").set_value("family").run()
    assert not app.exception


def test_emerging_patterns_drills_down_to_the_sessions_of_a_cluster(workbench):
    app = open_page("emerging")
    cluster = app.selectbox(key="emerging_cluster").value
    app.button(key="to_sessions").click().run()
    assert not app.exception
    assert app.selectbox(key="sessions_cluster").value == cluster
    con = duckdb.connect(str(workbench), read_only=True)
    members = con.execute("""SELECT count(*) FROM session_clusters WHERE cluster_run_id = 1 AND cluster_id = $c
                             AND probability >= 0.5""", {"c": cluster}).fetchall()[0][0]
    con.close()
    assert f"{members:,} sessions" in app.caption[0].value


def test_sessions_page_through_and_drill_down_to_requests(workbench):
    app = open_page("sessions")
    con = duckdb.connect(str(workbench), read_only=True)
    total = con.execute("SELECT count(*) FROM sessions").fetchall()[0][0]
    con.close()
    assert total > 50
    assert app.caption[0].value.startswith(f"{total:,} sessions; showing 1 to 50")
    assert len(app.dataframe[0].value) == 50
    app.number_input(key="sessions_page").set_value(2).run()
    assert "showing 51 to" in app.caption[0].value
    second_page = app.dataframe[0].value.session_id.tolist()
    assert app.selectbox(key="sessions_selected").value == second_page[0]


def test_hostile_request_is_shown_as_text(workbench):
    app = open_page("sessions")
    app.text_input(key="sessions_path").input("<script>").run()
    assert not app.exception
    sessions = app.dataframe[0].value
    assert len(sessions) == 1
    requests = app.dataframe[-1].value
    assert requests.path.tolist() == [XSS_PATH] and requests.user_agent.tolist() == [XSS_AGENT]
    shown = app.code[-1].value                                     # the request in full, as text
    assert XSS_PATH in shown and f"User-Agent: {XSS_AGENT}" in shown
    assert all(XSS_PATH not in m.value for m in app.markdown)   # never as Markdown


def test_client_drill_down(workbench):
    app = open_page("sessions")
    client = app.dataframe[0].value.client_key.iloc[0]
    next(b for b in app.button if b.label == "All sessions of this client").click().run()
    assert app.text_input(key="sessions_client").value == client
    assert set(app.dataframe[0].value.client_key) == {client}
