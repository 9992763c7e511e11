"""waflens on Apache Spark: the same ingest, features, scoring and clustering past one machine (issue S).

DuckDB stays the embedded default; this package runs the same steps with ``pyspark`` for logs that
outgrow one machine, in local mode (``local[2]``, what the tests use) or on a cluster via
``spark-submit``. Every step reads and writes Parquet in one output directory ``DIR``:

==============================  ==================================================================
``DIR/requests/day=…/``         parsed requests: the DuckDB ``requests`` columns but ``source_id`` and
                                ``session_id``, with ``file`` (the path as given), ``record`` (1-based, as in
                                DuckDB) and ``request_id`` (records of the earlier files + ``record``);
                                client identifiers pseudonymized with the same keyed hash. ``day`` is the
                                UTC date of ``ts``; raw HTTP requests (no ``ts``) are in
                                ``day=__HIVE_DEFAULT_PARTITION__`` (NULL when read back)
``DIR/quarantine/``             ``file``, ``record``, ``raw`` (redacted as in DuckDB), ``reason``
``DIR/sources/``                per input file: ``file``, ``format``, ``records`` = ``parsed`` +
                                ``quarantined``, ``first_request_id``, ``status``, ``pseudonymized``, ``hint``
``DIR/request_features/day=…/`` ``file``, ``record``, ``request_id`` and every request feature under its
                                DuckDB column name and type
``DIR/request_sessions/``       ``request_id``, ``session_id``: DuckDB's requests.session_id column
``DIR/sessions/``,              sessions and their features: DuckDB's data/sql/sessionize.sql and
                                session_features.sql, run per task on the requests of some clients
``DIR/session_features/``
``DIR/session_targets/``        per session its first distinct decoded targets (path?query) with the request
                                that first asked for each: what ``cluster`` builds the documents from
``DIR/scores/level=…/``         per request (``level=request/day=…``) or session (``level=session``): the
                                exported artifact's score and class (and bot score)
``DIR/cluster_assignments/``    per suspicious session: cluster, membership probability, fitted or placed
==============================  ==================================================================

The definitions come from one place: the feature spec (:mod:`waflens.runtime.feature_spec`), the log
format compiler (:mod:`waflens.data.log_formats`), the pseudonymizer (:mod:`waflens.data.pseudonymize`)
and the numba kernels of the runtime. Nothing here copies a list, a code or a formula.
"""
