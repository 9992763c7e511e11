"""The bot score: 1..99 per session, low = automated (as Cloudflare's), with the reasons behind it.

Anomaly is not automation: on real traffic a browser-driving bot is *typical* in most ways
(it loads the CSS, sends the site's beacons, spoofs a browser user agent) and an isolation
forest ranks it as ordinary, or a curious person as rare. The bot score instead asks only
the questions that separate scripts from people, each with the direction automation pushes
it (a prior from how browsers and people behave, not learnt from labels):

* people read: long, irregular think time between page views; scripts go on at once;
* a browser pulls what a page needs (assets, beacons) and follows links (referers that
  name the page it was on); scripts fetch pages, jump straight to deep URLs;
* scripts probe (errors, 404s, HEAD, rare methods) and some say what they are (user agent).

Each answer is turned into evidence ``e`` in [0, 1]: how far out the session is, in the
automated direction, among the training sessions (its mid-rank in the training values, so
a feature everybody shares gives 0.5, no evidence either way). The evidence is combined
by Stouffer's method, ``Z = sum(Phi^-1(e)) / sqrt(k)``, so features without an opinion do not
dilute those with one, and the score is ``1 + 98 * Phi(-Z)``, rounded; the reasons are the
features with the strongest evidence.

With analyst labels, two things change. The labels weigh the evidence: Stouffer's weighted
``Z = sum(w_j Phi^-1(e_j)) / sqrt(sum(w_j^2))``, with ``w`` what a logistic regression of the
labelled sessions (automated or not) on the ``Phi^-1(e_j)`` finds, negative weights cut to 0
(labels may silence a prior but not turn it round; ``scoring/bot_weights.py``); without labels
every ``w_j`` is 1. And when a feedback model (``scoring/feedback.py``) learnt ``benign`` and at
least one attack or bot family, the score is the mean of the weighted one and the labels'
view, ``p(benign) + p(unlabelled) / 2`` (an unlabelled-looking session is undecided).

A worker scores one session at a time as it grows (:class:`LiveBotScore`): the same numbers as
:func:`bot_scores` (the evidence per feature is one of ``2 * REFERENCE_POINTS + 1`` mid-ranks, so its
normal quantile is a table lookup, and the sum runs in the same order), without numpy's per-call cost.

Imports only numpy and the standard library: the runtime uses it.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from statistics import NormalDist
from typing import NamedTuple

import numpy as np

# (session feature, the direction automation pushes it, how a reason reads)
BOT_EVIDENCE = (
    ("think_time_mean", "low", "little time between page views"),
    ("think_time_cv", "low", "page views at regular intervals"),
    ("page_rate", "high", "many page views per minute"),
    ("requests_per_page", "low", "pages pull few other requests"),
    ("assets_per_page", "low", "pages load few assets"),
    ("referer_continuity", "low", "referers do not name the page it was on"),
    ("referer_ratio", "low", "requests without a referer"),
    ("direct_deep_ratio", "high", "deep pages hit without a referer"),
    ("error_ratio", "high", "many errors"),
    ("notfound_ratio", "high", "many 404s"),
    ("head_ratio", "high", "HEAD requests"),
    ("rare_method_ratio", "high", "rare HTTP methods"),
    ("ua_changes", "high", "user agent changes within the session"),
    ("ua_class", "high", "user agent is not a browser's"),
)
REFERENCE_POINTS = 257      # training values kept per feature (quantiles): the mid-rank's resolution
REASON_EVIDENCE = 0.8       # a feature is a reason when the session is beyond 80% of training sessions


class BotReference(NamedTuple):
    columns: np.ndarray      # int64: each evidence feature's column in the session feature row
    automated_high: np.ndarray  # bool: automation pushes it up
    quantiles: np.ndarray    # float64 (len(columns), REFERENCE_POINTS): training values, sorted
    weights: np.ndarray | None = None  # float64 >= 0 per feature, learnt from labels; None = all 1


def weights_of(reference: BotReference) -> tuple[list[float], float]:
    """(weight per evidence feature, sqrt of their sum of squares): Stouffer's weights and normaliser."""
    k = len(reference.columns)
    w = [1.0] * k if reference.weights is None else [float(x) for x in reference.weights]
    return w, math.sqrt(sum(x * x for x in w)) or 1.0


def fit_bot_reference(X: np.ndarray, names: list[str],
                      weights: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """The artifact arrays and manifest entry of the bot score, from the training sessions' features (and the
    evidence weights the labels gave, when they gave any: scoring/bot_weights.py)."""
    evidence = [(f, d, r) for f, d, r in BOT_EVIDENCE if f in names]
    columns = np.array([names.index(f) for f, _, _ in evidence], dtype=np.int64)
    values = np.nan_to_num(np.asarray(X, dtype=np.float64)[:, columns], nan=0.0, posinf=0.0, neginf=0.0)
    quantiles = np.quantile(values, np.linspace(0, 1, REFERENCE_POINTS), axis=0, method="inverted_cdf").T.copy()
    arrays = {"bot_columns": columns, "bot_automated_high": np.array([d == "high" for _, d, _ in evidence]),
              "bot_quantiles": np.ascontiguousarray(quantiles)}
    if weights is not None:
        arrays["bot_weights"] = np.asarray(weights, dtype=np.float64)
    manifest = {"kind": "oriented mid-rank evidence combined by Stouffer's method", "scale": "1..99, low = automated",
                "weights": "learnt from analyst labels" if weights is not None else "equal (no labels)",
                "evidence": [{"feature": f, "automation": d, "reason": r,
                              **({} if weights is None else {"weight": round(float(weights[j]), 4)})}
                             for j, (f, d, r) in enumerate(evidence)]}
    return arrays, manifest


def normal_quantiles(rows: np.ndarray, reference: BotReference, tables: np.ndarray | None = None) -> np.ndarray:
    """(n, k) Phi^-1 of each session's evidence per feature: what the weights weigh. ``tables``: the reference's
    :func:`quantile_tables`, when the caller keeps them (a loaded model does)."""
    tables = quantile_tables(reference) if tables is None else tables
    return np.take_along_axis(tables, mid_ranks(rows, reference).T, axis=1).T


def evidence(rows: np.ndarray, reference: BotReference) -> np.ndarray:
    """(n, k) evidence of automation per session and feature, in [0, 1]."""
    return np.take_along_axis(evidence_tables(reference), mid_ranks(rows, reference).T, axis=1).T


def mid_ranks(rows: np.ndarray, reference: BotReference) -> np.ndarray:
    """(n, k) int64: twice each session's mid-rank per feature among the reference values (below + not above),
    0 .. 2 * points; NaN and infinities count as 0."""
    rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    values = np.nan_to_num(rows[:, reference.columns], nan=0.0, posinf=0.0, neginf=0.0)
    out = np.empty(values.shape, dtype=np.int64)
    for j in range(values.shape[1]):
        grid = reference.quantiles[j]
        out[:, j] = np.searchsorted(grid, values[:, j], side="left") + np.searchsorted(grid, values[:, j], side="right")
    return out


def evidence_tables(reference: BotReference) -> np.ndarray:
    """(k, 2 * points + 1): the evidence of every mid-rank, per feature (the mid-rank, ties sharing their middle,
    or 1 minus it where automation pushes the feature down)."""
    points = reference.quantiles.shape[1]
    rank = np.arange(2 * points + 1) / (2.0 * points)
    return np.where(np.asarray(reference.automated_high, dtype=bool)[:, None], rank, 1.0 - rank)


def quantile_tables(reference: BotReference) -> np.ndarray:
    """(k, 2 * points + 1): Phi^-1 of the evidence of every mid-rank, per feature. The evidence of a session is one
    of these mid-ranks, so its normal quantile is a lookup, not a Phi^-1 per session and feature."""
    return _normal_quantiles(evidence_tables(reference), reference.quantiles.shape[1])


_INVERSE = np.vectorize(NormalDist().inv_cdf, otypes=[np.float64])


def _normal_quantiles(e: np.ndarray, points: int) -> np.ndarray:
    """Phi^-1 of evidence, clipped half a reference step from 0 and 1 (a feature alone is never certain)."""
    edge = 0.5 / points
    return _INVERSE(np.clip(e, edge, 1.0 - edge))


def _score_of(z: float, norm: float) -> int:
    """Weighted sum of normal quantiles -> 1..99 (low = automated): 1 + 98 Phi(-Z) with Stouffer's
    Z = sum / norm, rounded half to even. The batch and the live score both call it, so they agree."""
    return min(max(round(1.0 + 98.0 * (0.5 * (1.0 + math.erf(-(z / norm) / math.sqrt(2.0))))), 1), 99)


def bot_scores(rows: np.ndarray, reference: BotReference, tables: np.ndarray | None = None) -> np.ndarray:
    """Integer bot scores 1..99 (low = automated). ``tables``: the reference's :func:`quantile_tables`."""
    q = normal_quantiles(rows, reference, tables)
    w, norm = weights_of(reference)
    z = np.zeros(q.shape[0])
    for j in range(q.shape[1]):      # column by column: the order LiveBotScore adds them in
        z += w[j] * q[:, j]
    return np.fromiter((_score_of(s, norm) for s in z.tolist()), dtype=np.int64, count=len(z))


def bot_reasons(row: np.ndarray, reference: BotReference, readable: list[str], names: list[str],
                top: int = 3) -> list[str]:
    """The strongest evidence of automation in a session, readable: ``reason (feature = value)``."""
    return _reasons(evidence(row, reference)[0].tolist(), np.asarray(row, dtype=np.float64).ravel().tolist(),
                    [int(c) for c in reference.columns], weights_of(reference)[0], readable, names, top)


def _reasons(e: list[float], row: list[float], columns: list[int], weights: list[float], readable: list[str],
             names: list[str], top: int) -> list[str]:
    """Features beyond REASON_EVIDENCE, strongest first; one the labels gave no weight is no reason."""
    order = [j for j in sorted((j for j in range(len(e)) if weights[j] > 0), key=lambda j: -e[j])[:top]
             if e[j] >= REASON_EVIDENCE]
    return [f"{readable[j]} ({names[columns[j]]} = {row[columns[j]]:.3g}, beyond {100 * e[j]:.0f}% of sessions)"
            for j in order]


class LiveBotScore:
    """The bot score and reasons of one session's feature row, as :func:`bot_scores` and :func:`bot_reasons`
    give them, at a few microseconds per call (plain lists and bisect instead of numpy calls)."""

    def __init__(self, reference: BotReference, readable: list[str], names: list[str]):
        self._columns = [int(c) for c in reference.columns]
        self._grids = [row.tolist() for row in reference.quantiles]
        self._evidence = evidence_tables(reference).tolist()
        self.tables = quantile_tables(reference)     # bot_scores takes them too: one lookup table for both paths
        self._quantiles = [table.tolist() for table in self.tables]
        self._readable, self._names = readable, names
        self._weights, self._norm = weights_of(reference)
        self._features = list(zip(self._columns, self._weights, self._grids, self._quantiles, self._evidence))

    def score(self, row: np.ndarray, top: int = 3) -> tuple[int, tuple[str, ...]]:
        """(bot score 1..99, reasons) of one session feature row."""
        values = row.tolist()
        z, seen = 0.0, []
        for column, weight, grid, quantile_of, evidence_of in self._features:
            v = values[column]
            if not -math.inf < v < math.inf:    # NaN and infinities count as 0, as in evidence()
                v = 0.0
            rank = bisect_left(grid, v) + bisect_right(grid, v)
            z += weight * quantile_of[rank]
            seen.append(evidence_of[rank])
        score = _score_of(z, self._norm)
        if max(seen, default=0.0) < REASON_EVIDENCE:
            return score, ()
        return score, tuple(_reasons(seen, values, self._columns, self._weights, self._readable, self._names, top))


def with_labels(scores: np.ndarray, probabilities: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """Bot scores refined by the feedback model's class probabilities (see the module docstring)."""
    if "benign" not in classes or not set(classes) - {"benign", "unlabelled"}:
        return scores
    return np.fromiter((with_labels_one(int(s), p, classes) for s, p in zip(scores.tolist(), probabilities.tolist())),
                       dtype=np.int64, count=len(scores))


def with_labels_one(score: int, probabilities: list[float], classes: tuple[str, ...]) -> int:
    """One session's bot score refined by the feedback model's class probabilities (the live path calls it
    directly, :func:`with_labels` per session, so both give the same integer)."""
    if "benign" not in classes or not set(classes) - {"benign", "unlabelled"}:
        return score
    human = probabilities[classes.index("benign")]
    if "unlabelled" in classes:
        human = human + 0.5 * probabilities[classes.index("unlabelled")]
    blended = 0.5 * (float(score) - 1.0) / 98.0 + 0.5 * human
    return min(max(round(1.0 + 98.0 * blended), 1), 99)
