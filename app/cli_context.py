"""What every ``waflens`` command shares: the global options' :class:`Context`, the exit of a command
with a documented code, and the reading of ``--since`` / ``--until``.

Its own module so that the command modules (``cli.py`` and the ``*_cli.py`` groups) import it, and
``cli.py`` imports the groups, without either importing the other.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import click

from waflens.data.errors import InputError, WaflensError


class Context:
    def __init__(self, db: Path, as_json: bool, debug: bool):
        self.db = db
        self.as_json = as_json
        self.debug = debug
        self.failures: list[WaflensError] = []
        self.warned_permissions = False

    def connect(self, read_only: bool = False):
        from waflens.data.db import connect, loose_permissions

        con = connect(self.db, read_only=read_only)
        warning = loose_permissions(self.db)
        if warning and not self.warned_permissions:
            self.warned_permissions = True
            self.warn(f"warning: {warning}")
        return con

    def emit(self, summary: dict, text: str) -> None:
        if self.as_json:
            click.echo(json.dumps(summary, default=str, ensure_ascii=False))
        else:
            click.echo(text)

    def warn(self, message: str) -> None:
        click.echo(f"waflens: {message}", err=True)


pass_context = click.make_pass_decorator(Context)


class Exit(Exception):
    """A command ends with this exit code, having said why itself (``waflens.app.cli.main`` returns it)."""

    def __init__(self, code: int):
        self.code = code


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 time as naive UTC (the database's time zone), or None."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"cannot read time {value!r}: use ISO 8601, e.g. 2026-11-01 or 2026-11-01T12:00:00Z") from None
    return parsed.astimezone(timezone.utc).replace(tzinfo=None) if parsed.tzinfo else parsed
