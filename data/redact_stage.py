"""Applying :mod:`waflens.data.redaction` to a file's ``stage`` rows inside its ingest transaction.

DuckDB finds the values that may hold an address or a secret (one RE2 pass per column,
:data:`~waflens.data.redaction.SUSPECT_RE2`); only those distinct values go to Python, and their
redacted forms come back as one table that the columns are updated from. Typical access
logs send few values to Python, so the cost stays near one vectorized regex scan.
Column names below are fixed in this module; values travel as parameters and tables.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from waflens.data.redaction import SUSPECT_RE2, Redactor, choose_client

# Every text column of `stage` that reaches `requests` (client_ip, remote_user and
# session_cookie are replaced whole by their tokens in ingest_finish.sql).
TEXT_COLUMNS = ("vhost", "method", "target", "protocol", "referer", "user_agent", "headers", "body")


def redact_stage(con: duckdb.DuckDBPyConnection, redactor: Redactor) -> int:
    """Redact the parsed rows' text columns in place; returns how many distinct values changed."""
    union = "\nUNION\n".join(
        f"SELECT {column} AS v FROM stage WHERE reason IS NULL AND regexp_matches({column}, $suspect)"
        for column in TEXT_COLUMNS)
    values = [v for (v,) in con.execute(union, {"suspect": SUSPECT_RE2}).fetchall()]
    changed = [(v, r) for v in values if (r := redactor.redact(v)) != v]
    if not changed:
        return 0
    table = pa.table({"value": pa.array([v for v, _ in changed], pa.string()),
                      "redacted": pa.array([r for _, r in changed], pa.string())})
    con.register("redacted_values", table)
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE redactions AS SELECT * FROM redacted_values")
    finally:
        con.unregister("redacted_values")
    for column in TEXT_COLUMNS:
        con.execute(f"""UPDATE stage SET {column} = r.redacted FROM redactions AS r
                        WHERE stage.reason IS NULL AND stage.{column} = r.value""")
    con.execute("DROP TABLE redactions")
    return len(changed)


def redact_quarantine(con: duckdb.DuckDBPyConnection, redactor: Redactor) -> list[tuple[int, str, str]]:
    """The rejected rows as (record, raw text redacted, reason), in record order."""
    rows = con.execute(
        """SELECT record, coalesce(raw, ''), reason, regexp_matches(coalesce(raw, ''), $suspect)
           FROM stage WHERE reason IS NOT NULL ORDER BY record""", {"suspect": SUSPECT_RE2}).fetchall()
    return [(record, redactor.redact(raw) if suspect else raw, reason) for record, raw, reason, suspect in rows]


def choose_stage_clients(con: duckdb.DuckDBPyConnection, trusted: tuple) -> None:
    """Replace each row's client_ip by the client its X-Forwarded-For chain names (see choose_client)."""
    pairs = con.execute(
        """SELECT DISTINCT client_ip, forwarded_for FROM stage
           WHERE reason IS NULL AND forwarded_for IS NOT NULL""").fetchall()
    moved = [(peer, chain, client) for peer, chain in pairs
             if (client := choose_client(peer, chain, trusted)) != peer]
    if not moved:
        return
    table = pa.table({"peer": pa.array([m[0] for m in moved], pa.string()),
                      "forwarded_for": pa.array([m[1] for m in moved], pa.string()),
                      "client": pa.array([m[2] for m in moved], pa.string())})
    con.register("forwarded_clients", table)
    try:
        con.execute("""UPDATE stage SET client_ip = f.client FROM forwarded_clients AS f
                       WHERE stage.reason IS NULL AND stage.forwarded_for = f.forwarded_for
                         AND stage.client_ip IS NOT DISTINCT FROM f.peer""")
    finally:
        con.unregister("forwarded_clients")
