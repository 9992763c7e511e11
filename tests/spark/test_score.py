"""`waflens spark score`'s scores equal the runtime's on the same requests and session features (within 1e-9)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from waflens.data.db import connect
from waflens.data.errors import InputError
from waflens.data.feature_spec import feature_names
from waflens.pipeline.spark import score as spark_score
from waflens.pipeline.spark.score import score_directory
from waflens.runtime.scorer import Scorer, SessionScorer

from tests.spark.pipeline import MODELS, duckdb_request_ids, read


def test_request_scores_equal_the_runtime(spark_pipeline):
    summary = spark_pipeline.steps["score_request"]
    scores = read(spark_pipeline.out, "scores/level=request")
    scores["file"] = scores["file"].map({f: str(Path(f).resolve()) for f in scores["file"].unique()})
    scores = scores.set_index(["file", "record"]).sort_index()
    scorer = Scorer.load(MODELS / "request")
    con = connect(spark_pipeline.db, read_only=True)
    try:
        rows = con.execute("""SELECT s.path, r.record, r.method, r.path, r.query, r.body, r.user_agent, r.referer
                              FROM requests r JOIN sources s USING (source_id) ORDER BY 1, 2""").fetchall()
    finally:
        con.close()
    assert summary["level"] == "request" and summary["scored"] == len(rows) == len(scores)
    expected = np.array([scorer.score_request(method, path + ("?" + query if query else ""),
                                              {"User-Agent": agent, "Referer": referer}, body or "").score
                         for _, _, method, path, query, body, agent, referer in rows])
    got = scores.loc[[(f, r) for f, r, *_ in rows]]
    assert np.isfinite(expected).all()
    assert np.max(np.abs(got["score"].to_numpy() - expected)) < 1e-9
    assert list(got["score_class"]) == [scorer.score_class(s) for s in expected]
    assert len(set(summary["by_class"])) >= 2   # the shared logs hold attacks and clean traffic


def test_session_scores_equal_the_runtime(spark_pipeline):
    summary = spark_pipeline.steps["score_session"]
    scores = read(spark_pipeline.out, "scores/level=session")
    assert summary["level"] == "session" and summary["scored"] == spark_pipeline.steps["sessionize"]["sessions"] \
        == len(scores)
    # the runtime scores DuckDB's session features; a session is named by its first request on both sides
    scores["session_id"] = scores["session_id"].map(duckdb_request_ids(spark_pipeline))
    scorer = SessionScorer.load(MODELS / "session")
    names = feature_names("session")
    con = connect(spark_pipeline.db, read_only=True)
    try:
        ids, *columns = zip(*con.execute(f"SELECT session_id, {', '.join(names)} FROM session_features "
                                         "ORDER BY session_id").fetchall())
    finally:
        con.close()
    rows = np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])
    expected = np.array([scorer.score_features(row) for row in rows])
    got = scores.set_index("session_id").loc[list(ids)]
    assert np.max(np.abs(got["score"].to_numpy() - expected)) < 1e-9
    assert (got["bot_score"].to_numpy() == scorer.bot_scores(rows)).all()


def test_bad_models_and_missing_inputs_are_refused(spark, tmp_path):
    with pytest.raises(Exception, match="manifest|model.npz|no such|not found|missing"):
        spark_score.checked_model(tmp_path)  # an empty directory: the runtime's own refusal, on the driver
    assert spark_score.checked_model(MODELS / "session").level == "session"
    with pytest.raises(InputError, match="missing or empty.*waflens spark sessionize"):
        score_directory(spark, str(tmp_path / "nothing"), MODELS / "session")


@pytest.mark.parametrize("whole_file_bytes", [spark_score.WHOLE_FILE_BYTES, 0], ids=["whole files", "rows"])
def test_session_features_of_an_older_version_are_refused_before_any_task(spark, spark_pipeline, tmp_path,
                                                                          whole_file_bytes):
    """Session features written without a column the model wants (an older waflens): one clear error, from the
    footer the driver reads (whole files) or Spark's schema (rows), and no scores written."""
    import pyarrow.parquet as pq

    dropped = spark_score.checked_model(MODELS / "session").names[-1]
    old = tmp_path / "old" / "session_features"
    old.mkdir(parents=True)
    for i, part in enumerate(sorted((spark_pipeline.out / "session_features").glob("*.parquet"))):
        # without Spark's schema in the footer's metadata, which would still name the dropped column
        table = pq.read_table(part).drop_columns([dropped]).replace_schema_metadata(None)
        pq.write_table(table, old / f"part-{i}.parquet")
    with pytest.raises(InputError, match=rf"wants session features \['{dropped}'\].*rerun `waflens spark sessionize"):
        score_directory(spark, str(old.parent), MODELS / "session", whole_file_bytes=whole_file_bytes)
    assert not (old.parent / "scores").exists()


def test_sessionize_with_a_model_scores_in_the_same_pass_as_spark_score_would(spark, spark_pipeline, tmp_path):
    """``spark sessionize DIR --model`` writes the sessions and features of a plain sessionize and, from the same
    tasks, the scores ``spark score`` wrote for them (exactly: same feature rows, same batch function)."""
    import shutil

    from tests.spark.pipeline import _cli

    out = tmp_path / "out"
    shutil.copytree(spark_pipeline.out / "requests", out / "requests")
    summary = _cli("spark", "sessionize", str(out), "--model", str(MODELS / "session"))
    alone = spark_pipeline.steps["score_session"]
    assert summary["sessions"] == summary["scored"] == alone["scored"] > 0
    assert summary["by_class"] == alone["by_class"] and summary["scores"].endswith("scores/level=session")
    for name in ("sessions", "session_features"):
        assert read(out, name).sort_values("session_id").reset_index(drop=True).equals(
            read(spark_pipeline.out, name).sort_values("session_id").reset_index(drop=True)), name
    fused = read(out, "scores/level=session").sort_values("session_id").reset_index(drop=True)
    scored = read(spark_pipeline.out, "scores/level=session").sort_values("session_id").reset_index(drop=True)
    assert list(fused.columns) == list(scored.columns) == ["session_id", "score", "score_class", "bot_score"]
    assert fused.equals(scored)


def test_sessionize_refuses_a_request_model_before_reading_anything(spark, spark_pipeline, tmp_path):
    from waflens.pipeline.spark.sessions import sessionize_directory

    out = tmp_path / "out"
    with pytest.raises(InputError, match="request-level model: `spark sessionize --model` scores sessions"):
        sessionize_directory(spark, str(out), model=str(MODELS / "request"))
    assert not out.exists()


def _reexport(model: Path, thresholds) -> None:
    """Export into ``model`` (replacing it) the same forest with other class thresholds, as a retrain would."""
    import shutil

    from waflens.runtime.artifact import read_artifact, write_artifact

    arrays, manifest = read_artifact(model)
    manifest = {k: v for k, v in manifest.items() if k not in ("manifest_sha256", "files")}
    manifest["thresholds"] = {name: thresholds(value) for name, value in manifest["thresholds"].items()}
    shutil.rmtree(model)
    write_artifact(model, arrays, manifest)


def test_a_model_exported_again_into_the_same_directory_is_the_one_the_executors_use(spark, spark_pipeline,
                                                                                    tmp_path):
    """Spark ships a path once per application and never replaces it: the executors must still score with the
    model now in the directory, not the one shipped first (they did, silently, before each digest had a name)."""
    import shutil

    from waflens.runtime.artifact import ArtifactError

    out, model = tmp_path / "out", tmp_path / "session"
    shutil.copytree(spark_pipeline.out / "session_features", out / "session_features")
    shutil.copytree(MODELS / "session", model)
    first = score_directory(spark, str(out), model)
    assert first.by_class == spark_pipeline.steps["score_session"]["by_class"]

    _reexport(model, lambda value: value * 0.9)   # lower thresholds: more sessions in the upper classes
    second = score_directory(spark, str(out), model)
    scorer = SessionScorer.load(model)
    features = read(out, "session_features")
    rows = features[list(scorer.feature_names)].to_numpy(dtype=np.float64)
    expected = [scorer.score_class(s) for s in scorer.score_batch(rows)]
    got = read(out, "scores/level=session").set_index("session_id").loc[features["session_id"], "score_class"]
    assert sum(a != b for a, b in zip(got, expected)) == 0 and len(got) == len(expected)
    assert second.by_class != first.by_class
    assert second.by_class == {name: expected.count(name) for name in set(expected)}

    _reexport(model, lambda value: -1.0)   # digest and file hashes valid, content the runtime refuses
    written = sorted(p.stat().st_mtime_ns for p in (out / "scores").rglob("*.parquet"))
    with pytest.raises(ArtifactError, match="thresholds"):
        score_directory(spark, str(out), model)   # refused on the driver, before any job
    assert sorted(p.stat().st_mtime_ns for p in (out / "scores").rglob("*.parquet")) == written


def test_session_features_read_as_whole_files_or_as_rows_score_the_same(spark, spark_pipeline, tmp_path):
    """``spark score`` decodes small session-feature files itself (pyarrow) and takes larger ones as Spark's rows:
    the same scores either way, row for row."""
    import shutil

    by_files, by_rows = tmp_path / "files", tmp_path / "rows"
    for out in (by_files, by_rows):
        shutil.copytree(spark_pipeline.out / "session_features", out / "session_features")
    whole = score_directory(spark, str(by_files), MODELS / "session")
    rows = score_directory(spark, str(by_rows), MODELS / "session", whole_file_bytes=0)   # every file "too large"
    assert whole.by_class == rows.by_class == spark_pipeline.steps["score_session"]["by_class"]
    files, scored = (read(out, "scores/level=session").sort_values("session_id").reset_index(drop=True)
                     for out in (by_files, by_rows))
    assert len(files) == whole.scored > 0 and files.equals(scored)
