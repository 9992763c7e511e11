"""``waflens score``: score log files with an exported model, without a database file.

Files are parsed by the same ingest code (into an in-memory DuckDB, raw client
identifiers never written anywhere) and every parsed record — or, at session
level, every session — is scored by the runtime, so batch and live scores are
the same numbers.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from waflens.data.db import connect
from waflens.data.errors import WaflensError
from waflens.data.feature_spec import feature_names
from waflens.data.ingest import IngestOptions, ingest_file
from waflens.data.pseudonymize import Pseudonymizer
from waflens.data.sessionize import update_derived
from waflens.runtime.scorer import Scorer, SessionScorer


def score_files(files: list[Path], model_dir: Path, output: Path, *, options: IngestOptions | None = None,
                pseudonymizer: Pseudonymizer | None = None, level: str = "request",
                gap_minutes: float = 30.0) -> dict:
    """Write one CSV row per parsed record (request level) or per session (session level)."""
    options = options or IngestOptions()
    pseudonymizer = pseudonymizer or Pseudonymizer(None)
    scorer = (Scorer if level == "request" else SessionScorer).load(model_dir)
    con = connect(":memory:")
    sources, per_file = [], []
    for path in files:
        summary = ingest_file(con, path, options, pseudonymizer)
        if summary.status != "ingested":
            raise WaflensError(f"{path} was given twice (same content as an earlier file)")
        sources.append((summary.source_id, str(path)))
        per_file.append({"path": str(path), "records": summary.records, "parsed": summary.parsed,
                         "unparsed": summary.quarantined})
    with open(output, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if level == "request":
            writer.writerow(["file", "record", "score"])
            scored = _score_requests(con, scorer, sources, writer)
        else:
            update_derived(con, gap_minutes)
            writer.writerow(["file", "client", "first_record", "last_record", "requests", "score"]
                            + (["bot_score", "reasons"] if scorer.has_bot_score else []))
            scored = _score_sessions(con, scorer, sources, writer)
    return {"files": per_file, "level": level, "scored": scored,
            "unparsed": sum(f["unparsed"] for f in per_file), "output": str(output)}


def _score_requests(con, scorer: Scorer, sources, writer) -> int:
    scored = 0
    for source_id, path in sources:
        rows = con.execute("""SELECT record, method, path, query, body, user_agent, referer FROM requests
                              WHERE source_id = $s ORDER BY record""", {"s": source_id}).fetchall()
        for record, method, path_, query, body, agent, referer in rows:
            target = path_ + ("?" + query if query else "")
            result = scorer.score_request(method, target, {"User-Agent": agent, "Referer": referer}, body or "")
            writer.writerow([path, record, repr(result.score)])
        scored += len(rows)
    return scored


def _score_sessions(con, scorer: SessionScorer, sources, writer) -> int:
    names = feature_names("session")
    rows = con.execute(
        f"""SELECT first.source_id, s.client_key, first.record, last.record, s.n_requests, {", ".join("f." + n for n in names)}
            FROM sessions s JOIN session_features f USING (session_id)
            JOIN requests first ON first.request_id = s.first_request_id
            JOIN requests last ON last.request_id = s.last_request_id
            ORDER BY first.source_id, first.record""").fetchall()
    paths = dict(sources)
    bots = scorer.bot_scores(np.array([r[5:] for r in rows], dtype=np.float64)) if scorer.has_bot_score and rows \
        else None
    for i, (source_id, client, first, last, n, *features) in enumerate(rows):
        extra = [] if bots is None else [int(bots[i]), "; ".join(scorer.bot_reasons(np.array(features, np.float64)))]
        writer.writerow([paths[source_id], client, first, last, n, repr(scorer.score_features(features))] + extra)
    return len(rows)
