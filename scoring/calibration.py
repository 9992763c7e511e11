"""Request-level classes calibrated on the site's own held-out traffic.

``likely_attack`` should mean "at most 1% of this site's ordinary requests", and
``attack`` "at most 0.1%", for the score the runtime computes: unusualness plus
structural and code evidence (character classes new to a parameter count as unusualness:
they add before the bend). Scores of the training requests themselves are too
low (the forest has seen them), so each request is scored by a forest fitted
without its fold (the folds of the out-of-fold profile features), with the profile
features already out of fold: what new traffic of the same site will look like.

Unusualness alone must not reach ``likely_attack`` (an unusual sentence is not an
attack), so the forest's score bends, above its 99th percentile, towards a ceiling
at its highest held-out value, and ``likely_attack`` starts at or above the ceiling.
Evidence is scaled so that a median request reaches ``attack`` with structural
evidence training never met, or with a value as code-like as the payloads the code
model was fitted on. The thresholds are then the 99th and 99.9th percentiles of the held-out scores, never
below those floors. Training traffic holds attacks too: requests with a value the
code model itself calls code (odds above 7:1) are set aside before any quantile,
so they cannot drag the thresholds up into the attacks.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest

from waflens.scoring.profiles import structural_weights
from waflens.runtime.kernels.score import (CODE_BIAS, CODE_FULL, CODE_START, CODE_WEIGHT, CEILING, KNEE, SCORE_SHAPE_NAMES,
                                    combine_batch)

LIKELY_CLEAN_QUANTILE = 0.95
KNEE_QUANTILE = 0.99        # the forest's score is left as it is below this quantile, and approaches the highest
                            # held-out score without reaching it: squeezing more of the range would let small
                            # evidence on benign requests jump over unusual attacks (CSIC altered values)
LIKELY_ATTACK_FP = 0.01     # share of held-out benign requests at likely_attack or above, at most
ATTACK_FP = 0.001           # ... at attack
CODE_START_FLOOR = 0.0      # code evidence starts at even odds at the lowest, above the site's 99.9th percentile,
CODE_START_CAP = 2.0        # and at odds of 7:1 at the highest: training rows above it are set aside as code-like
CODE_SPAN = 4.0             # and is full 4 logits (odds x 55) further
_ABOVE = 1e-9               # thresholds sit this far above the ceiling, which floating point may round onto


def fold_assignment(n: int, folds: int, seed: int) -> np.ndarray:
    """Each request's fold, as :func:`waflens.scoring.profiles.out_of_fold_deviations` draws them."""
    return np.random.default_rng(seed).integers(0, folds, size=n)


def out_of_fold_forest_scores(X: np.ndarray, fold_of: np.ndarray, *, n_estimators: int, max_samples: int,
                              seed: int) -> np.ndarray:
    """Each row's isolation-forest score from a forest fitted without its fold (scikit-learn's scoring: the
    exported forest scores the same up to float32 rounding of thresholds)."""
    out = np.empty(len(X))
    X32 = X.astype(np.float32)
    for fold in np.unique(fold_of):
        held = fold_of == fold
        if held.all():  # one fold: nothing to fit on without it
            held = np.zeros(len(X), dtype=bool)
            held[::2] = True
        forest = IsolationForest(n_estimators=n_estimators, max_samples=min(max_samples, int((~held).sum())),
                                 random_state=seed).fit(X32[~held])
        out[held] = -forest.score_samples(X32[held])
    return out


def calibrate(X: np.ndarray, held_out_scores: np.ndarray, code_bias: float) -> tuple:
    """(structural weights, score shape, thresholds, structural manifest, calibration manifest, held-out full
    scores) from the training rows ``X`` (out-of-fold profile features, code-likeness last) and their held-out
    forest scores."""
    from waflens.runtime.kernels.score import CODE_LIKENESS

    z = X[:, CODE_LIKENESS]
    background = z <= CODE_START_CAP  # training traffic holds attacks too: the thresholds come from the rest
    if background.mean() < 0.5:
        background = np.ones(len(z), dtype=bool)
    u = held_out_scores[background]
    median = float(np.median(u))
    knee = float(np.quantile(u, KNEE_QUANTILE))
    ceiling = max(float(u.max()), knee)
    attack_floor = min(1.0, ceiling + max(0.5 * (ceiling - median), 0.05))
    surprise, structural = structural_weights(X, median, attack_floor)
    code_start = min(CODE_START_CAP, max(CODE_START_FLOOR, float(np.quantile(z[background], 1 - ATTACK_FP))))
    shape = np.zeros(len(SCORE_SHAPE_NAMES))
    shape[[KNEE, CEILING, CODE_START, CODE_FULL, CODE_WEIGHT, CODE_BIAS]] = (
        knee, ceiling, code_start, code_start + CODE_SPAN, max(0.0, 1.0 - median), code_bias)
    scores = held_out_scores.copy()
    combine_batch(np.ascontiguousarray(X, dtype=np.float64), surprise, shape, scores)
    benign = scores[background]
    likely_attack = min(1.0, max(ceiling + _ABOVE, float(np.quantile(benign, 1 - LIKELY_ATTACK_FP))))
    attack = min(1.0, max(attack_floor, likely_attack, float(np.quantile(benign, 1 - ATTACK_FP))))
    thresholds = {"likely_clean": min(float(np.quantile(benign, LIKELY_CLEAN_QUANTILE)), likely_attack),
                  "likely_attack": likely_attack, "attack": attack}
    manifest = {
        "method": "held-out folds of the training requests (forest fitted without the fold, out-of-fold profiles); "
                  f"likely_attack = max(ceiling, {1 - LIKELY_ATTACK_FP:.2%} quantile), attack = max(ceiling + gap, "
                  f"{1 - ATTACK_FP:.1%} quantile) of the full held-out scores",
        "held_out_requests": int(len(z)), "set_aside_as_code_like": int((~background).sum()),
        "forest_median": median, "knee": knee, "ceiling": ceiling,
        "code_start": code_start, "code_full": code_start + CODE_SPAN, "code_weight": float(shape[CODE_WEIGHT]),
        "held_out_share_by_class": {name: float(np.mean(benign >= t)) for name, t in thresholds.items()},
    }
    return surprise, shape, thresholds, structural, manifest, scores
