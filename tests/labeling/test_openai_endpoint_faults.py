"""An OpenAI-compatible endpoint that misbehaves, served for real on 127.0.0.1: an HTML page with status
200, an answer that never comes, a 50 MB answer, and a slow one while an analyst labels."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest

from tests.labeling.test_openai_provider import GOOD

REPO = Path(__file__).resolve().parents[2]
BIG = 50 * 1024 * 1024


class Endpoint(BaseHTTPRequestHandler):
    mode = "good"
    delay = 0.0
    requests: list = []
    release = threading.Event()

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append((time.monotonic(), body, dict(self.headers)))
        try:
            if self.mode == "hang":
                self.release.wait(120)
                return
            if self.delay:
                time.sleep(self.delay)
            if self.mode == "html":
                page = b"<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
                return
            if self.mode == "huge":  # a valid chat completion whose summary is 50 MB, length not announced
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                head = json.dumps(_completion(body, {**GOOD, "summary": "@@"}))
                before, after = head.split("@@")
                self.wfile.write(before.encode())
                block = b"A" * (1024 * 1024)
                for _ in range(BIG // len(block)):
                    self.wfile.write(block)
                self.wfile.write(after.encode())
                return
            data = json.dumps(_completion(body, GOOD)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up, as it should
            pass


def _completion(request: dict, summary: dict) -> dict:
    """A chat completion whose message content is ``summary``, whether asked for a tool call or JSON."""
    content = json.dumps(summary)
    message = {"role": "assistant", "content": content}
    if request.get("tools"):
        name = request["tools"][0]["function"]["name"]
        message = {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": name, "arguments": content}}]}
    return {"id": "x", "object": "chat.completion", "created": 0, "model": request["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}}


@pytest.fixture()
def endpoint():
    Endpoint.requests, Endpoint.mode, Endpoint.delay = [], "good", 0.0
    Endpoint.release = threading.Event()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    Endpoint.release.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def clustered_template(tmp_path_factory) -> Path:
    """A small database with one cluster run (a few clusters), built once."""
    from waflens.clustering.run import ClusterOptions, cluster_sessions
    from tests.data.helpers import generated_db

    root = tmp_path_factory.mktemp("llm-faults")
    con = generated_db(root, 4000, seed=5).con
    run = cluster_sessions(con, ClusterOptions(min_cluster_size=8))
    con.close()
    assert run.n_clusters >= 3
    return root


@pytest.fixture()
def db(clustered_template, tmp_path, monkeypatch) -> Path:
    root = tmp_path / "db"
    shutil.copytree(clustered_template, root)
    for name in ("WAFLENS_LLM_DEADLINE", "WAFLENS_LLM_MAX_ANSWER_BYTES", "WAFLENS_LLM_CONFIG", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", "0123456789abcdef" * 2)
    return root / "test.duckdb"


def _summarize(db: Path, endpoint: str, **options):
    from waflens.labeling.labels import latest_run
    from waflens.labeling.summarize import summarize_run

    con = duckdb.connect(str(db))
    try:
        con.execute("SET TimeZone = 'UTC'")
        run = latest_run(con)
        n_clusters = con.execute("SELECT count(*) FROM cluster_profiles WHERE cluster_run_id = $r",
                                 {"r": run}).fetchall()[0][0]
        results = summarize_run(con, run, "openai", model="test-model", base_url=endpoint, api_key="sk-test",
                                **options)
        stored = con.execute("SELECT status, summary FROM cluster_summaries WHERE cluster_run_id = $r",
                             {"r": run}).fetchall()
    finally:
        con.close()
    return n_clusters, results, stored


def test_html_answer_is_an_error_on_its_cluster_and_the_run_goes_on(db, endpoint):
    Endpoint.mode = "html"
    n_clusters, results, stored = _summarize(db, endpoint, max_retries=0)
    assert len(results) == n_clusters and len(stored) == n_clusters       # every cluster was tried
    assert {r["status"] for r in results} == {"error: answer is not JSON (text/html)"}
    assert all(summary is None for _, summary in stored)
    assert len(Endpoint.requests) == n_clusters                            # not retried


def test_answer_over_the_size_cap_is_refused_not_stored(db, endpoint, monkeypatch):
    Endpoint.mode = "huge"
    monkeypatch.setenv("WAFLENS_LLM_MAX_ANSWER_BYTES", "100000")
    n_clusters, results, stored = _summarize(db, endpoint, max_retries=0, timeout=20)
    assert len(results) == n_clusters
    assert all(r["status"].startswith("error: answer too large") for r in results), results
    assert all(summary is None for _, summary in stored)


def test_hanging_endpoint_is_bounded_by_the_stage_deadline(db, endpoint, monkeypatch):
    Endpoint.mode = "hang"
    monkeypatch.setenv("WAFLENS_LLM_DEADLINE", "3")
    started = time.monotonic()
    n_clusters, results, _ = _summarize(db, endpoint, timeout=2, max_retries=1)
    took = time.monotonic() - started
    assert took < 3 + 4, f"the stage took {took:.1f} s with a 3 s deadline"   # 4 s for backoff and writes
    assert len(results) == n_clusters
    statuses = [r["status"] for r in results]
    assert all(s.startswith("error:") for s in statuses)
    assert sum("not asked" in s for s in statuses) >= n_clusters - 2, statuses


def test_llm_config_reads_the_operators_file_only_when_it_is_private(tmp_path, monkeypatch):
    from waflens.data.errors import ConfigError
    from waflens.labeling.llm_config import load_llm_config

    for name in ("WAFLENS_LLM_PROVIDER", "WAFLENS_LLM_MODEL", "OPENAI_BASE_URL", "OPENAI_API_KEY",
                 "WAFLENS_LLM_DEADLINE", "WAFLENS_LLM_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    db = tmp_path / "w.duckdb"
    assert load_llm_config(db).provider == "offline"                     # no file: defaults
    path = tmp_path / "w.duckdb.llm.toml"
    path.write_text('provider = "openai"\nbase_url = "http://127.0.0.1:11434/v1"\napi_key = "sk-file"\n'
                    "deadline_s = 120\n")
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_llm_config(db)
    path.chmod(0o600)
    config = load_llm_config(db)
    assert (config.provider, config.base_url, config.api_key, config.deadline_s) == \
        ("openai", "http://127.0.0.1:11434/v1", "sk-file", 120.0)
    assert "sk-file" not in repr(config)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")       # the environment wins over the file
    assert load_llm_config(db).base_url == "http://127.0.0.1:9/v1"
    path.write_text('provider = "openai"\nbase_urll = "http://x"\n')
    with pytest.raises(ConfigError, match="unknown setting 'base_urll'"):
        load_llm_config(db)
    monkeypatch.setenv("WAFLENS_LLM_DEADLINE", "soon")
    path.write_text("")
    with pytest.raises(ConfigError, match="WAFLENS_LLM_DEADLINE"):
        load_llm_config(db)


def _cli(db: Path, *args: str, env: dict, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "waflens.app.cli", "--db", str(db), *args], cwd=db.parent, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_slow_endpoint_during_retrain_does_not_lock_analysts_out(db, endpoint):
    """A cron retrain summarizes with an endpoint that takes 2 s an answer; meanwhile `waflens label` gets in."""
    Endpoint.delay = 2.0
    env = {**os.environ, "PYTHONPATH": str(REPO), "WAFLENS_LLM_PROVIDER": "openai", "WAFLENS_LLM_MODEL": "test-model",
           "OPENAI_BASE_URL": endpoint, "OPENAI_API_KEY": "sk-test", "WAFLENS_BUSY_WAIT": "3"}
    retrain = _cli(db, "--json", "retrain", "--force", "--trees", "10", "--models", str(db.parent / "models"),
                   env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(Endpoint.requests) < 2:                     # the summarize stage is under way
            assert retrain.poll() is None, retrain.communicate()
            assert time.monotonic() < deadline, "retrain never reached the LLM"
            time.sleep(0.1)
        started = time.monotonic()
        label = _cli(db, "label", "0", "--run", "1", "--verdict", "malicious", "--family", "sqli",
                     "--analyst", "ana", env=env)
        out, err = label.communicate(timeout=60)
        assert label.returncode == 0, err
        assert time.monotonic() - started < 15
        assert retrain.poll() is None                         # ... while the LLM stage was still running
    finally:
        retrain.kill()
        retrain.communicate()
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM label_events WHERE analyst = 'ana'").fetchall() == [(1,)]
    con.close()
