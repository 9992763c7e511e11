"""Data and Settings pages through AppTest; the settings store and the short-write helper directly."""

from __future__ import annotations

import gzip
import subprocess
import sys

import duckdb
import pytest

from waflens.data.writes import write
from waflens.data.errors import ConfigError, DatabaseError
from waflens.data.settings import SPEC, get_settings, set_setting, setting_history, validate
from tests.app.conftest import open_page, scalar
from tests.data.helpers import at, combined_line


# --- Data ---

def test_data_page_shows_sources_history_and_pages_the_quarantine(workbench):
    con = duckdb.connect(str(workbench))
    con.execute("INSERT INTO quarantine SELECT 1, 100000 + i, 'junk <img src=x onerror=alert(1)> ' || i, 'does not "
                "match' FROM range(120) t(i)")
    con.close()
    app = open_page("data_sources")
    sources, history, quarantine = (d.value for d in app.dataframe)
    assert set(sources.source) == {"traffic.log", "hostile.log"}
    assert len(history) == 2
    assert any(c.value.startswith("120 quarantined records; showing 1 to 50") for c in app.caption)
    assert len(quarantine) == 50 and quarantine.raw.iloc[0] == "junk <img src=x onerror=alert(1)> 0"
    app.number_input(key="quarantine_page").set_value(3).run()
    assert len(app.dataframe[2].value) == 20
    app.selectbox(key="quarantine_record").set_value("1:100119").run()
    assert app.code[-1].value == "junk <img src=x onerror=alert(1)> 119"    # in full, as code (text)
    app.text_input(key="quarantine_reason").input("no such reason").run()
    assert len(app.dataframe[2].value) == 0


def test_upload_is_saved_beside_the_database_and_ingested(workbench):
    app = open_page("data_sources")
    before = scalar(workbench, "SELECT count(*) FROM requests")
    lines = [combined_line("198.51.100.7", at(86400 * 4 + i), f"GET /uploaded/{i} HTTP/1.1") for i in range(5)]
    payload = gzip.compress(("\n".join(lines) + "\nnot a log line\n").encode())
    app.file_uploader(key="upload_file").set_value(("../../evil name.log.gz", payload, "application/gzip"))
    app.text_input(key="upload_source").input("edge-9")
    next(b for b in app.button if b.label == "Ingest").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    assert "5 parsed + 1 quarantined" in app.success[0].value.replace("\\", "")
    assert scalar(workbench, "SELECT count(*) FROM requests") == before + 5
    assert scalar(workbench, "SELECT name FROM sources ORDER BY source_id DESC LIMIT 1") == "edge-9"
    uploads = workbench.parent / "uploads"
    saved = list(uploads.rglob("*.gz"))
    assert len(saved) == 1 and saved[0].name == "evil_name.log.gz"      # no path from the client
    assert saved[0].parent.parent == uploads
    # the same bytes again add nothing
    next(b for b in app.button if b.label == "Ingest").click().run()
    assert any("ingested before" in i.value for i in app.info)
    assert scalar(workbench, "SELECT count(*) FROM requests") == before + 5


def test_an_uploaded_gzip_bomb_is_refused_with_the_cli_bound(workbench):
    """Finding 10 through the workbench: the upload runs the same bounded `waflens ingest`."""
    import zlib

    app = open_page("data_sources")
    before = scalar(workbench, "SELECT count(*) FROM requests")
    line = (combined_line("198.51.100.9", at(0), "GET / HTTP/1.1") + "\n").encode()
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join(packer.compress(line * (1024 * 1024 // len(line))) for _ in range(40)) + packer.flush()
    app.file_uploader(key="upload_file").set_value(("bomb.log.gz", bomb, "application/gzip"))
    next(b for b in app.button if b.label == "Ingest").click().run(timeout=120)
    assert not app.exception, [e.value for e in app.exception]
    assert any("a gzip bomb" in e.value.replace("\\", "") for e in app.error), [e.value for e in app.error]  # main: ingested
    assert scalar(workbench, "SELECT count(*) FROM requests") == before


def test_forget_a_source_from_the_data_page_only_when_confirmed(workbench):
    app = open_page("data_sources")
    source = scalar(workbench, "SELECT source_id FROM sources WHERE name = 'hostile.log'")
    requests = scalar(workbench, f"SELECT count(*) FROM requests WHERE source_id = {int(source)}")
    before = scalar(workbench, "SELECT count(*) FROM requests")
    app.selectbox(key="forget_source").set_value(source).run()
    assert app.button(key="forget_button").disabled        # not without the confirmation
    app.checkbox(key="forget_confirm").check().run()
    app.button(key="forget_button").click().run(timeout=120)
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert f"Forgot source {source}: {requests:,} requests" in app.success[0].value.replace("\\", "")
    assert scalar(workbench, "SELECT count(*) FROM requests") == before - requests
    assert scalar(workbench, f"SELECT count(*) FROM sources WHERE source_id = {int(source)}") == 0
def test_upload_keeps_its_file_name_as_source_name_in_a_private_folder(workbench):
    """The field says "default: the file name": no timestamp prefix; uploads/ beside the database, 0700."""
    import os
    import stat

    app = open_page("data_sources")
    lines = [combined_line("198.51.100.8", at(86400 * 4 + i), f"GET /mine/{i} HTTP/1.1") for i in range(3)]
    for content in ("\n".join(lines) + "\n", "\n".join(lines[:2]) + "\n"):  # one name, two files: both kept
        app.file_uploader(key="upload_file").set_value(("access-2026-11-04.log", content.encode(), "text/plain"))
        next(b for b in app.button if b.label == "Ingest").click().run()
        assert not app.exception and not app.error, [e.value for e in app.exception or app.error]
    names = duckdb.connect(str(workbench), read_only=True)
    try:
        rows = names.execute("SELECT name FROM sources ORDER BY source_id DESC LIMIT 2").fetchall()
    finally:
        names.close()
    assert rows == [("access-2026-11-04.log",), ("access-2026-11-04.log",)]
    uploads = workbench.parent / "uploads"
    saved = sorted(uploads.rglob("access-2026-11-04.log"))
    assert len(saved) == 2 and {p.read_bytes().count(b"\n") for p in saved} == {2, 3}
    for folder in (uploads, *[p.parent for p in saved]):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700, folder


def test_uploads_are_git_ignored():
    from pathlib import Path

    ignored = (Path(__file__).resolve().parents[2] / ".gitignore").read_text().split()
    assert "/uploads/" in ignored or "uploads/" in ignored


# --- Settings ---

def test_settings_page_saves_values_with_author(workbench):
    app = open_page("settings")
    app.number_input(key="settings_membership").set_value(0.6)
    app.number_input(key="settings_min_cluster").set_value(12)
    next(b for b in app.button if b.label == "Save settings").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert "membership_threshold, min_cluster_size" in app.success[0].value.replace("\\", "")
    con = duckdb.connect(str(workbench), read_only=True)
    stored = get_settings(con)
    history = {key: by for key, _, by, _ in setting_history(con)}
    con.close()
    assert stored["membership_threshold"] == 0.6 and stored["min_cluster_size"] == 12
    assert history == {"membership_threshold": "test-analyst", "min_cluster_size": "test-analyst"}
    assert "never changes where the key" in " ".join(c.value for c in app.caption)


def test_settings_page_has_no_alert_quantile_and_ignores_an_old_row(workbench):
    """One alert-rate definition (the model's own likely_attack threshold): the quantile an earlier version let
    analysts set, and stored, changes nothing and is listed as ignored."""
    con = duckdb.connect(str(workbench))
    con.execute("CREATE TABLE IF NOT EXISTS settings (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL, "
                "updated_by VARCHAR NOT NULL, updated_at TIMESTAMP NOT NULL)")
    con.execute("INSERT INTO settings VALUES ('alert_quantile', '0.5', 'ana', TIMESTAMP '2026-11-30 10:00:00')")
    assert "alert_quantile" not in get_settings(con)
    con.close()
    app = open_page("settings")
    assert not [w for w in app.number_input if "quantile" in w.label.lower() or "alert" in w.label.lower()]
    captions = [c.value.replace("\\", "") for c in app.caption]
    assert any("alert_quantile" in c and "are ignored" in c for c in captions), captions
    assert any("alert threshold" in c and "likely_attack" in c for c in captions), captions


def test_settings_defaults_without_a_table_and_validation():
    con = duckdb.connect()
    assert get_settings(con) == {key: spec.default for key, spec in SPEC.items()}
    assert set_setting(con, "min_cluster_size", "12", "ana") == 12
    assert set_setting(con, "retention_days", "", "ana") is None
    assert set_setting(con, "retention_days", 30, "ana") == 30.0
    assert get_settings(con)["min_cluster_size"] == 12 and get_settings(con)["retention_days"] == 30.0
    for key, value, message in [("membership_threshold", 1.5, "at most 1"),
                                ("membership_threshold", "x", "must be a number"),
                                ("llm_base_url", "http://x", "unknown setting"), ("min_cluster_size", 1.5,
                                                                                     "whole number"),
                                ("min_cluster_size", True, "whole number"), ("nope", 1, "unknown setting"),
                                ("retention_days", 0, "above 0"), ("membership_threshold", "", "needs a value"),
                                ("alert_quantile", 0.95, "unknown setting")]:
        with pytest.raises(ConfigError, match=message):
            validate(key, value)
    with pytest.raises(ConfigError, match="author"):
        set_setting(con, "min_cluster_size", 12, " ")
    con.execute("UPDATE settings SET value = '\"bogus\"' WHERE key = 'min_cluster_size'")
    assert get_settings(con)["min_cluster_size"] == 10      # an unreadable stored value: the default


# --- short writes ---

def test_write_runs_the_function_and_waits_out_a_short_lock(workbench):
    holder = subprocess.Popen([sys.executable, "-c", f"""
import time, duckdb
con = duckdb.connect({str(workbench)!r})
print("locked", flush=True)
time.sleep(1.5)
con.close()
"""], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    assert write(workbench, lambda con: set_setting(con, "min_cluster_size", 20, "ana"), timeout_s=20) == 20
    holder.wait(timeout=20)
    assert scalar(workbench, "SELECT value FROM settings WHERE key = 'min_cluster_size'") == "20"


def test_write_says_busy_after_the_timeout(workbench):
    holder = subprocess.Popen([sys.executable, "-c", f"""
import sys, duckdb
con = duckdb.connect({str(workbench)!r})
print("locked", flush=True)
sys.stdin.readline()
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(DatabaseError, match="busy"):
            write(workbench, lambda con: None, timeout_s=0.5)
    finally:
        holder.communicate("\n", timeout=20)
