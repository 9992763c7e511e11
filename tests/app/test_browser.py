"""The workbench in a real browser: Playwright drives Debian's chromium against ``streamlit run``.

The module builds a small demo database through the CLI (generate, ingest, train, cluster,
summarize), adds a log whose path and User-Agent carry HTML/JS payloads, registers and promotes
the demo's models, starts the workbench on a free local port, then visits every page (saving a
screenshot of each into docs/screenshots/), confirms a label by clicking, and checks that the
payloads are shown as text and never run.

Playwright must use /usr/bin/chromium (``scripts/setup.sh test`` installs it with apt-get; it cannot
download its own). Without it the module skips, except in CI, where that is a failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# Screenshots go to a temporary folder; WAFLENS_SCREENSHOTS_DIR=docs/screenshots refreshes the README's.
SCREENSHOTS = Path(os.environ.get("WAFLENS_SCREENSHOTS_DIR") or Path(tempfile.gettempdir()) / "waflens-screenshots")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--no-first-run"]
ANALYST = "browser-test"
SCRIPT_TAG = "<script>alert(1)</script>"
IMG_TAG = "<img src=x onerror=alert(1)>"
HOSTILE_LOG = (
    f'203.0.113.9 - - [03/Nov/2026:23:50:00 +0000] "GET /search/{SCRIPT_TAG}?q=[click](javascript:alert(1)) HTTP/1.1" '
    f'404 10 "-" "{IMG_TAG} :red[boom] $x$"\n'
    f'203.0.113.9 - - [03/Nov/2026:23:50:05 +0000] "GET /x/{IMG_TAG} HTTP/1.1" 404 10 "-" "{SCRIPT_TAG}"\n'
    f"not a log line {SCRIPT_TAG}\n"
    # URLs, e-mail addresses and links in every field a page shows: they must stay text, never become <a>
    '203.0.113.77 - - [03/Nov/2026:23:51:00 +0000] "GET /.testing/http://135.23.158.130/.testing/shellshock.txt'
    '?u=https://crowdshield.com/.testing/xss.js HTTP/1.1" 404 10 '
    '"https://referer.evil.example/r?x=<a href=\\"http://evil.example/a\\">ref</a>" '
    '"Mozilla/5.0 [md](http://evil.example/md) www.evil-www.example attacker@evil.example '
    '<a href=\'https://evil.example/ua\'>ua</a>"\n'
    '203.0.113.77 - - [03/Nov/2026:23:51:05 +0000] "GET /go?next=http://evil.example/next&m=mailto:x@evil.example '
    'HTTP/1.1" 302 10 "http://evil.example/" "curl/8 http://evil.example/curl"\n')
# <a> elements that are the workbench's own: the sidebar's page links, page links, "skip to content",
# heading anchors (no text). Anything else (a URL, a mailto:, text from a log) counts.
FOREIGN_LINKS = """() => [...document.querySelectorAll('a')]
    .map(a => [a.getAttribute('href') || '', a.textContent])
    .filter(([href, text]) => {
        const own = href.startsWith(location.origin + '/') || href === '#stMain' || /^[a-z_]+$/.test(href)
                    || (href.startsWith('#') && text === '');
        return !own || /https?:|www[.]|@|evil/i.test(text);
    })"""
PAGES = {  # url path -> (title, screenshot); a deep link first: a fresh server must still show the workbench
    "label_queue": ("Label queue", "label_queue"),
    "": ("Overview", "overview"),
    "emerging": ("Emerging patterns", "emerging_patterns"),
    "sessions": ("Sessions", "sessions"),
    "models": ("Models", "models"),
    "data_sources": ("Data", "data"),
    "settings": ("Settings", "settings"),
}
pytestmark = pytest.mark.slow


def _require_browser():
    reason = None
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: run `bash scripts/setup.sh test` (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "the playwright package is missing: run `bash scripts/setup.sh test`"
    if reason:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason + " (required in CI)")
        pytest.skip(reason)


def _cli(db: Path, *args: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "waflens.app.cli", "--db", str(db), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"waflens {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}"
    return done.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo database (its cron retrain leaves a production model in models/ beside it), with a
    hostile log ingested."""
    _require_browser()
    root = tmp_path_factory.mktemp("browser")
    db = root / "demo.duckdb"
    _cli(db, "demo", "--no-app", "--requests", "8000", "--dir", str(root), cwd=root)
    (root / "hostile.log").write_text(HOSTILE_LOG, encoding="utf-8")
    _cli(db, "--json", "ingest", str(root / "hostile.log"), "--source", "hostile", cwd=root)
    return db


def wait_until_serving(base: str, process: subprocess.Popen, kill, log: Path, seconds: float = 60) -> None:
    """Poll Streamlit's health endpoint until it answers ok; if the process dies or time runs out, ``kill``
    it and fail with the end of its log."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as answer:
                if answer.read().strip() == b"ok":
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            kill()
            pytest.fail(f"the workbench did not start: {log.read_text()[-2000:]}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def server(demo):
    port = _free_port()
    log = open(demo.parent / "streamlit.log", "w")
    env = {key: value for key, value in os.environ.items() if key != "WAFLENS_MODELS"}
    env.update(WAFLENS_DB=str(demo), WAFLENS_ANALYST=ANALYST, PYTHONPATH=str(REPO))
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "app" / "workbench.py"), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer"],   # as `waflens app`: no Deploy
        cwd=demo.parent, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    wait_until_serving(base, process, process.kill, demo.parent / "streamlit.log")
    yield base
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser):
    """A fresh tab at 1280x800 that records every JavaScript dialog (an alert means a payload ran)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(WATCH_PAGE)
    tab = context.new_page()
    tab.dialogs = []
    tab.on("dialog", lambda dialog: (tab.dialogs.append(dialog.message), dialog.dismiss()))
    tab.requests = []     # every request the page makes: none may leave the host
    context.on("request", lambda request: tab.requests.append(request.url))
    yield tab
    context.close()


# Installed in every tab before the page's own scripts: counts the runs of the page's script that the
# tab saw start, and notes when the page last changed, so that settle() waits for a condition, not a time.
WATCH_PAGE = """
window.__waflens = {runs: 0, changed: performance.now()};
new MutationObserver(records => {
    window.__waflens.changed = performance.now();
    for (const r of records) {
        if (r.attributeName === 'data-test-script-state' && r.target.getAttribute(r.attributeName) === 'running') {
            window.__waflens.runs += 1;
        }
    }
}).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
"""
SETTLED = """([runs, since, quietMs, rerunMs]) => {
    const seen = window.__waflens, app = document.querySelector('[data-testid="stApp"]');
    const now = performance.now();
    return !!seen && !!app && app.getAttribute('data-test-script-state') === 'notRunning'
        && (seen.runs > runs || now - since > rerunMs)
        && !document.querySelector('[data-testid="stSkeleton"], [data-stale="true"]')
        && now - seen.changed >= quietMs;
}"""
QUIET_MS = 250     # the page has not changed for this long: its charts have drawn
RERUN_MS = 10_000  # a rerun that ended between two renders is never seen running: then quiet is enough


def settle(page, title: str | None = None, *, after_runs: int = -1) -> None:
    """Wait until the page's script has run (``after_runs``: a run after that many has started), nothing on
    the page is a placeholder or stale, and the page has stopped changing (its charts have drawn)."""
    if title:
        page.locator("h1", has_text=title).first.wait_for(timeout=60_000)
    since = page.evaluate("() => performance.now()")
    page.wait_for_function(SETTLED, arg=[after_runs, since, QUIET_MS, RERUN_MS], timeout=60_000)


def click_and_settle(page, target) -> None:
    """Click a widget that reruns the page's script, and settle once that rerun has finished (right after a
    click the page still shows the previous run as finished: the server has not answered yet)."""
    runs = page.evaluate("() => window.__waflens.runs")
    target.click()
    settle(page, after_runs=runs)


def assert_stays_on_the_host(page, server: str) -> None:
    """Offline-safe: every request went to the workbench itself (no fonts, icons or telemetry from the web)."""
    from urllib.parse import urlsplit

    hosts = {urlsplit(url).hostname for url in page.requests if not url.startswith(("data:", "blob:"))}
    assert page.requests and hosts <= {"127.0.0.1", "localhost"}, sorted(hosts)


def assert_no_exception(page) -> None:
    errors = page.locator('[data-testid="stException"]')
    assert errors.count() == 0, errors.first.inner_text()
    assert "Traceback" not in page.inner_text("body")


@pytest.mark.parametrize("path", list(PAGES))
def test_every_page_loads_without_an_exception(server, page, path):
    title, shot = PAGES[path]
    page.goto(f"{server}/{path}")
    settle(page, title)
    assert_no_exception(page)
    assert page.dialogs == []
    analyst = page.locator('input[aria-label="Analyst"]')
    assert analyst.input_value() == ANALYST        # the workbench's sidebar: not a bare page of pages/
    assert page.locator('[data-testid="stSidebarNav"]').get_by_text("Emerging patterns").count() == 1
    assert page.evaluate(FOREIGN_LINKS) == []
    assert_stays_on_the_host(page, server)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{shot}.png"))
    assert (SCREENSHOTS / f"{shot}.png").stat().st_size < 400_000


def test_confirm_a_label_by_clicking(server, page, demo):
    page.goto(f"{server}/label_queue")
    settle(page, "Label queue")
    # the summary's indicators are highlighted in the evidence: the highlight markup rendered, not shown
    highlighted = page.evaluate("""() => [...document.querySelectorAll('[data-testid="stMarkdownContainer"] span')]
        .filter(s => getComputedStyle(s).backgroundColor !== 'rgba(0, 0, 0, 0)').map(s => s.textContent)""")
    indicators = page.locator('[data-testid="stDataFrame"]').count()
    assert highlighted and indicators and ":orange-background[" not in page.inner_text("body")
    page.locator("button", has_text="Confirm").first.click()
    page.get_by_text("confirmed as").first.wait_for(timeout=30_000)
    settle(page)
    assert_no_exception(page)
    con = None
    for _ in range(40):   # the workbench closes its connections at once; a moment's overlap is possible
        try:
            con = duckdb.connect(str(demo), read_only=True)
            break
        except duckdb.IOException:
            time.sleep(0.25)
    try:
        confirmed = con.execute("SELECT cluster_id, analyst FROM label_events WHERE source = 'confirmed'").fetchall()
        queue_head = con.execute(
            """SELECT p.cluster_id FROM cluster_profiles p
               LEFT JOIN current_labels l ON l.cluster_run_id = p.cluster_run_id AND l.cluster_id = p.cluster_id
               WHERE p.cluster_run_id = (SELECT max(cluster_run_id) FROM cluster_runs)
               ORDER BY coalesce(l.verdict = 'benign', false), p.emerging DESC,
                        CASE p.status WHEN 'new' THEN 0 WHEN 'growing' THEN 1 WHEN 'stable' THEN 2 ELSE 3 END,
                        p.last_ts DESC NULLS LAST, p.n_sessions DESC, p.cluster_id LIMIT 1""").fetchall()
    finally:
        con.close()
    assert confirmed == [(queue_head[0][0], ANALYST)]
    assert f"Cluster {queue_head[0][0]} confirmed" in page.inner_text("body")


def _assert_payloads_inert(page) -> None:
    assert page.dialogs == [], f"a payload ran: {page.dialogs}"
    assert page.locator("img[onerror]").count() == 0
    assert page.evaluate("() => [...document.scripts].some(s => s.textContent.includes('alert(1)'))") is False
    assert page.locator("a[href^='javascript']").count() == 0


def test_hostile_request_is_shown_as_text(server, page):
    page.goto(f"{server}/sessions")
    settle(page, "Sessions")
    field = page.locator("input[aria-label=\"A request path contains\"]")
    field.fill("<script>")
    field.press("Enter")
    page.get_by_text("1 session; showing 1 to 1").first.wait_for(timeout=30_000)
    settle(page)
    assert_no_exception(page)
    text = page.inner_text("body")
    assert f"/search/{SCRIPT_TAG}?q=[click](javascript:alert(1))" in text
    assert f"User-Agent: {IMG_TAG} :red[boom] $x$" in text
    _assert_payloads_inert(page)
    page.locator('[data-testid="stCode"]').last.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    page.screenshot(path=str(SCREENSHOTS / "sessions_hostile_request.png"))


def test_no_log_text_becomes_a_link_anywhere(server, page):
    """URLs from requests, user agents and referers (the demo's and the hostile log's) show as text on every
    page: the label queue's summaries and evidence of every cluster, the cluster pages, the sessions drill-down."""
    seen_urls = 0
    page.goto(f"{server}/label_queue")
    settle(page, "Label queue")
    click_and_settle(page, page.get_by_text("Show reviewed clusters too"))   # every cluster, reviewed or not
    chooser = page.locator('input[aria-label="Cluster"]')
    first = chooser.input_value()
    for _ in range(25):                                    # "Next" cycles through the clusters
        assert page.evaluate(FOREIGN_LINKS) == [], chooser.input_value()
        seen_urls += "http" in page.inner_text("body")
        shown = chooser.input_value()
        page.locator("button", has_text="Next").first.click()
        page.wait_for_function("""shown => document.querySelector('input[aria-label="Cluster"]').value !== shown""",
                               arg=shown, timeout=60_000)
        settle(page)
        if chooser.input_value() == first:
            break
    assert seen_urls, "no evidence with a URL was shown: the check proved nothing"
    page.goto(f"{server}/emerging")
    settle(page, "Emerging patterns")
    for colouring in ("family", "verdict"):
        click_and_settle(page, page.get_by_text(colouring, exact=True).first)
        assert page.evaluate(FOREIGN_LINKS) == []
    page.goto(f"{server}/sessions")
    settle(page, "Sessions")
    field = page.locator('input[aria-label="A request path contains"]')
    field.fill(".testing/http")
    field.press("Enter")
    page.get_by_text("1 session; showing 1 to 1").first.wait_for(timeout=30_000)
    settle(page)
    text = page.inner_text("body")
    # the URL's host IP is tokenized at ingest (personal data); the rest of the URL is shown as it came
    assert "/.testing/shellshock.txt" in text and "https://crowdshield.com/.testing/xss.js" in text
    assert "attacker@evil.example" in text
    assert page.evaluate(FOREIGN_LINKS) == []
    page.goto(f"{server}/models")
    settle(page, "Models")
    for tab in ("Gates and shadow diff", "Model card", "Training"):
        page.get_by_role("tab", name=tab).click()
        page.wait_for_timeout(300)
        assert page.evaluate(FOREIGN_LINKS) == []
    assert_stays_on_the_host(page, server)
    assert page.dialogs == []


def test_quarantined_payload_is_shown_as_text(server, page):
    page.goto(f"{server}/data_sources")
    settle(page, "Data")
    assert f"not a log line {SCRIPT_TAG}" in page.inner_text("body")
    _assert_payloads_inert(page)


def test_retrain_from_the_browser_promotes_the_labelled_model(server, page, demo):
    """The issue's newcomer flow, after the label confirmed above: retrain without a terminal."""
    from waflens.scoring.registry import Registry

    registry = Registry(demo.parent / "models")
    before = registry.alias("production")
    if not any(v.labels.get("analyst_events") for v in registry.versions()) and not _has_confirmed_label(demo):
        pytest.skip("needs the label confirmed by test_confirm_a_label_by_clicking")
    page.goto(f"{server}/models")
    settle(page, "Models")
    page.locator("button", has_text="Retrain now").click()
    page.get_by_text("Retrain finished").first.wait_for(timeout=180_000)
    settle(page)
    assert_no_exception(page)
    after = registry.alias("production")
    assert after != before and f"production is now {after}" in page.inner_text("body")
    assert page.locator('input[aria-label="Version"]').input_value() == f"{after} (production)"   # not the old
    assert registry.get(after).labels["analyst_events"] >= 1 and registry.get(after).parent == before


def _has_confirmed_label(db) -> bool:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return bool(con.execute("SELECT count(*) FROM label_events WHERE source = 'confirmed'").fetchall()[0][0])
    finally:
        con.close()
