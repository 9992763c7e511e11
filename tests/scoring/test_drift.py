"""Drift between windows: no alarms on unchanged traffic, clear ones on moved features; the
DuckDB adapter on a real file; the retrain report as a node_exporter text file."""

import json
import math
import os
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from waflens.data.errors import ConfigError, InputError
from waflens.data.feature_spec import feature_names
from waflens.scoring.drift import (DRIFT_STATUSES, DriftThresholds, feature_drift, population_stability_index, score_drift,
                           window_drift)
from waflens.pipeline.prometheus import RUN_STATUSES, write_run_metrics
from tests.data.helpers import generated_db

SIZES = (60, 200, 2000)


def traffic_like(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """20 features shaped like ours: skewed lengths, ratios, rare flags, counts that are mostly 0."""
    return {
        "normal": rng.normal(3, 2, n),
        "lognormal": rng.lognormal(0, 1.5, n),
        "exponential": rng.exponential(5, n),
        "uniform": rng.uniform(0, 1, n),
        "beta_ratio": rng.beta(2, 8, n),
        "student_t": rng.standard_t(2, n),
        "ratio_with_zeros": np.where(rng.random(n) < 0.4, 0.0, rng.beta(2, 5, n)),
        "mixture": np.where(rng.random(n) < 0.7, rng.normal(0, 1, n), rng.normal(6, 0.5, n)),
        "rounded_normal": np.round(rng.normal(50, 3, n)),
        "zero_inflated": np.where(rng.random(n) < 0.95, 0, rng.poisson(4, n) + 1).astype(float),
        "poisson": rng.poisson(3, n).astype(float),
        "tiny_counts": rng.poisson(0.2, n).astype(float),
        "binary_half": (rng.random(n) < 0.5).astype(float),
        "binary_rare": (rng.random(n) < 0.02).astype(float),
        "top_heavy": (rng.random(n) < 0.95).astype(float),
        "category": rng.choice(5, n, p=[0.6, 0.2, 0.1, 0.07, 0.03]).astype(float),
        "geometric_len": rng.geometric(0.05, n).astype(float),
        "path_len": rng.integers(5, 80, n).astype(float),
        "neg_binomial": rng.negative_binomial(2, 0.3, n).astype(float),
        "constant": np.zeros(n),
    }


def statuses(report) -> dict[str, str]:
    return {f.name: f.status for f in report.features}


# --- the statistics ---

def test_unchanged_traffic_rarely_drifts():
    """Two samples of one distribution, windows of 60, 200 or 2000 (not always equal): PSI alone
    would call drift on most small windows; gated by KS it must (almost) never."""
    feature_hits = reports = report_hits = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        n_reference, n_current = SIZES[seed % 3], SIZES[seed // 3 % 3]
        report = feature_drift(traffic_like(rng, n_reference), traffic_like(rng, n_current))
        assert len(report.features) == 20
        feature_hits += sum(f.status == "drift" for f in report.features)
        report_hits += report.status == "drift"
        reports += 1
    assert feature_hits <= 0.01 * reports * 20
    assert report_hits <= 0.02 * reports


@pytest.mark.parametrize("name", ["normal", "poisson", "rounded_normal", "lognormal"])
def test_a_feature_shifted_by_one_sd_drifts_and_the_others_stay_ok(name):
    rng = np.random.default_rng(11)
    reference, current = traffic_like(rng, 2000), traffic_like(rng, 2000)
    current[name] = current[name] + reference[name].std()
    report = feature_drift(reference, current)
    assert statuses(report) == {n: "drift" if n == name else "ok" for n in reference}
    assert report.status == "drift"


@pytest.mark.parametrize("name", ["normal", "lognormal", "student_t"])
def test_a_feature_scaled_by_three_drifts(name):
    rng = np.random.default_rng(12)
    reference, current = traffic_like(rng, 2000), traffic_like(rng, 2000)
    centre = np.median(current[name])
    current[name] = centre + 3 * (current[name] - centre)   # spread only: the median stays put
    feature = next(f for f in feature_drift(reference, current).features if f.name == name)
    assert feature.status == "drift"
    assert feature.psi >= 0.25 and feature.wasserstein > 0.5


def test_tie_heavy_features_detect_a_changed_mass():
    rng = np.random.default_rng(13)
    mostly_zero = lambda share, n: (rng.random(n) >= share) * rng.integers(1, 9, n).astype(float)  # noqa: E731
    mostly_one = lambda share, n: (rng.random(n) < share).astype(float)  # noqa: E731
    report = feature_drift({"zeros": mostly_zero(0.95, 2000), "ones": mostly_one(0.95, 2000)},
                           {"zeros": mostly_zero(0.70, 2000), "ones": mostly_one(0.70, 2000)})
    assert statuses(report) == {"zeros": "drift", "ones": "drift"}


def test_small_windows_are_insufficient_data():
    rng = np.random.default_rng(14)
    report = feature_drift({"x": rng.normal(size=49)}, {"x": rng.normal(5, 1, 2000)})
    assert report.status == "insufficient_data"
    assert report.features[0].status == "insufficient_data" and math.isnan(report.features[0].psi)
    assert (report.features[0].reference_n, report.features[0].current_n) == (49, 2000)
    mixed = feature_drift({"x": rng.normal(size=100), "y": rng.normal(size=100)},
                          {"x": rng.normal(size=100), "y": np.full(100, np.nan)})
    assert statuses(mixed) == {"x": "ok", "y": "insufficient_data"} and mixed.status == "ok"
    assert feature_drift({}, {}).status == "insufficient_data"


def test_nan_and_inf_are_dropped_before_comparing():
    rng = np.random.default_rng(15)
    reference, current = rng.normal(size=300), rng.normal(0.5, 1, 300)
    dirty_reference = np.concatenate([reference, [np.nan, np.inf, -np.inf]])
    dirty_current = np.concatenate([[np.nan] * 10, current, [np.inf]])
    clean = feature_drift({"x": reference}, {"x": current}).features[0]
    dirty = feature_drift({"x": dirty_reference}, {"x": dirty_current}).features[0]
    assert dirty == clean
    assert (dirty.reference_n, dirty.current_n) == (300, 300)
    assert math.isfinite(dirty.psi) and math.isfinite(dirty.wasserstein)


def test_constant_features():
    same = feature_drift({"x": np.full(100, 7.0)}, {"x": np.full(80, 7.0)}).features[0]
    assert same.status == "ok" and same.psi == 0.0 and same.wasserstein == 0.0 and same.ks_pvalue == 1.0
    moved = feature_drift({"x": np.full(100, 7.0)}, {"x": np.full(80, 8.0)}).features[0]
    assert moved.status == "drift"


def test_psi_is_zero_on_identical_data_and_positive_both_ways_on_shifted_data():
    rng = np.random.default_rng(16)
    data = traffic_like(rng, 500)
    for values in data.values():
        assert population_stability_index(values, values) == pytest.approx(0.0, abs=1e-12)
        assert population_stability_index(values, values.copy(), bins=4) == pytest.approx(0.0, abs=1e-12)
    a, b = rng.normal(0, 1, 1000), rng.normal(1, 1, 1000)
    forward, backward = population_stability_index(a, b), population_stability_index(b, a)
    assert forward > 0.25 and backward > 0.25
    assert forward == pytest.approx(backward, rel=0.5)
    assert math.isfinite(population_stability_index(np.zeros(100), np.arange(100.0)))


def test_out_of_range_values_fall_into_the_end_bins():
    reference = np.linspace(0, 1, 1000)
    assert population_stability_index(reference, reference + 100) > 5
    assert population_stability_index(reference, reference - 100) > 5


def test_score_drift_and_json():
    rng = np.random.default_rng(17)
    feature = score_drift(rng.beta(2, 8, 1000), rng.beta(2, 8, 1000) + 0.1)
    assert feature.name == "score" and feature.status == "drift"
    report = feature_drift({"x": rng.normal(size=1000), "y": np.zeros(10)},
                           {"x": rng.normal(size=1000), "y": np.zeros(10)})
    as_dict = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert as_dict["status"] == "ok"
    assert as_dict["counts"] == {"ok": 1, "warn": 0, "drift": 0, "insufficient_data": 1}
    assert as_dict["features"][1]["psi"] is None and as_dict["features"][1]["reference_n"] == 10


def test_bad_inputs_say_what_to_fix():
    with pytest.raises(InputError, match="missing from current"):
        feature_drift({"x": np.zeros(100)}, {"y": np.zeros(100)})
    with pytest.raises(ConfigError, match="psi_warn <= psi_drift"):
        DriftThresholds(psi_warn=0.3, psi_drift=0.2)
    with pytest.raises(ConfigError, match="alpha"):
        DriftThresholds(alpha=0)


# --- the database adapter ---

@pytest.fixture(scope="module")
def traffic_db(tmp_path_factory):
    con = generated_db(tmp_path_factory.mktemp("drift"), 4000, seed=7, days=2, attack_share=0.05).con
    first, last = con.execute("SELECT min(ts), max(ts) FROM requests").fetchone()
    yield con, first + (last - first) / 2
    con.close()


def test_window_drift_on_requests_matches_the_arrays(traffic_db):
    con, middle = traffic_db
    report = window_drift(con, "request", (None, middle), (middle, None))
    names = feature_names("request")
    assert [f.name for f in report.features] == names
    n_before = con.execute("SELECT count(*) FROM requests WHERE ts < $t", {"t": middle}).fetchone()[0]
    assert all((f.reference_n, f.current_n) == (n_before, 4000 - n_before) for f in report.features)
    rows = con.execute(f"""SELECT r.ts < $t, {', '.join('f.' + n for n in names)}
                           FROM request_features f JOIN requests r USING (request_id)""", {"t": middle}).fetchall()
    columns = np.array(rows, dtype=np.float64)
    before = columns[:, 0] == 1
    expected = feature_drift({n: columns[before, i + 1] for i, n in enumerate(names)},
                             {n: columns[~before, i + 1] for i, n in enumerate(names)})
    assert report == expected
    assert report.status in DRIFT_STATUSES


def test_window_drift_on_sessions_and_time_zones(traffic_db):
    con, middle = traffic_db
    report = window_drift(con, "session", (None, middle), (middle, None))
    assert [f.name for f in report.features] == feature_names("session")
    n_sessions = con.execute("SELECT count(*) FROM sessions").fetchone()[0]
    assert report.features[0].reference_n + report.features[0].current_n == n_sessions
    aware = middle.replace(tzinfo=timezone.utc).astimezone(timezone(timedelta(hours=-5)))
    assert window_drift(con, "session", (None, aware), (aware, None)) == report


def test_window_drift_edge_cases(traffic_db):
    con, middle = traffic_db
    same = window_drift(con, "request", (None, None), (None, None), names=["path_len", "ua_class"])
    assert [(f.name, f.status, f.psi) for f in same.features] == [("path_len", "ok", 0.0), ("ua_class", "ok", 0.0)]
    future = datetime(2100, 1, 1)
    empty = window_drift(con, "request", (None, middle), (future, None), names=["path_len"])
    assert empty.status == "insufficient_data" and empty.features[0].current_n == 0
    with pytest.raises(InputError, match="not request features"):
        window_drift(con, "request", (None, middle), (middle, None), names=["path_len FROM requests; --"])
    with pytest.raises(InputError, match="unknown drift level"):
        window_drift(con, "client", (None, middle), (middle, None))


# --- the Prometheus text file ---

def read_metrics(path) -> dict[str, dict[tuple, float]]:
    """{metric name: {sorted label items: value}}"""
    metrics = {}
    for family in text_string_to_metric_families(path.read_text(encoding="utf-8")):
        for sample in family.samples:
            metrics.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return metrics


def test_run_metrics_round_trip(tmp_path):
    rng = np.random.default_rng(18)
    reference, current = {"path_len": rng.normal(size=500), 'odd "name"\n': rng.normal(size=500),
                          "tiny": np.zeros(3)}, {"path_len": rng.normal(2, 1, 500),
                                                 'odd "name"\n': rng.normal(size=500), "tiny": np.zeros(3)}
    drift = feature_drift(reference, current).to_dict()
    report = {"status": "gate_failed", "exit_code": 7, "started_at": "2026-11-03T02:00:00+00:00",
              "duration_seconds": 12.5, "stages": {"ingest": 3.25, "train": 9.0},
              "production_version": "request-20261101T020000Z", "candidate_version": "request-20261103T020000Z",
              "alert_rate": {"production": 0.012, "candidate": 0.034}, "drift": drift}
    path = write_run_metrics(tmp_path / "waflens.prom", report)
    assert os.listdir(tmp_path) == ["waflens.prom"]   # the temporary file was renamed, not left behind
    m = read_metrics(path)
    p = "waflens_retrain_"
    assert m[p + "last_run_timestamp_seconds"][()] == datetime(2026, 11, 3, 2, tzinfo=timezone.utc).timestamp()
    assert m[p + "last_run_duration_seconds"][()] == 12.5
    assert m[p + "last_run_exit_code"][()] == 7
    assert m[p + "last_run_status"] == {(("status", s),): float(s == "gate_failed") for s in RUN_STATUSES}
    assert m[p + "stage_duration_seconds"] == {(("stage", "ingest"),): 3.25, (("stage", "train"),): 9.0}
    assert m[p + "model_info"] == {(("alias", "production"), ("version", "request-20261101T020000Z")): 1.0,
                                   (("alias", "candidate"), ("version", "request-20261103T020000Z")): 1.0}
    assert m[p + "alert_rate"] == {(("model", "production"),): 0.012, (("model", "candidate"),): 0.034}
    psi = {f["name"]: f["psi"] for f in drift["features"]}
    assert m[p + "drift_psi"] == {(("feature", "path_len"),): psi["path_len"],
                                  (("feature", 'odd "name"\n'),): psi['odd "name"\n']}   # none for "tiny"
    status = m[p + "drift_status"]
    assert status[(("feature", "path_len"), ("status", "drift"))] == 1.0
    assert status[(("feature", "path_len"), ("status", "ok"))] == 0.0
    assert status[(("feature", "tiny"), ("status", "insufficient_data"))] == 1.0
    assert sum(status.values()) == 3
    assert m[p + "drift_features"] == {(("status", s),): float(n) for s, n in drift["counts"].items()}


def test_a_report_with_only_a_status(tmp_path):
    before = datetime.now(timezone.utc).timestamp()
    m = read_metrics(write_run_metrics(str(tmp_path / "run.prom"), {"status": "lock_held"}))
    assert set(m) == {"waflens_retrain_last_run_timestamp_seconds", "waflens_retrain_last_run_status"}
    assert m["waflens_retrain_last_run_timestamp_seconds"][()] >= before - 1
    assert m["waflens_retrain_last_run_status"][(("status", "lock_held"),)] == 1.0
    unknown = read_metrics(write_run_metrics(tmp_path / "run.prom", {"status": "killed"}))
    assert unknown["waflens_retrain_last_run_status"][(("status", "killed"),)] == 1.0
    assert sum(unknown["waflens_retrain_last_run_status"].values()) == 1.0


def test_run_metrics_errors(tmp_path):
    with pytest.raises(InputError, match="status"):
        write_run_metrics(tmp_path / "run.prom", {"exit_code": 0})
    with pytest.raises(InputError, match="create the directory"):
        write_run_metrics(tmp_path / "missing" / "run.prom", {"status": "error"})
    with pytest.raises(InputError, match="ISO 8601"):
        write_run_metrics(tmp_path / "run.prom", {"status": "error", "started_at": "yesterday"})
