"""The workbench pages on a real database, through Streamlit's AppTest."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from waflens.data.sessionize import update_derived
from tests.data.helpers import at, combined_line, fresh_db, ingest, write_log

WORKBENCH = str(Path(__file__).resolve().parents[2] / "app" / "workbench.py")
XSS = '<img src=x onerror=alert(1)>'


@pytest.fixture()
def workbench_db(tmp_path, monkeypatch):
    log = write_log(tmp_path / "a.log", [combined_line("10.0.0.1", at(i * 60), f"GET /p{i} HTTP/1.1") for i in range(5)]
                    + [f"garbage line {XSS}"])
    con = fresh_db(tmp_path)
    ingest(con, log)
    update_derived(con)
    con.close()
    monkeypatch.setenv("WAFLENS_DB", str(tmp_path / "test.duckdb"))
    return tmp_path / "test.duckdb"


def test_overview_shows_database_counts(workbench_db):
    app = AppTest.from_file(WORKBENCH, default_timeout=60).run()
    assert not app.exception
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Requests"] == "5"
    assert metrics["Quarantined"] == "1"
    assert metrics["Sessions"] == "1"


def test_data_page_shows_quarantine_as_text(workbench_db):
    app = AppTest.from_file(WORKBENCH, default_timeout=60).run()
    app.switch_page(str(Path(WORKBENCH).parent / "pages" / "data_sources.py")).run()
    assert not app.exception
    quarantine = app.dataframe[2].value   # sources, ingest history, quarantine
    assert list(quarantine["raw"]) == [f"garbage line {XSS}"]
    assert "does not match" in quarantine["reason"][0]


def test_missing_database_is_a_message_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("WAFLENS_DB", str(tmp_path / "absent.duckdb"))
    app = AppTest.from_file(WORKBENCH, default_timeout=60).run()
    assert not app.exception
    assert "no database" in app.error[0].value


PAGES = ["overview", "emerging", "label_queue", "sessions", "models", "data_sources", "settings"]


@pytest.mark.parametrize("name", PAGES)
def test_every_page_works_on_traffic_alone(workbench_db, name, monkeypatch):
    """No clusters, labels, settings or models yet: each page says what to do next, without an exception."""
    monkeypatch.setenv("WAFLENS_MODELS", str(workbench_db.parent / "no-models"))
    app = AppTest.from_file(WORKBENCH, default_timeout=60).run()
    app.switch_page(f"pages/{name}.py").run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]


@pytest.mark.parametrize("name", PAGES)
def test_every_page_says_when_there_is_no_database(tmp_path, monkeypatch, name):
    monkeypatch.setenv("WAFLENS_DB", str(tmp_path / "absent.duckdb"))
    app = AppTest.from_file(WORKBENCH, default_timeout=60).run()
    app.switch_page(f"pages/{name}.py").run()
    assert not app.exception, [e.value for e in app.exception]
    assert name == "models" or "no database" in app.error[0].value
