"""Drift between a reference (training) window and a current (latest) window.

A retrain should be triggered by traffic that changed, not by sampling noise. Each
feature, and the model's score, is compared with three measures:

* PSI (population stability index) over bins cut at the reference's deciles: the
  operator's familiar "how much moved" number, but noisy on small samples (two
  independent samples of 60 from one distribution give a PSI near 0.3);
* the two-sample Kolmogorov-Smirnov test: its p-value says whether the change is
  more than sampling noise, and is what gates PSI;
* the Wasserstein-1 distance divided by the reference's robust scale, a unit-free
  "how far" that is reported but decides nothing.

The rule, per feature with at least ``min_samples`` finite values in both windows:

* ``drift`` when PSI >= ``psi_drift`` and KS rejects at ``alpha / m`` (Bonferroni over
  the m features compared, so a report of many features on unchanged traffic says
  "drift" with probability at most ``alpha``);
* ``warn`` when PSI >= ``psi_warn`` and KS rejects at the same level. PSI alone never
  raises a status: between two samples of 60 from one distribution PSI is about 0.3
  with 10 bins, so a PSI-only rule would cry wolf on every small window;
* ``ok`` otherwise. Fewer samples in either window: ``insufficient_data``.

A report's status is its worst feature's (ok < warn < drift); ``insufficient_data``
only when every feature is. NaN and infinite values are dropped per feature before
anything is compared, so ``reference_n`` / ``current_n`` count finite values only.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Mapping, NamedTuple

import numpy as np
from scipy import stats

from waflens.data.errors import ConfigError, InputError
from waflens.data.feature_spec import feature_names

DRIFT_STATUSES = ("ok", "warn", "drift", "insufficient_data")
LEVELS = ("request", "session")
PSI_EPSILON = 1e-4  # share given to a bin empty in one window, so PSI stays finite
_SEVERITY = {"ok": 0, "warn": 1, "drift": 2}


@dataclass(frozen=True)
class DriftThresholds:
    psi_warn: float = 0.1
    psi_drift: float = 0.25
    alpha: float = 0.01  # KS significance, Bonferroni-corrected over the features compared
    min_samples: int = 50  # below this in either window -> "insufficient_data"
    bins: int = 10

    def __post_init__(self) -> None:
        if not 0 < self.psi_warn <= self.psi_drift:
            raise ConfigError(f"drift thresholds need 0 < psi_warn <= psi_drift, got psi_warn={self.psi_warn!r} "
                              f"and psi_drift={self.psi_drift!r}")
        if not 0 < self.alpha < 1:
            raise ConfigError(f"drift alpha must be a probability in (0, 1), got {self.alpha!r} (e.g. 0.01)")
        if isinstance(self.min_samples, bool) or not isinstance(self.min_samples, int) or self.min_samples < 2:
            raise ConfigError(f"drift min_samples must be an integer >= 2, got {self.min_samples!r}")
        if isinstance(self.bins, bool) or not isinstance(self.bins, int) or self.bins < 2:
            raise ConfigError(f"drift bins must be an integer >= 2, got {self.bins!r} (10 is usual)")


class FeatureDrift(NamedTuple):
    name: str
    status: str
    psi: float
    ks_statistic: float
    ks_pvalue: float
    wasserstein: float  # Wasserstein-1 distance / reference robust scale (IQR/1.349, else std, else 1)
    reference_n: int
    current_n: int
    reference_median: float
    current_median: float

    def to_dict(self) -> dict:
        return {k: _json_number(v) for k, v in self._asdict().items()}


class DriftReport(NamedTuple):
    features: list[FeatureDrift]
    status: str  # worst status over features ("insufficient_data" only if all are)

    def to_dict(self) -> dict:
        """JSON-serialisable: non-finite numbers (of insufficient data) become None."""
        counts = {status: 0 for status in DRIFT_STATUSES}
        for feature in self.features:
            counts[feature.status] += 1
        return {"status": self.status, "features": [f.to_dict() for f in self.features], "counts": counts}


def population_stability_index(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """PSI of ``current`` against ``reference``, over bins cut at the reference's quantiles.

    Cut points are the interior quantiles, deduplicated, so a feature that is 0 for 95% of
    rows gets the bins "below 0", "0" and "above 0" rather than one bin. A cut value that
    holds at least a bin's share of the reference (an atom of a discrete feature) is a bin
    of its own, so a mass at the top (95% ones) is split from what lies below it; lesser
    ties stay in the bin below, so integer features get no more bins than continuous ones
    (more bins, more noise). Values outside the reference's range fall into the end bins.
    """
    reference = _finite(reference)
    current = _finite(current)
    if len(reference) == 0 or len(current) == 0:
        return math.nan
    cuts = np.unique(np.quantile(reference, np.arange(1, bins) / bins))
    sorted_reference = np.sort(reference)
    ties = np.searchsorted(sorted_reference, cuts, "right") - np.searchsorted(sorted_reference, cuts, "left")
    atoms = ties >= max(2, len(reference) / bins)
    n_bins = 2 * len(cuts) + 1
    r = _bin_shares(reference, cuts, atoms, n_bins)
    c = _bin_shares(current, cuts, atoms, n_bins)
    return float(np.sum((c - r) * np.log(c / r)))


def feature_drift(reference: Mapping[str, np.ndarray], current: Mapping[str, np.ndarray],
                  thresholds: DriftThresholds = DriftThresholds()) -> DriftReport:
    """Compare every feature of ``reference`` with the same feature of ``current``."""
    missing = [name for name in reference if name not in current]
    extra = [name for name in current if name not in reference]
    if missing or extra:
        raise InputError(f"reference and current windows must have the same features; missing from current: "
                         f"{missing or 'none'}, only in current: {extra or 'none'}")
    columns = {name: (_finite(reference[name]), _finite(current[name])) for name in reference}
    compared = sum(1 for r, c in columns.values() if _enough(r, c, thresholds))
    alpha = thresholds.alpha / max(compared, 1)
    features = [_compare(name, r, c, thresholds, alpha) for name, (r, c) in columns.items()]
    return DriftReport(features, _worst(features))


def score_drift(reference_scores: np.ndarray, current_scores: np.ndarray,
                thresholds: DriftThresholds = DriftThresholds()) -> FeatureDrift:
    """Drift of the model's score (one comparison: KS at ``alpha`` uncorrected)."""
    return _compare("score", _finite(reference_scores), _finite(current_scores), thresholds, thresholds.alpha)


def window_drift(con, level: str, reference: tuple[datetime | None, datetime | None],
                 current: tuple[datetime | None, datetime | None], names: list[str] | None = None,
                 thresholds: DriftThresholds = DriftThresholds()) -> DriftReport:
    """Feature drift between two [since, until) windows of the database (None = open end).

    Sessions are windowed on their start, requests on their time. Datetimes with a zone are
    converted to UTC; naive ones are taken as UTC, as the database stores them.
    """
    if level not in LEVELS:
        raise InputError(f"unknown drift level {level!r}; choose one of {', '.join(LEVELS)}")
    known = feature_names(level)
    names = known if names is None else list(names)
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise InputError(f"{unknown or 'no features'} are not {level} features; choose from the feature spec "
                         f"(runtime/feature_spec.py), e.g. {', '.join(known[:3])}")
    return feature_drift(_load_window(con, level, names, reference), _load_window(con, level, names, current),
                         thresholds)


_WINDOW_SQL = {
    "session": """SELECT {columns} FROM session_features f JOIN sessions s USING (session_id)
                  WHERE ($since IS NULL OR s.start_ts >= $since) AND ($until IS NULL OR s.start_ts < $until)""",
    "request": """SELECT {columns} FROM request_features f JOIN requests r USING (request_id)
                  WHERE ($since IS NULL OR r.ts >= $since) AND ($until IS NULL OR r.ts < $until)""",
}


def _load_window(con, level: str, names: list[str], window: tuple[datetime | None, datetime | None]) -> dict:
    since, until = (_utc_naive(t) for t in window)
    # column names come from the feature spec (checked by the caller), never from user input
    sql = _WINDOW_SQL[level].format(columns=", ".join("f." + name for name in names))
    rows = con.execute(sql, {"since": since, "until": until}).fetchnumpy()
    return {name: np.ma.asarray(rows[name], dtype=np.float64).filled(np.nan) for name in names}


def _utc_naive(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def _compare(name: str, reference: np.ndarray, current: np.ndarray, thresholds: DriftThresholds,
             alpha: float) -> FeatureDrift:
    medians = (_median(reference), _median(current))
    if not _enough(reference, current, thresholds):
        return FeatureDrift(name, "insufficient_data", math.nan, math.nan, math.nan, math.nan,
                            len(reference), len(current), *medians)
    psi = population_stability_index(reference, current, thresholds.bins)
    with warnings.catch_warnings():  # scipy falls back from the exact p-value to the asymptotic one
        warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful", RuntimeWarning)
        ks = stats.ks_2samp(reference, current)
    rejects = bool(ks.pvalue < alpha)
    if psi >= thresholds.psi_drift and rejects:
        status = "drift"
    elif psi >= thresholds.psi_warn and rejects:
        status = "warn"
    else:
        status = "ok"
    wasserstein = float(stats.wasserstein_distance(reference, current)) / _robust_scale(reference)
    return FeatureDrift(name, status, psi, float(ks.statistic), float(ks.pvalue), wasserstein,
                        len(reference), len(current), *medians)


def _enough(reference: np.ndarray, current: np.ndarray, thresholds: DriftThresholds) -> bool:
    return min(len(reference), len(current)) >= thresholds.min_samples


def _worst(features: list[FeatureDrift]) -> str:
    judged = [f.status for f in features if f.status != "insufficient_data"]
    return max(judged, key=_SEVERITY.__getitem__) if judged else "insufficient_data"


def _finite(values) -> np.ndarray:
    values = np.ma.asarray(values, dtype=np.float64).filled(np.nan).ravel()
    return values[np.isfinite(values)]


def _bin_shares(values: np.ndarray, cuts: np.ndarray, atoms: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin 2i: strictly between cut i-1 and cut i (or equal to a non-atom cut i); 2i+1: the atom cut i."""
    below = np.searchsorted(cuts, values, "left")
    at_cut = below < len(cuts)
    at_cut[at_cut] = (cuts[below[at_cut]] == values[at_cut]) & atoms[below[at_cut]]
    shares = np.bincount(2 * below + at_cut, minlength=n_bins) / len(values)
    return np.maximum(shares, PSI_EPSILON)


def _robust_scale(values: np.ndarray) -> float:
    q1, q3 = np.quantile(values, (0.25, 0.75))
    return float((q3 - q1) / 1.349) or float(np.std(values)) or 1.0


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if len(values) else math.nan


def _json_number(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
