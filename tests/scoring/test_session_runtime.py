"""Session-level model: online session features equal the SQL ones; state is bounded."""

import numpy as np
import pytest

from waflens.data.feature_spec import feature_names
from waflens.runtime.scorer import SessionScorer
from waflens.runtime.session_state import SESSION_FEATURE_NAMES, RequestFacts, SessionTracker
from waflens.scoring.train import TrainingOptions, train_session_model
from tests.data.helpers import generated_db


@pytest.fixture(scope="module")
def session_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("session")
    con = generated_db(tmp, 8_000, seed=4, attack_share=0.05).con
    model = tmp / "session-model"
    train_session_model(con, model, TrainingOptions(n_estimators=30))
    return con, model


def test_names_match_the_spec():
    assert list(SESSION_FEATURE_NAMES) == feature_names("session")


def test_online_session_features_equal_the_sql(session_model):
    con, model = session_model
    scorer = SessionScorer.load(model)
    names = feature_names("session")
    expected = {row[0]: np.array(row[1:], dtype=np.float64) for row in con.execute(
        f"SELECT session_id, {', '.join(names)} FROM session_features").fetchall()}
    requests = con.execute("""SELECT session_id, method, path, query, body, user_agent, referer, status, epoch(ts)
                              FROM requests ORDER BY session_id, ts, request_id""").fetchall()
    last = {}
    for session_id, method, path, query, body, agent, referer, status, ts in requests:
        target = path + ("?" + query if query else "")
        last[session_id] = scorer.session_features(method, target, {"User-Agent": agent, "Referer": referer},
                                                   body or b"", client=session_id, ts=ts)
        scorer.observe_response(session_id, status)
    # error ratios count the statuses seen after each request: recompute the final row once more
    for session_id, row in last.items():
        state = scorer.tracker._sessions[session_id]
        final = scorer.tracker._features(state)
        np.testing.assert_allclose(final, expected[session_id], rtol=1e-9, atol=1e-9,
                                   err_msg=f"session {session_id}")
    assert len(last) == len(expected)


def test_scores_are_defined_and_attack_sessions_stand_out(session_model):
    _, model = session_model
    scorer = SessionScorer.load(model)
    for i in range(12):
        result = scorer.score_request("GET", f"/search?q=1%27%20union%20select%20{i}--", {"User-Agent": "sqlmap/1.8"},
                                      client="attacker", ts=1000.0 + i)
    benign = scorer.score_request("GET", "/", {"User-Agent": "Mozilla/5.0 Firefox/120"}, client="visitor", ts=1000.0)
    assert 0 < benign.score <= 1 and result.score > benign.score


def test_tracker_cap_and_expiry():
    facts = RequestFacts(False, False, False, 0, 0.0, 10.0, 3.0, 0.0, False, 0, 1, 2, ())
    tracker = SessionTracker(gap_seconds=60, max_clients=3)
    for client in range(5):
        tracker.observe_request(client, 0.0, facts)
    assert len(tracker) == 3 and 0 not in tracker._sessions and 4 in tracker._sessions
    assert tracker.observe_request(4, 30.0, facts)[0] == 2          # same session within the gap
    assert tracker.observe_request(4, 200.0, facts)[0] == 1         # the gap ended it
    assert tracker.expire(now=1000.0) == 3 and len(tracker) == 0


def test_worst_case_memory_per_client_stays_under_2_kb():
    """An adversarial client: every request a new path, user agent and four new parameter names, hundreds of
    requests with statuses, pages and referers. Its state must not grow past the first requests."""
    import random
    import tracemalloc
    from pathlib import Path

    from waflens.runtime import session_state
    from waflens.runtime.session_state import SESSION_BYTES

    rng = random.Random(7)
    tracker = SessionTracker(gap_seconds=1e9)
    clients = [("client", c) for c in range(16)]

    def requests(first: int, last: int) -> list:   # made before measuring: freed tuples stay on a free list
        return [(client, 1e9 + i * 0.37 + c, 404 if i % 7 else 302,
                 RequestFacts(i % 2 == 0, i % 5 == 0, i % 3 == 0, i % 4, 3.0, 1000.0 + i, 4.5, 0.3, True, 1,
                              rng.getrandbits(64), rng.getrandbits(64), tuple(rng.getrandbits(64) for _ in range(4)),
                              True, 3, rng.getrandbits(64), rng.getrandbits(64)))
                for i in range(first, last) for c, client in enumerate(clients)]

    def flood(replayed: list) -> None:
        for client, ts, status, facts in replayed:
            tracker.update(client, ts, facts)
            tracker.observe_response(client, status)

    # what the runtime's own lines hold: tracemalloc traces every thread, and a test run before this one in the
    # same process may have left threads allocating (a Spark gateway, an S3 server), seen in CI as 2 KB of growth
    runtime_files = [tracemalloc.Filter(True, str(Path(session_state.__file__).parent / "*"))]

    def held() -> int:
        return sum(stat.size for stat in tracemalloc.take_snapshot().filter_traces(runtime_files).statistics("filename"))

    start, rest = requests(0, 40), requests(40, 600)
    tracemalloc.start()
    try:
        before = held()
        flood(start)
        short = held()
        flood(rest)
        long = held()
    finally:
        tracemalloc.stop()
    assert SESSION_BYTES <= 2048
    assert (long - before) / len(clients) <= 2048, f"{(long - before) / len(clients):.0f} bytes per client"
    assert long - short <= 1024      # 560 more requests per client, all distinct: nothing grew
    # the counts beyond the sketch's slots are estimates, unbiased over clients
    rows = np.array([tracker.features(client) for client in clients])
    names = list(SESSION_FEATURE_NAMES)
    assert (rows[:, names.index("n_requests")] == 600).all()
    assert abs(np.mean(rows[:, names.index("path_diversity")]) - 1.0) < 0.15
    assert abs(np.mean(rows[:, names.index("ua_changes")]) / 599 - 1.0) < 0.15
    assert abs(np.mean(rows[:, names.index("distinct_params")]) / 2400 - 1.0) < 0.15
