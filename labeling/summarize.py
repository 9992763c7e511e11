"""``waflens summarize``: a proposed label for each cluster of a run, emerging clusters first.

Each cluster's evidence pack goes to the provider; the validated summary is stored
in ``cluster_summaries`` (cached by evidence hash: the same evidence is not sent
twice) and proposed as a ``suggested`` label event for the analyst to confirm,
edit or reject. A provider failure is a status on that cluster, never a crash, and
the run goes on to the next cluster; a deadline bounds the whole stage. With a remote
LLM, :func:`summarize_database` holds no database connection while the endpoint answers.

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
from typing import NamedTuple

import duckdb

from waflens.labeling.evidence import build_evidence, evidence_hash
from waflens.labeling.labels import carried_label, cluster_label, ensure_label_schema, record_label, rejected_families
from waflens.labeling.offline import OfflineSummarizer
from waflens.labeling.summary import Summary

PROVIDERS = ("offline", "openai")


def make_summarizer(provider: str, **options):
    if provider == "offline":
        return OfflineSummarizer()
    if provider == "openai":
        from waflens.labeling.openai_provider import OpenAISummarizer

        return OpenAISummarizer(**options)
    from waflens.data.errors import ConfigError

    raise ConfigError(f"unknown provider {provider!r}: use one of {', '.join(PROVIDERS)}")


class _Pending(NamedTuple):
    cluster_id: int
    pack: dict
    digest: str
    cached: Summary | None


class _Answer(NamedTuple):
    summary: Summary | None
    status: str
    tokens: int
    seconds: float


def summarize_run(con: duckdb.DuckDBPyConnection, cluster_run_id: int, provider: str = "offline",
                  deadline_s: float | None = None, **provider_options) -> list[dict]:
    """Summarize every cluster of a run on one connection (the offline provider, tests, scripts).

    With a remote LLM prefer :func:`summarize_database`: it holds no connection while the endpoint answers.
    """
    ensure_label_schema(con)
    summarizer = make_summarizer(provider, **provider_options)
    _start_deadline(summarizer, deadline_s)
    return [_record(con, cluster_run_id, summarizer, item, _ask(summarizer, item))
            for item in _pending(con, cluster_run_id, summarizer)]


def summarize_database(db_path, cluster_run_id: int, config, *, write_timeout_s: float = 120.0) -> list[dict]:
    """Summarize every cluster of a run without holding the database while the provider answers.

    The evidence is read in one short transaction; each call to the provider runs with no
    connection open; each answer is written in its own short transaction. So analysts'
    labels (and the workbench) get through while a slow endpoint thinks. ``config`` is a
    :class:`waflens.labeling.llm_config.LLMConfig`; its ``deadline_s`` bounds the whole stage.
    """
    from waflens.data.writes import write

    if config.provider == "offline":  # local and quick: one short transaction beats a connection per cluster
        return write(db_path, lambda con: summarize_run(con, cluster_run_id, "offline", config.deadline_s),
                     timeout_s=write_timeout_s)
    summarizer = make_summarizer(config.provider, **config.provider_options())
    _start_deadline(summarizer, config.deadline_s)

    def read(con):
        ensure_label_schema(con)
        return _pending(con, cluster_run_id, summarizer)

    results = []
    for item in write(db_path, read, timeout_s=write_timeout_s):
        answer = _ask(summarizer, item)
        results.append(write(db_path, lambda con: _in_transaction(
            con, lambda: _record(con, cluster_run_id, summarizer, item, answer)), timeout_s=write_timeout_s))
    return results


def _in_transaction(con, fn):
    """The summary and its proposed label land together, or neither does."""
    con.begin()
    try:
        result = fn()
    except BaseException:
        con.rollback()
        raise
    con.commit()
    return result


def _start_deadline(summarizer, deadline_s: float | None) -> None:
    if deadline_s is None:
        from waflens.labeling.llm_config import load_llm_config

        deadline_s = load_llm_config(None).deadline_s
    if hasattr(summarizer, "set_deadline"):
        summarizer.set_deadline(deadline_s)


def _pending(con, cluster_run_id: int, summarizer) -> list[_Pending]:
    """Each cluster's evidence (emerging first) and the summary already stored for the same evidence, if any."""
    clusters = con.execute(
        """SELECT cluster_id FROM cluster_profiles WHERE cluster_run_id = $r
           ORDER BY emerging DESC, last_ts DESC NULLS LAST, cluster_id""", {"r": cluster_run_id}).fetchall()
    pending = []
    for (cluster_id,) in clusters:
        pack = build_evidence(con, cluster_run_id, cluster_id)
        digest = evidence_hash(pack)
        cached = con.execute("""SELECT status, summary FROM cluster_summaries
                                WHERE evidence_hash = $h AND provider = $p AND model = $m AND summary IS NOT NULL
                                ORDER BY created_at DESC LIMIT 1""",
                             {"h": digest, "p": summarizer.name, "m": summarizer.model}).fetchall()
        pending.append(_Pending(cluster_id, pack, digest,
                                Summary.model_validate_json(cached[0][1]) if cached else None))
    return pending


def _ask(summarizer, item: _Pending) -> _Answer:
    """The provider's summary of one cluster, or the status saying why there is none (no connection needed)."""
    from waflens.labeling.openai_provider import ProviderError

    started = time.perf_counter()
    if item.cached is not None:
        return _Answer(item.cached, item.cached.status, 0, time.perf_counter() - started)
    remaining = summarizer.remaining() if hasattr(summarizer, "remaining") else None
    if remaining is not None and remaining <= 0:
        return _Answer(None, f"error: {summarizer.deadline_status()}; not asked", 0, 0.0)
    try:
        summary = summarizer.summarize(item.pack)
    except ProviderError as error:
        return _Answer(None, error.status, 0, time.perf_counter() - started)
    return _Answer(summary, summary.status, getattr(summarizer, "last_tokens", 0), time.perf_counter() - started)


def _record(con, cluster_run_id: int, summarizer, item: _Pending, answer: _Answer) -> dict:
    """Store the answer and propose its label (a failure is stored as a status, with no label)."""
    price = float(os.environ.get("WAFLENS_LLM_USD_PER_1K_TOKENS", "0") or 0)
    summary = answer.summary
    _store(con, cluster_run_id, item.cluster_id, summarizer, item.digest, answer.status,
           summary.model_dump_json() if summary is not None else None, answer.tokens,
           answer.tokens / 1000 * price, answer.seconds)
    if summary is None:
        return {"cluster_id": item.cluster_id, "family": None, "verdict": None, "confidence": None,
                "status": answer.status, "prompt_injection_detected": False, "cached": False}
    rejected = rejected_families(con, cluster_run_id, item.cluster_id)
    proposal, author = summary, f"{summarizer.name}:{summarizer.model}"
    if summary.family in rejected:
        fallback = OfflineSummarizer()
        proposal, author = _instead_of_rejected(fallback, item.pack, summary, rejected, summarizer.name), \
            f"{fallback.name}:{fallback.model}"
        # stored apart from the cache entry of the provider's own answer (that evidence hash stays its own)
        _store(con, cluster_run_id, item.cluster_id, fallback, f"{item.digest}|not:{','.join(sorted(rejected))}",
               proposal.status, proposal.model_dump_json(), 0, 0.0, 0.0)
    carried = _suggest(con, cluster_run_id, item.cluster_id, proposal, author, tuple(rejected))
    return {"cluster_id": item.cluster_id, "family": proposal.family, "verdict": proposal.verdict,
            "confidence": proposal.confidence, "status": proposal.status,
            "prompt_injection_detected": summary.prompt_injection_detected, "cached": item.cached is not None,
            "carried_over": carried,
            "rejected_proposal": summary.family if proposal is not summary else None}


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


def _store(con, run_id, cluster_id, summarizer, digest, status, summary_json, tokens, cost, seconds) -> None:
    con.execute(
        """INSERT INTO cluster_summaries VALUES ($r, $c, $p, $m, $h, $status, $summary, $tokens, $cost, $s, $at)""",
        {"r": run_id, "c": cluster_id, "p": summarizer.name, "m": summarizer.model, "h": digest, "status": status,
         "summary": summary_json, "tokens": tokens, "cost": cost, "s": seconds,
         "at": datetime.now(timezone.utc).replace(tzinfo=None)})
