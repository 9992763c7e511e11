"""What an LLM receives holds no generated secret or IP: real ingest, clustering, evidence and the openai
provider against a local OpenAI-protocol server that records every prompt.

The traffic is ingested in lab mode (``--no-pseudonymize``: IPs stay raw in the database) and spells
some names and addresses with escapes that only URL-decoding reveals, so the prompt-side redaction
in labeling/evidence.py is tested on its own, not only through what ingest already masked.
"""

import json
import tempfile
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from waflens.clustering.run import ClusterOptions, cluster_sessions
from waflens.data.sessionize import update_derived
from waflens.labeling.evidence import build_evidence, evidence_text
from waflens.labeling.summarize import summarize_run
from tests.data.helpers import at, combined_line, fresh_db, ingest, write_log
from tests.data.hostile_inputs import Planted, ips, leaks, secrets, varchar_texts
from tests.labeling.test_openai_provider import FakeOpenAI


@pytest.fixture(scope="module")
def llm_server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()


def _encoded(ip) -> str:
    """An address as only URL-decoding shows it: its first digit (or colon) percent-encoded."""
    text = str(ip)
    return "".join(f"%{ord(c):02X}" if i == 0 else c for i, c in enumerate(text))


def _hostile_traffic(p: Planted, path: Path) -> Path:
    """Two behaviours of 16 clients each (so HDBSCAN finds clusters), every request carrying the planted values."""
    s = p.secrets
    lines = []
    for client in range(32):
        scanner = client % 2 == 0
        for k in range(6):
            when = at(client * 600 + k * (2 if scanner else 40))
            target = (f"/login?user=bob&access_token={s[0]}&pass%77ord={s[1]}&next=http://{p.url_host(1)}/"
                      f"&from={_encoded(p.ips[2])}&q=1%27%20UNION%20SELECT%20{k}--" if scanner else
                      f"/product/{k}?session_id={s[2]}&ref={p.ip(3)}&client%5Fsecret={s[3]}")
            agent = (f"sqlmap/1.8 (via {p.ip(4)}) Bearer {s[4]}" if scanner else
                     f"Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0 from {p.ip(0)} api_key={s[5]}")
            lines.append(combined_line(f"198.51.100.{client + 1}", when, f"GET {target} HTTP/1.1",
                                       status=500 if scanner else 200,
                                       referer=f"http://shop.example/?password={s[6]}&ip={p.ip(1)}", agent=agent))
    return write_log(path, lines)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(secrets, min_size=7, max_size=7, unique=True), st.lists(ips, min_size=5, max_size=5))
def test_no_secret_or_ip_reaches_the_prompt(llm_server, planted_secrets, planted_ips):
    planted = Planted(planted_secrets, planted_ips)
    needles = planted.needles() + [f"198.51.100.{i}" for i in range(10, 33)]   # client IPs, too
    FakeOpenAI.mode, FakeOpenAI.requests = "good", []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        con = fresh_db(folder)
        try:
            ingest(con, _hostile_traffic(planted, folder / "traffic.log"), pseudonymize=False)
            update_derived(con)
            run = cluster_sessions(con, ClusterOptions(min_cluster_size=5, select="all"))
            assert run.n_clusters >= 1, run.message
            packs = [build_evidence(con, run.cluster_run_id, c) for c in range(run.n_clusters)]
            assert all(pack["requests"] for pack in packs)
            assert leaks({"evidence": "\n".join(json.dumps(p) + evidence_text(p) for p in packs)}, needles) == []
            results = summarize_run(con, run.cluster_run_id, "openai", model="test-model", api_key="sk-test",
                                    base_url=f"http://127.0.0.1:{llm_server.server_address[1]}/v1")
            assert len(results) == run.n_clusters and len(FakeOpenAI.requests) >= run.n_clusters
            prompts = json.dumps([r["messages"] for r in FakeOpenAI.requests])
            assert "UNION SELECT" in prompts or "Mozilla" in prompts       # the evidence did travel
            assert leaks({"prompts": prompts}, needles) == []
            # what summarize stored (summaries, labels) holds none of it either
            stored = varchar_texts(con)
            assert leaks({k: v for k, v in stored.items() if k.split(".")[0] in
                          ("cluster_summaries", "label_events")}, needles) == []
        finally:
            con.close()
