"""What the production model says about recent traffic, for the Overview page.

The registry's ``production`` session model scores a sample of the latest window's
session features (what a WAF worker's ``SessionScorer`` computes live). A session
alerts when its score is at or above the model's own alert threshold, the
``likely_attack`` class threshold in its manifest: the definition ``waflens retrain``
uses for its gates, run report and model card, so every page gives one alert rate.
The scorer is a cached resource (loading compiles numba kernels); scores are cached
per database change and model version, and at most :data:`MAX_SESSIONS` sessions
are scored so the page stays cheap on a large database.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import streamlit as st

from waflens.app.state import config, data_version, read
from waflens.data.feature_spec import feature_names
from waflens.data.session_matrix import session_feature_matrix, session_feature_rows

MAX_SESSIONS = 20_000
WINDOW_HOURS = 24


ALERT_CLASS = "likely_attack"   # the score class from which a model alerts (waflens.runtime.scorer's classes)


class ProductionScores(NamedTuple):
    version: str
    scores: np.ndarray          # one per sampled session of the window
    threshold: float            # score at or above which a session alerts
    sessions_in_window: int
    window_start: object
    window_end: object


def production_version():
    """The registry's production VersionInfo, or None (no registry, no promotion yet, or unreadable)."""
    from waflens.scoring.registry import PRODUCTION, Registry

    try:
        registry = Registry(config().models_root)
        return registry.get(PRODUCTION) if registry.alias(PRODUCTION) else None
    except Exception:  # a damaged registry must not take the Overview down; the Models page says why
        return None


@st.cache_resource(show_spinner="Loading the production model…", max_entries=4)
def _session_scorer(path: str, version: str):
    from waflens.runtime.scorer import SessionScorer

    return SessionScorer.load(path)


def _window_features(con, hours: int, limit: int):
    names = feature_names("session")
    end = con.execute("SELECT max(start_ts) FROM sessions").fetchall()[0][0]
    if end is None:
        return None, None, 0, np.empty((0, len(names)))
    total = con.execute("SELECT count(*) FROM sessions WHERE start_ts > $end - to_hours($h)",
                        {"end": end, "h": hours}).fetchall()[0][0]
    _, X = session_feature_matrix(con, "s.start_ts > $end - to_hours($h)", {"end": end, "h": hours},
                                  order="hash(s.session_id), s.session_id", limit=limit)
    start = con.execute("SELECT $end - to_hours($h)", {"end": end, "h": hours}).fetchall()[0][0]
    return start, end, int(total), X


def alert_threshold(manifest: dict) -> float:
    """A model's alert threshold: the lowest score of its ``likely_attack`` class."""
    return float((manifest.get("thresholds") or {}).get(ALERT_CLASS, float("nan")))


def alert_rate(scores: np.ndarray, threshold: float) -> float:
    """The share of scores at or above the alert threshold (0 for no scores)."""
    return float(np.mean(np.asarray(scores) >= threshold)) if len(scores) else 0.0


def production_scores() -> ProductionScores | None:
    info = production_version()
    if info is None or "session" not in info.levels:
        return None
    start, end, total, rows = read(_window_features, WINDOW_HOURS, MAX_SESSIONS)
    scores, threshold = _score(str(info.path / "session"), info.version, data_version(), rows)
    return ProductionScores(info.version, scores, threshold, total, start, end)


@st.cache_data(show_spinner="Scoring the latest sessions…", max_entries=8)
def _score(path: str, version: str, data: float, _rows: np.ndarray) -> tuple[np.ndarray, float]:
    scorer = _session_scorer(path, version)
    scores = scorer.score_batch(_rows) if len(_rows) else np.empty(0)
    return np.asarray(scores, dtype=np.float64), alert_threshold(scorer.manifest)


def _session_rows(con, session_ids: tuple[int, ...]) -> np.ndarray:
    return session_feature_rows(con, np.array(session_ids, dtype=np.int64))


def bot_scores(session_ids: list[int]) -> tuple[list[int], list[str]] | None:
    """The production session model's bot score (1..99, low = automated) and reasons for these sessions; None
    without a production model or with one from before the bot score."""
    info = production_version()
    if info is None or "session" not in info.levels or not session_ids:
        return None
    scorer = _session_scorer(str(info.path / "session"), info.version)
    if not scorer.has_bot_score:
        return None
    rows = read(_session_rows, tuple(int(s) for s in session_ids))
    return ([int(v) for v in scorer.bot_scores(rows)], ["; ".join(scorer.bot_reasons(row)) for row in rows])


def latest_run_report() -> dict | None:
    """The newest retrain run report (``<registry>/runs/*.json``), or None."""
    runs = config().models_root / "runs"
    try:
        reports = sorted(runs.glob("*.json"), key=lambda p: p.stat().st_mtime)
    except OSError:
        return None
    for path in reversed(reports):
        try:
            report = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(report, dict):
            return {**report, "_file": path.name}
    return None
