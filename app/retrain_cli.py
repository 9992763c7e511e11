"""``waflens retrain``: the cron entry point (see pipeline/retrain.py for the stages and exit codes)."""

from __future__ import annotations

from pathlib import Path

import click

from waflens.app.cli_context import Context, Exit, parse_time, pass_context
from waflens.pipeline.retrain import RETRAIN_EXIT_CODES
from waflens.scoring.evaluation import DEFAULT_HOLDOUT_FRACTION

def stage_progress(prefix: str, obj: Context, registry_root: Path | None):
    """A bar per stage on a terminal (ETAs from the previous run), lines otherwise; JSON lines with --json."""
    import sys

    from waflens.app.progress import StageProgress, previous_stage_seconds
    from waflens.scoring.registry import default_registry_root

    root = Path(registry_root or default_registry_root(obj.db))
    return StageProgress(prefix, json_out=sys.stdout if obj.as_json else None,
                         expected=previous_stage_seconds(root))


EXIT_HELP = "\n".join(f"  {code:>3}  {meaning}" for code, meaning in RETRAIN_EXIT_CODES.items())


@click.command(epilog=f"Exit codes (besides the general ones of `waflens --help`):\n\n\b\n{EXIT_HELP}")
@click.option("--source", "sources", multiple=True, metavar="FILE_OR_GLOB",
              help="Log files to ingest first (already ingested files are skipped) [default: $WAFLENS_SOURCES, "
                   "paths separated by ':'].")
@click.option("--models", "registry_root", type=click.Path(path_type=Path), default=None,
              help="Model registry [default: $WAFLENS_MODELS or <database dir>/models].")
@click.option("--provider", default=None, help="Summarizer for new clusters [default: $WAFLENS_LLM_PROVIDER, the "
                                               "LLM settings file, or offline].")
@click.option("--trees", type=click.IntRange(10, 2000), default=100, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--holdout", "holdout_fraction", type=click.FloatRange(0.0, 0.9), default=DEFAULT_HOLDOUT_FRACTION,
              show_default=True,
              help="Share of the latest sessions held out for the gates (0: none).")
@click.option("--tolerance", type=click.FloatRange(0.0, 0.5), default=0.02, show_default=True,
              help="How much AUC or recall the candidate may lose against production on labelled holdout data.")
@click.option("--max-alert-rate", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.25, show_default=True,
              help="Largest share of latest-window sessions the candidate may alert on.")
@click.option("--max-p99-us", type=click.FloatRange(1.0), default=2000.0, show_default=True,
              help="Latency gate: p99 of one request scored end to end, in microseconds.")
@click.option("--force", is_flag=True, help="Retrain even when nothing is new.")
@click.option("--no-promote", is_flag=True, help="Register the candidate and run the gates, but leave production.")
@click.option("--allow-label-loss", is_flag=True,
              help="Let the feedback_coverage gate pass (with a warning) when the candidate learnt from fewer "
                   "analyst-labelled sessions than production, e.g. after rejecting or purging labelled traffic.")
@click.option("--prometheus", "prometheus_textfile", type=click.Path(path_type=Path), default=None,
              help="Write run metrics for node_exporter's textfile collector [default: $WAFLENS_PROMETHEUS_TEXTFILE].")
@pass_context
def retrain(obj: Context, sources, registry_root, provider, trees, seed, holdout_fraction, tolerance, max_alert_rate,
            max_p99_us, force, no_promote, allow_label_loss, prometheus_textfile) -> None:
    """Ingest → sessionize → cluster → summarize → train → gates → promote, for cron."""
    from waflens.scoring.gates import GateConfig
    from waflens.pipeline.retrain import RetrainOptions, retrain as run_retrain

    options = RetrainOptions(sources=tuple(sources), registry_root=registry_root, provider=provider, trees=trees,
                             seed=seed, holdout_fraction=holdout_fraction, force=force, promote=not no_promote,
                             prometheus_textfile=prometheus_textfile, allow_label_loss=allow_label_loss,
                             gates=GateConfig(tolerance=tolerance, max_alert_rate=max_alert_rate,
                                              max_p99_us=max_p99_us))
    from waflens.data.interrupts import DeferredInterrupt
    from waflens.pipeline.retrain import EXIT_INTERRUPTED

    # a Ctrl-C after the run ended (while its summary prints) changes nothing: the run's own outcome is the answer
    with DeferredInterrupt(), stage_progress("retrain", obj, registry_root) as progress:
        result = run_retrain(obj.db, options, progress=progress)
        report = result.report
        lines = [f"{result.status}: {report.get('message')}"]
        for g in report.get("gates") or []:
            mark = "WARN" if g.get("warning") else {True: "pass", False: "FAIL", None: "skip"}[g["passed"]]
            lines.append(f"  [{mark}] {g['name']}: {g['detail']}")
        if report.get("report_path"):
            lines.append(f"report: {report['report_path']}")
        obj.emit(report, "\n".join(lines))
    if result.exit_code == EXIT_INTERRUPTED:  # said above; as waflens.app.cli._interrupted: no dying of a pending Ctrl-C
        import signal

        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:  # not the main thread
            pass
    if result.exit_code:
        raise Exit(result.exit_code)


@click.command()
@click.option("--level", type=click.Choice(["session", "request"]), default="session", show_default=True)
@click.option("--split", default=None, help="Compare traffic before this time (ISO 8601, UTC) with traffic after it "
                                            "[default: where production's training window ended, else the latest "
                                            "25% of sessions].")
@click.option("--models", "registry_root", type=click.Path(path_type=Path), default=None,
              help="Model registry [default: $WAFLENS_MODELS or <database dir>/models].")
@pass_context
def drift(obj: Context, level: str, split: str | None, registry_root: Path | None) -> None:
    """Per-feature drift between the training window and the latest traffic (PSI, KS, Wasserstein)."""
    from datetime import datetime

    from waflens.scoring.drift import window_drift
    from waflens.scoring.registry import Registry, default_registry_root
    from waflens.scoring.evaluation import holdout_split

    registry = Registry(registry_root or default_registry_root(obj.db))
    con = obj.connect(read_only=True)
    try:
        at = parse_time(split)
        if at is None and registry.alias("production"):
            until = (registry.get("production").training or {}).get("until")
            at = datetime.fromisoformat(until) if until else None
        if at is None:
            at = holdout_split(con, 0.25)
        if at is None:
            from waflens.data.errors import InsufficientDataError

            raise InsufficientDataError("no timestamps to split on: pass --split")
        report = window_drift(con, level, (None, at), (at, None)).to_dict()
    finally:
        con.close()
    def number(value, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    rows = [f"  {f['name']:<22} {f['status']:<17} PSI {number(f['psi'], '<8.4f')} "
            f"KS p {number(f['ks_pvalue'], '<10.3g')} n {f['reference_n']}/{f['current_n']}" for f in report["features"]]
    obj.emit({"split": at.isoformat(), "level": level, **report},
             f"drift of {level} features before/after {at:%Y-%m-%d %H:%M} UTC: {report['status']}\n" + "\n".join(rows))
