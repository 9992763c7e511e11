"""The WSGI and ASGI middleware around a real trained model: block, pass, monitor, bodies, fail-open."""

import asyncio
import hashlib
import io
import logging
import threading
import urllib.error
import urllib.request
from urllib.parse import unquote
from wsgiref.simple_server import WSGIRequestHandler, make_server
from wsgiref.util import setup_testing_defaults

import pytest

from waflens.runtime.middleware import BLOCK_BODY, ReplayInput, WaflensASGIMiddleware, WaflensWSGIMiddleware, wsgi_target
from waflens.runtime.scorer import Scorer
from waflens.scoring.train import TrainingOptions, train_request_model
from tests.data.helpers import generated_db

BROWSER = {"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
           "Referer": "https://shop.example.com/"}
SQLMAP = {"User-Agent": "sqlmap/1.8.11#stable (https://sqlmap.org)"}
SQLI = "/search?q=shoes%27%20UNION%20ALL%20SELECT%20NULL,NULL,CONCAT(username,0x3a,password)%20FROM%20users--%20-"
XSS = "/blog?tag=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E%3Cimg+src%3Dx+onerror%3Dalert(1)%3E"
NORMAL = "/products"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("middleware")
    con = generated_db(tmp, 12_000, seed=3, attack_share=0.03).con
    train_request_model(con, tmp / "model", TrainingOptions(n_estimators=30, seed=1))
    con.close()
    return tmp / "model"


@pytest.fixture(scope="module")
def scorer(model):
    return Scorer.load(model)


class RecordingScorer(Scorer):
    """A real scorer that also remembers what the middleware handed it."""

    calls: list

    def score_request(self, method, target, headers=None, body=b"", client=None, ts=None, *, explain=False):
        self.__dict__.setdefault("calls", []).append((method, target, headers, body))
        return super().score_request(method, target, headers, body, client, ts, explain=explain)


class ExplodingScorer(Scorer):
    def score_request(self, *args, **kwargs):
        raise RuntimeError("scoring bug")


class BrokenFeatures(Scorer):
    """Fails inside score_request, so a fail-open scorer answers score_class='error'."""

    def _fields(self, *args):
        raise ValueError("feature bug")


# --- WSGI, in process ---

def echo_app(environ, start_response):
    """Says what it got: method, the body's length and sha256 (read with Content-Length, as apps do)."""
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    out = f"app {environ['REQUEST_METHOD']} {len(body)} {hashlib.sha256(body).hexdigest()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
    return [out]


def app_reply(method, body=b""):
    return f"app {method} {len(body)} {hashlib.sha256(body).hexdigest()}".encode()


def environ_for(method, target, headers, body=b""):
    path, _, query = target.partition("?")
    environ = {"REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": unquote(path, "iso-8859-1"),
               "QUERY_STRING": query, "wsgi.input": io.BytesIO(body)}
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in headers.items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    setup_testing_defaults(environ)
    return environ


def call_wsgi(app, environ):
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = int(status.split()[0]), dict(headers)

    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body


def test_the_test_requests_are_what_they_claim(scorer):
    """Preconditions of the tests below, checked on the model itself."""
    assert scorer.score_request("GET", SQLI, SQLMAP).score_class == "attack"
    assert scorer.score_request("GET", XSS, BROWSER).score_class in ("likely_attack", "attack")
    assert scorer.score_request("GET", NORMAL, BROWSER).score_class in ("clean", "likely_clean")


def test_block_mode_blocks_an_injection_and_passes_a_normal_request(scorer):
    app = WaflensWSGIMiddleware(echo_app, scorer)
    status, headers, body = call_wsgi(app, environ_for("GET", SQLI, SQLMAP))
    assert (status, body) == (403, BLOCK_BODY)
    assert headers["Content-Length"] == str(len(BLOCK_BODY)) and "X-Waflens-Score" not in headers
    environ = environ_for("GET", NORMAL, BROWSER)
    status, headers, body = call_wsgi(app, environ)
    assert (status, body) == (200, app_reply("GET"))
    assert "X-Waflens-Score" not in headers   # no score oracle in block mode
    assert environ["waflens.result"].score_class in ("clean", "likely_clean")


def test_block_class_sets_the_bar(scorer):
    strict = WaflensWSGIMiddleware(echo_app, scorer, block_class="likely_attack")
    assert call_wsgi(strict, environ_for("GET", XSS, BROWSER))[0] == 403
    assert call_wsgi(strict, environ_for("GET", NORMAL, BROWSER))[0] == 200
    lenient = WaflensWSGIMiddleware(echo_app, scorer, block_class="attack")
    expected = 403 if scorer.score_request("GET", XSS, BROWSER).score_class == "attack" else 200
    assert call_wsgi(lenient, environ_for("GET", XSS, BROWSER))[0] == expected


def test_monitor_mode_passes_everything_and_adds_the_score(scorer):
    app = WaflensWSGIMiddleware(echo_app, scorer, mode="monitor")
    status, headers, body = call_wsgi(app, environ_for("GET", SQLI, SQLMAP))
    assert (status, body) == (200, app_reply("GET"))
    attack = float(headers["X-Waflens-Score"])
    assert attack == pytest.approx(scorer.score_request("GET", SQLI, SQLMAP).score, abs=1e-4)
    status, headers, _ = call_wsgi(app, environ_for("GET", NORMAL, BROWSER))
    assert status == 200 and 0 < float(headers["X-Waflens-Score"]) < attack


def test_the_scorer_sees_the_raw_target_and_the_body_prefix_and_the_app_the_whole_body(model):
    recording = RecordingScorer.load(model, warm_up=False)
    app = WaflensWSGIMiddleware(echo_app, recording, mode="monitor", max_body_bytes=1024)
    body = b"item=3&note=" + bytes(range(256)) * 80          # 20 kB, every byte value
    status, headers, reply = call_wsgi(app, environ_for("POST", "/api/cart?x=%2527", BROWSER, body))
    assert (status, reply) == (200, app_reply("POST", body))
    method, target, seen_headers, seen_body = recording.calls[-1]
    assert (method, target, seen_body) == ("POST", b"/api/cart?x=%2527", body[:1024])
    assert seen_headers["User-Agent"] == BROWSER["User-Agent"] and seen_headers["Content-Length"] == str(len(body))
    assert float(headers["X-Waflens-Score"]) == pytest.approx(
        recording.score_request("POST", "/api/cart?x=%2527", BROWSER, body[:1024]).score, abs=1e-4)


def test_wsgi_target_prefers_the_raw_uri_and_quotes_the_decoded_path_once():
    environ = environ_for("GET", "/a%20b/%2527/%C3%A9?q=%27", {})
    assert wsgi_target(environ) == b"/a%20b/%2527/%C3%A9?q=%27"
    environ["SCRIPT_NAME"] = "/shop"
    assert wsgi_target(environ) == b"/shop/a%20b/%2527/%C3%A9?q=%27"
    environ["RAW_URI"] = "/shop/a b/%2527?q='"
    assert wsgi_target(environ) == b"/shop/a b/%2527?q='"


@pytest.mark.parametrize("how", ["read()", "read(n)", "read(7) loop", "readline", "iterate", "readlines"])
def test_the_replayed_body_reads_the_same_every_way(how):
    body = b"line one\nline two is longer\n" * 300 + b"tail without newline"
    stream = ReplayInput(body[:100], io.BytesIO(body[100:] + b"NOT BODY"), len(body) - 100)
    if how == "read()":
        got = stream.read()
    elif how == "read(n)":
        got = stream.read(len(body)) + stream.read(10)
    elif how == "read(7) loop":
        got = b"".join(iter(lambda: stream.read(7), b""))
    elif how == "readline":
        got = b"".join(iter(stream.readline, b""))
    elif how == "iterate":
        got = b"".join(stream)
    else:
        got = b"".join(stream.readlines())
    assert got == body


def test_a_scorer_that_raises_lets_requests_through_and_logs_once(model, caplog):
    app = WaflensWSGIMiddleware(echo_app, ExplodingScorer.load(model, warm_up=False))
    with caplog.at_level(logging.WARNING, logger="waflens.middleware"):
        for _ in range(3):
            status, headers, body = call_wsgi(app, environ_for("GET", SQLI, SQLMAP))
            assert (status, body) == (200, app_reply("GET"))
    assert app.errors == 3
    assert len([r for r in caplog.records if r.name == "waflens.middleware"]) == 1
    closed = WaflensWSGIMiddleware(echo_app, ExplodingScorer.load(model, warm_up=False), on_error="block")
    assert call_wsgi(closed, environ_for("GET", NORMAL, BROWSER))[0] == 403


def test_fail_open_and_fail_closed_scorers_both_end_in_on_error(model):
    for scorer in (BrokenFeatures.load(model, warm_up=False),                    # answers "error"
                   BrokenFeatures.load(model, warm_up=False, fail_open=False)):  # raises
        app = WaflensWSGIMiddleware(echo_app, scorer, mode="monitor")
        status, headers, body = call_wsgi(app, environ_for("GET", SQLI, SQLMAP))
        assert (status, body) == (200, app_reply("GET")) and "X-Waflens-Score" not in headers
        assert app.errors == 1


def test_options_are_checked(scorer):
    for options, word in [({"block_class": "evil"}, "evil"), ({"mode": "audit"}, "audit"),
                          ({"on_error": "ignore"}, "ignore"), ({"max_body_bytes": -1}, "-1")]:
        with pytest.raises(ValueError, match=word):
            WaflensWSGIMiddleware(echo_app, scorer, **options)
    with pytest.raises(TypeError, match="ModelWatcher or a Scorer"):
        WaflensASGIMiddleware(echo_app, "models/production")


# --- WSGI, through a real server ---

class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    running = []

    def start(app):
        server = make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        running.append((server, thread))
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join(5)


def fetch(url, headers, data=None):
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


def test_over_http_in_block_mode(scorer, serve):
    base = serve(WaflensWSGIMiddleware(echo_app, scorer))
    assert fetch(base + SQLI, SQLMAP)[::2] == (403, BLOCK_BODY)
    assert fetch(base + NORMAL, BROWSER)[::2] == (200, app_reply("GET"))
    # this model learned from access logs, which hold no bodies, so it does not judge bodies (the runtime
    # ignores them rather than call every POST an attack); the query still counts
    assert not scorer.uses_bodies
    injection = b"username=admin%27%20OR%20%271%27%3D%271%27--&password=x%27%20UNION%20SELECT%201,2,3--"
    assert fetch(base + "/login?next=%27%20UNION%20SELECT%201--", SQLMAP, injection)[::2] == (403, BLOCK_BODY)


def test_over_http_in_monitor_mode(scorer, serve):
    base = serve(WaflensWSGIMiddleware(echo_app, scorer, mode="monitor", header="X-Risk"))
    status, headers, body = fetch(base + SQLI, SQLMAP)
    assert (status, body) == (200, app_reply("GET"))
    assert float(headers["X-Risk"]) == pytest.approx(scorer.score_request("GET", SQLI, SQLMAP).score, abs=1e-4)
    body = b"item=3&qty=1&note=" + b"tent " * 20_000      # 100 kB, far beyond max_body_bytes
    status, headers, reply = fetch(base + "/api/cart", BROWSER, body)
    assert (status, reply) == (200, app_reply("POST", body)) and 0 < float(headers["X-Risk"]) <= 1


def test_over_http_a_failing_scorer_lets_traffic_through(model, serve):
    base = serve(WaflensWSGIMiddleware(echo_app, ExplodingScorer.load(model, warm_up=False)))
    assert fetch(base + SQLI, SQLMAP)[::2] == (200, app_reply("GET"))


# --- ASGI ---

async def echo_asgi(scope, receive, send):
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    out = app_reply(scope["method"], body)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})


def call_asgi(app, method, target, headers, chunks=(), *, raw_path=True):
    path, _, query = target.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": unquote(path), "query_string": query.encode(), "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80)}
    if raw_path:
        scope["raw_path"] = path.encode()
    incoming = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    incoming = incoming or [{"type": "http.request", "body": b"", "more_body": False}]
    sent = []

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start, rest = sent[0], sent[1:]
    return start["status"], dict(start["headers"]), b"".join(m.get("body", b"") for m in rest)


def test_asgi_blocks_an_injection_and_passes_a_normal_request(scorer):
    app = WaflensASGIMiddleware(echo_asgi, scorer)
    status, headers, body = call_asgi(app, "GET", SQLI, SQLMAP)
    assert (status, body) == (403, BLOCK_BODY) and headers[b"content-length"] == str(len(BLOCK_BODY)).encode()
    assert call_asgi(app, "GET", NORMAL, BROWSER)[::2] == (200, app_reply("GET"))
    assert call_asgi(app, "GET", SQLI, SQLMAP, raw_path=False)[0] == 403   # path only, no raw_path


def test_asgi_replays_the_body_and_scores_its_prefix(model):
    recording = RecordingScorer.load(model, warm_up=False)
    app = WaflensASGIMiddleware(echo_asgi, recording, mode="monitor", max_body_bytes=2500)
    chunks = [bytes([i]) * 1000 for i in range(10)]
    status, headers, body = call_asgi(app, "POST", "/api/cart?x=1", BROWSER, chunks)
    assert (status, body) == (200, app_reply("POST", b"".join(chunks)))
    method, target, _, seen_body = recording.calls[-1]
    assert (method, target, seen_body) == ("POST", b"/api/cart?x=1", b"".join(chunks)[:2500])
    assert 0 < float(headers[b"x-waflens-score"]) <= 1


def test_asgi_fails_open_and_leaves_other_scopes_alone(model):
    app = WaflensASGIMiddleware(echo_asgi, ExplodingScorer.load(model, warm_up=False))
    assert call_asgi(app, "GET", SQLI, SQLMAP)[::2] == (200, app_reply("GET"))
    assert app.errors == 1
    seen = []

    async def lifespan_app(scope, receive, send):
        seen.append(scope)

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    asyncio.run(WaflensASGIMiddleware(lifespan_app, ExplodingScorer.load(model, warm_up=False))(scope, None, None))
    assert seen == [scope] and seen[0] is scope
