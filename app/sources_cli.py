"""``waflens sources list|forget``: see what was ingested, and take back a file (e.g. one read with the wrong
``--format``) so that it can be ingested again. What forgetting removes is in data/sources.py."""

from __future__ import annotations

import re

import click

from waflens.app.cli_context import Context, pass_context
from waflens.app.models_cli import _confirm, _table


def _printable(text: str) -> str:
    """File names are shown in a terminal: control characters as \\xHH."""
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", str(text))


@click.group()
def sources() -> None:
    """Ingested files: list them, forget one (to ingest it again)."""


@sources.command("list")
@pass_context
def list_command(obj: Context) -> None:
    """Every ingested file, newest first: id, time, format, records = parsed + quarantined, name."""
    from waflens.data.sources import list_sources

    con = obj.connect(read_only=True)
    try:
        rows = list_sources(con)
    finally:
        con.close()
    table = [["ID", "INGESTED (UTC)", "FORMAT", "RECORDS", "PARSED", "QUARANTINED", "SHA256", "NAME"]] + [
        [str(r["source_id"]), f"{r['ingested_at']:%Y-%m-%d %H:%M:%S}", r["format"], str(r["records"]),
         str(r["parsed"]), str(r["quarantined"]), r["sha256"][:12], _printable(r["name"])] for r in rows]
    obj.emit({"sources": rows}, _table(table) if rows else "no sources: nothing was ingested")


@sources.command()
@click.argument("source", metavar="ID|SHA256|PATH|NAME")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--no-sessionize", is_flag=True,
              help="Leave the other sources' requests that shared a session with it unsessionized.")
@click.option("--gap-minutes", type=float, default=30.0, show_default=True, help="Session inactivity gap.")
@pass_context
def forget(obj: Context, source: str, yes: bool, no_sessionize: bool, gap_minutes: float) -> None:
    """Remove a source: its requests, their sessions and features, its quarantine rows and its ingest record,
    in one transaction. The file can then be ingested again."""
    from waflens.data.sessionize import update_derived
    from waflens.data.sources import find_source, forget_source
    from waflens.pipeline.spark.attach import refuse_traffic_writes

    con = obj.connect(read_only=True)
    try:
        refuse_traffic_writes(con, "sources forget")   # its requests are Spark's Parquet, read through views
        source_id = find_source(con, source)
        name, records, parsed, quarantined = con.execute(
            "SELECT name, records, parsed, quarantined FROM sources WHERE source_id = $s", {"s": source_id}
        ).fetchall()[0]
    finally:
        con.close()
    _confirm(yes, f"forget source {source_id} ({_printable(name)}: {records} records = {parsed} parsed + "
                  f"{quarantined} quarantined) and the sessions built from it?", "nothing was removed")
    con = obj.connect()
    try:
        summary = forget_source(con, source_id)
        derived = update_derived(con, gap_minutes) if summary.unsessionized and not no_sessionize else None
    finally:
        con.close()
    text = (f"forgot source {summary.source_id} ({_printable(summary.name)}): {summary.requests} requests, "
            f"{summary.quarantined} quarantined records, {summary.sessions} sessions")
    if summary.cluster_memberships:
        text += (f"; {summary.cluster_memberships} cluster memberships in {summary.cluster_runs} cluster runs "
                 "removed (runs and labels stay; `waflens cluster` makes a fresh run)")
    if summary.unsessionized:
        text += (f"; {summary.unsessionized} requests of other sources shared those sessions: "
                 + ("sessionized again" if derived else "run `waflens sessionize` to put them in sessions again"))
    obj.emit({**summary._asdict(), "sessions_total": derived.sessions_total if derived else None}, text)
