"""The workbench on a Spark output directory in a real browser (one check; the pages' content and actions are
tested through AppTest in test_workbench_pages.py): ``streamlit run`` on a copy of the ``spark_attached`` fixture
(``waflens spark attach`` + ``cluster`` + ``summarize``), Debian's chromium through Playwright, as
tests/app/test_browser.py does; without chromium it skips, except in CI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import duckdb
import pytest

from tests.app.test_browser import (CHROMIUM, CHROMIUM_ARGS, REPO, WATCH_PAGE, _free_port, _require_browser,
                                    assert_no_exception, assert_stays_on_the_host, settle, wait_until_serving)
from tests.spark.pipeline import read

pytestmark = pytest.mark.slow
COLUMNS = ["cluster", "emerging", "status", "growth", "sessions", "clients", "requests", "first seen", "last seen",
           "label"]


def _grid_rows(grid) -> list[list[str]]:
    """The rows a Streamlit dataframe shows (its grid keeps an accessible table of the visible cells, which it
    fills after the page has settled: on a loaded machine the first look found it empty, so wait for it)."""
    grid.locator("th").first.wait_for(state="attached", timeout=60_000)
    cells = grid.evaluate("g => [...g.querySelectorAll('th, td')].map(c => c.textContent)")
    assert cells[:len(COLUMNS)] == COLUMNS, cells[:len(COLUMNS)]
    body = cells[len(COLUMNS):]
    return [body[i:i + len(COLUMNS)] for i in range(0, len(body), len(COLUMNS))]


def test_emerging_patterns_shows_the_spark_clusters_in_a_browser(spark_attached, spark_pipeline, tmp_path):
    _require_browser()
    db = tmp_path / "analyst.duckdb"
    shutil.copyfile(spark_attached.db, db)
    con = duckdb.connect(str(db), read_only=True)
    try:
        run = con.execute("SELECT n_selected, n_clusters FROM cluster_runs WHERE cluster_run_id = 1").fetchall()[0]
        profiles = {str(c): (str(s), str(r)) for c, s, r in con.execute(
            "SELECT cluster_id, n_sessions, n_requests FROM cluster_profiles WHERE cluster_run_id = 1").fetchall()}
    finally:
        con.close()
    sessions = len(read(spark_pipeline.out, "sessions"))

    log_path = tmp_path / "streamlit.log"
    env = {key: value for key, value in os.environ.items() if key != "WAFLENS_MODELS"}
    env.update(WAFLENS_DB=str(db), WAFLENS_ANALYST="spark-browser", PYTHONPATH=str(REPO))
    port = _free_port()
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(REPO / "app" / "workbench.py"), "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer"],
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_serving(base, server, server.kill, log_path)
            from playwright.sync_api import sync_playwright

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                try:
                    context = browser.new_context(viewport={"width": 1280, "height": 800})
                    context.add_init_script(WATCH_PAGE)
                    page = context.new_page()
                    page.requests = []
                    context.on("request", lambda request: page.requests.append(request.url))
                    page.goto(f"{base}/emerging")
                    settle(page, "Emerging patterns")
                    assert_no_exception(page)
                    assert (f"{run[0]:,} of {sessions:,} sessions clustered into {run[1]} clusters"
                            in page.inner_text("body"))
                    rows = _grid_rows(page.locator('[data-testid="stDataFrame"]').first)
                    assert len(rows) >= min(len(profiles), 5)       # the grid renders the rows in view
                    for row in rows:                                # as the database (and the Parquet) count them
                        assert (row[4], row[6]) == profiles[row[0]], row
                    assert_stays_on_the_host(page, base)
                finally:
                    browser.close()
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
