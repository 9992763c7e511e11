"""What the database holds, in numbers (for `waflens status` and the workbench)."""

import duckdb

TABLES = ("sources", "requests", "quarantine", "sessions", "request_features", "session_features")


def database_status(con: duckdb.DuckDBPyConnection) -> dict[str, object]:
    counts: dict[str, object] = {table: con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
                                 for table in TABLES}
    first, last = con.execute("SELECT min(ts), max(ts) FROM requests").fetchall()[0]
    counts["first_request"] = first
    counts["last_request"] = last
    return counts
