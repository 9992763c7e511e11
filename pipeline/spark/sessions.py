"""Sessions and session features on Spark: ``DIR/requests`` -> ``DIR/request_sessions``, ``DIR/sessions``,
``DIR/session_features`` and ``DIR/session_targets`` (what ``spark cluster`` builds documents from).

A session is a run of one client's requests, so one shuffle by ``client_key`` puts everything a session needs in
one task. Each task then runs DuckDB's own sessionizing on its clients, as ingest runs DuckDB's own parser
(:mod:`waflens.pipeline.spark.parsing`): the task's requests and their request features go into a private
in-memory DuckDB database with the waflens schema, and :func:`waflens.data.sessionize.sessionize` runs
``data/sql/sessionize.sql`` and ``data/sql/session_features.sql`` on them, the very statements ``waflens
ingest`` runs. Same gap rule (requests without a time never start a session, ties go by request_id,
session_id = the smallest request_id of the session), same features, by construction: there is no second
copy of the formulas to keep equal.

The request features come from the kernel ``waflens spark features`` runs, on the task's rows (the same numbers
as ``DIR/request_features``): reading that table back and joining it by request_id took longer than
computing it again.

DuckDB's ``requests.session_id`` column is ``DIR/request_sessions`` here (``DIR/requests`` is the ingest's and is
not rewritten). request_id must increase in ingest order (file by file, record by record), as DuckDB's does: it
breaks ties between requests of the same second and names the session.

Memory: a task holds its share of the requests in DuckDB (a few hundred bytes per request). Raise
``spark.sql.shuffle.partitions`` when a share outgrows an executor; one client's requests always stay in one task.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

import pyarrow as pa

from waflens.data.errors import InputError
from waflens.data.sessionize import DEFAULT_GAP_MINUTES, checked_gap_minutes
from waflens.pipeline.spark import layout
from waflens.pipeline.spark.layout import read_table, write_table
from waflens.pipeline.spark.request_features import ARROW_TYPES

# what sessionizing reads of a request: DuckDB's sessionize.sql and session_features.sql, the request
# feature kernel and sql/session_targets.sql (the rest of the row is not needed)
REQUEST_INPUT = ("request_id", "client_key", "ts", "method", "status", "path", "query", "path_decoded",
                 "query_decoded", "body", "user_agent", "referer")
SESSION_COLUMNS = ("session_id", "client_key", "start_ts", "end_ts", "n_requests", "first_request_id",
                   "last_request_id")
# each task's rows go into DuckDB in chunks of about this many (Spark hands them over in batches of 10,000)
_CHUNK_ROWS = 200_000
TARGET_TYPE = pa.list_(pa.struct([("request_id", pa.int64()), ("path_decoded", pa.string()),
                                  ("query_decoded", pa.string())]))


class SessionsSummary(NamedTuple):
    requests: int
    sessions: int
    scored: int = 0                # with a session model (``--model``): sessions scored, by class, and where
    by_class: dict | None = None
    scores: str | None = None


def _extra_features():
    """The session features that are not already columns of ``sessions`` (n_requests is both)."""
    from waflens.data.feature_spec import SESSION_FEATURES

    return [f for f in SESSION_FEATURES if f.name not in SESSION_COLUMNS]


def session_rows_schema(model=None) -> pa.Schema:
    """One row per session: the ``sessions`` columns, every other session feature (the spec's names and DuckDB
    types), the session's request ids and its first targets (``sql/session_targets.sql``); with a session model
    (:class:`waflens.pipeline.spark.score.Model`), its score, score_class and bot_score (when it has one)."""
    from waflens.pipeline.spark.score import score_fields

    utc = pa.timestamp("us", tz="UTC")
    scores = [] if model is None else score_fields(model.has_bot_score)
    return pa.schema([("session_id", pa.int64()), ("client_key", pa.string()), ("start_ts", utc), ("end_ts", utc),
                      ("n_requests", pa.int64()), ("first_request_id", pa.int64()), ("last_request_id", pa.int64()),
                      *[(f.name, ARROW_TYPES[f.dtype]) for f in _extra_features()],
                      ("request_ids", pa.list_(pa.int64())), ("targets", TARGET_TYPE), *scores])


def session_rows(requests, gap_minutes: float = DEFAULT_GAP_MINUTES, model=None, shipped: str | None = None):
    """The DataFrame of :func:`session_rows_schema` rows from ``requests`` (columns of ``DIR/requests``),
    shuffled by client and sessionized per task; scored by ``model`` (a checked session model, shipped to the
    executors under the name ``shipped``) when given."""
    from pyspark.sql.pandas.types import from_arrow_schema

    from waflens.clustering.matrix import MAX_TARGETS_PER_SESSION   # here, not in the workers (it imports sklearn)

    gap = checked_gap_minutes(gap_minutes)
    return requests.select(*REQUEST_INPUT).repartition("client_key") \
        .mapInArrow(sessionize_partitions(gap, MAX_TARGETS_PER_SESSION, model, shipped),
                    from_arrow_schema(session_rows_schema(model)))


def sessionize_partitions(gap_minutes: float, max_targets: int, model=None, shipped: str | None = None):
    """The ``mapInArrow`` function: every request of some clients -> one :func:`session_rows_schema` row per
    session, with its first ``max_targets`` distinct targets (and its scores, with a model)."""

    schema = session_rows_schema(model)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import numba

        from waflens.pipeline.spark.request_features import token_tables

        numba.set_num_threads(1)   # Spark runs one task per core
        tables = token_tables()
        con = _task_database()
        try:
            pending, rows = [], 0
            for batch in batches:
                pending.append(batch)
                rows += batch.num_rows
                if rows >= _CHUNK_ROWS:
                    _load(con, pending, tables)
                    pending, rows = [], 0
            if pending:
                _load(con, pending, tables)
            for batch in _sessionized(con, gap_minutes, max_targets):
                yield batch if model is None else _scored(batch, model, shipped, schema)
        finally:
            con.close()

    return run


def _task_database():
    from waflens.pipeline.spark.parsing import task_database

    con = task_database()
    con.execute("SET preserve_insertion_order = false")   # every statement that reads rows orders them itself
    return con


def _load(con, batches: list[pa.RecordBatch], tables) -> None:
    """Insert requests (the columns sessionizing reads; the others are NOT NULL in the schema and get neutral
    values no statement reads) and their request features, computed by the kernel of ``spark features``
    (:func:`waflens.pipeline.spark.request_features.feature_arrays`)."""
    from waflens.data.feature_spec import REQUEST_FEATURES
    from waflens.pipeline.spark.request_features import feature_arrays

    chunk = pa.Table.from_batches(batches)
    for feature, values in zip(REQUEST_FEATURES, feature_arrays(chunk, tables)):
        chunk = chunk.append_column(feature.name, values)
    con.register("chunk", chunk)
    try:
        con.execute("""INSERT INTO requests BY NAME
                       SELECT request_id, 0 AS source_id, 0 AS record, CAST(ts AS TIMESTAMP) AS ts, client_key, method,
                              path, query, path_decoded, query_decoded, status, body, user_agent, referer
                       FROM chunk""")
        con.execute("INSERT INTO request_features BY NAME SELECT request_id, "
                    + ", ".join(f.name for f in REQUEST_FEATURES) + " FROM chunk")
    finally:
        con.unregister("chunk")


def _sessionized(con, gap_minutes: float, max_targets: int) -> Iterator[pa.RecordBatch]:
    from importlib import resources

    from waflens.data.sessionize import sessionize

    if not con.execute("SELECT count(*) FROM requests").fetchone()[0]:
        return
    sessionize(con, gap_minutes)
    targets_sql = resources.files("waflens.pipeline.spark").joinpath("sql", "session_targets.sql").read_text("utf-8")
    con.execute("CREATE TEMP TABLE first_targets AS " + targets_sql, {"max_targets": max_targets})
    table = con.sql(f"""
        SELECT {', '.join('s.' + c for c in SESSION_COLUMNS)}, {', '.join('f.' + f.name for f in _extra_features())},
               m.request_ids, t.targets
        FROM sessions AS s
        JOIN session_features AS f USING (session_id)
        JOIN (SELECT session_id, list(request_id ORDER BY request_id) AS request_ids
              FROM requests GROUP BY session_id) AS m USING (session_id)
        JOIN (SELECT session_id, list({{'request_id': request_id, 'path_decoded': path_decoded,
                                        'query_decoded': query_decoded}} ORDER BY request_id) AS targets
              FROM first_targets GROUP BY session_id) AS t USING (session_id)""").to_arrow_table()
    yield from table.cast(session_rows_schema()).to_batches()


def _scored(batch: pa.RecordBatch, model, shipped: str, schema: pa.Schema) -> pa.RecordBatch:
    """A batch of session rows with their scores by the session model, as ``spark score`` computes them of the
    same feature rows (:func:`waflens.pipeline.spark.score.session_score_arrays`)."""
    from waflens.pipeline.spark.score import session_score_arrays, session_scorer

    scorer = session_scorer(model.path, model.digest, shipped)
    return pa.RecordBatch.from_arrays([*batch.columns, *session_score_arrays(scorer, batch)], schema=schema)


def sessionize_directory(spark, out: str, gap_minutes: float = DEFAULT_GAP_MINUTES,
                         model=None) -> SessionsSummary:
    """Write ``DIR/request_sessions``, ``DIR/sessions``, ``DIR/session_features`` and ``DIR/session_targets`` from
    ``DIR/requests``; with ``model`` (an exported session model: its path, or the
    :class:`~waflens.pipeline.spark.score.Model` of one already checked), score the sessions in the same tasks and
    write ``DIR/scores/level=session`` as ``waflens spark score DIR --model`` would (one pass instead of two)."""
    from pyspark import StorageLevel
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    from waflens.data.feature_spec import SESSION_FEATURES
    from waflens.pipeline.spark import score

    gap = checked_gap_minutes(gap_minutes)   # before Spark reads anything
    checked = shipped = None
    if model is not None:                    # refused on the driver, before any job
        checked = model if isinstance(model, score.Model) else score.checked_model(model)
        if checked.level != "session":
            raise InputError(f"{checked.path} is a {checked.level}-level model: `spark sessionize --model` scores "
                             "sessions with a session model; score requests with `waflens spark score DIR --model`")
        score.missing_session_features(checked, [f.name for f in SESSION_FEATURES])
        shipped = score.ship_model(spark, checked)
    rows = session_rows(read_table(spark, out, layout.REQUESTS), gap, checked, shipped) \
        .persist(StorageLevel.MEMORY_AND_DISK)
    # the totals ride along with the first write (an Observation) instead of a job reading the rows again
    observed = Observation("sessions")
    counted = rows.observe(observed, F.coalesce(F.sum("n_requests"), F.lit(0)).alias("requests"),
                           F.count(F.lit(1)).alias("sessions"),
                           *(score.class_counts() if checked is not None else []))
    try:
        write_table(counted.select(*SESSION_COLUMNS), out, layout.SESSIONS)
        write_table(rows.select("session_id", *[f.name for f in SESSION_FEATURES]), out, layout.SESSION_FEATURES)
        write_table(rows.select(F.explode("request_ids").alias("request_id"), "session_id"), out,
                    layout.REQUEST_SESSIONS)
        write_table(rows.select("session_id", F.inline("targets")), out, layout.SESSION_TARGETS)
        if checked is not None:
            rows.select(*score.session_score_schema(checked).names) \
                .write.mode("overwrite").parquet(score.scores_path(out, "session"))
        totals = observed.get
    finally:
        rows.unpersist()
    if checked is None:
        return SessionsSummary(int(totals["requests"]), int(totals["sessions"]))
    by_class = {name: int(n) for name, n in totals.items() if name not in ("requests", "sessions") and n}
    return SessionsSummary(int(totals["requests"]), int(totals["sessions"]), sum(by_class.values()), by_class,
                           score.scores_path(out, "session"))
