"""The installed runtime loads models that `waflens train` exported and scores as the exporter's runtime did.

The artifacts, requests and sessions are stored in fixtures/ (fixtures/make_fixtures.py says how they
were made, from generated traffic). The features are checked against the SQL features DuckDB computed
for the same requests at export time (the parity gate's 1e-9), the scores against the scores the
runtime gave when the fixture was made (1e-12: the same kernels, wherever they are installed).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from waflens.runtime import ArtifactError, Scorer, SessionScorer, WaflensError
from tests.runtime.stored import FIXTURES, REGENERATE, request_args, stored
from tests.scoring.artifact_tamper import tampered

FEATURES_ATOL = 1e-9
SCORE_ATOL = 1e-12
CHANGED = f"(a change that moves scores on purpose regenerates the fixtures: {REGENERATE})"


@pytest.fixture(scope="module")
def scorer():
    return Scorer.load(FIXTURES / "request")


def test_stored_requests_have_their_sql_features_and_stored_scores(scorer):
    records = stored("requests.json")
    wrong = []
    for record in records:
        args = request_args(record)
        features = scorer.request_features(*args)
        sql = np.asarray(record["sql_features"])
        difference = float(np.max(np.abs(features[: len(sql)] - sql)))
        result = scorer.score_request(*args)
        explained = scorer.score_request(*args, explain=True)
        if difference > FEATURES_ATOL or abs(result.score - record["score"]) > SCORE_ATOL \
                or result.score_class != record["score_class"] or abs(explained.score - result.score) > SCORE_ATOL:
            wrong.append((record["target"][:60], difference, result.score, record["score"], result.score_class))
    assert not wrong, f"{len(wrong)} of {len(records)} stored requests differ {CHANGED}: {wrong[:5]}"
    assert len(records) >= 100 and {r["score_class"] for r in records} >= {"clean", "attack"}
    assert scorer.errors == 0


def test_batch_scores_equal_request_scores(scorer):
    records = stored("requests.json")
    rows = np.array([scorer.request_features(*request_args(r)) for r in records])
    np.testing.assert_allclose(scorer.score_batch(rows), [r["score"] for r in records], rtol=0, atol=SCORE_ATOL)


def test_stored_sessions_have_their_sql_features_and_stored_scores():
    sessions = stored("sessions.json")
    scorer = SessionScorer.load(FIXTURES / "session")
    wrong = []
    for session in sessions:
        client = session["client"]
        for step in session["requests"]:
            result = scorer.score_request(*request_args(step), client=client, ts=step["ts"])
            scorer.observe_response(client, step["status"])
            if not abs(result.score - step["score"]) <= SCORE_ATOL:
                wrong.append((client, step["target"][:60], result.score, step["score"]))
        final = scorer.tracker.features(client)
        np.testing.assert_allclose(final, session["sql_features"], rtol=0, atol=FEATURES_ATOL, err_msg=client)
        if session["bot_score"] is not None:
            assert scorer.bot_scores(final[None, :])[0] == session["bot_score"], client
    assert not wrong, f"{len(wrong)} session steps differ {CHANGED}: {wrong[:5]}"
    assert sum(len(s["requests"]) for s in sessions) >= 100 and scorer.errors == 0


def _flip_middle_byte(data: bytes) -> bytes:
    return data[: len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF]) + data[len(data) // 2 + 1:]


def _set(path: str, value):
    *parents, leaf = path.split(".")

    def edit(manifest: dict) -> None:
        for key in parents:
            manifest = manifest[key]
        manifest[leaf] = value
    return edit


def _child_out_of_range(arrays: dict) -> None:
    arrays["forest_left"][np.argmax(arrays["forest_left"] >= 0)] = arrays["forest_left"].size + 5


TAMPERING = {
    # edits that did not re-seal: the digests catch them
    "a flipped byte in model.npz": (dict(model_bytes=_flip_middle_byte, seal=False), "sha256"),
    "a manifest edited by hand": (dict(manifest=_set("thresholds.attack", 0.01), seal=False), "manifest_sha256"),
    # re-sealed edits: the structural checks catch them before any kernel runs
    "a child outside the tree": (dict(arrays=_child_out_of_range), "forest"),
    "a NaN threshold": (dict(manifest=_set("thresholds.attack", math.nan)), "threshold"),
    "another feature spec": (dict(manifest=_set("feature_spec.version", "0.0")), "feature spec"),
    "a pickled array": (dict(arrays=lambda a: a.update(feature_median=np.array([object()] * 38))), "object|pickle"),
    "a newer schema": (dict(manifest=_set("schema_version", 99)), "schema"),
}


@pytest.mark.parametrize("how", TAMPERING)
def test_a_tampered_request_model_is_refused(tmp_path, how):
    edits, message = TAMPERING[how]
    with pytest.raises(ArtifactError, match=message) as refused:
        Scorer.load(tampered(FIXTURES / "request", tmp_path / "model", **edits), warm_up=False)
    assert isinstance(refused.value, WaflensError) and "\n" not in str(refused.value)


@pytest.mark.parametrize("how", ["a flipped byte in model.npz", "a child outside the tree"])
def test_a_tampered_session_model_is_refused(tmp_path, how):
    edits, message = TAMPERING[how]
    with pytest.raises(ArtifactError, match=message):
        SessionScorer.load(tampered(FIXTURES / "session", tmp_path / "model", **edits), warm_up=False)


def test_a_model_of_the_other_level_is_refused():
    with pytest.raises(ArtifactError, match="session"):
        Scorer.load(FIXTURES / "session", warm_up=False)
    with pytest.raises(ArtifactError, match="request"):
        SessionScorer.load(FIXTURES / "request", warm_up=False)


def test_loading_compiles_the_section_slicer_for_its_explicit_signatures_only(scorer):
    """Without them numba compiled one slicer per literal section number (25 on an empty cache)."""
    from waflens.runtime.kernels.score import SECTION_SIGNATURES, _section

    assert sorted(map(str, _section.signatures)) == sorted(str(s.args) for s in SECTION_SIGNATURES)
    assert scorer.score_request("GET", "/search?q=1", {"User-Agent": "x"}).score_class != "error"
    assert len(_section.signatures) == len(SECTION_SIGNATURES)
