"""A retrain run's report as a Prometheus text file, for node_exporter's textfile collector.

Cron runs leave no process to scrape; node_exporter reads ``*.prom`` files from its
``--collector.textfile.directory`` instead. The file is replaced atomically
(``prometheus_client.write_to_textfile`` writes a temporary file beside it and renames
it), so the collector never reads half a run. Every value is a label value, never part
of a metric name: feature names and versions cannot make an invalid or unbounded set of
metric names, and alerts select on labels (``waflens_retrain_drift_status{status="drift"} == 1``).
"""

from __future__ import annotations

import math
import os
import time
from datetime import datetime, timezone
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from waflens.data.errors import InputError
from waflens.scoring.drift import DRIFT_STATUSES

PREFIX = "waflens_retrain_"
# Every run writes all of these, 1 for its own status and 0 for the others, so an alert on
# status="error" == 1 clears when the next run succeeds instead of going stale.
RUN_STATUSES = ("promoted", "nothing_to_do", "gate_failed", "lock_held", "error")
MODEL_ALIASES = ("production", "candidate")


def write_run_metrics(path: str | os.PathLike, report: dict) -> Path:
    """Write the run's metrics to ``path`` (name it ``*.prom`` for the collector); returns the path.

    Only ``report["status"]`` is required; a missing ``started_at`` stamps the run with the
    time of writing.
    """
    status = report.get("status")
    if not isinstance(status, str) or not status:
        raise InputError(f"a retrain report needs a non-empty string 'status' (one of {', '.join(RUN_STATUSES)}), "
                         f"got {status!r}")
    registry = CollectorRegistry()
    _run_metrics(registry, report, status)
    _model_metrics(registry, report)
    _drift_metrics(registry, report.get("drift") or {})
    out = Path(path)
    try:
        write_to_textfile(str(out), registry)
    except OSError as exc:
        raise InputError(f"cannot write metrics to {out} ({exc.strerror or exc}); create the directory or choose "
                         "a writable path (node_exporter's --collector.textfile.directory)") from None
    return out


def _gauge(registry: CollectorRegistry, name: str, documentation: str, labels: tuple[str, ...] = ()) -> Gauge:
    return Gauge(PREFIX + name, documentation, labels, registry=registry)


def _run_metrics(registry: CollectorRegistry, report: dict, status: str) -> None:
    _gauge(registry, "last_run_timestamp_seconds", "Start of the last retrain run, Unix time.").set(
        _timestamp(report.get("started_at")))
    if report.get("duration_seconds") is not None:
        _gauge(registry, "last_run_duration_seconds", "Wall time of the last retrain run.").set(
            float(report["duration_seconds"]))
    if report.get("exit_code") is not None:
        _gauge(registry, "last_run_exit_code", "Exit code of the last retrain run (0 = success).").set(
            int(report["exit_code"]))
    run_status = _gauge(registry, "last_run_status", "1 for the last run's status, 0 for the others.", ("status",))
    for name in RUN_STATUSES + ((status,) if status not in RUN_STATUSES else ()):
        run_status.labels(status=name).set(1 if name == status else 0)
    stages = report.get("stages") or {}
    if stages:
        stage = _gauge(registry, "stage_duration_seconds", "Wall time of each stage of the last run.", ("stage",))
        for name, seconds in stages.items():
            stage.labels(stage=str(name)).set(float(seconds))


def _model_metrics(registry: CollectorRegistry, report: dict) -> None:
    versions = {alias: report.get(f"{alias}_version") for alias in MODEL_ALIASES}
    if any(v is not None for v in versions.values()):
        info = _gauge(registry, "model_info", "Model version under each alias (value always 1).", ("version", "alias"))
        for alias, model_version in versions.items():
            if model_version is not None:
                info.labels(version=str(model_version), alias=alias).set(1)
    rates = {k: v for k, v in (report.get("alert_rate") or {}).items() if v is not None}
    if rates:
        alert_rate = _gauge(registry, "alert_rate", "Share of evaluation traffic each model alerts on.", ("model",))
        for model, rate in rates.items():
            alert_rate.labels(model=str(model)).set(float(rate))


def _drift_metrics(registry: CollectorRegistry, drift: dict) -> None:
    features = drift.get("features") or []
    if not features and not drift.get("counts"):
        return
    psi = _gauge(registry, "drift_psi", "Population stability index of each feature, current vs reference window.",
                 ("feature",))
    status = _gauge(registry, "drift_status", "1 for each feature's drift status, 0 for the others.",
                    ("feature", "status"))
    counts = {name: 0 for name in DRIFT_STATUSES}
    for feature in features:
        name, feature_status = str(feature["name"]), str(feature["status"])
        counts[feature_status] = counts.get(feature_status, 0) + 1
        value = feature.get("psi")
        if value is not None and math.isfinite(value):  # no series for insufficient data, rather than NaN
            psi.labels(feature=name).set(float(value))
        for candidate in DRIFT_STATUSES:
            status.labels(feature=name, status=candidate).set(1 if candidate == feature_status else 0)
    if not features:
        counts.update(drift["counts"])
    by_status = _gauge(registry, "drift_features", "Number of features in each drift status.", ("status",))
    for name, count in counts.items():
        by_status.labels(status=name).set(int(count))


def _timestamp(started_at: str | None) -> float:
    if started_at is None:
        return time.time()
    try:
        parsed = datetime.fromisoformat(started_at)
    except (TypeError, ValueError):
        raise InputError(f"cannot read the report's started_at {started_at!r}: use ISO 8601, "
                         "e.g. 2026-11-01T12:00:00+00:00") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()
