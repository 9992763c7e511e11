"""The workbench on a Spark output directory (issue S, "the analyst loop on Spark output"): every page through
AppTest on the database ``waflens spark attach`` made of the shared logs' Spark output, after ``waflens cluster``
and ``summarize`` (the ``spark_attached`` fixture, built once per run).

What a page shows is checked against the Parquet itself, read with pyarrow (not through the views under test).
The analysts' actions write ordinary tables and work as on any database; the actions that would write traffic
(forget a source, upload a log, purge) refuse with ``refuse_traffic_writes``'s message instead of failing on a
view; a retrain (which writes only models and analyst tables) works on the views.
"""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tests.app.conftest import open_page, scalar
from tests.app.test_pages_labels import button, events, open_queue, queue, queued
from tests.spark.pipeline import read
from waflens.app.cli import main
from waflens.data.db import connect
from waflens.data.settings import set_setting

REFUSED = "reads the Spark output"


@pytest.fixture(scope="module")
def parquet(spark_pipeline) -> dict[str, pd.DataFrame]:
    """The Spark output's tables as pyarrow reads them: what the pages must show."""
    return {name: read(spark_pipeline.out, name)
            for name in ("requests", "request_sessions", "sessions", "quarantine", "sources")}


@pytest.fixture()
def analyst_db(spark_attached, tmp_path, monkeypatch) -> Path:
    """A private copy of the attached database (its views read the one shared output directory); WAFLENS_DB
    points at it, and the model registry is beside it (none yet)."""
    db = tmp_path / "analyst.duckdb"
    shutil.copyfile(spark_attached.db, db)
    monkeypatch.setenv("WAFLENS_DB", str(db))
    monkeypatch.delenv("WAFLENS_MODELS", raising=False)
    monkeypatch.setenv("WAFLENS_ANALYST", "spark-analyst")
    return db


def _frame(app, *columns: str) -> pd.DataFrame:
    """The page's one dataframe that has these columns."""
    found = [d.value for d in app.dataframe if set(columns) <= set(d.value.columns)]
    assert len(found) == 1, [list(d.value.columns) for d in app.dataframe]
    return found[0]


def _members(db: Path, run: int = 1) -> pd.DataFrame:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT session_id, cluster_id FROM session_clusters WHERE cluster_run_id = $r AND "
                           "cluster_id >= 0", {"r": run}).df()
    finally:
        con.close()


def _no_error(app) -> None:
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]


def test_overview_counts_what_the_parquet_holds(analyst_db, parquet):
    app = open_page("overview")
    _no_error(app)
    shown = {m.label: m.value for m in app.metric}
    assert shown["Requests"] == f"{len(parquet['requests']):,}"
    assert shown["Sessions"] == f"{len(parquet['sessions']):,}"
    assert shown["Quarantined"] == f"{len(parquet['quarantine']):,}"
    assert shown["Sources"] == f"{len(parquet['sources']):,}"
    top = _frame(app, "cluster_id", "n_sessions", "label")
    assert len(top) == min(10, scalar(analyst_db, "SELECT count(*) FROM cluster_profiles"))


def test_emerging_patterns_shows_the_clusters_with_their_requests_counted_in_the_parquet(analyst_db, parquet):
    app = open_page("emerging")
    _no_error(app)
    table = _frame(app, "cluster_id", "emerging", "n_sessions", "n_requests").set_index("cluster_id")
    members = _members(analyst_db)
    assert set(table.index) == set(members.cluster_id) and len(table) >= 2
    assert table.n_sessions.to_dict() == members.groupby("cluster_id").size().to_dict()
    requests = parquet["request_sessions"].merge(members, on="session_id").groupby("cluster_id").size()
    assert table.n_requests.to_dict() == requests.to_dict()
    chosen = app.selectbox(key="emerging_cluster").value
    assert {m.label: m.value for m in app.metric}["Requests"] == f"{requests[chosen]:,}"
    exemplars = _frame(app, "kind", "session_id")
    assert set(exemplars.session_id) <= set(members[members.cluster_id == chosen].session_id)


def test_label_queue_shows_evidence_from_the_clusters_requests(analyst_db, parquet):
    app = open_queue()
    _no_error(app)
    assert set(queued(app)) <= set(_members(analyst_db).cluster_id) and len(queued(app)) >= 2
    cluster = queue(app).value
    plain = [c.value for c in app.code if " -> " in c.value]
    assert len(plain) == 1, "the evidence as plain text"
    members = _members(analyst_db)
    of_cluster = parquet["request_sessions"].merge(members[members.cluster_id == cluster], on="session_id")
    requests = parquet["requests"].merge(of_cluster, on="request_id")
    paths = set(requests.path) | set(requests.path_decoded)
    lines = plain[0].splitlines()
    assert lines
    for line in lines:    # "METHOD TARGET -> STATUS | UA: ...": each a request of this cluster's sessions
        target = re.match(r"(\S+) (.*?) -> ", line).group(2)   # status "-": a raw HTTP request
        assert target.split("?")[0] in paths, line


def test_sessions_page_pages_the_sessions_and_drills_down_to_their_requests(analyst_db, parquet):
    app = open_page("sessions")
    _no_error(app)
    assert any(c.value.startswith(f"{len(parquet['sessions']):,} sessions; showing 1 to 50") for c in app.caption)
    session = app.selectbox(key="sessions_selected").value
    own = parquet["request_sessions"].query("session_id == @session")
    requests = _frame(app, "request_id", "method", "path", "record")
    assert len(requests) == min(50, len(own)) and set(requests.request_id) <= set(own.request_id)


def test_data_page_lists_the_spark_sources_and_quarantine(analyst_db, parquet, spark_pipeline):
    app = open_page("data_sources")
    _no_error(app)
    assert any(str(spark_pipeline.out.resolve()) in i.value.replace("\\", "") for i in app.info)
    sources = _frame(app, "source", "files", "records")
    assert set(sources.source) == {Path(f).name for f in parquet["sources"].file}
    assert sources.records.sum() == parquet["sources"].records.sum()
    quarantine = _frame(app, "record", "reason", "raw")
    assert sorted(quarantine.raw) == sorted(parquet["quarantine"].raw.head(50))


@pytest.mark.parametrize("name", ["models", "settings"])
def test_the_other_pages_render(analyst_db, name):
    _no_error(open_page(name))


def test_confirm_edit_reject_are_written_and_shown_after_a_rerun_and_exported(analyst_db, parquet, tmp_path):
    app = open_queue()
    confirmed = queue(app).value
    button(app, "Confirm").click().run()
    edited = queue(app).value
    app.selectbox(key=f"verdict_1_{edited}").set_value("malicious")
    app.selectbox(key=f"family_1_{edited}").set_value("scanner")
    app.text_area(key=f"note_1_{edited}").input("=HYPERLINK(\"http://evil.example\")")   # a formula, as text
    button(app, "Save edit").click().run()
    rejected = queue(app).value
    app.text_area(key=f"note_1_{rejected}").input("partner crawler")
    button(app, "Reject").click().run()
    _no_error(app)
    assert len({confirmed, edited, rejected}) == 3
    decided = [(c, source, analyst) for c, source, _, _, analyst, _ in events(analyst_db)]
    assert decided == [(confirmed, "confirmed", "spark-analyst"), (edited, "edited", "spark-analyst"),
                       (rejected, "rejected", "spark-analyst")]
    assert scalar(analyst_db, "SELECT table_type FROM information_schema.tables WHERE table_name = 'label_events'") \
        == "BASE TABLE"
    assert scalar(analyst_db, "SELECT table_type FROM information_schema.tables WHERE table_name = 'requests'") == "VIEW"

    again = open_queue()                       # a new session: what it shows comes from the database
    assert not {confirmed, edited, rejected} & set(queued(again))
    again.toggle(key="queue_show_all").set_value(True).run()
    again.selectbox(key="queue_cluster").set_value(edited).run()
    assert any("malicious scanner" in c.value for c in again.caption if c.value.startswith("Current label"))

    out = tmp_path / "labels.csv"
    assert main(["--db", str(analyst_db), "labels", "export", "--out", str(out)]) == 0
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    members = _members(analyst_db)
    assert {int(r["session_id"]) for r in rows} <= set(members[members.cluster_id.isin([confirmed, edited])].session_id)
    assert {int(r["cluster_id"]) for r in rows} == {confirmed, edited}   # the rejected cluster is not exported
    keys = parquet["sessions"].set_index("session_id").client_key
    assert all(r["client_key"] == keys[int(r["session_id"])] and r["top_path"] for r in rows)
    notes = {r["note"] for r in rows if int(r["cluster_id"]) == edited}
    assert notes == {"'=HYPERLINK(\"http://evil.example\")"}          # the formula guard


def test_traffic_writes_are_refused_with_the_clear_message(analyst_db, parquet):
    con = connect(analyst_db)
    set_setting(con, "retention_days", 1, "ana")   # the shared logs are years old
    con.close()
    requests = scalar(analyst_db, "SELECT count(*) FROM requests")

    app = open_page("data_sources")
    app.checkbox(key="forget_confirm").check().run()
    app.button(key="forget_button").click().run()
    assert not app.exception and len(app.error) == 1
    assert REFUSED in app.error[0].value and "waflens sources forget" in app.error[0].value.replace("\\", "")
    app.file_uploader(key="upload_file").set_value(("edge.log", b'198.51.100.7 - - [04/Nov/2026:10:00:00 +0000] '
                                                                b'"GET / HTTP/1.1" 200 5 "-" "curl/8"\n', "text/plain"))
    next(b for b in app.button if b.label == "Ingest").click().run()
    assert not app.exception and REFUSED in app.error[-1].value and "waflens ingest" in app.error[-1].value.replace("\\", "")
    assert not (analyst_db.parent / "uploads").exists()          # not kept beside the database for nothing

    app = open_page("settings")
    app.button(key="settings_purge").click().run()
    assert not app.exception and REFUSED in app.error[0].value and "waflens purge" in app.error[0].value.replace("\\", "")
    assert "settings_purge_yes" not in [b.key for b in app.button]      # nothing to confirm
    assert scalar(analyst_db, "SELECT count(*) FROM requests") == requests == len(parquet["requests"])


@pytest.mark.slow
def test_retrain_from_the_models_page_trains_on_the_views(analyst_db, parquet):
    app = open_page("models")
    app.button(key="models_retrain").click().run()
    _no_error(app)
    assert any("Retrain finished" in i.value for i in app.info)
    overview = open_page("overview")
    shown = {m.label: m.value for m in overview.metric}
    assert shown["Production model"] == "v0001"
    assert any(label.startswith("Alert rate") for label in shown)
