"""``waflens labels`` (labels per session, export) and ``waflens allowlist`` (known good traffic)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import click

from waflens.app.cli_context import Context, pass_context


@click.group()
def labels() -> None:
    """Labels as they reach sessions, their history, and their export."""


@labels.command("sessions")
@click.option("--run", "cluster_run_id", type=int, default=None,
              help="Only sessions whose label was decided (or suggested) in this cluster run.")
@click.option("--all", "include_suggested", is_flag=True, help="Include the machine's suggestions, not only "
                                                               "confirmed and edited labels.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@pass_context
def labelled_sessions_command(obj: Context, cluster_run_id: int | None, include_suggested: bool, limit: int) -> None:
    """Every labelled session, with the latest analyst decision that reached it (on any cluster run)."""
    from waflens.labeling.export import labelled_sessions

    con = obj.connect()
    try:
        table = labelled_sessions(con, cluster_run_id=cluster_run_id, include_suggested=include_suggested)
    finally:
        con.close()
    rows = table.slice(0, limit).to_pylist()
    text = "\n".join(f"session {r['session_id']} ({r['n_requests']} requests, client {r['client_key'][:12]}…): "
                     f"{r['verdict']} {r['family']} [{r['source']} by {r['analyst']}, cluster {r['cluster_id']} "
                     f"of run {r['cluster_run_id']}]" for r in rows)
    obj.emit({"total": table.num_rows, "sessions": rows},
             (text + (f"\n… {table.num_rows - limit} more" if table.num_rows > limit else "")) if rows
             else "no labelled sessions: confirm a cluster's label with `waflens label`")


@labels.command("import")
@click.argument("label_file", type=click.Path(path_type=Path))
@click.option("--analyst", default=None, help="Who labelled them [default: the login name].")
@click.option("--note", default=None, help="Where the labels come from.")
@pass_context
def import_command(obj: Context, label_file: Path, analyst: str | None, note: str | None) -> None:
    """Label sessions from a file of '<session cookie value> <label>' lines (label: human, benign, bot, *_bot or
    a family): each session that carried the cookie gets the analyst decision, for the next retraining."""
    from waflens.data.pseudonymize import Pseudonymizer, load_key
    from waflens.labeling.label_import import import_session_labels, read_label_file

    labels = read_label_file(label_file)
    pseudonymizer = Pseudonymizer(load_key(obj.db, create=False))
    con = obj.connect()
    try:
        summary = import_session_labels(con, labels, cookie_token=pseudonymizer.token, analyst=analyst, note=note)
    finally:
        con.close()
    obj.emit(summary._asdict(),
             f"{summary.sessions} sessions labelled from {summary.ids} ids in {label_file}"
             + (f"; {summary.not_found} ids matched no session (was the log ingested with --session-key cookie "
                "--session-cookie NAME?)" if summary.not_found else "")
             + ("; retrain to use them (`waflens retrain`, or `waflens train --level session`)" if summary.sessions
                else ""))


@labels.command("history")
@click.argument("cluster_id", type=int)
@click.option("--run", "cluster_run_id", type=int, default=None, help="The cluster run [default: the latest].")
@pass_context
def history_command(obj: Context, cluster_id: int, cluster_run_id: int | None) -> None:
    """A cluster's label events, with the analysts' decisions on earlier runs' clusters that reached its sessions."""
    from waflens.labeling.labels import cluster_label, label_history, latest_run

    con = obj.connect()
    try:
        run = cluster_run_id if cluster_run_id is not None else latest_run(con)
        events = label_history(con, run, cluster_id)
        state = cluster_label(con, run, cluster_id) or {}
    finally:
        con.close()
    members = int(state.get("n_members") or 0)
    lines = [f"cluster {cluster_id} of run {run}: {members} member sessions, {state.get('n_decided') or 0} decided by "
             f"an analyst, {state.get('n_labelled') or 0} labelled"]
    for e in events:
        where = "this cluster" if e["own"] else f"cluster {e['cluster_id']} of run {e['cluster_run_id']}"
        reach = "" if e["source"] == "suggested" else \
            f", reached {e['sessions_reached']} of its sessions (latest decision for {e['sessions_current']})"
        lines.append(f"  #{e['label_event_id']} {e['created_at']:%Y-%m-%d %H:%M} {e['source']} {e['verdict']} "
                     f"{e['family']} by {e['analyst']} on {where}{reach}" + (f": {e['note']}" if e["note"] else ""))
    if not events:
        lines.append("  no label events yet: `waflens summarize` proposes, `waflens label` decides")
    obj.emit({"cluster_run_id": run, "cluster_id": cluster_id, "members": members,
              "decided": int(state.get("n_decided") or 0), "labelled": int(state.get("n_labelled") or 0),
              "events": events}, "\n".join(lines))


@labels.command("export")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="A .parquet or .csv file.")
@click.option("--run", "cluster_run_id", type=int, default=None, help="Only sessions labelled in this cluster run.")
@click.option("--all", "include_suggested", is_flag=True, help="Include the machine's suggestions.")
@pass_context
def export_command(obj: Context, out: Path, cluster_run_id: int | None, include_suggested: bool) -> None:
    """Write labelled sessions to Parquet or CSV (CSV cells that could run as formulas are neutralised)."""
    from waflens.labeling.export import export_labelled_sessions

    con = obj.connect()
    try:
        n = export_labelled_sessions(con, out, cluster_run_id=cluster_run_id, include_suggested=include_suggested)
    finally:
        con.close()
    obj.emit({"out": str(out), "sessions": n}, f"wrote {n} labelled sessions to {out}")


@click.group()
def allowlist() -> None:
    """Known good traffic, kept out of alerts and treated as benign by retraining."""


@allowlist.command("add")
@click.option("--client-key", "client_key", default=None, help="A client key exactly as stored (see the workbench).")
@click.option("--path", "path_pattern", default=None, help="RE2 regex searched in decoded request paths.")
@click.option("--user-agent", "ua_pattern", default=None, help="RE2 regex searched in User-Agents.")
@click.option("--reason", required=True, help="Who this traffic is and why it is good.")
@click.option("--days", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Expire after this many days [default: until revoked].")
@click.option("--author", default=None, help="Who allows it [default: the login name].")
@pass_context
def allowlist_add(obj: Context, client_key, path_pattern, ua_pattern, reason: str, days: float | None,
                  author: str | None) -> None:
    """Add one rule: exactly one of --client-key, --path, --user-agent."""
    from waflens.data.errors import InputError
    from waflens.labeling.allowlist import add_rule

    given = [(kind, value) for kind, value in (("client_key", client_key), ("path", path_pattern),
                                               ("user_agent", ua_pattern)) if value is not None]
    if len(given) != 1:
        raise InputError("give exactly one of --client-key, --path, --user-agent")
    kind, pattern = given[0]
    expires = datetime.now(timezone.utc) + timedelta(days=days) if days else None
    con = obj.connect()
    try:
        rule_id = add_rule(con, kind, pattern, reason=reason, author=author, expires_at=expires)
    finally:
        con.close()
    obj.emit({"rule_id": rule_id, "kind": kind, "pattern": pattern},
             f"allowlist rule {rule_id}: {kind} {pattern!r}" + (f", expires {expires:%Y-%m-%d %H:%M} UTC" if expires else ""))


@allowlist.command("list")
@click.option("--all", "include_inactive", is_flag=True, help="Include expired and revoked rules.")
@pass_context
def allowlist_list(obj: Context, include_inactive: bool) -> None:
    """The rules in force (or all of them)."""
    from waflens.labeling.allowlist import list_rules

    con = obj.connect()
    try:
        rules = list_rules(con, include_inactive=include_inactive)
    finally:
        con.close()
    text = "\n".join(f"{r.rule_id}: {r.kind} {r.pattern!r} — {r.reason} ({r.author}, {r.created_at:%Y-%m-%d}"
                     + (f", expires {r.expires_at:%Y-%m-%d %H:%M}" if r.expires_at else "")
                     + (f", revoked by {r.revoked_by}" if r.revoked_at else "") + ")" for r in rules)
    obj.emit({"rules": [r._asdict() for r in rules]}, text or "the allowlist is empty")


@allowlist.command("revoke")
@click.argument("rule_id", type=int)
@click.option("--author", default=None)
@pass_context
def allowlist_revoke(obj: Context, rule_id: int, author: str | None) -> None:
    """Revoke a rule (it stays on record)."""
    from waflens.labeling.allowlist import revoke_rule

    con = obj.connect()
    try:
        revoke_rule(con, rule_id, author=author)
    finally:
        con.close()
    obj.emit({"rule_id": rule_id, "revoked": True}, f"allowlist rule {rule_id} revoked")
