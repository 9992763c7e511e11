"""Artifacts that pass every hash but are malformed are refused at load, with an ArtifactError naming what
is wrong, before any kernel runs; a ModelWatcher keeps its old model (issue R, finding 9).

Each artifact here is edited and then re-sealed (every hash recomputed, see ``artifact_tamper``), as an
adversary with write access to the model directory would do.
"""

import io
import json
import logging
import os

import numpy as np
import pytest

from waflens.runtime.artifact import ArtifactError
from waflens.runtime.hot_swap import ModelWatcher
from waflens.runtime.scorer import Scorer, SessionScorer
from tests.scoring.artifact_tamper import DIGEST_FIELD, arrays_of, run_isolated, tampered
from tests.scoring.model_bundles import PROBE

SUBPROCESS_TIMEOUT = 90  # seconds: a fresh interpreter imports numba and loads the kernels from the cache


@pytest.fixture(scope="module")
def models(artifact_models):
    return artifact_models


def set_threshold(name, value):
    def edit(manifest):
        manifest["thresholds"][name] = value
    return edit


# --- finding: a bad profile array passed the watcher, then score_request killed the worker (SIGSEGV) ---

def test_a_bad_profile_array_is_refused_by_the_watcher_instead_of_crashing_the_worker(models, tmp_path):
    request, _, _ = models
    broken = tampered(request, tmp_path / "broken", arrays=lambda a: a.update(
        profile_endpoint_keys=np.zeros(0, dtype=np.int64)))
    link = tmp_path / "production"
    os.symlink(request, link)
    # in a subprocess: on the code before the fix, scoring with this artifact was a SIGSEGV
    result = run_isolated(f"""
        import json, os
        from waflens.runtime.hot_swap import ModelWatcher
        watcher = ModelWatcher({str(link)!r}, check_interval=0)
        os.unlink({str(link)!r}); os.symlink({str(broken)!r}, {str(link)!r})
        swapped = watcher.maybe_reload(force=True)
        score = watcher.scorer.score_request(*{PROBE!r}).score
        print(json.dumps({{"swapped": swapped, "target": watcher.target, "error": watcher.last_error,
                          "score": score}}))
        """, SUBPROCESS_TIMEOUT)
    assert result is not None, "loading or scoring hung"
    assert result.returncode == 0, f"the worker died (exit {result.returncode}): {result.stderr[-2000:]}"
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["swapped"] is False and outcome["target"] == str(request)
    assert outcome["error"].startswith("ArtifactError") and "profile_endpoint_keys" in outcome["error"]
    assert 0 < outcome["score"] <= 1


@pytest.mark.parametrize("edit", ["param index out of range", "table without an empty slot",
                                  "table size not a power of two", "seen_bytes rows", "value kind out of range",
                                  "class bits beyond the classes"])
def test_malformed_profile_tables_are_refused(models, tmp_path, edit):
    request, _, _ = models

    def change(a):
        if edit == "param index out of range":
            a["profile_param_index"][a["profile_param_keys"] != 0] = 10**9
        elif edit == "table without an empty slot":
            a["profile_enum_keys"] = np.arange(1, a["profile_enum_keys"].size + 1, dtype=np.int64)
        elif edit == "table size not a power of two":
            a["profile_endpoint_keys"] = a["profile_endpoint_keys"][:-1].copy()
            a["profile_endpoint_count"] = a["profile_endpoint_count"][:-1].copy()
        elif edit == "seen_bytes rows":
            a["profile_seen_bytes"] = a["profile_seen_bytes"][:, :128].copy()
        elif edit == "value kind out of range":  # the kernel indexes its per-kind row by it
            a["profile_value_kind"][0] = 4
        else:
            a["profile_seen_classes"][-1] = -1

    name = {"param index out of range": "profile_param_index", "table without an empty slot": "profile_enum_keys",
            "table size not a power of two": "profile_endpoint_keys", "seen_bytes rows": "profile_seen_bytes",
            "value kind out of range": "profile_value_kind", "class bits beyond the classes": "profile_seen_classes"}[edit]
    with pytest.raises(ArtifactError, match=name):
        Scorer.load(tampered(request, tmp_path / "m", arrays=change))


# --- finding: a tree whose child points back to itself made Scorer.load never return ---

def test_a_tree_with_a_cycle_is_refused_instead_of_hanging_the_load(models, tmp_path):
    request, _, _ = models

    def loop(a):
        root = a["forest_roots"][0]
        a["forest_left"][root] = root

    broken = tampered(request, tmp_path / "cycle", arrays=loop)
    # in a subprocess: on the code before the fix, this load never returned
    result = run_isolated(f"""
        from waflens.runtime.artifact import ArtifactError
        from waflens.runtime.scorer import Scorer
        try:
            Scorer.load({str(broken)!r})
            print("loaded")
        except ArtifactError as error:
            print("ArtifactError:", error)
        """, SUBPROCESS_TIMEOUT)
    assert result is not None, "Scorer.load hung on a tree with a cycle"
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("ArtifactError:") and "forest_left" in result.stdout


@pytest.mark.parametrize("edit", ["shared subtree", "child before parent", "root out of range",
                                  "feature id out of range", "negative path length", "NaN threshold",
                                  "zero normaliser"])
def test_malformed_forests_are_refused(models, tmp_path, edit):
    request, _, _ = models

    def change(a):
        feature, left, right, roots = a["forest_feature"], a["forest_left"], a["forest_right"], a["forest_roots"]
        inner = np.flatnonzero(feature >= 0)
        if edit == "shared subtree":        # a DAG: the number of paths doubles with every level
            right[inner[0]] = left[inner[0]]
        elif edit == "child before parent":
            left[inner[5]] = inner[0]
        elif edit == "root out of range":
            roots[-1] = feature.size
        elif edit == "feature id out of range":
            feature[inner[3]] = 200
        elif edit == "negative path length":
            a["forest_value"][np.flatnonzero(feature < 0)[0]] = -1e6
        elif edit == "NaN threshold":
            a["forest_threshold"][inner[2]] = np.nan
        else:
            a["forest_normaliser"] = np.array(0.0)

    name = {"shared subtree": "forest_right", "child before parent": "forest_left", "root out of range": "forest_roots",
            "feature id out of range": "forest_feature", "negative path length": "forest_value",
            "NaN threshold": "forest_threshold", "zero normaliser": "forest_normaliser"}[edit]
    with pytest.raises(ArtifactError, match=name):
        Scorer.load(tampered(request, tmp_path / "m", arrays=change))


# --- finding: manifest.json was covered by no hash, and any threshold was accepted ---

def test_an_edited_manifest_fails_the_digest(models, tmp_path):
    request, _, _ = models
    edited = tampered(request, tmp_path / "m", manifest=set_threshold("attack", 0.999), seal=False)
    with pytest.raises(ArtifactError, match="manifest.json"):
        Scorer.load(edited)
    assert DIGEST_FIELD in json.loads((request / "manifest.json").read_text())


@pytest.mark.parametrize("value", [float("nan"), 2.0, 0.0, -0.5, "0.5", None, True, [0.9]])
def test_thresholds_outside_zero_to_one_or_not_numbers_are_refused(models, tmp_path, value):
    request, session, _ = models
    for model, scorer in ((request, Scorer), (session, SessionScorer)):
        edited = tampered(model, tmp_path / f"{model.name}-{value!r}", manifest=set_threshold("likely_attack", value))
        with pytest.raises(ArtifactError, match="likely_attack"):
            scorer.load(edited)


def test_thresholds_out_of_order_or_missing_are_refused(models, tmp_path):
    request, _, _ = models
    manifest = json.loads((request / "manifest.json").read_text())
    low = manifest["thresholds"]["likely_attack"]  # (attack may already be 1.0: put it below likely_attack instead)
    with pytest.raises(ArtifactError, match="attack"):
        Scorer.load(tampered(request, tmp_path / "order", manifest=set_threshold("attack", low - 0.01)))
    with pytest.raises(ArtifactError, match="likely_clean"):
        Scorer.load(tampered(request, tmp_path / "gone", manifest=lambda m: m["thresholds"].pop("likely_clean")))


@pytest.mark.parametrize("edit,name", [
    (lambda m: m["feature_spec"].update(version="9.9"), "feature spec"),
    (lambda m: m["feature_spec"]["names"].reverse(), "names"),
    (lambda m: m["feature_spec"]["lists"]["sql_tokens"].append(""), "sql_tokens"),
    (lambda m: m["feature_spec"]["lists"].pop("static_ext"), "static_ext"),
    (lambda m: m["training"].update(body_share="all"), "body_share"),
    (lambda m: m.update(schema_version="2"), "schema"),
    (lambda m: m.update(files={"../../model.npz": "0" * 64}), "files"),
])
def test_malformed_manifest_fields_are_refused(models, tmp_path, edit, name):
    request, _, _ = models
    with pytest.raises(ArtifactError, match=name):
        Scorer.load(tampered(request, tmp_path / "m", manifest=edit))


def test_a_manifest_that_is_not_an_object_is_refused(models, tmp_path):
    request, _, _ = models
    edited = tampered(request, tmp_path / "m")
    (edited / "manifest.json").write_text("[1, 2]")
    with pytest.raises(ArtifactError, match="JSON object"):
        Scorer.load(edited)


# --- finding: a truncated npz or a missing array raised BadZipFile, IndexError or KeyError ---

@pytest.mark.parametrize("how", ["truncated", "missing forest array", "missing profile array", "not a zip",
                                 "an npy file", "compressed", "wrong dtype", "wrong shape"])
def test_unreadable_or_incomplete_arrays_raise_artifact_error(models, tmp_path, how):
    request, _, _ = models
    edits = {
        "truncated": dict(model_bytes=lambda data: data[: len(data) // 2]),
        "missing forest array": dict(arrays=lambda a: a.pop("forest_roots")),
        "missing profile array": dict(arrays=lambda a: a.pop("profile_is_enum")),
        "not a zip": dict(model_bytes=lambda data: os.urandom(len(data))),
        "an npy file": dict(model_bytes=lambda data: npy_bytes(np.arange(10))),
        "compressed": dict(model_bytes=lambda data: compressed(data)),
        "wrong dtype": dict(arrays=lambda a: a.update(forest_feature=a["forest_feature"].astype(np.float64))),
        "wrong shape": dict(arrays=lambda a: a.update(feature_median=a["feature_median"][:-1].copy())),
    }
    expected = {"missing forest array": "forest_roots", "missing profile array": "profile_is_enum",
                "wrong dtype": "forest_feature", "wrong shape": "feature_median"}.get(how, "model.npz")
    with pytest.raises(ArtifactError, match=expected):
        Scorer.load(tampered(request, tmp_path / "m", **edits[how]))


def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def compressed(data: bytes) -> bytes:
    """The same arrays in a deflated zip: a zip bomb's container, which the loader does not open."""
    with np.load(io.BytesIO(data)) as npz:
        arrays = {k: npz[k] for k in npz.files}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def test_an_array_header_that_claims_more_data_than_the_file_holds_is_refused(models, tmp_path):
    """A valid zip (CRCs right) whose forest_value header promises 99..9 values when the data holds n."""
    import zipfile

    request, _, _ = models
    arrays = arrays_of(request)
    n = arrays["forest_value"].shape[0]

    def forge(_: bytes) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for name, array in arrays.items():
                member = npy_bytes(array)
                if name == "forest_value":
                    member = member.replace(f"'shape': ({n},)".encode(), f"'shape': ({'9' * len(str(n))},)".encode())
                archive.writestr(name + ".npy", member)
        return buffer.getvalue()

    with pytest.raises(ArtifactError, match="forest_value"):
        Scorer.load(tampered(request, tmp_path / "m", model_bytes=forge))


# --- session artifacts: the forest, the manifest and the feedback model ---

@pytest.mark.parametrize("edit,name", [
    (dict(arrays=lambda a: a.update(feedback_benign_index=np.array(7))), "feedback_benign_index"),
    (dict(arrays=lambda a: a.update(feedback_attack_mask=a["feedback_attack_mask"][:-1].copy())),
     "feedback_attack_mask"),
    (dict(arrays=lambda a: a.update(feedback_init=np.array([np.inf] * a["feedback_init"].size))), "feedback_init"),
    (dict(arrays=lambda a: a["feedback_left"].__setitem__(a["feedback_roots"][1], a["feedback_roots"][1])),
     "feedback_left"),
    (dict(manifest=lambda m: m["feedback"].update(n_outputs=7)), "n_outputs"),
    (dict(manifest=lambda m: m["feedback"].update(classes=["a", "a", "b"])), "classes"),
    (dict(arrays=lambda a: a.pop("feedback_value")), "feedback_value"),
    (dict(manifest=lambda m: m["training"].update(gap_seconds=float("nan"))), "gap_seconds"),
])
def test_malformed_session_artifacts_are_refused(models, tmp_path, edit, name):
    _, _, session = models
    with pytest.raises(ArtifactError, match=name):
        SessionScorer.load(tampered(session, tmp_path / "m", **edit))


def test_valid_artifacts_load_and_score(models):
    request, session, feedback = models
    assert 0 < Scorer.load(request, fail_open=False).score_request(*PROBE).score <= 1
    for model in (session, feedback):
        scorer = SessionScorer.load(model)
        assert 0 < scorer.score_request(*PROBE, client=("c",), ts=0.0).score <= 1 and scorer.errors == 0


def test_an_artifact_of_schema_1_still_loads(models, tmp_path):
    """The rule for artifacts exported before the manifest digest: loaded, with every structural check."""
    request, _, _ = models

    def downgrade(manifest):
        manifest["schema_version"] = 1
        manifest.pop(DIGEST_FIELD)

    old = tampered(request, tmp_path / "old", manifest=downgrade)
    assert Scorer.load(old).score_request(*PROBE).score == Scorer.load(request).score_request(*PROBE).score
    with pytest.raises(ArtifactError, match="likely_attack"):
        Scorer.load(tampered(old, tmp_path / "old-nan", manifest=set_threshold("likely_attack", float("nan"))))


def test_the_watcher_keeps_the_old_model_and_says_why(models, tmp_path, caplog):
    request, _, _ = models
    link = tmp_path / "production"
    os.symlink(request, link)
    watcher = ModelWatcher(link, check_interval=0)
    first = watcher.scorer
    broken = tampered(request, tmp_path / "nan", manifest=set_threshold("attack", float("nan")))
    os.unlink(link)
    os.symlink(broken, link)
    with caplog.at_level(logging.WARNING, logger="waflens.hot_swap"):
        assert watcher.maybe_reload(force=True) is False
    assert watcher.scorer is first and watcher.target == str(request)
    assert watcher.last_error.startswith("ArtifactError") and "thresholds" in watcher.last_error
    assert "thresholds" in caplog.text and str(broken) in caplog.text


def test_artifact_error_is_still_a_value_error():
    assert issubclass(ArtifactError, ValueError) and ArtifactError.exit_code == 3
