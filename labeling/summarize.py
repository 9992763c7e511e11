"""``waflens summarize``: a proposed label for each cluster of a run, emerging clusters first.

Each cluster's evidence pack goes to the provider; the validated summary is stored
in ``cluster_summaries`` (cached by evidence hash: the same evidence is not sent
twice) and proposed as a ``suggested`` label event for the analyst to confirm,
edit or reject. A provider failure is a status on that cluster, never a crash.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone

import duckdb

from labeling.evidence import build_evidence, evidence_hash
from labeling.labels import ensure_label_schema, record_label
from labeling.offline import OfflineSummarizer
from labeling.summary import Summary

PROVIDERS = ("offline", "openai")


def make_summarizer(provider: str, **options):
    if provider == "offline":
        return OfflineSummarizer()
    if provider == "openai":
        from labeling.openai_provider import OpenAISummarizer

        return OpenAISummarizer(**options)
    from data.errors import ConfigError

    raise ConfigError(f"unknown provider {provider!r}: use one of {', '.join(PROVIDERS)}")


def summarize_run(con: duckdb.DuckDBPyConnection, cluster_run_id: int, provider: str = "offline",
                  **provider_options) -> list[dict]:
    from labeling.openai_provider import ProviderError

    ensure_label_schema(con)
    summarizer = make_summarizer(provider, **provider_options)
    price = float(os.environ.get("WAFLENS_LLM_USD_PER_1K_TOKENS", "0") or 0)
    clusters = con.execute(
        """SELECT cluster_id FROM cluster_profiles WHERE cluster_run_id = $r
           ORDER BY emerging DESC, last_ts DESC NULLS LAST, cluster_id""", {"r": cluster_run_id}).fetchall()
    results = []
    for (cluster_id,) in clusters:
        started = time.perf_counter()
        pack = build_evidence(con, cluster_run_id, cluster_id)
        digest = evidence_hash(pack)
        cached = con.execute("""SELECT status, summary FROM cluster_summaries
                                WHERE evidence_hash = $h AND provider = $p AND model = $m AND summary IS NOT NULL
                                ORDER BY created_at DESC LIMIT 1""",
                             {"h": digest, "p": summarizer.name, "m": summarizer.model}).fetchall()
        tokens = 0
        if cached:
            summary = Summary.model_validate_json(cached[0][1])
        else:
            try:
                summary = summarizer.summarize(pack)
                tokens = getattr(summarizer, "last_tokens", 0)
            except ProviderError as error:
                _store(con, cluster_run_id, cluster_id, summarizer, digest, error.status, None, 0, 0.0, started)
                results.append({"cluster_id": cluster_id, "family": None, "verdict": None, "confidence": None,
                                "status": error.status, "prompt_injection_detected": False, "cached": False})
                continue
        _store(con, cluster_run_id, cluster_id, summarizer, digest, summary.status, summary.model_dump_json(),
               tokens, tokens / 1000 * price, started)
        carried = _suggest(con, cluster_run_id, cluster_id, summary, f"{summarizer.name}:{summarizer.model}")
        results.append({"cluster_id": cluster_id, "family": summary.family, "verdict": summary.verdict,
                        "confidence": summary.confidence, "status": summary.status,
                        "prompt_injection_detected": summary.prompt_injection_detected, "cached": bool(cached),
                        "carried_over": carried})
    return results


def _suggest(con, run_id: int, cluster_id: int, summary: Summary, author: str) -> dict | None:
    """Propose the summary's label, then the predecessor cluster's analyst label if it has one.

    An analyst's decision on this cluster is never buried under a new suggestion, and
    a rerun does not repeat a suggestion that is already current. The carried-over
    label goes last so it is the one shown: an analyst's judgement of the same
    pattern yesterday outranks the machine's today. Returns what was carried, if anything.
    """
    current = con.execute("""SELECT source, family, verdict FROM current_labels
                             WHERE cluster_run_id = $r AND cluster_id = $c""", {"r": run_id, "c": cluster_id}).fetchall()
    if current and current[0][0] != "suggested":
        return None
    carried = con.execute(
        """SELECT l.family, l.verdict, l.analyst, l.note, p.predecessor_run_id, p.predecessor_id
           FROM cluster_profiles p JOIN current_labels l
             ON l.cluster_run_id = p.predecessor_run_id AND l.cluster_id = p.predecessor_id
           WHERE p.cluster_run_id = $r AND p.cluster_id = $c AND l.source IN ('confirmed', 'edited')""",
        {"r": run_id, "c": cluster_id}).fetchall()
    proposals = [(summary.family, summary.verdict, author, summary.title)]
    if carried:
        family, verdict, analyst, note, prev_run, prev_cluster = carried[0]
        proposals.append((family, verdict, f"carried-over:{analyst}",
                          f"carried over from cluster {prev_cluster} of run {prev_run}" + (f": {note}" if note else "")))
    if current and current[0][1:] == proposals[-1][:2]:
        return None if not carried else {"run": carried[0][4], "cluster": carried[0][5]}
    for family, verdict, analyst, note in proposals:
        record_label(con, run_id, cluster_id, family=family, verdict=verdict, source="suggested", analyst=analyst,
                     note=note)
    return {"run": carried[0][4], "cluster": carried[0][5]} if carried else None


def _store(con, run_id, cluster_id, summarizer, digest, status, summary_json, tokens, cost, started) -> None:
    con.execute(
        """INSERT INTO cluster_summaries VALUES ($r, $c, $p, $m, $h, $status, $summary, $tokens, $cost, $s, $at)""",
        {"r": run_id, "c": cluster_id, "p": summarizer.name, "m": summarizer.model, "h": digest, "status": status,
         "summary": summary_json, "tokens": tokens, "cost": cost, "s": time.perf_counter() - started,
         "at": datetime.now(timezone.utc).replace(tzinfo=None)})
