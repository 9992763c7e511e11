"""``waflens spark ...``: the pipeline on Apache Spark (issue S) as one click group, also run as
``python -m waflens.pipeline.spark`` (what ``spark-submit`` runs; see below).

* ``waflens spark ingest FILES... --out DIR`` writes ``DIR/requests``, ``DIR/quarantine`` and ``DIR/sources``
  (see :mod:`waflens.pipeline.spark` for the layout); ``waflens spark features FILES... --out DIR`` does the
  same and ``DIR/request_features`` too, computed in the same pass over the lines (each task runs the feature
  kernel on the requests it just parsed). ``waflens spark features --out DIR`` without FILES computes the
  features of an existing ``DIR/requests`` (from an earlier ``spark ingest``). A file that cannot be ingested
  is skipped with a warning, and the command exits with its code, as ``waflens ingest`` does.
* ``waflens spark sessionize DIR``, ``score DIR --model PATH``, ``cluster DIR`` and ``attach DIR --db FILE``
  work on that directory, in that order (``sessionize DIR --model SESSION_MODEL`` also scores the sessions, in
  the same pass); ``attach`` makes a DuckDB file that reads it, for ``waflens
  cluster``, ``summarize``, ``label`` and the workbench.
* ``waflens spark run FILES... --out DIR [--model SESSION_MODEL] [--request-model REQUEST_MODEL]`` runs
  ``features``, ``sessionize``, ``score`` and ``cluster`` in one SparkSession (one ``spark-submit`` a day; see
  :mod:`waflens.pipeline.spark.run`), with their options; a step that fails stops it, named in the error.

Global options are read one way: the group's own (``--master``, ``--db``, ``--json``), else those of the
``waflens`` group it runs under (its context object has ``db`` and ``as_json``), else the defaults. This
module sits in ``pipeline`` (below ``app``), so it reads them from the parent context without importing the app.

Pseudonyms use the key DuckDB ingest would use for ``--db`` (``$WAFLENS_PSEUDONYM_KEY``,
``$WAFLENS_KEY_FILE`` or ``<db>.key``), so Spark and DuckDB give a client the same token.

``spark-submit`` runs the ``__main__`` of this package; in local mode (what tests/spark/test_spark_submit.py runs)::

    entry="$(waflens-env/bin/python -c 'import waflens.pipeline.spark.__main__ as m; print(m.__file__)')"
    PYSPARK_PYTHON=waflens-env/bin/python waflens-env/bin/spark-submit --master 'local[2]' "$entry" \\
        --json features access.log.gz --out run-1

Stdout holds what the command prints; its errors and warnings go to spark-submit's stderr, with Spark's logs
(:mod:`waflens.pipeline.spark.submit_stderr`). On a cluster the executors need waflens and its dependencies
(numpy, numba, duckdb, pyarrow); ship a packed virtual environment::

    python -m venv env && env/bin/pip install 'waflens[spark]' venv-pack && env/bin/venv-pack -o env.tar.gz
    PYSPARK_PYTHON=./env/bin/python spark-submit --master yarn --archives env.tar.gz#env \\
        "$(env/bin/python -c 'import waflens.pipeline.spark.__main__ as m; print(m.__file__)')" \\
        features 's3a://logs/2026/11/*/*.gz' --out s3a://waflens/run-1

A quoted pattern is expanded by the driver (Hadoop's glob syntax, the matches in name order), since no shell
expands object storage paths.
(``--py-files`` with a zip of waflens is not enough: numba, duckdb and pyarrow have native code.) Under
``spark-submit`` the master is spark-submit's ``--master``; outside it ``--master``, else
``$WAFLENS_SPARK_MASTER``, else ``local[2]``. Errors print
one line and exit with the codes of ``waflens --help`` (:func:`main` here, ``waflens.app.cli.main`` there:
both catch :class:`SparkExit` and :class:`~waflens.data.errors.WaflensError`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from waflens.data.errors import EXIT_NOTHING_PARSED, InputError, WaflensError
from waflens.data.sessionize import DEFAULT_GAP_MINUTES


class SparkExit(Exception):
    """A command ends with this exit code, having said why itself."""

    def __init__(self, code: int):
        self.code = code


@click.group()
@click.option("--master", default=None,
              help="Spark master [default: $WAFLENS_SPARK_MASTER, or local[2]; spark-submit sets its own].")
@click.option("--db", type=click.Path(path_type=Path), default=None,
              help="Database whose pseudonymization key ingest and features use, and the one attach makes "
                   "[default: waflens --db, $WAFLENS_DB or ./waflens.duckdb].")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable JSON summary on stdout.")
@click.pass_context
def spark(ctx: click.Context, master: str | None, db: Path | None, as_json: bool) -> None:
    """The pipeline on Apache Spark (local mode or a cluster): Parquet in one output directory DIR.

    ingest/features FILES --out DIR, then sessionize, score, cluster and attach DIR; or run FILES --out DIR, the
    daily job (features, sessionize, score, cluster) in one application (docs/scaling.md)."""
    from waflens.data.db import default_db_path

    parent = ctx.obj   # the `waflens` group's context when run as `waflens spark`
    ctx.obj = {"master": master, "db": db or getattr(parent, "db", None) or default_db_path(),
               "as_json": as_json or bool(getattr(parent, "as_json", False))}


def _ingest_options(function):
    options = [
        click.argument("files", nargs=-1, required=False),
        click.option("--out", required=True, help="Output directory (local path or s3a://...)."),
        click.option("--format", "fmt", type=click.Choice(["auto", "combined", "common", "json", "raw-http"]),
                     default="auto", show_default=True, help="Input format; auto sniffs it."),
        click.option("--log-format", default=None, help="An Apache LogFormat or nginx log_format string."),
        click.option("--no-pseudonymize", is_flag=True, help="Keep raw client IPs (labs only: IPs are personal data)."),
        click.option("--session-key", type=click.Choice(["ip-ua", "cookie"]), default="ip-ua", show_default=True,
                     help="Build client keys from IP + User-Agent, or from the session cookie where the log has one."),
        click.option("--session-cookie", default=None, help="Name of the cookie that carries the session."),
        click.option("--json-field", multiple=True, metavar="COLUMN=PATH[,PATH]",
                     help="Map a column to JSON paths for JSON-lines logs (e.g. client_ip=$.client.address)."),
        click.option("--trusted-proxy", multiple=True, metavar="CIDR",
                     help="A proxy of ours (repeatable; default $WAFLENS_TRUSTED_PROXIES)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@spark.command("ingest")
@_ingest_options
@click.pass_obj
def ingest_command(obj: dict, files, out, fmt, log_format, no_pseudonymize, session_key, session_cookie,
                   json_field, trusted_proxy) -> None:
    """Parse log files into DIR/requests (Parquet by day), DIR/quarantine and DIR/sources."""
    if not files:
        raise InputError("spark ingest needs FILES: the logs to read")
    _run(obj, files, out, fmt, log_format, no_pseudonymize, session_key, session_cookie, json_field, trusted_proxy,
         features=False)


@spark.command("features")
@_ingest_options
@click.pass_obj
def features_command(obj: dict, files, out, fmt, log_format, no_pseudonymize, session_key, session_cookie,
                     json_field, trusted_proxy) -> None:
    """Ingest FILES as `spark ingest` does and write DIR/request_features; without FILES, the features of
    an existing DIR/requests."""
    _run(obj, files, out, fmt, log_format, no_pseudonymize, session_key, session_cookie, json_field, trusted_proxy,
         features=True)


def _run(obj, files, out, fmt, log_format, no_pseudonymize, session_key, session_cookie, json_field,
         trusted_proxy, *, features: bool) -> None:
    from waflens.pipeline.spark.ingest import NothingIngested, ingest
    from waflens.pipeline.spark.request_features import write_request_features

    out = out.rstrip("/") or "/"
    options, key = _ingest_setup(obj, files, fmt, log_format, no_pseudonymize, session_key, session_cookie,
                                 json_field, trusted_proxy)
    session = _session(obj)
    if not files:
        requests = _existing_requests(session, out)
        write_request_features(requests, out)
        _emit(obj, {"out": out, "request_features": f"{out}/request_features"},
              f"{out}/request_features written from {out}/requests")
        return
    try:
        result = ingest(session, list(files), out, options, key, with_features=features)
    except NothingIngested as nothing:
        _say_every_failure(nothing)
        raise
    result.release()
    summary, lines = _ingest_report(result, out, features)
    _emit(obj, summary, "\n".join(lines))
    _exit_for_skipped_files(result)


def _ingest_setup(obj, files, fmt, log_format, no_pseudonymize, session_key, session_cookie, json_field,
                  trusted_proxy):
    """The ingest options and the pseudonym key (None with --no-pseudonymize); a bad --json-field is refused here,
    before Spark starts."""
    from waflens.data.ingest import IngestOptions, check_json_fields, parse_json_fields
    from waflens.data.pseudonymize import load_key
    from waflens.data.redaction import parse_trusted_proxies

    options = IngestOptions(format=fmt, log_format=log_format, session_key=session_key,
                            session_cookie=session_cookie, json_fields=parse_json_fields(json_field))
    if trusted_proxy:
        options.trusted_proxies = parse_trusted_proxies(trusted_proxy)
    key = None
    if files:
        import duckdb

        check_json_fields(duckdb.connect(), options.json_fields)
        key = None if no_pseudonymize else load_key(obj["db"])
    return options, key


def _say_every_failure(nothing) -> None:
    """When every file failed, each one's error (the one-line error after them says how many)."""
    if len(nothing.failures) > 1:
        for failure in nothing.failures:
            click.echo(f"waflens: {failure.error}", err=True)


def _ingest_report(result, out: str, features: bool) -> tuple[dict, list[str]]:
    """The ``--json`` summary and the text lines of an ingest (``spark ingest``, ``features``, ``run``)."""
    summary: dict = {"out": out}
    if features:
        summary["request_features"] = f"{out}/request_features"
    summary["files"] = [f.as_dict() for f in result.files]
    summary["failed"] = [str(failure.error) for failure in result.failures]
    lines = [f"{f.file}: {f.format}, {f.records} records read = {f.parsed} parsed + {f.quarantined} quarantined"
             + (" (NOTHING PARSED)" if f.status == "nothing parsed" else "") for f in result.files if f.status != "failed"]
    lines.append(f"written to {out}: requests, quarantine, sources" + (", request_features" if features else ""))
    return summary, lines


def _exit_for_skipped_files(result) -> None:
    """Warn of each file skipped (as `waflens ingest` skips them) or of which nothing parsed, and exit with the code
    of the first (:class:`SparkExit`); nothing when every file was ingested."""
    for failure in result.failures:
        click.echo(f"waflens: {failure.error}", err=True)
    unparsed = [f for f in result.files if f.status == "nothing parsed"]
    for f in unparsed:
        click.echo(f"waflens: error: {f.file}: none of its {f.records} records parsed as {f.format}; {f.hint}",
                   err=True)
    if result.failures:
        raise SparkExit(result.failures[0].error.exit_code)
    if unparsed:
        raise SparkExit(EXIT_NOTHING_PARSED)


def _gap_option(function):
    return click.option("--gap-minutes", type=float, default=DEFAULT_GAP_MINUTES, show_default=True,
                        help="Session inactivity gap (as `waflens sessionize`).")(function)


def _session_model_option(function):
    return click.option("--model", "model", default=None,
                        help="An exported session model: score the sessions in the same pass "
                             "(DIR/scores/level=session/, as `spark score DIR --model` writes it).")(function)


def _cluster_options(function):
    options = [
        click.option("--sample", "sample_size", type=click.IntRange(min=10), default=None,
                     help="Suspicious sessions HDBSCAN is fitted on, on the driver [default: 20000]; the rest are "
                          "placed on the executors."),
        click.option("--min-cluster-size", type=click.IntRange(min=2), default=10, show_default=True),
        click.option("--seed", type=int, default=0, show_default=True),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@spark.command("sessionize")
@click.argument("out", metavar="DIR")
@_gap_option
@_session_model_option
@click.pass_obj
def sessionize_command(obj: dict, out: str, gap_minutes: float, model: str | None) -> None:
    """Sessions and session features of DIR/requests: DIR/request_sessions, DIR/sessions, DIR/session_features
    (and DIR/scores/level=session with --model)."""
    from waflens.pipeline.spark.sessions import sessionize_directory

    summary = sessionize_directory(_session(obj), out, gap_minutes, model)
    _emit(obj, summary._asdict(), _sessions_text(summary, out))


@spark.command("score")
@click.argument("out", metavar="DIR")
@click.option("--model", "model", required=True, help="Exported model directory (`waflens models export`), "
                                                     "local or a Hadoop URI.")
@click.pass_obj
def score_command(obj: dict, out: str, model: str) -> None:
    """Score every request (request model) or session (session model) of DIR: DIR/scores/level=LEVEL/."""
    from waflens.pipeline.spark.score import score_directory

    summary = score_directory(_session(obj), out, model)
    _emit(obj, summary._asdict(), _scores_text(summary))


@spark.command("cluster")
@click.argument("out", metavar="DIR")
@_cluster_options
@click.pass_obj
def cluster_command(obj: dict, out: str, sample_size: int | None, min_cluster_size: int, seed: int) -> None:
    """Cluster DIR's suspicious sessions: fit on a sample, place the rest; DIR/cluster_assignments/."""
    from waflens.pipeline.spark.cluster import cluster_directory

    summary = cluster_directory(_session(obj), out, _cluster_settings(sample_size, min_cluster_size, seed))
    _emit(obj, summary._asdict(), _clusters_text(summary))


@spark.command("run")
@_ingest_options
@_gap_option
@_session_model_option
@click.option("--request-model", default=None,
              help="An exported request model: score every request (DIR/scores/level=request/, as `spark score "
                   "DIR --model` writes it).")
@_cluster_options
@click.pass_obj
def run_command(obj: dict, files, out, fmt, log_format, no_pseudonymize, session_key, session_cookie, json_field,
                trusted_proxy, gap_minutes, model, request_model, sample_size, min_cluster_size, seed) -> None:
    """The daily job in one Spark application: `features` FILES --out DIR, `sessionize` DIR (scoring its sessions
    with --model), `score` DIR with --request-model, `cluster` DIR. Each step's command reruns it alone."""
    from waflens.pipeline.spark.ingest import NothingIngested
    from waflens.pipeline.spark.run import StepFailed, checked_plan, run_pipeline

    if not files:
        raise InputError("spark run needs FILES: the logs to read")
    out = out.rstrip("/") or "/"
    options, key = _ingest_setup(obj, files, fmt, log_format, no_pseudonymize, session_key, session_cookie,
                                 json_field, trusted_proxy)
    plan = checked_plan(model, request_model, gap_minutes, _cluster_settings(sample_size, min_cluster_size, seed))
    try:
        result = run_pipeline(_session(obj), files, out, options, key, plan)
    except StepFailed as failed:
        if isinstance(failed.__cause__, NothingIngested):
            _say_every_failure(failed.__cause__)
        raise
    ingested, lines = _ingest_report(result.ingest, out, features=True)
    summary = {"out": out, "ingest": ingested, "sessionize": result.sessionize._asdict(),
               "score": None if result.score is None else result.score._asdict(),
               "cluster": result.cluster._asdict()}
    lines.append(_sessions_text(result.sessionize, out))
    if result.score is not None:
        lines.append(_scores_text(result.score))
    lines.append(_clusters_text(result.cluster))
    _emit(obj, summary, "\n".join(lines))
    _exit_for_skipped_files(result.ingest)


def _cluster_settings(sample_size: int | None, min_cluster_size: int, seed: int):
    from waflens.pipeline.spark.cluster import DEFAULT_SAMPLE, SparkClusterOptions

    return SparkClusterOptions(sample_size=sample_size or DEFAULT_SAMPLE, min_cluster_size=min_cluster_size, seed=seed)


def _sessions_text(summary, out: str) -> str:
    scored = "" if summary.scores is None else \
        f"; {summary.scored} sessions scored ({', '.join(f'{k} {v}' for k, v in sorted(summary.by_class.items()))}): " \
        f"{summary.scores}"
    return f"{summary.requests} requests in {summary.sessions} sessions: {out}/sessions, {out}/session_features{scored}"


def _scores_text(summary) -> str:
    classes = ", ".join(f"{k} {v}" for k, v in sorted(summary.by_class.items()))
    return f"{summary.scored} {summary.level}s scored ({classes}): {summary.output}"


def _clusters_text(summary) -> str:
    return (f"{summary.selected} of {summary.sessions} sessions suspicious; {summary.fitted} fitted, {summary.placed} "
            f"placed; {summary.clusters} clusters, {summary.noise} noise: {summary.output}")


@spark.command("attach")
@click.argument("out", metavar="DIR")
@click.option("--db", "db", type=click.Path(path_type=Path), default=None,
              help="DuckDB file to create or refresh [default: the global --db].")
@click.pass_obj
def attach_command(obj: dict, out: str, db: Path | None) -> None:
    """Make a DuckDB database read DIR's Parquet (views), for `waflens cluster`, `summarize`, `label`, `app`."""
    from waflens.pipeline.spark.attach import attach_directory

    summary = attach_directory(out, db or obj["db"])
    _emit(obj, summary._asdict(), f"{summary.db} reads {summary.directory}: {summary.files} files, "
                                  f"{summary.requests} requests, {summary.sessions} sessions "
                                  f"(`waflens --db {summary.db} cluster` next)")


def _session(obj: dict):
    from waflens.pipeline.spark.session import spark_session

    return spark_session(obj["master"], app_name="waflens spark")


def _existing_requests(session, out: str):
    from waflens.pipeline.spark import layout
    from waflens.pipeline.spark.ingest import REQUESTS_COLUMNS

    requests = layout.read_table(session, out, layout.REQUESTS)
    missing = [c for c in REQUESTS_COLUMNS if c not in requests.columns]
    if missing:
        raise InputError(f"{out}/requests lacks {', '.join(missing)}: it was not written by `waflens spark ingest`")
    return requests


def _emit(obj: dict, summary: dict, text: str) -> None:
    click.echo(json.dumps(summary, default=str, ensure_ascii=False) if obj["as_json"] else text)


def main(argv: list[str] | None = None) -> int:
    """``python -m waflens.pipeline.spark``: one line and an exit code for errors, as ``waflens`` does."""
    from waflens.pipeline.spark.submit_stderr import stderr_to_spark_submit

    with stderr_to_spark_submit():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    try:
        spark.main(args=argv, prog_name="waflens-spark", standalone_mode=False)
    except SparkExit as done:
        return done.code
    except WaflensError as error:
        click.echo(f"waflens: error: {error}", err=True)
        return error.exit_code
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("waflens: interrupted; the output directory may hold part of the run: run it again", err=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
