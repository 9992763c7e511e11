"""Who gets into the workbench, and what its Settings page can no longer change (AppTest and a real browser)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest

from tests.app.conftest import open_page
from tests.app.test_cli_app import TOKEN, app_env, free_port, small_db, start_app, stop_group  # noqa: F401

WORKBENCH = str(Path(__file__).resolve().parents[2] / "app" / "workbench.py")


def _seed_legacy_llm_rows(db: Path, base_url: str) -> None:
    """What an earlier workbench let anyone store: provider and endpoint rows in the settings table."""
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE IF NOT EXISTS settings (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL, "
                "updated_by VARCHAR NOT NULL, updated_at TIMESTAMP NOT NULL)")
    for key, value in (("llm_provider", "openai"), ("llm_model", "attacker-model"), ("llm_base_url", base_url)):
        con.execute("INSERT OR REPLACE INTO settings VALUES ($k, $v, 'mallory', $t)",
                    {"k": key, "v": json.dumps(value), "t": datetime(2026, 11, 30)})
    con.close()


@pytest.fixture()
def workbench(small_db, monkeypatch) -> Path:  # noqa: F811 (a small database is enough here)
    monkeypatch.setenv("WAFLENS_DB", str(small_db))
    monkeypatch.setenv("WAFLENS_ANALYST", "test-analyst")
    monkeypatch.delenv("WAFLENS_APP_TOKEN", raising=False)
    monkeypatch.delenv("WAFLENS_APP_AUTH_HEADER", raising=False)
    return small_db


def test_settings_page_cannot_change_the_llm_endpoint(workbench, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    monkeypatch.delenv("WAFLENS_LLM_PROVIDER", raising=False)
    _seed_legacy_llm_rows(workbench, "http://attacker.example/v1")
    app = open_page("settings")
    assert not app.error, [e.value for e in app.error]
    assert not [w for w in app.text_input if "url" in (w.label or "").lower() or "model" in (w.label or "").lower()]
    assert not [w for w in app.selectbox if "provider" in (w.label or "").lower()]
    shown = app.dataframe[0].value
    values = dict(zip(shown["setting"], shown["value"]))
    assert values["base URL"] == "http://127.0.0.1:11434/v1" and values["provider"] == "offline"
    assert "attacker" not in " ".join(map(str, shown["value"]))
    assert any("are ignored" in c.value for c in app.caption)      # the old rows are still listed, as ignored
    # saving the form writes thresholds only
    app.number_input(key="settings_min_cluster").set_value(12)
    next(b for b in app.button if b.label == "Save settings").click().run()
    assert not app.exception and not app.error
    con = duckdb.connect(str(workbench), read_only=True)
    rows = dict(con.execute("SELECT key, value FROM settings").fetchall())
    con.close()
    assert json.loads(rows["llm_base_url"]) == "http://attacker.example/v1"   # left as it was, and ignored
    assert json.loads(rows["min_cluster_size"]) == 12


class _Trap(BaseHTTPRequestHandler):
    """The attacker's server: records whatever reaches it."""
    seen: list = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        type(self).seen.append(dict(self.headers))
        self.send_response(500)
        self.end_headers()


@pytest.mark.slow
def test_cron_retrain_ignores_an_endpoint_stored_in_the_database(tmp_path):
    """Rows the old Settings page stored must not send the key and the evidence to another server.

    A real `waflens retrain` runs until its summarize stage is over (then it is stopped: training is not the point)."""
    from waflens.data.db import connect
    from waflens.data.synthetic import generate_traffic

    _Trap.seen = []
    trap = ThreadingHTTPServer(("127.0.0.1", 0), _Trap)
    threading.Thread(target=trap.serve_forever, daemon=True).start()
    env = {k: v for k, v in app_env().items()
           if k not in ("WAFLENS_LLM_PROVIDER", "WAFLENS_LLM_MODEL", "OPENAI_BASE_URL", "WAFLENS_LLM_CONFIG")}
    env.update(OPENAI_API_KEY="sk-operator-secret", WAFLENS_PSEUDONYM_KEY="0123456789abcdef" * 2)
    generate_traffic(tmp_path / "traffic.log", 4000, seed=5)
    db = tmp_path / "w.duckdb"
    connect(db).close()
    _seed_legacy_llm_rows(db, f"http://127.0.0.1:{trap.server_address[1]}/v1")
    retrain = subprocess.Popen([sys.executable, "-m", "waflens.app.cli", "--db", str(db), "retrain", "--source",
                                str(tmp_path / "traffic.log"), "--trees", "10"],
                               cwd=tmp_path, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                               start_new_session=True)
    progress = []
    try:
        for line in retrain.stderr:
            progress.append(line.strip())
            if "retrain: snapshot" in line or "retrain: train" in line:
                break
    finally:
        retrain.kill()
        retrain.wait()
        trap.shutdown()
        trap.server_close()
    assert any("summarize" in line for line in progress), progress
    con = duckdb.connect(str(db), read_only=True)
    providers = con.execute("SELECT DISTINCT provider FROM cluster_summaries").fetchall()
    con.close()
    assert providers == [("offline",)]
    assert _Trap.seen == []                 # no request, so no Authorization header, reached the trap


def test_token_gate_shows_nothing_until_the_token_is_given(workbench, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("WAFLENS_APP_TOKEN", TOKEN)
    app = AppTest.from_file(WORKBENCH, default_timeout=60).run()
    assert not app.exception
    assert not app.metric and not [c for c in app.caption if "Database" in c.value]
    app.text_input(key="_access_token").input("wrong-token-wrong-token")
    app.button[0].click().run()
    assert "Wrong token" in app.error[0].value and not app.metric
    app.text_input(key="_access_token").input(TOKEN)
    app.button[0].click().run()
    assert not app.exception and app.metric                     # the Overview's counts
    assert app.title[0].value == "Overview"


def _browser():
    from tests.app.test_browser import CHROMIUM, CHROMIUM_ARGS, _require_browser

    _require_browser()
    from playwright.sync_api import sync_playwright

    return sync_playwright, CHROMIUM, CHROMIUM_ARGS


@pytest.mark.slow
def test_token_in_a_real_browser(small_db):
    sync_playwright, chromium, args = _browser()
    port = free_port()
    process = start_app(small_db, port, env=app_env(WAFLENS_APP_TOKEN=TOKEN))
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(chromium), args=args)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator('input[aria-label="Access token"]').wait_for(timeout=60_000)
            assert "Requests" not in page.inner_text("body") and "Database:" not in page.inner_text("body")
            page.locator('input[aria-label="Access token"]').fill("not-the-token-at-all")
            page.get_by_role("button", name="Open the workbench").click()
            page.get_by_text("Wrong token").wait_for(timeout=30_000)
            assert "Database:" not in page.inner_text("body")
            page.locator('input[aria-label="Access token"]').fill(TOKEN)
            page.get_by_role("button", name="Open the workbench").click()
            page.get_by_text("Database:").wait_for(timeout=60_000)
            page.get_by_role("heading", name="Overview").wait_for(timeout=60_000)
            browser.close()
    finally:
        stop_group(process)


@pytest.mark.slow
def test_proxy_identity_header_in_a_real_browser(small_db):
    sync_playwright, chromium, args = _browser()
    port = free_port()
    process = start_app(small_db, port, "--auth-header", "X-Forwarded-User")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(chromium), args=args)
            anonymous = browser.new_page()
            anonymous.goto(f"http://127.0.0.1:{port}/")
            anonymous.get_by_text("Not authenticated").wait_for(timeout=60_000)
            assert "Database:" not in anonymous.inner_text("body")
            context = browser.new_context(extra_http_headers={"X-Forwarded-User": "alice@example.org"})
            page = context.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_text("Database:").wait_for(timeout=60_000)
            from playwright.sync_api import expect

            field = page.locator('input[aria-label="Analyst"]')
            expect(field).to_have_value("alice@example.org", timeout=30_000)
            assert field.is_disabled()
            browser.close()
    finally:
        stop_group(process)
