"""``waflens spark ...``: the Spark steps as a click group, also run as ``python -m waflens.pipeline.spark``.

``waflens spark ingest FILES... --out DIR`` writes ``DIR/requests``, ``DIR/quarantine`` and
``DIR/sources`` (see :mod:`waflens.pipeline.spark` for the layout); ``waflens spark features FILES...
--out DIR`` does the same and ``DIR/request_features`` too, computed in the same pass over the lines
(each task runs the feature kernel on the requests it just parsed). ``waflens spark features --out DIR`` without FILES computes the features of an existing
``DIR/requests`` (from an earlier ``spark ingest``).

Pseudonyms use the key DuckDB ingest would use for ``--db`` (``$WAFLENS_PSEUDONYM_KEY``,
``$WAFLENS_KEY_FILE`` or ``<db>.key``), so Spark and DuckDB give a client the same token.

On a cluster, ``spark-submit`` runs the ``__main__`` of this package. The executors need waflens and
its dependencies (numpy, numba, duckdb, pyarrow); ship a packed virtual environment::

    python -m venv env && env/bin/pip install 'waflens[spark]' venv-pack && env/bin/venv-pack -o env.tar.gz
    PYSPARK_PYTHON=./env/bin/python spark-submit --master yarn --archives env.tar.gz#env \\
        "$(env/bin/python -c 'import waflens.pipeline.spark.__main__ as m; print(m.__file__)')" \\
        features s3a://logs/2026/11/*.gz --out s3a://waflens/run-1

(``--py-files`` with a zip of waflens is not enough: numba, duckdb and pyarrow have native code.)
Errors print one line and exit with the codes of ``waflens --help``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from waflens.data.errors import EXIT_NOTHING_PARSED, InputError, WaflensError


class SparkExit(Exception):
    """A command ends with this exit code, having said why itself."""

    def __init__(self, code: int):
        self.code = code


@click.group()
@click.option("--master", default=None,
              help="Spark master [default: $WAFLENS_SPARK_MASTER, or local[2]; spark-submit sets its own].")
@click.option("--db", type=click.Path(path_type=Path), default=None,
              help="Database whose pseudonymization key to use [default: waflens --db, $WAFLENS_DB or "
                   "./waflens.duckdb].")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable JSON summary on stdout.")
@click.pass_context
def spark(ctx: click.Context, master: str | None, db: Path | None, as_json: bool) -> None:
    """Ingest and features on Apache Spark (local mode or a cluster), written as Parquet."""
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
    from waflens.data.ingest import IngestOptions, check_json_fields, parse_json_fields
    from waflens.data.pseudonymize import load_key
    from waflens.data.redaction import parse_trusted_proxies
    from waflens.pipeline.spark.ingest import ingest
    from waflens.pipeline.spark.request_features import write_request_features
    from waflens.pipeline.spark.session import spark_session

    options = IngestOptions(format=fmt, log_format=log_format, session_key=session_key,
                            session_cookie=session_cookie, json_fields=parse_json_fields(json_field))
    if trusted_proxy:
        options.trusted_proxies = parse_trusted_proxies(trusted_proxy)
    out = out.rstrip("/") or "/"
    if files:
        import duckdb

        check_json_fields(duckdb.connect(), options.json_fields)   # refused before Spark starts
        key = None if no_pseudonymize else load_key(obj["db"])
    session = spark_session(obj["master"], app_name="waflens spark")
    summary: dict = {"out": out}
    if not files:
        requests = _existing_requests(session, out)
        write_request_features(requests, out)
        summary["request_features"] = f"{out}/request_features"
        _emit(obj, summary, f"{out}/request_features written from {out}/requests")
        return
    result = ingest(session, list(files), out, options, key, with_features=features)
    result.release()
    if features:
        summary["request_features"] = f"{out}/request_features"
    summary["files"] = [f.as_dict() for f in result.files]
    lines = [f"{f.file}: {f.format}, {f.records} records read = {f.parsed} parsed + {f.quarantined} quarantined"
             + (" (NOTHING PARSED)" if f.status == "nothing parsed" else "") for f in result.files]
    lines.append(f"written to {out}: requests, quarantine, sources" + (", request_features" if features else ""))
    _emit(obj, summary, "\n".join(lines))
    unparsed = [f for f in result.files if f.status == "nothing parsed"]
    for f in unparsed:
        click.echo(f"waflens: error: {f.file}: none of its {f.records} records parsed as {f.format}; {f.hint}",
                   err=True)
    if unparsed:
        raise SparkExit(EXIT_NOTHING_PARSED)


def _existing_requests(session, out: str):
    from waflens.pipeline.spark.ingest import REQUESTS_COLUMNS

    try:
        requests = session.read.parquet(f"{out}/requests")
    except Exception as error:  # AnalysisException: path does not exist
        if "PATH_NOT_FOUND" in str(error) or "does not exist" in str(error).lower():
            raise InputError(f"no {out}/requests: pass FILES, or run `waflens spark ingest FILES --out {out}` "
                             "first") from None
        raise
    missing = [c for c in REQUESTS_COLUMNS if c not in requests.columns]
    if missing:
        raise InputError(f"{out}/requests lacks {', '.join(missing)}: it was not written by `waflens spark ingest`")
    return requests


def _emit(obj: dict, summary: dict, text: str) -> None:
    click.echo(json.dumps(summary, default=str, ensure_ascii=False) if obj["as_json"] else text)


def main(argv: list[str] | None = None) -> int:
    """``python -m waflens.pipeline.spark``: one line and an exit code for errors, as ``waflens`` does."""
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
