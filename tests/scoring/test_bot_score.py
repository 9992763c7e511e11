"""The bot score on real people and real bots (web_bot: Iliou et al.), and the behavioural session features.

The logs are the shared Web Bot Detection dataset's humans and moderate bots (browser-driving bots
that spoof browser user agents); the annotations say which PHP sessions are which.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from waflens.data.db import connect
from waflens.data.errors import DatabaseError
from waflens.data.feature_spec import GAP_BINS, RECENT_PAGES, REFERER_URL_RE, SKETCH_SLOTS, feature_names
from waflens.data.ingest import IngestOptions, ingest_file
from waflens.data.pseudonymize import Pseudonymizer
from waflens.data.session_matrix import session_feature_matrix
from waflens.data.sessionize import update_derived
from waflens.runtime import session_state
from waflens.runtime.artifact_checks import check_session_model
from waflens.runtime.artifact import ArtifactError, read_artifact
from waflens.scoring.batch import score_files
from waflens.runtime.scorer import SessionScorer
from waflens.scoring.train import TrainingOptions, train_session_model

LOG_FORMAT = '%h %l %t "%r" %>s %b "%{Referer}i" %{PHPSESSID}C "%{User-Agent}i"'
KEY = b"0123456789abcdef0123456789abcdef"


def _options() -> IngestOptions:
    return IngestOptions(log_format=LOG_FORMAT, session_key="cookie", session_cookie="PHPSESSID")


@pytest.fixture(scope="module")
def web_bot(shared_datasets, tmp_path_factory):
    directory = shared_datasets / "labelled" / "web_bot"
    tmp = tmp_path_factory.mktemp("web_bot")
    con = connect(tmp / "bots.duckdb")
    for path in sorted((directory / "logs").glob("*.log.gz")):
        ingest_file(con, path, _options(), Pseudonymizer(KEY))
    update_derived(con)
    model = tmp / "session-model"
    train_session_model(con, model, TrainingOptions(n_estimators=10, feedback=False))
    annotations = {}
    for split in ("train", "test"):
        for line in (directory / "annotations" / f"humans_and_moderate_bots_{split}.txt").read_text().splitlines():
            if line.strip():
                sid, label = line.split()
                annotations[Pseudonymizer(KEY).token(sid)] = label != "human"
    return con, model, annotations, directory


def _annotated(con, annotations):
    ids, X = session_feature_matrix(con)
    cookie = dict(con.execute("SELECT DISTINCT session_id, session_cookie FROM requests").fetchall())
    keep = [i for i, s in enumerate(ids) if cookie.get(int(s)) in annotations]
    return X[keep], np.array([annotations[cookie[int(ids[i])]] for i in keep], dtype=int)


def test_runtime_constants_match_the_spec():
    assert (session_state.RECENT_PAGES, session_state.GAP_BINS, session_state.SKETCH_SLOTS) == (
        RECENT_PAGES, GAP_BINS, SKETCH_SLOTS)
    assert session_state.REFERER_URL.pattern == REFERER_URL_RE
    assert list(session_state.SESSION_FEATURE_NAMES) == feature_names("session")


def test_online_behaviour_features_equal_the_sql_on_real_sessions(web_bot):
    con, model, _, _ = web_bot
    scorer = SessionScorer.load(model)
    names = feature_names("session")
    ids, expected = session_feature_matrix(con)
    for sid, method, path, query, agent, referer, status, ts in con.execute(
            """SELECT session_id, method, path, query, user_agent, referer, status, epoch(ts) FROM requests
               WHERE session_id IN (SELECT session_id FROM sessions ORDER BY hash(session_id) LIMIT 40)
               ORDER BY session_id, ts NULLS LAST, request_id""").fetchall():
        scorer.session_features(method, path + ("?" + query if query else ""),
                                {"User-Agent": agent, "Referer": referer}, client=sid, ts=ts)
        scorer.observe_response(sid, status)
    behaviour = names.index("page_ratio")
    replayed = [i for i, sid in enumerate(ids) if int(sid) in scorer.tracker._sessions]
    assert len(replayed) == 40
    for i in replayed:
        sid = ids[i]
        online = scorer.tracker._features(scorer.tracker._sessions[int(sid)])
        np.testing.assert_allclose(online, expected[i], rtol=1e-9, atol=1e-9, err_msg=f"session {sid}")
    # the behavioural features are not trivially zero on this traffic
    assert (expected[:, behaviour:] != 0).any(axis=0).sum() >= 8


def test_bot_score_tells_people_from_bots_without_labels(web_bot):
    con, model, annotations, _ = web_bot
    scorer = SessionScorer.load(model)
    X, is_bot = _annotated(con, annotations)
    assert len(X) == 100 and is_bot.sum() == 50
    scores = scorer.bot_scores(X)
    assert scores.dtype.kind == "i" and scores.min() >= 1 and scores.max() <= 99
    assert roc_auc_score(is_bot, -scores) >= 0.90          # low = automated
    assert np.median(scores[is_bot == 1]) < np.median(scores[is_bot == 0])
    _, every = session_feature_matrix(con)
    reasons = scorer.bot_reasons(every[np.argmin(scorer.bot_scores(every))])
    assert reasons and all("beyond" in r and "%" in r for r in reasons)


def test_score_command_adds_bot_score_and_reasons(web_bot, tmp_path):
    _, model, _, directory = web_bot
    logs = [directory / "logs" / "humans_access_1_part2.log.gz", directory / "logs" / "humans_access_1_part1.log.gz"]
    out = tmp_path / "sessions.csv"
    score_files(logs, model, out, options=_options(), level="session")
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and {"bot_score", "reasons"} <= set(rows[0])
    assert all(1 <= int(r["bot_score"]) <= 99 for r in rows)


def test_the_model_card_documents_the_bot_score(web_bot):
    from types import SimpleNamespace

    from waflens.scoring.model_card import model_card

    _, model, _, _ = web_bot
    _, manifest = read_artifact(model)
    request_like = {**manifest, "thresholds": manifest["thresholds"]}
    info = SimpleNamespace(version="v1", created_at="now", parent=None, training={})
    card = model_card(info, request_like, manifest,
                      {"metrics": {}, "gates": [], "shadow": {"compared": False, "reason": "first"}}, {}, {})
    assert "Bot score per session, 1..99, low = automated" in card and "think_time_mean (low)" in card


def test_a_tampered_bot_reference_is_refused(web_bot):
    _, model, _, _ = web_bot
    arrays, manifest = read_artifact(model)
    names = tuple(feature_names("session"))
    assert check_session_model(arrays, manifest, "model", names).bot is not None
    unsorted = {**arrays, "bot_quantiles": arrays["bot_quantiles"][:, ::-1].copy()}
    with pytest.raises(ArtifactError, match="bot_quantiles"):
        check_session_model(unsorted, manifest, "model", names)
    outside = {**arrays, "bot_columns": arrays["bot_columns"] + len(names)}
    with pytest.raises(ArtifactError, match="bot_columns"):
        check_session_model(outside, manifest, "model", names)
    negative = {**arrays, "bot_weights": -np.ones(len(arrays["bot_columns"]))}
    with pytest.raises(ArtifactError, match="bot_weights"):
        check_session_model(negative, manifest, "model", names)


def test_a_database_from_before_the_behaviour_features_gets_them(shared_datasets, tmp_path):
    log = shared_datasets / "labelled" / "web_bot" / "logs" / "humans_access_1_part2.log.gz"
    con = connect(tmp_path / "old.duckdb")
    ingest_file(con, log, _options(), Pseudonymizer(KEY))
    update_derived(con)
    _, before = session_feature_matrix(con)
    con.execute("ALTER TABLE session_features DROP COLUMN think_time_mean")
    con.close()
    with pytest.raises(DatabaseError, match="waflens sessionize"):
        connect(tmp_path / "old.duckdb", read_only=True)
    con = connect(tmp_path / "old.duckdb")
    _, after = session_feature_matrix(con)
    np.testing.assert_allclose(after, before)


def test_imported_train_labels_lift_the_bot_score_on_the_test_annotations(web_bot, tmp_path):
    from waflens.labeling.label_import import import_session_labels, read_label_file
    from waflens.scoring.feedback import analyst_classes

    con, _, annotations, directory = web_bot
    train = read_label_file(directory / "annotations" / "humans_and_moderate_bots_train.txt")
    summary = import_session_labels(con, train, cookie_token=Pseudonymizer(KEY).token, analyst="test")
    assert summary == (70, 70, 0)
    assert sorted(set(analyst_classes(con).values())) == ["benign", "scraping"]
    model = tmp_path / "labelled"
    manifest = train_session_model(con, model, TrainingOptions(n_estimators=10))
    assert manifest["feedback"]["sessions_per_class"]["scraping"] == 35
    scorer = SessionScorer.load(model)
    test = read_label_file(directory / "annotations" / "humans_and_moderate_bots_test.txt")
    tokens = {Pseudonymizer(KEY).token(sid) for sid in test}
    X, is_bot = _annotated(con, {t: v for t, v in annotations.items() if t in tokens})
    assert len(X) == 30
    unsupervised = SessionScorer.load(web_bot[1]).bot_scores(X)
    labelled = scorer.bot_scores(X)
    # the labels weigh the evidence (0.969 with equal weights and the feedback blend alone; 0.976 measured)
    assert manifest["bot_score"]["weights"] == "learnt from analyst labels"
    weights = {e["feature"]: e["weight"] for e in manifest["bot_score"]["evidence"]}
    assert weights["think_time_mean"] > 0 and min(weights.values()) == 0
    assert roc_auc_score(is_bot, -labelled) >= 0.97        # the goal
    assert roc_auc_score(is_bot, -labelled) > roc_auc_score(is_bot, -unsupervised)
    # a worker's per-session value is the batch value, labels and all
    assert [scorer.bot_score(row)[0] for row in X] == labelled.tolist()


def _cookie_lines(directory, cookies: set[str]) -> dict[str, list[str]]:
    """The log lines of each cookie, in the order ingest reads them (files sorted, then line order)."""
    import gzip
    import re

    cookie_field = re.compile(r'" \d{3} \S+ "(?:[^"\\]|\\.)*" (\S+) "')
    lines: dict[str, list[str]] = {}
    for path in sorted((directory / "logs").glob("*.log.gz")):
        with gzip.open(path, "rt", encoding="utf-8", errors="surrogateescape") as handle:
            for line in handle:
                match = cookie_field.search(line)
                if match and match.group(1) in cookies:
                    lines.setdefault(match.group(1), []).append(line)
    return lines


def test_live_bot_score_per_request_equals_the_batch_score_of_the_same_prefix(web_bot, tmp_path):
    """SessionScorer gives the bot score as each request arrives; after the first half of each train
    session's requests it equals `waflens score --level session` on those same requests."""
    from waflens.labeling.label_import import read_label_file

    _, model, _, directory = web_bot
    train = read_label_file(directory / "annotations" / "humans_and_moderate_bots_train.txt")
    lines = _cookie_lines(directory, set(train))
    assert len(lines) >= 60
    prefix = tmp_path / "prefix.log"
    prefix.write_text("".join(line for found in lines.values() for line in found[:max(1, len(found) // 2)]),
                      encoding="utf-8", errors="surrogateescape")
    out = tmp_path / "batch.csv"
    score_files([prefix], model, out, options=_options(), level="session")
    with open(out, newline="") as handle:
        batch = {(int(r["first_record"]), int(r["last_record"])): (int(r["bot_score"]), r["reasons"])
                 for r in csv.DictReader(handle)}

    con = connect(tmp_path / "replay.duckdb")     # the same parse, to replay each request in the batch's order
    ingest_file(con, prefix, _options(), Pseudonymizer(KEY))
    update_derived(con)
    records = dict(con.execute("""SELECT s.session_id, (first.record, last.record) FROM sessions s
                                  JOIN requests first ON first.request_id = s.first_request_id
                                  JOIN requests last ON last.request_id = s.last_request_id""").fetchall())
    scorer = SessionScorer.load(model)
    live, first_scores = {}, {}
    for sid, method, path, query, agent, referer, status, ts in con.execute(
            """SELECT session_id, method, path, query, user_agent, referer, status, epoch(ts) FROM requests
               ORDER BY session_id, ts NULLS LAST, request_id""").fetchall():
        result = scorer.score_request(method, path + ("?" + query if query else ""),
                                      {"User-Agent": agent, "Referer": referer}, client=sid, ts=ts, status=status)
        assert result.score_class != "error" and 1 <= result.bot_score <= 99
        first_scores.setdefault(sid, result.bot_score)
        live[sid] = result
    assert len(live) == len(batch) >= 60
    for sid, result in live.items():
        bot_score, reasons = batch[tuple(records[sid])]
        assert (result.bot_score, "; ".join(result.reasons)) == (bot_score, reasons), f"session {sid}"
    assert any(live[sid].bot_score != first_scores[sid] for sid in live)   # the score moves as sessions grow
    assert any(result.reasons for result in live.values())
