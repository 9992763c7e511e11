"""Label-aware session model: confirmed clusters and the allowlist change the scores, exactly as exported."""

from collections import Counter

import numpy as np
import pytest

from waflens.clustering.run import ClusterOptions, cluster_sessions
from waflens.data.feature_spec import feature_names
from waflens.data.synthetic_campaigns import SPECS
from waflens.labeling.allowlist import add_rule
from waflens.labeling.labels import record_label
from waflens.scoring.feedback import BENIGN, UNLABELLED, fit_feedback, session_classes
from waflens.runtime.scorer import SessionScorer
from waflens.scoring.train import TrainingOptions, train_session_model
from tests.data.helpers import campaign_of_sessions, generated_db

SCRAPER_UA = "python-requests/2.32.3"
OPTIONS = TrainingOptions(n_estimators=50, seed=2)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("feedback")
    con, log, _ = generated_db(tmp, 15_000, seed=5)
    plain = train_session_model(con, tmp / "plain", OPTIONS)
    campaign = campaign_of_sessions(con, log)
    run = cluster_sessions(con, ClusterOptions(min_cluster_size=8)).cluster_run_id
    members = con.execute("SELECT cluster_id, list(session_id) FROM session_clusters WHERE cluster_run_id = $r AND "
                          "cluster_id >= 0 GROUP BY 1 ORDER BY count(*) DESC", {"r": run}).fetchall()
    confirmed = {}
    for cluster_id, sessions in members:     # the analyst confirms the three largest attack clusters
        name = Counter(campaign[s] for s in sessions).most_common(1)[0][0]
        if name != "benign" and name != "scraper" and len(confirmed) < 3:
            record_label(con, run, cluster_id, family=SPECS[name].family, verdict="malicious", analyst="ana")
            confirmed[cluster_id] = name
    add_rule(con, "user_agent", "^python-requests/", reason="our price monitor", author="ana")
    tuned = train_session_model(con, tmp / "tuned", OPTIONS)
    return tmp, con, plain, tuned, campaign, confirmed


def _matrix(con):
    names = feature_names("session")
    rows = con.execute(f"SELECT session_id, {', '.join('f.' + n for n in names)} FROM session_features f "
                       "ORDER BY session_id").fetchnumpy()
    return np.asarray(rows["session_id"]), np.column_stack([np.asarray(rows[n], dtype=np.float64) for n in names])


def test_no_labels_no_feedback_model(labelled):
    _, _, plain, tuned, _, confirmed = labelled
    assert plain["feedback"] is None and plain["labels"]["analyst_events"] == 0
    assert len(confirmed) == 3
    classes = tuned["feedback"]["classes"]
    assert BENIGN in classes and UNLABELLED in classes
    assert {SPECS[name].family for name in confirmed.values()} <= set(classes)
    assert tuned["labels"]["analyst_events"] == 3 and tuned["labels"]["allowlist_rules"] == 1


def test_runtime_blend_equals_the_fitted_models(labelled):
    tmp, con, _, _, _, _ = labelled
    ids, X = _matrix(con)
    u = SessionScorer.load(tmp / "plain").score_batch(X)            # the same forest (same data and seed)
    reference = fit_feedback(X, session_classes(con, ids), u, OPTIONS.seed)
    probs = reference.model.predict_proba(X.astype(np.float32))
    order = list(reference.model.classes_)
    attack = probs[:, [k for k, c in enumerate(order) if c not in (BENIGN, UNLABELLED)]].sum(axis=1)
    expected = np.maximum(u * (1 - probs[:, order.index(BENIGN)]), attack)
    scorer = SessionScorer.load(tmp / "tuned")
    got = scorer.score_batch(X)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    for i in range(0, len(X), max(1, len(X) // 25)):             # the one-row path agrees with the batch
        assert abs(scorer.score_features(X[i]) - got[i]) < 1e-9
        family = scorer.family_scores(X[i])
        assert set(family) == set(order) and abs(sum(family.values()) - 1) < 1e-9


def test_confirmed_campaigns_rise_and_allowlisted_traffic_stops_alerting(labelled):
    tmp, con, _, tuned, campaign, confirmed = labelled
    ids, X = _matrix(con)
    before = SessionScorer.load(tmp / "plain").score_batch(X)
    scorer = SessionScorer.load(tmp / "tuned")
    after = scorer.score_batch(X)
    names = np.array([campaign[int(s)] for s in ids])
    classes = session_classes(con, ids)
    for name in set(confirmed.values()):
        mine = names == name
        assert np.median(after[mine]) > np.median(before[mine])
        # the sessions the label reached (cluster members at probability >= 0.5) now alert; a member HDBSCAN
        # placed with low probability stays unlabelled, so how many of those alert depends on the clustering
        taught = mine & (classes == SPECS[name].family)
        assert taught.sum() >= 0.5 * mine.sum()
        assert np.mean([scorer.score_class(s) in ("likely_attack", "attack") for s in after[taught]]) >= 0.9
    scraper = np.isin(ids, [s for (s,) in con.execute("SELECT DISTINCT session_id FROM requests WHERE user_agent = $u",
                                                      {"u": SCRAPER_UA}).fetchall()])
    assert scraper.any()
    assert all(scorer.score_class(s) in ("clean", "likely_clean") for s in after[scraper])
    benign = names == "benign"
    assert np.mean(after[benign] >= tuned["thresholds"]["likely_attack"]) <= 0.02


def test_thresholds_stay_reachable_when_most_sessions_are_confirmed_attacks(tmp_path):
    """Confirmed attacks score near 1 by design; when they outnumber the rest they must not lift the class
    thresholds up to them (every alert would vanish)."""
    con, log, _ = generated_db(tmp_path, 6_000, seed=3, attack_share=0.6)
    campaign = campaign_of_sessions(con, log)
    run = cluster_sessions(con, ClusterOptions(min_cluster_size=8)).cluster_run_id
    confirmed = set()
    for cluster_id, sessions in con.execute("SELECT cluster_id, list(session_id) FROM session_clusters WHERE "
                                            "cluster_run_id = $r AND cluster_id >= 0 GROUP BY 1", {"r": run}).fetchall():
        name = Counter(campaign[s] for s in sessions).most_common(1)[0][0]
        if name != "benign":
            record_label(con, run, cluster_id, family=SPECS[name].family, verdict="malicious", analyst="ana")
            confirmed |= {s for s in sessions if campaign[s] == name}
    ids, X = _matrix(con)
    assert len(confirmed) > len(ids) / 2            # the situation under test
    manifest = train_session_model(con, tmp_path / "model", OPTIONS)
    scorer = SessionScorer.load(tmp_path / "model")
    scores = scorer.score_batch(X[np.isin(ids, list(confirmed))])
    assert manifest["thresholds"]["likely_attack"] < 1.0
    assert np.mean([scorer.score_class(s) in ("likely_attack", "attack") for s in scores]) >= 0.9
