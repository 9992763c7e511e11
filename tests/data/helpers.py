"""Small builders shared by the tests: log lines, fresh databases and generated traffic ingested."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable, NamedTuple

import duckdb

from waflens.data.db import connect
from waflens.data.ingest import IngestOptions, ingest_file
from waflens.data.pseudonymize import Pseudonymizer
from waflens.data.sessionize import update_derived
from waflens.data.synthetic import GenerationSummary, generate_traffic

TEST_KEY = b"0123456789abcdef0123456789abcdef"


def combined_line(ip: str, when: datetime, request: str, status: int = 200, size: int = 100,
                  referer: str = "-", agent: str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0") -> str:
    stamp = when.strftime("%d/%b/%Y:%H:%M:%S %z")
    escape = lambda s: s.replace("\\", "\\\\").replace('"', '\\"')  # noqa: E731
    return f'{ip} - - [{stamp}] "{escape(request)}" {status} {size} "{escape(referer)}" "{escape(agent)}"'


def write_log(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def fresh_db(tmp_path: Path):
    return connect(tmp_path / "test.duckdb")


def ingest(con, path: Path, **options):
    pseudonymize = options.pop("pseudonymize", True)
    return ingest_file(con, path, IngestOptions(**options), Pseudonymizer(TEST_KEY if pseudonymize else None))


class GeneratedDb(NamedTuple):
    con: duckdb.DuckDBPyConnection
    log: Path                    # folder / "traffic.log"
    summary: GenerationSummary


def generated_db(folder: Path, requests: int, *, seed: int, extra_logs: Iterable[Path] = (),
                 **traffic) -> GeneratedDb:
    """Synthetic traffic (``generate_traffic`` arguments) ingested with ``extra_logs`` into a fresh
    ``folder/test.duckdb``, sessions and features derived: the set-up most end-to-end tests share."""
    log = folder / "traffic.log"
    summary = generate_traffic(log, requests, seed=seed, **traffic)
    con = fresh_db(folder)
    try:
        for path in (log, *extra_logs):
            ingest(con, path)
        update_derived(con)
    except BaseException:
        con.close()
        raise
    return GeneratedDb(con, log, summary)


T0 = datetime(2026, 11, 1, 12, 0, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def campaign_of_sessions(con, log: Path) -> dict[int, str]:
    """Each session's generated campaign (the majority over its requests), from the log's truth file."""
    with open(f"{log}.truth.csv") as handle:
        truth = {int(r["record"]): r["campaign"] for r in csv.DictReader(handle)}
    return {sid: Counter(truth[r] for r in records).most_common(1)[0][0]
            for sid, records in con.execute("SELECT session_id, list(record) FROM requests GROUP BY 1").fetchall()}
