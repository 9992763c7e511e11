"""Overview, Emerging patterns and Sessions through AppTest, on a small real database and registry."""

from __future__ import annotations

import json

import duckdb
import pytest
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
    assert values["Alert rate (last 24 h)"].endswith("%")
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


def _figure(app: AppTest, index: int = 0) -> dict:
    return json.loads(app.get("plotly_chart")[index].proto.spec)


def _values(array) -> list[float]:
    """A plotly data array, plain or typed ({"dtype", "bdata"} since plotly 6)."""
    if isinstance(array, dict) and "bdata" in array:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"])).tolist()
    return list(array)


def test_overview_alert_rate_and_line_use_the_models_own_threshold(workbench):
    """One alert-rate definition: the share of sessions at or above the production model's alert threshold
    (its manifest's likely_attack class), the threshold `waflens retrain` counts with; the histogram's line
    is that threshold (not a quantile setting)."""
    app = open_page("overview")
    manifest = json.loads((workbench.parent / "models" / "production" / "session" / "manifest.json").read_text())
    threshold = manifest["thresholds"]["likely_attack"]
    figure = _figure(app)
    line = [s for s in figure["layout"]["shapes"] if s.get("type") == "line"]
    assert len(line) == 1 and line[0]["x0"] == pytest.approx(threshold)
    scores = _values(figure["data"][0]["x"])
    assert scores
    expected = sum(s >= threshold for s in scores) / len(scores)
    assert metrics(app)["Alert rate (last 24 h)"] == f"{expected:.1%}"


def _kind(colour: str) -> str:
    """Which verdict colour a hex colour reads as: red, amber, green, or none of them."""
    r, g, b = (int(colour.lstrip("#")[k:k + 2], 16) for k in (0, 2, 4))
    if r > 150 and g < 90 and b < 90:
        return "red"
    if r > 200 and 110 < g < 200 and b < 80:
        return "amber"
    if g > 120 and r < 120 and b < 120:
        return "green"
    return "other"


def test_map_colours_mean_one_thing_on_every_colouring(workbench):
    """Malicious red, suspicious amber, benign green, and no other value drawn in those colours."""
    app = open_page("emerging")
    meaning = {"malicious": "red", "suspicious": "amber", "benign": "green"}
    seen = {}
    for colouring in ("status", "family", "verdict", "cluster"):
        app.radio(key="map_colour").set_value(colouring).run()
        assert not app.exception
        for trace in _figure(app)["data"]:
            seen[(colouring, trace["name"])] = _kind(trace["marker"]["color"])
    assert {name for (kind, name) in seen if kind == "verdict"} & set(meaning), seen
    for (colouring, name), kind in seen.items():
        assert kind == meaning.get(name, "other"), (colouring, name, kind)


def test_clusters_labelled_benign_go_last(workbench):
    """Known good traffic is not what an analyst looks for first: a benign label moves a cluster to the end,
    on Emerging patterns and in the label queue's order, however emerging it is."""
    from waflens.labeling.labels import latest_run, record_label

    before = open_page("emerging").dataframe[0].value
    head = int(before.cluster_id.iloc[0])
    con = duckdb.connect(str(workbench))
    try:
        record_label(con, latest_run(con), head, family="benign", verdict="benign", source="edited",
                     analyst="test-analyst", note="our uptime monitor")
    finally:
        con.close()
    after = open_page("emerging").dataframe[0].value
    benign = after.label.str.startswith("benign")
    assert int(after.cluster_id.iloc[0]) != head and bool(benign[after.cluster_id == head].iloc[0])
    assert not benign.all() and list(benign) == sorted(benign)   # every benign-labelled cluster after the others


def test_sessions_show_the_production_model_s_bot_score_and_reasons(workbench):
    app = open_page("sessions")
    assert not app.exception
    shown = app.dataframe[0].value
    assert {"bot_score", "bot_reasons"} <= set(shown.columns)
    assert shown.bot_score.between(1, 99).all() and shown.bot_score.nunique() > 1
    assert shown.bot_reasons.map(lambda r: isinstance(r, str)).all()
