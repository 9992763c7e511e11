"""Promotion gates: what a candidate model must show before it replaces production.

Each gate returns ``{"name", "passed", "value", "limit", "detail"}``; a failed gate
keeps production and the run report says which gate failed and by how much.

* ``labelled_holdout`` — on held-out sessions with analyst labels (attack vs benign),
  the candidate's ROC AUC and recall at its ``likely_attack`` threshold must not fall
  more than ``tolerance`` below production's (skipped when the holdout has no
  labelled sessions of both kinds, or there is no production model);
* ``time_holdout`` — on the latest window (never trained on), the candidate's alert
  rate must stay under ``max_alert_rate``, and its alerts that are not attributed to
  a family the analysts confirmed as an attack (feedback probability >= 0.5) must not
  exceed production's alert rate by more than ``max_alert_rate_increase``: a model
  that learnt a confirmed campaign is expected to alert on it;
* ``parity`` — features the runtime computes from raw requests equal the SQL
  features the model was trained on (1e-9), and the one-row path scores like the
  batch path;
* ``latency`` — p99 of one request scored end to end from raw fields stays under
  ``max_p99_us`` (a generous bound: this catches a model that got much slower, not
  noise on a shared machine);
* ``score_sanity`` — scores are finite, in [0, 1] and not constant;
* ``feedback_coverage`` — the candidate learnt from at least as many analyst-labelled
  sessions as production: labels that silently stop reaching training (a bug, a purge,
  a re-sessionizing) must not pass unnoticed. ``allow_loss`` (``--allow-label-loss``)
  lets it pass with a warning (the gate's ``warning``) when the loss is intended.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from waflens.data.errors import ConfigError


@dataclass(frozen=True)
class GateConfig:
    tolerance: float = 0.02                 # allowed drop in AUC / recall against production
    max_alert_rate: float = 0.25            # share of latest-window sessions at likely_attack or above
    max_alert_rate_increase: float = 0.05
    max_p99_us: float = 2000.0
    parity_sample: int = 500
    latency_sample: int = 500

    def __post_init__(self):
        if not 0 <= self.tolerance < 1:
            raise ConfigError(f"gate tolerance {self.tolerance!r} must be in [0, 1), e.g. 0.02")
        if not 0 < self.max_alert_rate <= 1:
            raise ConfigError(f"max_alert_rate {self.max_alert_rate!r} must be in (0, 1]")

    def to_dict(self) -> dict:
        return asdict(self)


def gate(name: str, passed: bool | None, value=None, limit=None, detail: str = "") -> dict:
    """``passed`` None means skipped (it does not block promotion)."""
    return {"name": name, "passed": passed, "value": value, "limit": limit, "detail": detail}


def failed(gates: list[dict]) -> list[dict]:
    return [g for g in gates if g["passed"] is False]


def _auc(y: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, scores))


def labelled_holdout_gate(y: np.ndarray, candidate: np.ndarray, production: np.ndarray | None,
                          candidate_threshold: float, production_threshold: float | None,
                          config: GateConfig) -> list[dict]:
    """AUC and recall on labelled held-out sessions (y = 1 attack, 0 benign)."""
    if production is None:
        return [gate("labelled_holdout", None, detail="no production model: nothing to regress from")]
    if len(y) == 0 or y.min() == y.max():
        return [gate("labelled_holdout", None, detail=f"{len(y)} labelled held-out sessions, not of both kinds "
                                                      "(attack and benign): nothing to compare on")]
    results = []
    c_auc, p_auc = _auc(y, candidate), _auc(y, production)
    results.append(gate("labelled_holdout_auc", c_auc >= p_auc - config.tolerance, round(c_auc, 4),
                        round(p_auc - config.tolerance, 4),
                        f"candidate {c_auc:.4f} vs production {p_auc:.4f} on {len(y)} labelled held-out sessions"))
    attacks = y == 1
    c_recall = float(np.mean(candidate[attacks] >= candidate_threshold))
    p_recall = float(np.mean(production[attacks] >= production_threshold))
    results.append(gate("labelled_holdout_recall", c_recall >= p_recall - config.tolerance, round(c_recall, 4),
                        round(p_recall - config.tolerance, 4),
                        f"share of {int(attacks.sum())} labelled attack sessions at likely_attack or above: "
                        f"candidate {c_recall:.3f} vs production {p_recall:.3f}"))
    return results


def time_holdout_gate(candidate: np.ndarray, production: np.ndarray | None, candidate_threshold: float,
                      production_threshold: float | None, config: GateConfig,
                      explained: np.ndarray | None = None) -> dict:
    """Alert rate on the latest window. ``explained`` marks sessions the candidate attributes to a
    family analysts confirmed as an attack: alerts on them are what the labels asked for, so the
    comparison with production counts only the others (the absolute cap counts all)."""
    if len(candidate) == 0:
        return gate("time_holdout_alert_rate", None, detail="no sessions in the latest window")
    alerts = candidate >= candidate_threshold
    rate = float(np.mean(alerts))
    detail = f"candidate alerts on {rate:.2%} of {len(candidate)} latest-window sessions"
    if rate > config.max_alert_rate:
        return gate("time_holdout_alert_rate", False, round(rate, 4), config.max_alert_rate, detail)
    if production is None:
        return gate("time_holdout_alert_rate", True, round(rate, 4), config.max_alert_rate, detail)
    explained = np.zeros(len(candidate), dtype=bool) if explained is None else explained
    unexplained = float(np.mean(alerts & ~explained))
    production_rate = float(np.mean(production >= production_threshold))
    limit = production_rate + config.max_alert_rate_increase
    detail += (f"; {unexplained:.2%} not attributed to a confirmed attack family (production alerts on "
               f"{production_rate:.2%})")
    return gate("time_holdout_alert_rate", unexplained <= limit, round(unexplained, 4), round(limit, 4), detail)


def score_sanity_gate(scores: np.ndarray) -> dict:
    if len(scores) == 0:
        return gate("score_sanity", None, detail="no scores to check")
    finite = np.isfinite(scores)
    problems = []
    if not finite.all():
        problems.append(f"{int((~finite).sum())} scores are not finite")
    elif scores.min() < 0 or scores.max() > 1:
        problems.append(f"scores outside [0, 1]: {scores.min():.3g}..{scores.max():.3g}")
    elif float(np.std(scores)) < 1e-9:
        problems.append("every score is the same: the model separates nothing")
    return gate("score_sanity", not problems, round(float(np.nanstd(scores)), 6), None,
                "; ".join(problems) or f"{len(scores)} scores finite in [0, 1], spread {np.std(scores):.3g}")


def parity_gate(scorer, requests: list[tuple], expected: np.ndarray) -> dict:
    """Runtime features of raw requests vs the SQL features (first columns of each row)."""
    if not requests:
        return gate("parity", None, detail="no requests to compare")
    worst, where = 0.0, None
    for (method, target, headers, body), want in zip(requests, expected):
        got = scorer.request_features(method, target, headers, body)[: len(want)]
        difference = float(np.max(np.abs(got - want))) if len(want) else 0.0
        if difference > worst:
            worst, where = difference, target
    return gate("parity", worst <= 1e-9, worst, 1e-9,
                f"{len(requests)} requests: runtime features equal the SQL features" if worst <= 1e-9 else
                f"largest difference {worst:.3g} on a request for {where[:80]!r}")


LATENCY_ROUNDS = 3


def latency_gate(scorer, requests: list[tuple], config: GateConfig) -> dict:
    if not requests:
        return gate("latency", None, detail="no requests to time")
    for method, target, headers, body in requests[:20]:   # warm caches (and compile, if loaded without warm-up)
        scorer.score_request(method, target, headers, body)
    # Each request is timed in LATENCY_ROUNDS passes and keeps its fastest: a request the scheduler
    # preempted once (a loaded machine) is not counted as slow, one that is slow every time still is.
    times = np.full(len(requests), np.inf)
    for _ in range(LATENCY_ROUNDS):
        for k, (method, target, headers, body) in enumerate(requests):
            started = time.perf_counter_ns()
            scorer.score_request(method, target, headers, body)
            times[k] = min(times[k], time.perf_counter_ns() - started)
    p50, p99 = (float(np.percentile(times, q)) / 1000 for q in (50, 99))
    return gate("latency", p99 <= config.max_p99_us, round(p99, 1), config.max_p99_us,
                f"one request end to end: p50 {p50:.1f} µs, p99 {p99:.1f} µs over {len(times)} requests "
                f"(each the fastest of {LATENCY_ROUNDS})")


def feedback_coverage_gate(candidate: int, production: int | None, allow_loss: bool = False,
                           production_version: str | None = None, measure: str = "analyst-labelled sessions") -> dict:
    """``candidate`` / ``production``: how many training sessions each learnt an analyst's label from
    (``production`` None: no production model, or one that recorded nothing comparable)."""
    name = "feedback_coverage"
    if production is None:
        return gate(name, None, candidate, None, f"candidate learnt from {candidate} {measure}; no production "
                                                 "count to compare with")
    who = f"production {production_version}" if production_version else "production"
    detail = f"candidate learnt from {candidate} {measure}, {who} from {production}"
    if candidate >= production:
        return gate(name, True, candidate, production, detail)
    lost = production - candidate
    if allow_loss:
        result = gate(name, True, candidate, production, f"{detail}: {lost} fewer, allowed by --allow-label-loss")
        result["warning"] = (f"the candidate learnt from {lost} fewer {measure} than production (allowed by "
                             "--allow-label-loss)")
        return result
    return gate(name, False, candidate, production,
                f"{detail}: {lost} labelled sessions would be lost (rejected since, purged, re-sessionized, or "
                "now in a class of fewer than 5 sessions?). See `waflens labels sessions`; if the loss is "
                "intended, retrain with --allow-label-loss")
