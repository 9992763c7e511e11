"""The ``waflens`` command line: a thin layer over the packages, for people and cron.

Every command accepts the global options ``--db PATH`` (default ``./waflens.duckdb``
or ``$WAFLENS_DB``) and ``--json`` (one JSON object on stdout). Errors print one
line on stderr and exit with the codes listed by ``waflens --help`` (see
:data:`waflens.data.errors.EXIT_CODES`).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import click

from waflens.app.cli_context import Context, Exit, parse_time, pass_context
from waflens.app.labels_cli import allowlist, labels
from waflens.app.models_cli import models
from waflens.app.retrain_cli import drift, retrain, stage_progress
from waflens.app.sources_cli import sources
from waflens.data.errors import EXIT_CODES, EXIT_NOTHING_PARSED, InputError, WaflensError
from waflens.data.interrupts import InterruptedAfterFile, InterruptedDerived
from waflens.labeling.taxonomy import FAMILIES, canonical_family
from waflens.pipeline.spark.cli import SparkExit, spark

EXIT_HELP = "\n".join(f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES.items())




@click.group(epilog=f"Exit codes:\n\n\b\n{EXIT_HELP}", context_settings={"max_content_width": 100})
@click.option("--db", type=click.Path(path_type=Path), default=None,
              help="DuckDB database file [default: $WAFLENS_DB or ./waflens.duckdb]")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable JSON summary on stdout.")
@click.option("--debug", is_flag=True, help="Show tracebacks for unexpected errors.")
@click.version_option(package_name="waflens")
@click.pass_context
def cli(ctx: click.Context, db: Path | None, as_json: bool, debug: bool) -> None:
    """waflens: web-attack analytics for WAF operators."""
    from waflens.data.db import default_db_path

    ctx.obj = Context(db or default_db_path(), as_json, debug)


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["auto", "combined", "common", "json", "raw-http"]),
              default="auto", show_default=True, help="Input format; auto sniffs it.")
@click.option("--log-format", default=None,
              help="An Apache LogFormat or nginx log_format string (e.g. '%h %l %u %t \"%r\" %>s %b').")
@click.option("--source", default=None, help="Name recorded for these files [default: file name].")
@click.option("--no-pseudonymize", is_flag=True, help="Keep raw client IPs (labs only: IPs are personal data).")
@click.option("--session-key", type=click.Choice(["ip-ua", "cookie"]), default="ip-ua", show_default=True,
              help="Build sessions from IP + User-Agent, or from the session cookie where the log has one.")
@click.option("--session-cookie", default=None, help="Name of the cookie that carries the session.")
@click.option("--json-field", multiple=True, metavar="COLUMN=PATH[,PATH]",
              help="Map a column to JSON paths for JSON-lines logs (e.g. client_ip=$.client.address).")
@click.option("--trusted-proxy", "trusted_proxy", multiple=True, metavar="CIDR",
              help="A proxy of ours (repeatable; default $WAFLENS_TRUSTED_PROXIES): the client is the first "
                   "X-Forwarded-For hop from the right that is not one.")
@click.option("--no-sessionize", is_flag=True, help="Do not update sessions and features after ingest.")
@click.option("--gap-minutes", type=float, default=30.0, show_default=True, help="Session inactivity gap.")
@pass_context
def ingest(obj: Context, files, fmt, log_format, source, no_pseudonymize, session_key, session_cookie,
           json_field, trusted_proxy, no_sessionize, gap_minutes) -> None:
    """Ingest access logs or raw HTTP dumps (optionally gzip-compressed) into the database."""
    from waflens.data.ingest import IngestOptions, ingest_files, parse_json_fields
    from waflens.data.pseudonymize import Pseudonymizer, load_key
    from waflens.data.redaction import parse_trusted_proxies
    from waflens.data.sessionize import update_derived

    options = IngestOptions(format=fmt, log_format=log_format, source=source, session_key=session_key,
                            session_cookie=session_cookie, json_fields=parse_json_fields(json_field))
    if trusted_proxy:
        options.trusted_proxies = parse_trusted_proxies(trusted_proxy)
    pseudonymizer = Pseudonymizer(None if no_pseudonymize else load_key(obj.db))
    con = obj.connect()
    try:
        _refuse_on_spark_output(con, "ingest")
        def on_error(path: Path, error: WaflensError) -> None:
            obj.failures.append(error)
            obj.warn(str(error))

        summaries = ingest_files(con, list(files), options, pseudonymizer, on_error)
        derived = update_derived(con, gap_minutes) if not no_sessionize else None
    finally:
        con.close()
    result = {
        "files": [{"path": s.path, "format": s.format, "records": s.records, "parsed": s.parsed,
                   "quarantined": s.quarantined, "status": s.status, "source_id": s.source_id,
                   "seconds": round(s.seconds, 3), **({"hint": s.hint} if s.hint else {})} for s in summaries],
        "failed": [str(e) for e in obj.failures],
        "sessions": derived.sessions_total if derived else None,
    }
    lines = [f"{s.path}: {s.format}, {s.records} records read = {s.parsed} parsed + {s.quarantined} quarantined"
             + _STATUS_NOTES.get(s.status, "") for s in summaries]
    if derived:
        lines.append(f"sessions: {derived.sessions_touched} updated, {derived.sessions_total} in total")
    obj.emit(result, "\n".join(lines) if lines else "nothing ingested")
    for s in summaries:
        if s.status == "re-ingested":
            obj.warn(f"{s.path}: {s.hint}")
    unparsed = [s for s in summaries if s.status == "nothing parsed"]
    for s in unparsed:
        obj.warn(f"error: {s.path}: none of its {s.records} records parsed as {s.format}; {s.hint}. "
                 "Ingesting it again replaces this attempt (`waflens sources forget` removes it)")
    if obj.failures:
        raise Exit(obj.failures[0].exit_code)
    if unparsed:
        raise Exit(EXIT_NOTHING_PARSED)


def _refuse_on_spark_output(con, command: str) -> None:
    """Traffic commands refuse a database that reads a Spark output directory (`waflens spark attach`)."""
    from waflens.pipeline.spark.attach import refuse_traffic_writes

    refuse_traffic_writes(con, command)


_STATUS_NOTES = {"already ingested": " (already ingested, nothing added)",
                 "re-ingested": " (ingested again: the earlier attempt parsed nothing)",
                 "nothing parsed": " (NOTHING PARSED)"}


@cli.command()
@click.option("--gap-minutes", type=float, default=30.0, show_default=True, help="Session inactivity gap.")
@click.option("--session-key", type=click.Choice(["ip-ua", "cookie"]), default=None,
              help="Rebuild client keys from IP + User-Agent or from the session cookie.")
@click.option("--rebuild", is_flag=True, help="Rebuild all sessions instead of only the new requests'.")
@pass_context
def sessionize(obj: Context, gap_minutes: float, session_key: str | None, rebuild: bool) -> None:
    """Update (or rebuild) sessions and their features."""
    from waflens.data.sessionize import pending_requests, resessionize, update_derived

    pending = None
    con = obj.connect()
    try:
        _refuse_on_spark_output(con, "sessionize")
        if rebuild or session_key:
            touched = resessionize(con, gap_minutes, session_key)
            total = con.execute("SELECT count(*) FROM sessions").fetchall()[0][0]
        else:
            pending = pending_requests(con)
            derived = update_derived(con, gap_minutes)
            touched, total = derived.sessions_touched, derived.sessions_total
    finally:
        con.close()
    obj.emit({"sessions_updated": touched, "sessions": total, "requests_sessionized": pending},
             f"sessions: {touched} updated, {total} in total"
             + (f" ({pending} requests were in no session)" if pending else ""))


@cli.command()
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Log file to write.")
@click.option("--requests", "n_requests", type=click.IntRange(min=1), default=50_000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--days", type=float, default=3.0, show_default=True, help="Length of the traffic window.")
@click.option("--attack-share", type=click.FloatRange(0.0, 0.9), default=0.15, show_default=True)
@pass_context
def generate(obj: Context, out: Path, n_requests: int, seed: int, days: float, attack_share: float) -> None:
    """Write synthetic traffic (combined log) with labelled attack campaigns and <out>.truth.csv."""
    from waflens.data.synthetic import generate_traffic

    summary = generate_traffic(out, n_requests, seed, days=days, attack_share=attack_share)
    obj.emit({"log": str(summary.log_path), "truth": str(summary.truth_path), "requests": summary.requests,
              "campaigns": summary.campaigns, "start": summary.start, "end": summary.end},
             f"wrote {summary.requests} requests to {summary.log_path} (truth: {summary.truth_path})")


@cli.command()
@click.option("--level", type=click.Choice(["request", "session"]), default="request", show_default=True,
              help="Score lone requests, or sessions as they unfold.")
@click.option("--since", default=None, help="Train on traffic from this time (ISO 8601, UTC).")
@click.option("--until", default=None, help="... up to this time (exclusive).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Model directory to write [default: models/<level>-<UTC time>].")
@click.option("--trees", type=click.IntRange(10, 2000), default=100, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@pass_context
def train(obj: Context, level: str, since: str | None, until: str | None, out: Path | None, trees: int,
          seed: int) -> None:
    """Fit the anomaly model on the database's features and export it as an artifact."""
    from datetime import datetime, timezone

    from waflens.scoring.train import TrainingOptions, train_request_model, train_session_model

    out = out or Path("models") / f"{level}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"
    options = TrainingOptions(since=parse_time(since), until=parse_time(until), n_estimators=trees, seed=seed)
    con = obj.connect(read_only=True)
    try:
        manifest = (train_request_model if level == "request" else train_session_model)(con, out, options)
    finally:
        con.close()
    rows = manifest["training"].get("requests", manifest["training"].get("sessions"))
    obj.emit({"model": str(out), "level": level, "training": manifest["training"], "thresholds": manifest["thresholds"]},
             f"{level} model written to {out} (trained on {rows} {level}s, {manifest['model']['n_estimators']} trees)")


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", "model_dir", type=click.Path(path_type=Path), required=True,
              help="Exported model directory, or a registry version holding one per level (models/production).")
@click.option("--level", type=click.Choice(["request", "session"]), default="request", show_default=True,
              help="Score each record, or each session (the model's level must match; picks the level's "
                   "model of a registry version).")
@click.option("--format", "fmt", type=click.Choice(["auto", "combined", "common", "json", "raw-http"]),
              default="auto", show_default=True)
@click.option("--log-format", default=None, help="An Apache LogFormat or nginx log_format string.")
@click.option("--output", type=click.Path(path_type=Path), required=True,
              help="CSV to write: file,record,score (request) or file,client,first_record,last_record,requests,score.")
@click.option("--no-pseudonymize", is_flag=True, help="Write raw client keys' inputs (labs only).")
@click.option("--session-key", type=click.Choice(["ip-ua", "cookie"]), default="ip-ua", show_default=True)
@click.option("--session-cookie", default=None, help="Name of the cookie that carries the session.")
@click.option("--gap-minutes", type=float, default=30.0, show_default=True, help="Session inactivity gap.")
@pass_context
def score(obj: Context, files, model_dir: Path, level: str, fmt: str, log_format: str | None, output: Path,
          no_pseudonymize: bool, session_key: str, session_cookie: str | None, gap_minutes: float) -> None:
    """Score the requests (or sessions) of log files with an exported model, without a database."""
    from waflens.data.ingest import IngestOptions
    from waflens.data.pseudonymize import Pseudonymizer, load_key
    from waflens.scoring.batch import score_files

    model_dir = _model_directory(model_dir, level)
    options = IngestOptions(format=fmt, log_format=log_format, session_key=session_key, session_cookie=session_cookie)
    pseudonymizer = Pseudonymizer(None if no_pseudonymize or level == "request" else load_key(obj.db))
    summary = score_files(list(files), model_dir, output, options=options, pseudonymizer=pseudonymizer,
                          level=level, gap_minutes=gap_minutes)
    obj.emit(summary, f"scored {summary['scored']} {level}s into {output} "
                      f"({summary['unparsed']} records did not parse)")


def _model_directory(model_dir: Path, level: str) -> Path:
    """The exported model to load: ``model_dir`` itself, or its ``<level>/`` when it is a registry version
    (``models/production``, ``models/versions/v0003``), which holds one model per level."""
    from waflens.runtime.artifact import MANIFEST_FILE

    if (model_dir / MANIFEST_FILE).exists() or not model_dir.is_dir():
        return model_dir          # a model, or a path the loader reports as missing
    if (model_dir / level / MANIFEST_FILE).exists():
        return model_dir / level
    levels = [name for name in ("request", "session") if (model_dir / name / MANIFEST_FILE).exists()]
    if levels:
        raise InputError(f"{model_dir} holds no {level} model, only {' and '.join(levels)}: give --level "
                         f"{levels[0]} (or --model {model_dir / levels[0]})")
    raise InputError(f"{model_dir} is not a waflens model: it has no {MANIFEST_FILE}, and no request/ or session/ "
                     "model inside; give an exported model directory, or a registry version such as "
                     "models/production with --level request or --level session")


@cli.command()
@click.option("--since", default=None, help="Cluster sessions starting at or after this time (ISO 8601, UTC).")
@click.option("--until", default=None, help="... and before this time.")
@click.option("--min-cluster-size", type=click.IntRange(min=2), default=10, show_default=True)
@click.option("--select", "selection", type=click.Choice(["suspicious", "all"]), default="suspicious", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@pass_context
def cluster(obj: Context, since: str | None, until: str | None, min_cluster_size: int, selection: str, seed: int) -> None:
    """Cluster (suspicious) sessions of a window with HDBSCAN; link clusters to the previous run."""
    from waflens.clustering.run import ClusterOptions
    from waflens.pipeline.cluster import cluster_window

    options = ClusterOptions(since=parse_time(since), until=parse_time(until), min_cluster_size=min_cluster_size,
                             select=selection, seed=seed)
    con = obj.connect()
    try:
        summary = cluster_window(con, options)   # allowlisted sessions left out
    finally:
        con.close()
    text = (f"cluster run {summary.cluster_run_id}: {summary.n_selected} of {summary.n_sessions} sessions clustered "
            f"into {summary.n_clusters} clusters ({summary.n_noise} noise); emerging: {summary.emerging or 'none'}")
    obj.emit(summary._asdict(), text + (f"\n{summary.message}" if summary.message else ""))


@cli.command()
@click.option("--provider", default=None, help="Summarizer [default: $WAFLENS_LLM_PROVIDER, the LLM settings "
                                               "file, or offline].")
@click.option("--model", default=None, help="LLM model for the openai provider [default: $WAFLENS_LLM_MODEL, "
                                            "the LLM settings file].")
@click.option("--cluster-run", "cluster_run_id", type=int, default=None, help="Cluster run [default: the latest].")
@pass_context
def summarize(obj: Context, provider: str | None, model: str | None, cluster_run_id: int | None) -> None:
    """Propose a label for every cluster of a run (emerging first) from its evidence."""
    from waflens.labeling.labels import latest_run
    from waflens.labeling.llm_config import load_llm_config
    from waflens.labeling.summarize import summarize_database

    config = load_llm_config(obj.db, provider=provider, model=model)
    provider = config.provider
    con = obj.connect()
    try:
        run = cluster_run_id or latest_run(con)
    finally:
        con.close()
    results = summarize_database(obj.db, run, config)  # no connection held while the LLM answers
    lines = [f"cluster {r['cluster_id']}: {r['status']}" if r["status"].startswith("error") else
             f"cluster {r['cluster_id']}: {r['verdict']} {r['family']} (confidence {r['confidence']}, {r['status']}"
             + (", prompt injection in the traffic" if r["prompt_injection_detected"] else "") + ")" for r in results]
    obj.emit({"cluster_run_id": run, "provider": provider, "clusters": results},
             "\n".join(lines) or f"run {run} has no clusters")


def _family_option(ctx, param, value: str) -> str:
    """The taxonomy's name for --family (``lfi`` is path_traversal); labels store only those names."""
    family = canonical_family(value)
    if family is None:
        raise InputError(f"unknown family {value!r}: use one of {', '.join(FAMILIES)}")
    return family


@cli.command()
@click.argument("cluster_id", type=int)
@click.option("--verdict", type=click.Choice(["malicious", "suspicious", "benign"]), required=True)
@click.option("--family", required=True, callback=_family_option,
              help="Attack family: " + ", ".join(FAMILIES) + " (lfi, rce, php, java, ... are read as their family).")
@click.option("--note", default=None)
@click.option("--run", "cluster_run_id", type=int, default=None, help="Cluster run [default: the latest].")
@click.option("--reject", is_flag=True, help="Record a rejection of the current label instead of a confirmation.")
@click.option("--analyst", default=None, help="Who labels [default: the login name].")
@pass_context
def label(obj: Context, cluster_id: int, verdict: str, family: str, note: str | None, cluster_run_id: int | None,
          reject: bool, analyst: str | None) -> None:
    """Record an analyst's label for a cluster (an append-only event; the latest one counts)."""
    from waflens.labeling.labels import latest_run, record_label

    con = obj.connect()
    try:
        run = cluster_run_id or latest_run(con)
        event = record_label(con, run, cluster_id, family=family, verdict=verdict,
                             source="rejected" if reject else "confirmed", analyst=analyst, note=note)
    finally:
        con.close()
    obj.emit({"label_event_id": event, "cluster_run_id": run, "cluster_id": cluster_id, "family": family,
              "verdict": verdict}, f"label event {event}: cluster {cluster_id} of run {run} is {verdict} ({family})")


@cli.command()
@click.option("--older-than-days", type=float, default=None,
              help="Delete traffic older than this [default: $WAFLENS_RETENTION_DAYS].")
@pass_context
def purge(obj: Context, older_than_days: float | None) -> None:
    """Apply the retention policy: delete requests, sessions and quarantine older than N days."""
    from waflens.data.retention import purge_older_than

    days = older_than_days if older_than_days is not None else os.environ.get("WAFLENS_RETENTION_DAYS")
    if days is None:
        raise InputError("no retention given: pass --older-than-days N or set WAFLENS_RETENTION_DAYS")
    try:
        days = float(days)
    except ValueError:
        raise InputError(f"WAFLENS_RETENTION_DAYS must be a number of days, got {days!r}") from None
    con = obj.connect()
    try:
        _refuse_on_spark_output(con, "purge")
        summary = purge_older_than(con, days)
    finally:
        con.close()
    pending = (f"; {summary.unsessionized} newer requests of sessions across the cut-off are put in sessions again "
               "by the next `waflens sessionize` or `waflens retrain`" if summary.unsessionized else "")
    obj.emit(summary._asdict(), f"deleted {summary.requests} requests, {summary.sessions} sessions (with "
                                f"{summary.cluster_memberships} cluster memberships) and {summary.quarantined} "
                                f"quarantined records older than {summary.cutoff:%Y-%m-%d %H:%M} UTC{pending}")


@cli.command()
@pass_context
def status(obj: Context) -> None:
    """Counts of what the database holds."""
    from waflens.data.status import database_status

    con = obj.connect(read_only=True)
    try:
        counts = database_status(con)
    finally:
        con.close()
    obj.emit(counts, "\n".join(f"{k}: {v}" for k, v in counts.items()))


@cli.command()
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback needs $WAFLENS_APP_TOKEN or --auth-header.")
@click.option("--auth-header", envvar="WAFLENS_APP_AUTH_HEADER", default=None, metavar="HEADER",
              help="Trust this header (e.g. X-Forwarded-User), set by a reverse proxy that authenticates "
                   "users, as the analyst's identity [default: $WAFLENS_APP_AUTH_HEADER].")
@click.option("--headless/--browser", default=True, show_default=True, help="Do not open a browser window.")
@pass_context
def app(obj: Context, port: int, host: str, auth_header: str | None, headless: bool) -> None:
    """Start the Streamlit workbench on the database (127.0.0.1 only, unless --host says otherwise)."""
    from waflens.app.access import AUTH_HEADER_ENV, TOKEN_ENV, check_access, check_port_free
    from waflens.app.serve import run_server

    token = os.environ.get(TOKEN_ENV) or None
    for warning in check_access(host, token, auth_header):
        obj.warn(f"warning: {warning}")
    check_port_free(host, port)
    script = Path(__file__).with_name("workbench.py")
    env = {**os.environ, "WAFLENS_DB": str(Path(obj.db).resolve())}
    env.pop(AUTH_HEADER_ENV, None)
    if auth_header:
        env[AUTH_HEADER_ENV] = auth_header
    command = [sys.executable, "-m", "streamlit", "run", str(script), "--server.address", host,
               "--server.port", str(port), "--server.headless", str(headless).lower(),
               "--browser.gatherUsageStats", "false",
               # analysts get the viewer's menu (print, theme), not Streamlit's developer items (Deploy, Rerun)
               "--client.toolbarMode", "viewer"]
    shown = f"[{host}]" if ":" in host else host
    access = " (token required)" if token else f" (identity from {auth_header})" if auth_header else ""
    click.echo(f"workbench on http://{shown}:{port}{access} (database {obj.db}); Ctrl-C stops it", err=True)
    done = run_server(command, env)
    if done.stopped_by is not None:
        click.echo(f"waflens: workbench stopped ({signal.Signals(done.stopped_by).name}); port {port} is free",
                   err=True)
        raise Exit(130 if done.stopped_by == signal.SIGINT else 0)
    if done.code != 0:
        check_port_free(host, port)  # taken since our check: say so, as a configuration error
        raise Exit(done.code)


@cli.command()
@click.option("--dir", "workdir", type=click.Path(path_type=Path), default=Path("demo"), show_default=True,
              help="Where the demo log goes.")
@click.option("--requests", "n_requests", type=click.IntRange(min=1000), default=60_000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--no-app", is_flag=True, help="Stop after the pipeline instead of starting the workbench.")
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the workbench listens on (see `app`).")
@click.pass_context
def demo(ctx: click.Context, workdir: Path, n_requests: int, seed: int, no_app: bool, port: int, host: str) -> None:
    """The whole pipeline on generated traffic (generate, then `retrain`: ingest, sessionize, cluster,
    summarize, train, gates, promote), then the workbench."""
    import time

    from waflens.pipeline.retrain import EXIT_NOTHING_NEW, RetrainOptions, retrain as run_retrain

    obj: Context = ctx.obj
    if not no_app:  # before minutes of pipeline: a taken port or a missing token is said at once
        from waflens.app.access import TOKEN_ENV, check_access, check_port_free

        check_access(host, os.environ.get(TOKEN_ENV) or None, os.environ.get("WAFLENS_APP_AUTH_HEADER") or None)
        check_port_free(host, port)
    log = workdir / "traffic.log"
    workdir.mkdir(parents=True, exist_ok=True)
    with stage_progress("demo", obj, None) as progress:
        if not log.exists():
            begun = time.perf_counter()
            progress.begin("generate", n_requests, "requests")
            ctx.invoke(generate, out=log, n_requests=n_requests, seed=seed, days=3.0, attack_share=0.15)
            progress.advance(n_requests)
            progress.end("generate", time.perf_counter() - begun, {"requests": n_requests})
        result = run_retrain(obj.db, RetrainOptions(sources=(str(log),), seed=0), progress=progress)
    if result.exit_code not in (0, EXIT_NOTHING_NEW):
        raise Exit(result.exit_code)
    ctx.invoke(status)
    if not no_app:
        ctx.invoke(app, port=port, host=host, auth_header=os.environ.get("WAFLENS_APP_AUTH_HEADER") or None,
                   headless=True)


def _interrupted(message: str) -> int:
    """Say so and exit 130. Further Ctrl-C is ignored from here: DuckDB may leave the signal pending, and
    Python would then die of it on the way out (status -2) instead of exiting 130."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread (main() called from a test or an app): nothing pending to fear
        pass
    click.echo(message, err=True)
    return 130


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and turn errors into one line and an exit code."""
    from waflens.data.db import private_files

    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    private_files()  # the database, its WAL, models and reports hold personal data: 0600 / 0700 from the start
    try:
        cli.main(args=argv, prog_name="waflens", standalone_mode=False)
    except (Exit, SparkExit) as done:
        return done.code
    except WaflensError as error:
        click.echo(f"waflens: error: {error}", err=True)
        return error.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt) as error:  # click turns Ctrl-C into Abort
        stop = error if isinstance(error, (InterruptedAfterFile, InterruptedDerived)) else error.__context__
        if isinstance(stop, InterruptedDerived):
            return _interrupted("waflens: interrupted; " + (
                "sessions and features were brought up to date before it landed" if stop.done else
                "the update of sessions and features was rolled back; the ingested files stay and their requests "
                "are put in sessions by the next `waflens sessionize` or `waflens retrain`"))
        if isinstance(stop, InterruptedAfterFile):
            return _interrupted(f"waflens: interrupted; {stop.path} was ingested completely, the files after it "
                                "were not, and sessions were not updated (run `waflens sessionize`)")
        if isinstance(error, KeyboardInterrupt) or isinstance(stop, KeyboardInterrupt):
            return _interrupted("waflens: interrupted; the file being ingested (if any) was rolled back")
        return _interrupted("waflens: interrupted")
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except Exception as error:  # a bug: one line unless --debug
        from waflens.data.errors import storage_fault
        from waflens.data.interrupts import was_interrupted

        if was_interrupted(error):  # Ctrl-C inside a DuckDB query (its transaction was rolled back)
            return _interrupted("waflens: interrupted")
        from waflens.data.remote_parquet import remote_read_fault

        known = storage_fault(error) or remote_read_fault(error)  # disk full, object storage: the operator's to fix
        if known is not None:
            click.echo(f"waflens: error: {known}", err=True)
            return known.exit_code
        if debug:
            raise
        click.echo(f"waflens: internal error: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
                   " (rerun with --debug and report it)", err=True)
        return 1
    return 0


# the groups that have their own modules (spark: the pipeline on Apache Spark, importing no pyspark until it runs)
for command in (labels, allowlist, models, retrain, drift, sources, spark):
    cli.add_command(command)


if __name__ == "__main__":  # `python -m waflens.app.cli`
    sys.exit(main())
