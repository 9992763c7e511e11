"""``waflens score``: score log files with an exported model, without a database file.

Files are parsed by the same ingest code (into an in-memory DuckDB, raw client
identifiers never written anywhere) and every parsed record is scored by the
runtime, so batch and live scores are the same numbers.
"""

from __future__ import annotations

import csv
from pathlib import Path

from data.db import connect
from data.errors import WaflensError
from data.ingest import IngestOptions, ingest_file
from data.pseudonymize import Pseudonymizer
from scoring.runtime import Scorer


def score_files(files: list[Path], model_dir: Path, output: Path, *, fmt: str = "auto",
                log_format: str | None = None) -> dict:
    scorer = Scorer.load(model_dir)
    con = connect(":memory:")
    scored = unparsed = 0
    per_file = []
    with open(output, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "record", "score"])
        for path in files:
            summary = ingest_file(con, path, IngestOptions(format=fmt, log_format=log_format), Pseudonymizer(None))
            if summary.status != "ingested":  # the same bytes given twice: score them again
                raise WaflensError(f"{path} was given twice (same content as an earlier file)")
            rows = con.execute(
                """SELECT record, method, path, query, body, user_agent, referer FROM requests
                   WHERE source_id = $s ORDER BY record""", {"s": summary.source_id}).fetchall()
            for record, method, path_, query, body, agent, referer in rows:
                target = path_ + ("?" + query if query else "")
                headers = {"User-Agent": agent, "Referer": referer}
                writer.writerow([str(path), record, repr(scorer.score_request(method, target, headers, body or "").score)])
            scored += len(rows)
            unparsed += summary.quarantined
            per_file.append({"path": str(path), "records": summary.records, "scored": len(rows),
                             "unparsed": summary.quarantined})
    return {"files": per_file, "scored": scored, "unparsed": unparsed, "output": str(output)}
