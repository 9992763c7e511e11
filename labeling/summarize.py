"""``waflens summarize``: a proposed label for each cluster of a run, emerging clusters first.

Each cluster's evidence pack goes to the provider; the validated summary is stored
in ``cluster_summaries`` (cached by evidence hash: the same evidence is not sent
twice) and proposed as a ``suggested`` label event for the analyst to confirm,
edit or reject. A provider failure is a status on that cluster, never a crash.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import duckdb

from labeling.evidence import build_evidence, evidence_hash
from labeling.labels import ensure_label_schema, record_label
from labeling.offline import OfflineSummarizer

PROVIDERS = {"offline": OfflineSummarizer}


def summarize_run(con: duckdb.DuckDBPyConnection, cluster_run_id: int, provider: str = "offline") -> list[dict]:
    if provider not in PROVIDERS:
        from data.errors import ConfigError

        raise ConfigError(f"unknown provider {provider!r}: use one of {', '.join(PROVIDERS)}")
    ensure_label_schema(con)
    summarizer = PROVIDERS[provider]()
    clusters = con.execute(
        """SELECT cluster_id FROM cluster_profiles WHERE cluster_run_id = $r
           ORDER BY emerging DESC, last_ts DESC NULLS LAST, cluster_id""", {"r": cluster_run_id}).fetchall()
    results = []
    for (cluster_id,) in clusters:
        started = time.perf_counter()
        pack = build_evidence(con, cluster_run_id, cluster_id)
        digest = evidence_hash(pack)
        cached = con.execute("""SELECT status, summary FROM cluster_summaries
                                WHERE evidence_hash = $h AND provider = $p AND model = $m AND status <> 'error'
                                ORDER BY created_at DESC LIMIT 1""",
                             {"h": digest, "p": summarizer.name, "m": summarizer.model}).fetchall()
        if cached:
            from labeling.summary import Summary

            summary = Summary.model_validate_json(cached[0][1])
        else:
            summary = summarizer.summarize(pack)
        con.execute(
            """INSERT INTO cluster_summaries VALUES ($r, $c, $p, $m, $h, $status, $summary, 0, 0.0, $s, $at)""",
            {"r": cluster_run_id, "c": cluster_id, "p": summarizer.name, "m": summarizer.model, "h": digest,
             "status": summary.status, "summary": summary.model_dump_json(), "s": time.perf_counter() - started,
             "at": datetime.now(timezone.utc).replace(tzinfo=None)})
        record_label(con, cluster_run_id, cluster_id, family=summary.family, verdict=summary.verdict,
                     source="suggested", analyst=f"{summarizer.name}:{summarizer.model}",
                     note=summary.title)
        results.append({"cluster_id": cluster_id, "family": summary.family, "verdict": summary.verdict,
                        "confidence": summary.confidence, "status": summary.status,
                        "prompt_injection_detected": summary.prompt_injection_detected, "cached": bool(cached)})
    return results
