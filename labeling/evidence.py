"""Evidence packs: what a summarizer (offline or LLM) may see of a cluster.

The cluster's profile plus a bounded, deterministic sample of its requests, decoded
and truncated, with secrets and personal data masked. Ingest already tokenized IPs and
masked secrets (data/redaction.py); every text that goes into the pack passes the same
redaction again, after URL-decoding, with any address left (data ingested with
--no-pseudonymize, or spelled with escapes only decoding reveals) replaced by a marker,
and e-mail addresses masked too. The pack is cut to a character budget, exemplars last.
"""

from __future__ import annotations

import hashlib
import json
import re

import duckdb

from data.redaction import IP_MARKER, Redactor

EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,255}\.[A-Za-z]{2,24}")
_PROMPT_REDACTOR = Redactor(ip_marker=IP_MARKER)
MAX_REQUEST_CHARS = 300
DEFAULT_BUDGET = 6000


def redact(text: str) -> str:
    """Text for a prompt: secrets masked, addresses and e-mail addresses replaced by markers."""
    return EMAIL.sub("[email]", _PROMPT_REDACTOR.redact(text))


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
    requests = [redact(f"{m or '-'} {p}{'?' + q if q else ''} -> {s if s is not None else '-'} | UA: {ua}")[:MAX_REQUEST_CHARS]
                for m, p, q, s, ua in rows]
    pack = {
        "cluster": {"run": cluster_run_id, "id": cluster_id, "sessions": profile["n_sessions"],
                    "clients": profile["n_clients"], "requests": profile["n_requests"],
                    "first_seen": profile["first_ts"], "last_seen": profile["last_ts"]},
        "top_paths": [[redact(p), n] for p, n in profile["top_paths"]],
        "top_parameters": [[redact(p), n] for p, n in profile["top_params"]],
        "top_user_agents": [[redact(u)[:200], n] for u, n in profile["top_user_agents"]],
        "statuses": profile["statuses"],
        "distinguishing_features": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in f.items()}
                                    for f in profile["distinguishing_features"]],
        "requests": requests,
    }
    while len(json.dumps(pack, ensure_ascii=False)) > budget and pack["requests"]:
        pack["requests"].pop()
    return pack


def evidence_text(pack: dict) -> str:
    """The flat text indicators must quote from (requests, paths, agents)."""
    parts = list(pack["requests"]) + [p for p, _ in pack["top_paths"]] + [u for u, _ in pack["top_user_agents"]]
    return "\n".join(parts)


def evidence_hash(pack: dict) -> str:
    return hashlib.sha256(json.dumps(pack, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()
