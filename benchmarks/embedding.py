"""What embedding the scorer costs a WAF worker: the numbers behind docs/embedding.md's cost table.

    .venv/bin/python benchmarks/embedding.py [--repeat 3] [--calls 5000] [--clients 100000]

Trains a 100-tree request model and a session model on generated traffic (as benchmarks/scoring.py
does), then prints one table, each row with its same-run baseline where one exists:
- start-up, each in a fresh process (``--child``): ``import waflens.runtime.scorer`` (baseline: numba and
  numpy alone), ``Scorer.load`` + warm-up with a warm numba cache and with an empty one
  (``WAFLENS_NUMBA_CACHE_DIR`` at a fresh directory);
- ``score_request`` p50 / p99 over generated requests: GET, POST with an 8 KB form body (the model is
  told to use bodies: one trained on access logs skips them), ``explain=True`` (baseline: GET);
- ``ModelWatcher.maybe_reload()`` not due, and due with nothing changed (check_interval=0);
- WSGI / ASGI middleware overhead excluding scoring: the middleware with a stub scorer around a
  trivial app, driven in-process, minus the bare app on the same prepared requests;
- memory, in fresh processes: RSS growth of ``Scorer.load`` after the import (and the model's arrays
  in it); RSS growth of a ``SessionScorer`` tracking ``--clients`` distinct clients (3 requests
  each) divided by ``--clients``, with the time of each ``SessionScorer.score_request``.
Latencies are medians over ``--repeat`` rounds of each round's p50 / p99; loop totals are medians.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BODY_BYTES = 8192


# --- fresh-process measurements (run as `embedding.py --child KIND ARGS...`, print one JSON line) ---

def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def _child(kind: str, args: list[str]) -> dict:
    started = time.perf_counter()
    if kind == "import":
        __import__(args[0])
        return {"seconds": time.perf_counter() - started}
    import waflens.runtime.scorer as runtime

    if kind == "load":
        cls = runtime.SessionScorer if args[1] == "session" else runtime.Scorer
        started = time.perf_counter()
        cls.load(args[0])
        return {"seconds": time.perf_counter() - started}
    if kind == "memory":
        gc.collect()
        before = _rss_mb()
        scorer = runtime.Scorer.load(args[0])
        gc.collect()
        arrays = [scorer._median, *scorer._trees, *scorer._packed[:4]]
        return {"rss_mb": _rss_mb() - before, "arrays_mb": sum(a.nbytes for a in arrays) / 2**20, "total_mb": _rss_mb()}
    if kind == "sessions":
        return _sessions(runtime.SessionScorer.load(args[0]), json.loads(Path(args[1]).read_text()), int(args[2]))
    raise SystemExit(f"unknown child {kind!r}")


def _sessions(scorer, requests: list, clients: int) -> dict:
    """Track `clients` distinct clients, 3 requests each (round-robin, 5 ms apart); RSS growth per client."""
    import numpy as np

    per_client = 3
    latencies = np.empty(clients * per_client)
    keys = [f"{i:016x}|{i % 97}" for i in range(clients)]   # shaped like an ip-token + UA key
    gc.collect()
    before = _rss_mb()
    ts, i = 1.8e9, 0
    for _ in range(per_client):
        for c, key in enumerate(keys):
            method, target, agent, referer, status = requests[(c * 7 + i) % len(requests)]
            started = time.perf_counter_ns()
            scorer.score_request(method, target, {"User-Agent": agent, "Referer": referer}, b"", key, ts)
            latencies[i] = time.perf_counter_ns() - started
            scorer.observe_response(key, status)
            ts += 0.005
            i += 1
    gc.collect()
    assert len(scorer.tracker) == clients and scorer.errors == 0, (len(scorer.tracker), scorer.errors)
    p50, p99 = np.percentile(latencies / 1000, [50, 99])
    return {"kb_per_client": (_rss_mb() - before) * 1024 / clients, "p50_us": p50, "p99_us": p99}


def _run_child(kind: str, *args: str, cache: str) -> dict:
    env = {**os.environ, "WAFLENS_NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, __file__, "--child", kind, *args], capture_output=True, text=True,
                         check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- model and traffic ---

def _train_models(tmp: Path) -> tuple[Path, Path, list]:
    """A 100-tree request model and a session model on generated traffic; the raw requests."""
    from waflens.data.db import connect
    from waflens.data.ingest import IngestOptions, ingest_file
    from waflens.data.pseudonymize import Pseudonymizer
    from waflens.data.sessionize import update_derived
    from waflens.data.synthetic import generate_traffic
    from waflens.scoring.train import TrainingOptions, train_request_model, train_session_model

    log = tmp / "traffic.log"
    generate_traffic(log, 30_000, seed=11, attack_share=0.05)
    con = connect(tmp / "bench.duckdb")
    ingest_file(con, log, IngestOptions(format="combined"), Pseudonymizer(b"benchmark-key-0123456789"))
    update_derived(con)
    train_request_model(con, tmp / "request-model", TrainingOptions(n_estimators=100, seed=0))
    train_session_model(con, tmp / "session-model", TrainingOptions(n_estimators=100, seed=0))
    requests = con.execute("""SELECT method, path || CASE WHEN query = '' THEN '' ELSE '?' || query END,
                                     coalesce(user_agent, ''), referer, status
                              FROM requests ORDER BY request_id""").fetchall()
    con.close()
    return tmp / "request-model", tmp / "session-model", requests


def _form_body(rng: random.Random) -> bytes:
    """An 8 KB urlencoded form: a few short fields and a long free-text comment."""
    words = ["order", "delivery", "thanks", "please", "the", "invoice", "account", "item", "size", "colour"]
    head = f"name=Jane+Doe&email=jane{rng.randrange(10**6)}%40example.org&subject=Order+question&comment="
    text = "+".join(rng.choice(words) for _ in range(BODY_BYTES // 4))
    return (head + text)[:BODY_BYTES].encode()


# --- in-process measurements ---

def _latencies(call, inputs, repeat: int) -> tuple[float, float]:
    """Median over rounds of each round's (p50, p99), in microseconds, of `call(*x)` per x."""
    import numpy as np

    rounds = []
    for _ in range(repeat):
        spent = np.empty(len(inputs))
        for i, x in enumerate(inputs):
            started = time.perf_counter_ns()
            call(*x)
            spent[i] = time.perf_counter_ns() - started
        rounds.append(np.percentile(spent / 1000, [50, 99]))
    return statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds)


def _per_call(loop, n: int, repeat: int) -> float:
    """Median over rounds of loop() time / n, in microseconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        loop()
        times.append(time.perf_counter() - started)
    return statistics.median(times) / n * 1e6


def _environ(method: str, target: str, agent: str, referer: str | None, body: bytes) -> dict:
    """What gunicorn hands a WSGI app (before the copy per request)."""
    path, _, query = target.partition("?")
    environ = {"REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": query,
               "RAW_URI": target, "SERVER_NAME": "shop.example", "SERVER_PORT": "443", "SERVER_PROTOCOL": "HTTP/1.1",
               "REMOTE_ADDR": "203.0.113.7", "REMOTE_PORT": "51234", "wsgi.url_scheme": "https",
               "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
               "wsgi.errors": sys.stderr, "HTTP_HOST": "shop.example", "HTTP_USER_AGENT": agent,
               "HTTP_ACCEPT": "text/html,application/xhtml+xml", "HTTP_ACCEPT_LANGUAGE": "en-GB,en;q=0.9",
               "HTTP_ACCEPT_ENCODING": "gzip, deflate, br", "HTTP_CONNECTION": "keep-alive",
               "HTTP_COOKIE": "sid=3f9a1c0e7b2d4a6f", "CONTENT_LENGTH": str(len(body)) if body else ""}
    if referer and referer != "-":
        environ["HTTP_REFERER"] = referer
    if body:
        environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
    return environ


def _wsgi_overhead(middleware_cls, stub, cases: list, repeat: int) -> dict[str, tuple[float, float]]:
    """Per request: (bare app, middleware) in microseconds, for GET and POST 8 KB cases."""
    def app(environ, start_response):
        length = environ.get("CONTENT_LENGTH")
        if length:
            environ["wsgi.input"].read(int(length))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    def start_response(status, headers, exc_info=None):
        return None

    def run(handler, items) -> float:
        environs = [{**e, "wsgi.input": io.BytesIO(body)} for e, body in items]   # fresh copies, not timed
        started = time.perf_counter()
        for environ in environs:
            handler(environ, start_response)
        return time.perf_counter() - started

    wrapped = middleware_cls(app, stub)
    return {name: tuple(statistics.median(run(handler, items) for _ in range(repeat)) / len(items) * 1e6
                        for handler in (app, wrapped)) for name, items in cases}


def _asgi_overhead(middleware_cls, stub, cases: list, repeat: int) -> dict[str, tuple[float, float]]:
    """Per request: (bare app, middleware) in microseconds; one coroutine awaits the app n times."""
    async def app(scope, receive, send):
        if scope["method"] == "POST":
            await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def send(message):
        return None

    async def run(handler, items) -> float:
        started = time.perf_counter()
        for scope, message in items:
            async def receive(message=message):
                return message
            await handler(scope, receive, send)
        return time.perf_counter() - started

    wrapped = middleware_cls(app, stub)
    out = {}
    for name, items in cases:
        prepared = [(_scope(e), {"type": "http.request", "body": body, "more_body": False}) for e, body in items]
        out[name] = tuple(statistics.median(asyncio.run(run(handler, prepared)) for _ in range(repeat))
                          / len(prepared) * 1e6 for handler in (app, wrapped))
    return out


def _scope(environ: dict) -> dict:
    headers = [(k[5:].lower().replace("_", "-").encode(), v.encode("latin-1")) for k, v in environ.items()
               if k.startswith("HTTP_")]
    if environ.get("CONTENT_LENGTH"):
        headers += [(b"content-type", environ["CONTENT_TYPE"].encode()), (b"content-length", environ["CONTENT_LENGTH"].encode())]
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": environ["REQUEST_METHOD"],
            "scheme": "https", "path": environ["PATH_INFO"], "raw_path": environ["PATH_INFO"].encode("latin-1"),
            "query_string": environ["QUERY_STRING"].encode("latin-1"), "root_path": "", "headers": headers,
            "client": ("203.0.113.7", 51234), "server": ("shop.example", 443)}


# --- the table ---

def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    if unit == "us" and value < 1:
        value, unit = value * 1e3, "ns"
    return f"{value:.2f} {unit}" if value < 10 else f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(_child(sys.argv[2], sys.argv[3:])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=100_000)
    args = parser.parse_args()

    rows = []   # (measurement, value, unit, baseline name, baseline in the same unit)

    def row(name, value, unit, baseline_name="", baseline=None):
        rows.append((name, value, unit, baseline_name, baseline))
        print(f"  {name}: {_fmt(value, unit)}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print("training the models ...", file=sys.stderr, flush=True)
        request_model, session_model, requests = _train_models(tmp)

        # start-up and memory, each in fresh processes
        warm = str(tmp / "numba-warm")
        _run_child("load", str(request_model), "request", cache=warm)   # fill the cache
        _run_child("load", str(session_model), "session", cache=warm)

        def fresh(kind, *child_args, cache=warm) -> list[dict]:
            return [_run_child(kind, *child_args, cache=cache() if callable(cache) else cache) for _ in range(args.repeat)]

        def median(results, key="seconds", scale=1.0):
            return statistics.median(r[key] for r in results) * scale

        row("import waflens.runtime.scorer", median(fresh("import", "waflens.runtime.scorer"), scale=1e3), "ms",
            "import numba", median(fresh("import", "numba"), scale=1e3))
        warm_load = median(fresh("load", str(request_model), "request"))
        row("Scorer.load + warm-up, cache warm", warm_load * 1e3, "ms")
        cold_load = median(fresh("load", str(request_model), "request", cache=lambda: tempfile.mkdtemp(dir=tmp)))
        row("Scorer.load + warm-up, cache empty", cold_load, "s", "cache warm", warm_load)
        memory = fresh("memory", str(request_model))
        row("memory of a loaded Scorer, RSS growth", median(memory, "rss_mb"), "MB")
        row("  of which the model's arrays", median(memory, "arrays_mb"), "MB")
        row("  process RSS after import + load", median(memory, "total_mb"), "MB")

        # score_request, in this process
        from waflens.runtime.hot_swap import ModelWatcher
        from waflens.runtime.middleware import WaflensASGIMiddleware, WaflensWSGIMiddleware
        from waflens.runtime.scorer import Scorer, ScoreResult

        scorer = Scorer.load(request_model)
        rng = random.Random(0)
        gets = [r for r in requests if r[0] == "GET"]
        sample = [gets[rng.randrange(len(gets))] for _ in range(args.calls)]
        bodies = [_form_body(rng) for _ in range(16)]
        get_in = [("GET", t, {"Host": "shop.example", "User-Agent": ua, "Referer": ref}) for _, t, ua, ref, _ in sample]
        post_in = [("POST", t.partition("?")[0], {**h, "Content-Type": "application/x-www-form-urlencoded"},
                    bodies[i % len(bodies)]) for i, (_, t, h) in enumerate(get_in)]
        get = _latencies(scorer.score_request, get_in, args.repeat)
        skipped = _latencies(scorer.score_request, post_in, args.repeat)
        scorer.uses_bodies = True   # as a model trained on traffic with bodies
        post = _latencies(scorer.score_request, post_in, args.repeat)
        scorer.uses_bodies = False
        explain = _latencies(lambda *x: scorer.score_request(*x, explain=True), get_in, args.repeat)
        for q, label in ((0, "p50"), (1, "p99")):
            row(f"score_request GET, {label}", get[q], "us")
        for q, label in ((0, "p50"), (1, "p99")):
            row(f"score_request POST 8 KB body, {label}", post[q], "us", "GET", get[q])
        row("  model trained without bodies (body skipped), p50", skipped[0], "us", "GET", get[0])
        for q, label in ((0, "p50"), (1, "p99")):
            row(f"score_request explain=True, {label}", explain[q], "us", "GET", get[q])

        # hot swap: a watcher on a symlink, as published
        link = tmp / "production"
        os.symlink(request_model, link)
        n = 100_000
        idle, due = ModelWatcher(link, check_interval=3600.0), ModelWatcher(link, check_interval=0.0)
        not_due = _per_call(lambda: [idle.maybe_reload() for _ in range(n)], n, args.repeat)
        row("maybe_reload(), not due", not_due, "us")
        row("maybe_reload(), due, unchanged", _per_call(lambda: [due.maybe_reload() for _ in range(n // 10)],
                                                        n // 10, args.repeat), "us", "not due", not_due)
        assert due.reloads == 0 and idle.reloads == 0

        # middleware overhead: a stub scorer with a fixed clean result (block mode lets it through)
        class Stub:
            def score_request(self, method, target, headers=None, body=b"", client=None, ts=None):
                return ScoreResult(0.3, "clean", ())

        cases = [("GET", [(_environ("GET", t, ua, ref, b""), b"") for _, t, ua, ref, _ in sample]),
                 ("POST 8 KB", [(_environ("POST", t, h["User-Agent"], h["Referer"], body), body)
                                for _, t, h, body in post_in])]
        for label, measure, cls in (("WSGI", _wsgi_overhead, WaflensWSGIMiddleware),
                                    ("ASGI", _asgi_overhead, WaflensASGIMiddleware)):
            for case, (bare, wrapped) in measure(cls, Stub(), cases, max(args.repeat, 5)).items():
                row(f"{label} middleware overhead, {case}", wrapped - bare, "us", "bare app", bare)

        # session model, in a fresh process
        data = tmp / "requests.json"
        data.write_text(json.dumps([list(r) for r in requests]))
        sessions = _run_child("sessions", str(session_model), str(data), str(args.clients), cache=warm)
        row(f"SessionScorer memory per client ({args.clients:,} clients)", sessions["kb_per_client"], "KB")
        row("SessionScorer.score_request, p50", sessions["p50_us"], "us", "Scorer GET", get[0])
        row("SessionScorer.score_request, p99", sessions["p99_us"], "us", "Scorer GET", get[1])

    print(f"\n{'measurement':<52}{'value':>10}   {'baseline':<13}{'value':>10}{'ratio':>8}")
    for name, value, unit, base_name, base in rows:
        ratio = f"{value / base:.1f}x" if base else ""
        print(f"{name:<52}{_fmt(value, unit):>10}   {base_name:<13}{_fmt(base, unit):>10}{ratio:>8}")


if __name__ == "__main__":
    main()
