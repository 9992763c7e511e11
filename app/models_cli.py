"""``waflens models``: list, inspect, promote and roll back the versions of the model registry.

A thin layer over :class:`waflens.scoring.registry.Registry`. Promotion and rollback change
what every WAF worker scores with, so both ask for confirmation unless ``--yes``
(cron and deploy scripts pass it); the prompt goes to stderr so ``--json`` output
stays one object on stdout.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from waflens.app.cli_context import Context, pass_context
from waflens.data.errors import WaflensError
from waflens.scoring.registry import PRODUCTION, Registry, VersionInfo, default_registry_root

_ROOT_KEY = "waflens.models_root"


class Cancelled(WaflensError):
    """The operator answered no (or nothing) at a confirmation prompt: nothing changed."""

    exit_code = 130


def _registry(obj: Context) -> Registry:
    """The registry the group's ``--models`` option names, else the default beside the database."""
    return Registry(click.get_current_context().meta.get(_ROOT_KEY) or default_registry_root(obj.db))


@click.group()
@click.option("--models", "root", type=click.Path(path_type=Path), default=None,
              help="Model registry directory [default: $WAFLENS_MODELS or models/ beside the database].")
@click.pass_context
def models(ctx: click.Context, root: Path | None) -> None:
    """Registered model versions: list, show, promote, roll back."""
    ctx.meta[_ROOT_KEY] = root


def _key_metrics(metrics: dict, limit: int = 3) -> str:
    """The first few numeric metrics, short enough for a table cell."""
    shown = [f"{name}={value:.4g}" for name, value in metrics.items()
             if isinstance(value, (int, float)) and not isinstance(value, bool)][:limit]
    return " ".join(shown) or "-"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def _summary(info: VersionInfo) -> dict:
    return {"version": info.version, "created_at": info.created_at, "aliases": list(info.aliases),
            "metrics": info.metrics, "levels": list(info.levels), "parent": info.parent}


@models.command("list")
@pass_context
def list_versions(obj: Context) -> None:
    """All versions, oldest first, with their aliases and key metrics."""
    registry = _registry(obj)
    infos = registry.versions()
    rows = [["VERSION", "CREATED", "ALIASES", "LEVELS", "METRICS"]] + [
        [i.version, i.created_at, ",".join(i.aliases) or "-", ",".join(i.levels), _key_metrics(i.metrics)]
        for i in infos]
    obj.emit({"versions": [_summary(i) for i in infos]},
             _table(rows) if infos else f"no model versions in {registry.root}")


@models.command()
@click.argument("name", metavar="VERSION|ALIAS")
@pass_context
def show(obj: Context, name: str) -> None:
    """A version's metadata (version.json) and its model card."""
    registry = _registry(obj)
    info = registry.get(name)
    meta, card = registry.metadata(info.version), registry.card(info.version)
    text = json.dumps(meta, indent=2, sort_keys=True, default=str)
    header = f"{info.version} ({', '.join(info.aliases) or 'no aliases'}) at {info.path}"
    obj.emit({**meta, "version": info.version, "aliases": list(info.aliases), "path": str(info.path), "card": card},
             "\n".join([header, text] + ([f"\n{card.rstrip()}"] if card else [])))


def _confirm(yes: bool, question: str, unchanged: str) -> None:
    if yes:
        return
    try:
        agreed = click.confirm(question, default=False, err=True)
    except click.exceptions.Abort:  # end of input (a script without --yes) or Ctrl-C at the prompt
        click.echo(err=True)          # end the prompt's line before the error's
        agreed = False
    if not agreed:
        raise Cancelled(f"not confirmed: {unchanged} (pass --yes to skip the prompt)")


@models.command()
@click.argument("version", metavar="VERSION|ALIAS")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--reason", default="", help="Why; recorded in the registry's history.jsonl.")
@click.option("--actor", default=None, help="Who promotes [default: the login name].")
@pass_context
def promote(obj: Context, version: str, yes: bool, reason: str, actor: str | None) -> None:
    """Make VERSION the production model (workers switch at their next check)."""
    registry = _registry(obj)
    target = registry.get(version).version
    current = registry.alias(PRODUCTION)
    if current == target:
        obj.emit({"production": target, "previous": current, "changed": False},
                 f"{target} is already production: nothing changed")
        return
    _confirm(yes, f"promote {target} to production (now {current or 'none'})?",
             f"production is still {current or 'unset'}")
    previous = registry.promote(target, actor=actor, reason=reason)
    obj.emit({"production": target, "previous": previous, "changed": True},
             f"production: {previous or 'none'} -> {target}")


@models.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--reason", default="", help="Why; recorded in the registry's history.jsonl.")
@click.option("--actor", default=None, help="Who rolls back [default: the login name].")
@pass_context
def rollback(obj: Context, yes: bool, reason: str, actor: str | None) -> None:
    """Put production back on the version before the latest promotion (repeat to go further back)."""
    registry = _registry(obj)
    current, target = registry.alias(PRODUCTION), registry.rollback_target()
    _confirm(yes, f"roll production back from {current} to {target}?", f"production is still {current}")
    restored = registry.rollback(actor=actor, reason=reason)
    obj.emit({"production": restored, "previous": current, "changed": True}, f"production: {current} -> {restored}")
