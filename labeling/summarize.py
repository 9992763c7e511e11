"""``waflens summarize``: a proposed label for each cluster of a run, emerging clusters first.

Each cluster's evidence pack goes to the provider; the validated summary is stored
in ``cluster_summaries`` (cached by evidence hash: the same evidence is not sent
twice) and proposed as a ``suggested`` label event for the analyst to confirm,
edit or reject. A provider failure is a status on that cluster, never a crash.

What analysts decided about a cluster's sessions in earlier runs comes first: a
cluster whose sessions are all decided gets no suggestion (it shows their label),
one with some decided sessions is proposed their label ("carried over"), and a
family analysts rejected for its sessions is never proposed again for it: the
offline summarizer's next choice is proposed instead, saying why.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone

import duckdb

from labeling.evidence import build_evidence, evidence_hash
from labeling.labels import carried_label, cluster_label, ensure_label_schema, record_label, rejected_families
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
        rejected = rejected_families(con, cluster_run_id, cluster_id)
        proposal, author = summary, f"{summarizer.name}:{summarizer.model}"
        if summary.family in rejected:
            fallback = OfflineSummarizer()
            proposal, author = _instead_of_rejected(fallback, pack, summary, rejected, summarizer.name), \
                f"{fallback.name}:{fallback.model}"
            # stored apart from the cache entry of the provider's own answer (that evidence hash stays its own)
            _store(con, cluster_run_id, cluster_id, fallback, f"{digest}|not:{','.join(sorted(rejected))}",
                   proposal.status, proposal.model_dump_json(), 0, 0.0, started)
        carried = _suggest(con, cluster_run_id, cluster_id, proposal, author, tuple(rejected))
        results.append({"cluster_id": cluster_id, "family": proposal.family, "verdict": proposal.verdict,
                        "confidence": proposal.confidence, "status": proposal.status,
                        "prompt_injection_detected": summary.prompt_injection_detected, "cached": bool(cached),
                        "carried_over": carried,
                        "rejected_proposal": summary.family if proposal is not summary else None})
    return results


def _instead_of_rejected(fallback: OfflineSummarizer, pack: dict, summary: Summary, rejected: dict[str, dict],
                         provider: str) -> Summary:
    """The offline summarizer's best family other than the rejected ones, saying what it replaces and why."""
    alternative = fallback.summarize(pack, exclude=frozenset(rejected))
    who = rejected[summary.family]
    when = f", {who['rejected_at']:%Y-%m-%d %H:%M} UTC" if who.get("rejected_at") else ""
    why = (f"Not {summary.family}: {who['analyst']} rejected it for {who['sessions']} of these sessions (cluster "
           f"{who['cluster_id']} of run {who['cluster_run_id']}{when}). The {provider} summarizer proposed it "
           f"again; this is the offline summarizer's next choice. ")
    return alternative.model_copy(update={"summary": why + alternative.summary})


def _suggest(con, run_id: int, cluster_id: int, summary: Summary, author: str,
             rejected: tuple[str, ...] = ()) -> dict | None:
    """Propose the summary's label, then the label the cluster's decided sessions carry, if some do.

    An analyst's decision on this cluster is never buried under a new suggestion, a
    cluster whose sessions are all decided needs none, and a rerun does not repeat a
    suggestion that is already current. The carried-over label goes last so it is the
    one shown: an analyst's judgement of these sessions outranks the machine's today.
    Returns where the analysts' label came from, if anything.
    """
    current = con.execute("""SELECT source, family, verdict FROM current_labels
                             WHERE cluster_run_id = $r AND cluster_id = $c""", {"r": run_id, "c": cluster_id}).fetchall()
    if current and current[0][0] != "suggested":
        return None
    state = cluster_label(con, run_id, cluster_id)
    if state and state["reviewed"]:
        return {"run": state["decided_run_id"], "cluster": state["decided_cluster_id"], "sessions": state["n_decided"],
                "of": state["n_members"], "reviewed": True}
    carried = carried_label(con, run_id, cluster_id, exclude=rejected)
    proposals = [(summary.family, summary.verdict, author, summary.title)]
    origin = None
    if carried:
        origin = {"run": carried["cluster_run_id"], "cluster": carried["cluster_id"], "sessions": carried["sessions"],
                  "of": state["n_members"] if state else None, "reviewed": False}
        proposals.append((carried["family"], carried["verdict"], f"carried-over:{carried['analyst']}",
                          f"carried over from cluster {carried['cluster_id']} of run {carried['cluster_run_id']} "
                          f"({carried['sessions']} of these sessions)" + (f": {carried['note']}" if carried["note"]
                                                                          else "")))
    if current and current[0][1:] == proposals[-1][:2]:
        return origin
    for family, verdict, analyst, note in proposals:
        record_label(con, run_id, cluster_id, family=family, verdict=verdict, source="suggested", analyst=analyst,
                     note=note)
    return origin


def _store(con, run_id, cluster_id, summarizer, digest, status, summary_json, tokens, cost, started) -> None:
    con.execute(
        """INSERT INTO cluster_summaries VALUES ($r, $c, $p, $m, $h, $status, $summary, $tokens, $cost, $s, $at)""",
        {"r": run_id, "c": cluster_id, "p": summarizer.name, "m": summarizer.model, "h": digest, "status": status,
         "summary": summary_json, "tokens": tokens, "cost": cost, "s": time.perf_counter() - started,
         "at": datetime.now(timezone.utc).replace(tzinfo=None)})
