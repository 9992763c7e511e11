"""Evidence packs: what a summarizer (offline or LLM) may see of a cluster.

The cluster's profile plus a bounded, deterministic sample of its requests, decoded
and truncated, with secrets and personal data masked. Ingest already tokenized IPs and
masked secrets (data/redaction.py); every text that goes into the pack passes the same
redaction again, after URL-decoding, with any address left (data ingested with
--no-pseudonymize, or spelled with escapes only decoding reveals) replaced by a marker,
and e-mail addresses masked too. The pack is cut to a character budget, exemplars last.

``family_evidence`` counts what the requests carry, per attack family, over a sample of up
to ``FAMILY_SESSIONS`` member sessions (not only the exemplars): each request's family by
signatures (labeling/signatures.py), each session's family by the majority of its attack
requests (``SESSION_MAJORITY``; a session probing several families with none in the majority,
or sensitive paths, is ``scanner``: that is what scanners do). A few requests of each family
lead the pack's ``requests``, so summaries can quote them and analysts see them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from importlib import resources

import duckdb

from waflens.data.redaction import IP_MARKER, Redactor
from waflens.labeling.signatures import SCANNER_PATHS, request_family

EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,255}\.[A-Za-z]{2,24}")
_PROMPT_REDACTOR = Redactor(ip_marker=IP_MARKER)
MAX_REQUEST_CHARS = 300
MAX_EXAMPLE_CHARS = 220
DEFAULT_BUDGET = 8000
FAMILY_SESSIONS = 400            # sessions sampled per cluster: a share within ~5 points, in ~0.1 s
FAMILY_REQUESTS_PER_SESSION = 12
SESSION_MAJORITY = 0.6           # a session is of the family most of its attack requests carry
EXAMPLES_PER_FAMILY = 2
MAX_FAMILIES_SHOWN = 6
_FAMILY_SQL = resources.files("waflens.labeling").joinpath("sql", "family_evidence.sql").read_text(encoding="utf-8")


def redact(text: str) -> str:
    """Text for a prompt: secrets masked, addresses and e-mail addresses replaced by markers."""
    return EMAIL.sub("[email]", _PROMPT_REDACTOR.redact(text))


def _request_line(method, path, query, status, agent, body: str = "", limit: int = MAX_REQUEST_CHARS) -> str:
    line = f"{method or '-'} {path}{'?' + query if query else ''} -> {status if status is not None else '-'} | UA: {agent}"
    return redact(line + (f" | body: {body}" if body else ""))[:limit]


def family_evidence(con: duckdb.DuckDBPyConnection, cluster_run_id: int, cluster_id: int) -> tuple[dict, list[str]]:
    """Per-family counts of the cluster's sampled sessions and requests, and a few example request lines."""
    rows = con.execute(_FAMILY_SQL, {"run": cluster_run_id, "cluster": cluster_id, "max_sessions": FAMILY_SESSIONS,
                                     "per_session": FAMILY_REQUESTS_PER_SESSION}).fetchall()
    requests: dict[int, Counter] = defaultdict(Counter)
    probes: dict[int, set] = defaultdict(set)
    examples: dict[str, list[str]] = defaultdict(list)
    for session, method, path, query, body, agent, referer, status in rows:
        target = f"{path}?{query}" if query else path
        family = request_family(target, body, f"{agent} {referer}")
        if family is None:
            probed = [p for p in SCANNER_PATHS if p in path.lower()]
            if not probed:
                continue
            probes[session].update(probed)
            family = "scanner"
        requests[session][family] += 1
        if len(examples[family]) < EXAMPLES_PER_FAMILY:
            examples[family].append(_request_line(method, path, query, status, agent or "-", body, MAX_EXAMPLE_CHARS))
    sessions: Counter = Counter()
    request_counts: Counter = Counter()
    for session, counts in requests.items():
        if counts.get("scanner") and len(probes[session]) < 2:   # one admin page is not a probe
            del counts["scanner"]
        if not counts:
            continue
        request_counts.update(counts)
        family, n = counts.most_common(1)[0]
        sessions[family if n / sum(counts.values()) >= SESSION_MAJORITY else "scanner"] += 1
    scanned = len({row[0] for row in rows})
    # families that lead sessions first, then those only seen inside scanners' mixed sessions
    shown = sorted(set(request_counts) | set(sessions), key=lambda f: (-sessions[f], -request_counts[f], f))[:MAX_FAMILIES_SHOWN]
    lines = list(dict.fromkeys(line for f in shown for line in examples[f]))
    evidence = {"sessions_scanned": scanned, "sessions_with_payloads": sum(sessions.values()),
                "families": [{"family": f, "sessions": sessions[f], "requests": request_counts[f],
                              "example_requests": [lines.index(x) for x in dict.fromkeys(examples[f])]}
                             for f in shown]}
    return evidence, lines


def build_evidence(con: duckdb.DuckDBPyConnection, cluster_run_id: int, cluster_id: int,
                   budget: int = DEFAULT_BUDGET, sample: int = 24) -> dict:
    found = con.execute("SELECT profile FROM cluster_profiles WHERE cluster_run_id = $r AND cluster_id = $c",
                        {"r": cluster_run_id, "c": cluster_id}).fetchall()
    if not found:
        raise LookupError(f"cluster {cluster_id} of run {cluster_run_id} has no profile")
    profile = json.loads(found[0][0])
    rows = con.execute(
        """SELECT r.method, r.path_decoded, r.query_decoded, r.status, coalesce(r.user_agent, '-')
           FROM session_clusters c JOIN requests r USING (session_id)
           WHERE c.cluster_run_id = $r AND c.cluster_id = $c
           ORDER BY hash(r.request_id), r.request_id LIMIT $n""",
        {"r": cluster_run_id, "c": cluster_id, "n": sample}).fetchall()
    families, examples = family_evidence(con, cluster_run_id, cluster_id)
    requests = list(dict.fromkeys(examples + [_request_line(m, p, q, s, ua) for m, p, q, s, ua in rows]))
    pack = {
        "cluster": {"run": cluster_run_id, "id": cluster_id, "sessions": profile["n_sessions"],
                    "clients": profile["n_clients"], "requests": profile["n_requests"],
                    "first_seen": profile["first_ts"], "last_seen": profile["last_ts"]},
        "family_evidence": families,
        "top_paths": [[redact(p), n] for p, n in profile["top_paths"]],
        "top_parameters": [[redact(p), n] for p, n in profile["top_params"]],
        "top_user_agents": [[redact(u)[:200], n] for u, n in profile["top_user_agents"]],
        "statuses": profile["statuses"],
        "distinguishing_features": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in f.items()}
                                    for f in profile["distinguishing_features"]],
        "requests": requests,
    }
    while len(json.dumps(pack, ensure_ascii=False)) > budget and pack["requests"]:
        pack["requests"].pop()       # the sampled requests go first; each family's examples lead the list
    for family in families["families"]:
        family["example_requests"] = [i for i in family["example_requests"] if i < len(pack["requests"])]
    return pack


def evidence_text(pack: dict) -> str:
    """The flat text indicators must quote from (requests, paths, agents)."""
    parts = list(pack["requests"]) + [p for p, _ in pack["top_paths"]] + [u for u, _ in pack["top_user_agents"]]
    return "\n".join(parts)


def evidence_hash(pack: dict) -> str:
    return hashlib.sha256(json.dumps(pack, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()
