"""Export of labelled sessions to Parquet or CSV, for other tools and for the record.

One row per session that carries a label (the ``session_labels`` view: the latest
analyst decision that reached it, on any cluster run; else, with ``include_suggested``,
its latest run's suggestion), with the run and cluster the label was given on, the
session's client key (pseudonymized as stored), time span, size and top path.

CSV files get opened in spreadsheets, and every string here may come from an
attacker: a cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return
is prefixed with ``'`` so that it is shown as text instead of run as a formula
(OWASP "CSV injection"). Parquet keeps values exactly: it is read by programs.
"""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from waflens.data.errors import InputError
from waflens.labeling.labels import ensure_label_schema

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

EXPORT_SQL = """
    SELECT l.session_id, s.client_key, s.start_ts, s.end_ts, s.n_requests,
           l.cluster_run_id, l.cluster_id, l.probability, l.family, l.verdict, l.source, l.analyst,
           l.labelled_at, l.note,
           (SELECT r.path_decoded FROM requests r WHERE r.session_id = l.session_id
            GROUP BY r.path_decoded ORDER BY count(*) DESC, r.path_decoded LIMIT 1) AS top_path
    FROM session_labels l JOIN sessions s USING (session_id)
    WHERE ($run IS NULL OR l.cluster_run_id = $run) AND ($all OR l.source IN ('confirmed', 'edited'))
      AND l.source <> 'rejected'
    ORDER BY l.session_id
"""


def neutralise_cell(value):
    """A CSV cell that a spreadsheet will show as text, never evaluate."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def labelled_sessions(con: duckdb.DuckDBPyConnection, *, cluster_run_id: int | None = None,
                      include_suggested: bool = False) -> pa.Table:
    ensure_label_schema(con)
    return con.sql(EXPORT_SQL, params={"run": cluster_run_id, "all": include_suggested}).to_arrow_table()


def export_labelled_sessions(con: duckdb.DuckDBPyConnection, out: str | Path, *, cluster_run_id: int | None = None,
                             include_suggested: bool = False) -> int:
    """Write ``out`` (.parquet or .csv, by suffix); returns the number of sessions written.

    By default only analyst-confirmed or edited labels are exported; ``include_suggested``
    adds the machine's proposals (column ``source`` tells them apart).
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise InputError(f"cannot export to {out.name}: use a .parquet or .csv file name")
    table = labelled_sessions(con, cluster_run_id=cluster_run_id, include_suggested=include_suggested)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.partial")
    if suffix == ".parquet":
        pq.write_table(table, staging)
    else:
        with open(staging, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(table.column_names)
            for row in zip(*(column.to_pylist() for column in table.columns)):
                writer.writerow([neutralise_cell(value) for value in row])
    staging.replace(out)
    return table.num_rows
