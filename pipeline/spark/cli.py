"""``waflens spark ...``: the pipeline on Apache Spark (issue S), as a click group.

Registered under ``waflens`` (``app/cli.py``: ``cli.add_command(spark)``) and runnable on its own:
``python -m waflens.pipeline.spark.cli score DIR --model PATH`` in local mode, or this file as
``spark-submit``'s application (docs/scaling.md shows how to find it and ship the environment). Outside
``spark-submit`` the master is ``--master``, else ``$WAFLENS_SPARK_MASTER``, else ``local[2]``.

This module sits in ``pipeline`` (below ``app``), so it reads the global options (``--json``, ``--db``) from
the root click context's object without importing the app; alone, it prints text.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from waflens.data.errors import WaflensError
from waflens.data.sessionize import DEFAULT_GAP_MINUTES


def _emit(summary: dict, text: str) -> None:
    root = click.get_current_context().find_root().obj
    if root is not None and hasattr(root, "emit"):
        root.emit(summary, text)
    elif root is not None and getattr(root, "as_json", False):
        click.echo(json.dumps(summary, default=str))
    else:
        click.echo(text)


def _session(master: str | None):
    from waflens.pipeline.spark.session import spark_session

    return spark_session(master)


@click.group()
@click.option("--master", default=None, help="Spark master [default: spark-submit's, $WAFLENS_SPARK_MASTER or local[2]].")
@click.pass_context
def spark(ctx: click.Context, master: str | None) -> None:
    """The pipeline on Apache Spark: Parquet in one output directory DIR (see docs/scaling.md)."""
    ctx.meta["waflens.spark_master"] = master


def _master() -> str | None:
    return click.get_current_context().meta.get("waflens.spark_master")


@spark.command("sessionize")
@click.argument("out", metavar="DIR")
@click.option("--gap-minutes", type=float, default=DEFAULT_GAP_MINUTES, show_default=True,
              help="Session inactivity gap (as `waflens sessionize`).")
def sessionize_command(out: str, gap_minutes: float) -> None:
    """Sessions and session features of DIR/requests: DIR/request_sessions, DIR/sessions, DIR/session_features."""
    from waflens.pipeline.spark.sessions import sessionize_directory

    summary = sessionize_directory(_session(_master()), out, gap_minutes)
    _emit(summary._asdict(), f"{summary.requests} requests in {summary.sessions} sessions: {out}/sessions, "
                             f"{out}/session_features")


@spark.command("score")
@click.argument("out", metavar="DIR")
@click.option("--model", "model", required=True, help="Exported model directory (`waflens models export`), "
                                                     "local or a Hadoop URI.")
def score_command(out: str, model: str) -> None:
    """Score every request (request model) or session (session model) of DIR: DIR/scores/level=LEVEL/."""
    from waflens.pipeline.spark.score import score_directory

    summary = score_directory(_session(_master()), out, model)
    classes = ", ".join(f"{k} {v}" for k, v in sorted(summary.by_class.items()))
    _emit(summary._asdict(), f"{summary.scored} {summary.level}s scored ({classes}): {summary.output}")


@spark.command("cluster")
@click.argument("out", metavar="DIR")
@click.option("--sample", "sample_size", type=click.IntRange(min=10), default=None,
              help="Suspicious sessions HDBSCAN is fitted on, on the driver [default: 20000]; the rest are placed "
                   "on the executors.")
@click.option("--min-cluster-size", type=click.IntRange(min=2), default=10, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def cluster_command(out: str, sample_size: int | None, min_cluster_size: int, seed: int) -> None:
    """Cluster DIR's suspicious sessions: fit on a sample, place the rest; DIR/cluster_assignments/."""
    from waflens.pipeline.spark.cluster import DEFAULT_SAMPLE, SparkClusterOptions, cluster_directory

    options = SparkClusterOptions(sample_size=sample_size or DEFAULT_SAMPLE, min_cluster_size=min_cluster_size,
                                  seed=seed)
    summary = cluster_directory(_session(_master()), out, options)
    _emit(summary._asdict(), f"{summary.selected} of {summary.sessions} sessions suspicious; {summary.fitted} fitted, "
                             f"{summary.placed} placed; {summary.clusters} clusters, {summary.noise} noise: "
                             f"{summary.output}")


@spark.command("attach")
@click.argument("out", metavar="DIR")
@click.option("--db", "db", type=click.Path(path_type=Path), default=None,
              help="DuckDB file to create or refresh [default: the global --db].")
def attach_command(out: str, db: Path | None) -> None:
    """Make a DuckDB database read DIR's Parquet (views), for `waflens cluster`, `summarize`, `label`, `app`."""
    from waflens.pipeline.spark.attach import attach_directory

    root = click.get_current_context().find_root().obj
    db = db or getattr(root, "db", None)
    if db is None:
        raise click.UsageError("pass --db FILE")
    summary = attach_directory(out, db)
    _emit(summary._asdict(), f"{summary.db} reads {summary.directory}: {summary.files} files, {summary.requests} "
                             f"requests, {summary.sessions} sessions (`waflens --db {summary.db} cluster` next)")


def main(argv: list[str] | None = None) -> int:
    """``python -m waflens.pipeline.spark.cli``: the group alone, errors as one line and their exit code."""
    try:
        spark.main(args=argv, prog_name="waflens spark", standalone_mode=False)
    except WaflensError as error:
        click.echo(f"waflens: error: {error}", err=True)
        return error.exit_code
    except click.ClickException as error:
        error.show()
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
