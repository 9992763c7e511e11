"""``waflens train``: fit the request-level anomaly model on the database and export it.

Features: the spec's request features (from the ``request_features`` table), the
request's deviations from endpoint/parameter profiles (out of fold during training,
see :func:`waflens.scoring.profiles.out_of_fold_deviations`) and the code-likeness of its most
code-like value (:mod:`waflens.runtime.kernels.code`). Model: scikit-learn's IsolationForest,
exported to flat arrays for the numba runtime; the request classes are calibrated on
held-out folds (:mod:`waflens.scoring.calibration`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable, NamedTuple

import duckdb
import numpy as np
from sklearn.ensemble import IsolationForest

from waflens.data.errors import InsufficientDataError
from waflens.data.feature_spec import FEATURE_SPEC_VERSION, feature_names, manifest_lists
from waflens.data.session_matrix import session_feature_matrix
from waflens.runtime.artifact import write_artifact
from waflens.scoring.calibration import calibrate, fold_assignment, out_of_fold_forest_scores
from waflens.runtime.kernels.code import TOKENIZER_VERSION, request_code_likeness
from waflens.scoring.code_model import shipped_code_weights
from waflens.scoring.forest_export import flatten_isolation_forest
from waflens.runtime.kernels.forest import float32_floor, perfect_layout, perfect_scores, sanitize
from waflens.runtime.kernels.profile import N_PROFILE_FEATURES, NOVEL_CLASS_FEATURE_NAMES, PROFILE_FEATURE_NAMES
from waflens.scoring.profiles import encode_request, out_of_fold_deviations, parse_requests, profiles_of
from waflens.runtime.kernels.score import CODE_FEATURE_NAMES, CODE_LIKENESS

MIN_TRAINING_REQUESTS = 200
MIN_TRAINING_SESSIONS = 50
QUANTILES = (0.5, 0.9, 0.95, 0.99, 0.995, 0.999)
# Session score classes start at median + k * MAD of the training scores (MAD scaled to a normal
# sigma). Quantiles would put the thresholds inside the attacks that training traffic contains; the
# median and MAD ignore up to half of it being attacks. (Request classes: waflens.scoring.calibration.)
CLASS_MADS = {"likely_clean": 2.0, "likely_attack": 3.5, "attack": 5.0}


@dataclass
class TrainingOptions:
    since: datetime | None = None
    until: datetime | None = None
    n_estimators: int = 100
    # 1024 rather than the paper's 256: on CSIC with injected payloads (benchmarks/detection.py) it lifts
    # detection at 1% false positives from 88% to 98%, at 10-level instead of 8-level trees.
    max_samples: int = 1024
    seed: int = 0
    folds: int = 5
    feedback: bool = True      # blend in a model of the analysts' confirmed labels when there are any
    gap_minutes: float = 30.0  # the sessionizing gap the session features were built with


def request_feature_names() -> list[str]:
    return (feature_names("request") + list(PROFILE_FEATURE_NAMES) + list(CODE_FEATURE_NAMES)
            + list(NOVEL_CLASS_FEATURE_NAMES))


def load_training_requests(con: duckdb.DuckDBPyConnection, options: TrainingOptions):
    names = feature_names("request")
    rows = con.execute(
        f"""SELECT r.request_id, r.method, r.path, r.query, r.body, {", ".join("f." + n for n in names)}
            FROM requests r JOIN request_features f USING (request_id)
            WHERE ($since IS NULL OR r.ts >= $since) AND ($until IS NULL OR r.ts < $until)
            ORDER BY r.request_id""",
        {"since": options.since, "until": options.until},
    ).fetchnumpy()
    return rows, names


Step = Callable[[str], None]  # told after each step of training, with what was done (for progress bars)


def _no_step(done: str) -> None:
    pass


def training_steps(options: TrainingOptions) -> int:
    """How many times the two ``train_*_model`` functions call their ``step`` callback."""
    return (4 + options.folds) + 3


def train_request_model(con: duckdb.DuckDBPyConnection, out: str | Path, options: TrainingOptions | None = None,
                        step: Step = _no_step) -> dict:
    """Fit, score the training data for thresholds, and export; returns the manifest."""
    options = options or TrainingOptions()
    started = time.perf_counter()
    rows, names = load_training_requests(con, options)
    n = len(rows["request_id"])
    if n < MIN_TRAINING_REQUESTS:
        raise InsufficientDataError(
            f"only {n} requests with features in the training window; at least {MIN_TRAINING_REQUESTS} are needed "
            "(ingest more traffic or widen --since/--until)")
    encoded = [encode_request(m, p, q, b) for m, p, q, b in zip(rows["method"], rows["path"], rows["query"], rows["body"])]
    generic = np.column_stack([np.asarray(rows[name], dtype=np.float64) for name in names])
    parsed = parse_requests(encoded)  # once: every fold's profiles and the final ones aggregate it
    step(f"request model: {n:,} requests parsed")
    profile_features = out_of_fold_deviations(encoded, folds=options.folds, seed=options.seed, parsed=parsed,
                                              progress=lambda k, folds: step(f"request model: profile fold {k}/{folds}"))
    code_weights, code_bias, code_provenance = shipped_code_weights()
    code = np.array([request_code_likeness(r.path, r.query, r.body, code_weights, code_bias) for r in encoded])
    # the row: request features, profile features, code-likeness, new character classes per parameter kind
    X = np.hstack([generic, profile_features[:, :N_PROFILE_FEATURES], code[:, None],
                   profile_features[:, N_PROFILE_FEATURES:]])
    # code-likeness and the new character classes reach the score as evidence only: the forest measures
    # unusualness, and a feature with a long benign tail would spend its splits there
    fitted = _fit_forest(X, options, forest_columns=CODE_LIKENESS)
    step("request model: forest fitted")
    held_out = out_of_fold_forest_scores(X[:, :CODE_LIKENESS], fold_assignment(n, options.folds, options.seed),
                                         n_estimators=options.n_estimators, max_samples=options.max_samples,
                                         seed=options.seed)
    surprise, shape, thresholds, structural, calibration, held_out_scores = calibrate(X, held_out, code_bias)
    step("request model: classes calibrated on held-out folds")
    profiles = profiles_of(parsed)
    arrays = fitted.arrays
    arrays.update({f"profile_{k}": v for k, v in profiles._asdict().items()})
    arrays.update(structural_surprise=surprise, code_weights=code_weights, score_shape=shape)
    summary = request_score_summary(fitted.scores, held_out_scores, thresholds)
    first_ts, last_ts = con.execute(
        "SELECT min(ts), max(ts) FROM requests WHERE ($since IS NULL OR ts >= $since) AND ($until IS NULL OR ts < $until)",
        {"since": options.since, "until": options.until}).fetchall()[0]
    manifest = {
        "level": "request",
        "model": {**fitted.model, "profile_folds": options.folds, "structural_evidence": structural,
                  "code_model": {"tokenizer_version": TOKENIZER_VERSION, **code_provenance},
                  "calibration": calibration},
        "feature_spec": {"version": FEATURE_SPEC_VERSION, "names": request_feature_names(),
                         "request_features": names, "profile_features": list(PROFILE_FEATURE_NAMES),
                         "code_features": list(CODE_FEATURE_NAMES),
                         "novel_class_features": list(NOVEL_CLASS_FEATURE_NAMES),
                         "lists": manifest_lists()},
        "training": {"since": _iso(options.since), "until": _iso(options.until), "requests": n,
                     "first_ts": _iso(first_ts), "last_ts": _iso(last_ts),
                     # access logs carry no bodies: a model that never saw one must not judge one
                     "body_share": float(np.mean(generic[:, names.index("body_len")] > 0)),
                     "seconds": round(time.perf_counter() - started, 3)},
        **summary,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "package_version": _package_version(),
    }
    write_artifact(out, arrays, manifest)
    step("request model: exported")
    return manifest


class FittedForest(NamedTuple):
    arrays: dict        # forest_* arrays and feature_median, for the artifact
    model: dict         # the manifest's "model" entry
    summary: dict       # score_quantiles, thresholds and metrics for the manifest
    scores: np.ndarray  # the training rows' scores, as the runtime computes them


def _fit_forest(X: np.ndarray, options: TrainingOptions, forest_columns: int | None = None) -> FittedForest:
    """Fit the isolation forest (on the first ``forest_columns`` columns; default all), score the training rows
    as the runtime will, derive the thresholds."""
    forest = IsolationForest(n_estimators=options.n_estimators, max_samples=min(options.max_samples, len(X)),
                             random_state=options.seed).fit(X[:, :forest_columns].astype(np.float32))
    flat = flatten_isolation_forest(forest)
    depth = int(np.ceil(np.log2(max(forest.max_samples_, 2))))
    trees = perfect_layout(flat.feature, float32_floor(flat.threshold), flat.left, flat.right, flat.value, flat.roots, depth)
    scores = np.empty(len(X))
    perfect_scores(sanitize(X), *trees, depth, flat.normaliser, scores)
    arrays = {f"forest_{k}": v for k, v in flat._asdict().items() if k != "normaliser"}
    arrays["forest_normaliser"] = np.array(flat.normaliser)
    arrays["feature_median"] = np.median(X, axis=0)
    model = {"kind": "isolation_forest", "n_estimators": options.n_estimators, "max_samples": forest.max_samples_,
             "seed": options.seed}
    return FittedForest(arrays, model, score_summary(scores), scores)


def score_summary(scores: np.ndarray, background: np.ndarray | None = None) -> dict:
    """Quantiles, class thresholds (median + k MAD) and training metrics of the training scores. The
    thresholds come from ``background`` when given: the scores that alerts must stand out from."""
    reference = scores if background is None or len(background) == 0 else background
    median = float(np.median(reference))
    mad = float(np.median(np.abs(reference - median)) * 1.4826) or float(reference.std()) or 1e-6
    thresholds = {name: min(1.0, median + k * mad) for name, k in CLASS_MADS.items()}
    return {
        "score_quantiles": {str(q): float(np.quantile(scores, q)) for q in QUANTILES},
        "thresholds": thresholds,
        "metrics": {"train_score_median": median, "train_score_mad": mad, "train_score_max": float(scores.max()),
                    "train_share_by_class": {name: float(np.mean(scores >= t)) for name, t in thresholds.items()}},
    }


def request_score_summary(train_scores: np.ndarray, held_out: np.ndarray, thresholds: dict) -> dict:
    """The manifest's quantiles and metrics of the full held-out scores, with the calibrated thresholds."""
    median = float(np.median(held_out))
    return {
        "score_quantiles": {str(q): float(np.quantile(held_out, q)) for q in QUANTILES},
        "thresholds": thresholds,
        "metrics": {"train_score_median": median,
                    "train_score_mad": float(np.median(np.abs(held_out - median)) * 1.4826),
                    "train_score_max": float(held_out.max()), "forest_in_sample_median": float(np.median(train_scores)),
                    "train_share_by_class": {name: float(np.mean(held_out >= t)) for name, t in thresholds.items()}},
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _package_version() -> str:
    try:
        return version("waflens")
    except PackageNotFoundError:
        return "unknown"


def train_session_model(con: duckdb.DuckDBPyConnection, out: str | Path, options: TrainingOptions | None = None,
                        step: Step = _no_step) -> dict:
    """Fit the session-level model on ``session_features`` of sessions in the window."""
    options = options or TrainingOptions()
    started = time.perf_counter()
    names = feature_names("session")
    session_ids, X = session_feature_matrix(
        con, "($since IS NULL OR s.start_ts >= $since) AND ($until IS NULL OR s.end_ts < $until)",
        {"since": options.since, "until": options.until})
    n = len(session_ids)
    if n < MIN_TRAINING_SESSIONS:
        raise InsufficientDataError(
            f"only {n} sessions in the training window; at least {MIN_TRAINING_SESSIONS} are needed "
            "(ingest more traffic or widen --since/--until)")
    fitted = _fit_forest(X, options)
    step(f"session model: forest fitted on {n:,} sessions")
    from waflens.runtime.bot_score import fit_bot_reference

    bot_arrays, bot_manifest = fit_bot_reference(X, names)
    classes = None
    if options.feedback:
        from waflens.scoring.bot_weights import label_weights
        from waflens.scoring.feedback import session_classes

        classes = session_classes(con, session_ids)
        weights = label_weights(X, classes, bot_arrays)
        if weights is not None:
            bot_arrays, bot_manifest = fit_bot_reference(X, names, weights)
            step("session model: bot score weighted by the analysts' labels")
    arrays, summary, feedback = {**fitted.arrays, **bot_arrays}, fitted.summary, None
    if options.feedback:
        from waflens.scoring.feedback import fit_feedback, label_snapshot

        feedback = fit_feedback(X, classes, fitted.scores, options.seed)
        if feedback is not None:
            arrays = {**arrays, **feedback.arrays}
            # thresholds from the sessions not confirmed as attacks: confirmed attacks score near 1 by design,
            # and when they are many they would lift the median (and every threshold) up to them
            summary = score_summary(feedback.scores, feedback.scores[np.isin(classes, ("benign", "unlabelled"))])
    step("session model: feedback " + ("fitted" if feedback is not None else "skipped (no confirmed labels)"))
    manifest = {
        "level": "session",
        "model": fitted.model,
        "feedback": feedback.manifest if feedback is not None else None,
        "bot_score": bot_manifest,
        "labels": label_snapshot(con) if options.feedback else None,
        "feature_spec": {"version": FEATURE_SPEC_VERSION, "names": names, "request_features": feature_names("request"),
                         "lists": manifest_lists()},
        "training": {"since": _iso(options.since), "until": _iso(options.until), "sessions": n,
                     "gap_seconds": options.gap_minutes * 60.0, "seconds": round(time.perf_counter() - started, 3)},
        **summary,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "package_version": _package_version(),
    }
    write_artifact(out, arrays, manifest)
    step("session model: exported")
    return manifest
