"""Train on a real DuckDB file, export, load in the runtime, score; artifacts refuse tampering."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from waflens.data.errors import InsufficientDataError
from waflens.data.feature_spec import FEATURE_SPEC_VERSION, feature_names
from waflens.data.sessionize import update_derived
from waflens.runtime.artifact import ArtifactError
from waflens.runtime.scorer import FEATURE_SPEC_VERSION as RUNTIME_SPEC_VERSION, Scorer
from waflens.scoring.train import TrainingOptions, train_request_model
from tests.data.helpers import at, combined_line, fresh_db, generated_db, ingest, write_log


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    con, log, _ = generated_db(tmp, 12_000, seed=3, attack_share=0.03)   # production-like: attacks are rare
    model = tmp / "model"
    manifest = train_request_model(con, model, TrainingOptions(n_estimators=50, seed=1))
    return tmp, con, log, model, manifest


def test_manifest_describes_the_model(trained):
    _, _, _, model, manifest = trained
    stored = json.loads((model / "manifest.json").read_text())
    assert stored["feature_spec"]["version"] == FEATURE_SPEC_VERSION == RUNTIME_SPEC_VERSION
    assert stored["feature_spec"]["names"][:30] == feature_names("request")
    assert stored["training"]["requests"] == 12_000
    assert set(stored["thresholds"]) == {"likely_clean", "likely_attack", "attack"}
    assert set(stored["files"]) == {"model.npz"}
    assert manifest["model"]["n_estimators"] == 50


def test_runtime_features_equal_the_sql_features(trained):
    _, con, _, model, _ = trained
    scorer = Scorer.load(model)
    names = feature_names("request")
    rows = con.execute(f"""SELECT r.method, r.path, r.query, r.body, r.user_agent, r.referer, {", ".join("f." + n for n in names)}
                           FROM requests r JOIN request_features f USING (request_id) ORDER BY request_id""").fetchall()
    for method, path, query, body, agent, referer, *expected in rows:
        target = path + ("?" + query if query else "")
        got = scorer.request_features(method, target, {"User-Agent": agent, "Referer": referer}, body or b"")[:30]
        np.testing.assert_allclose(got, np.asarray(expected, dtype=np.float64), rtol=1e-9, atol=1e-9,
                                   err_msg=f"{method} {target}")


def test_attacks_score_higher_than_benign_traffic(trained):
    tmp, con, log, model, _ = trained
    scorer = Scorer.load(model)
    with open(f"{log}.truth.csv") as handle:
        truth = {int(r["record"]): r["campaign"] for r in csv.DictReader(handle)}
    rows = con.execute("SELECT record, method, path, query, user_agent, referer FROM requests ORDER BY record").fetchall()
    scores = {r[0]: scorer.score_request(r[1], r[2] + ("?" + r[3] if r[3] else ""),
                                         {"User-Agent": r[4], "Referer": r[5]}).score for r in rows}
    from sklearn.metrics import roc_auc_score
    injected = {"sqli_scan", "xss_probe", "path_traversal", "cmd_injection"}
    labels = [truth[k] in injected for k in scores if truth[k] in injected or truth[k] == "benign"]
    values = [scores[k] for k in scores if truth[k] in injected or truth[k] == "benign"]
    assert roc_auc_score(labels, values) > 0.9


def test_score_result_classes_and_explanation(trained):
    _, _, _, model, _ = trained
    scorer = Scorer.load(model)
    attack = scorer.score_request("GET", "/search?q=1%27%20UNION%20SELECT%20password%20FROM%20users--",
                                  {"User-Agent": "sqlmap/1.8"}, explain=True)
    assert attack.score_class in ("likely_attack", "attack")
    assert attack.explanation and attack.explanation[0][2] > 0
    normal = scorer.score_request("GET", "/", {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"})
    assert normal.score < attack.score


def test_hostile_fields_get_defined_scores(trained):
    _, _, _, model, _ = trained
    scorer = Scorer.load(model)
    for method, target, body in [(None, "", b""), ("GET", "/%zz%%%", bytes(range(256)) * 4000),
                                 ("\x00", "http://x/" + "A" * 2_000_000, b"\xff\xfe"), ("GET", b"/\xff\x00", "é")]:
        result = scorer.score_request(method, target, {"User-Agent": b"\xff"}, body)
        assert 0 < result.score <= 1 and result.score_class != "error"


def test_corrupt_or_newer_artifacts_are_refused(trained, tmp_path):
    _, _, _, model, _ = trained
    import shutil
    altered = tmp_path / "altered"
    shutil.copytree(model, altered)
    data = bytearray((altered / "model.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (altered / "model.npz").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256"):
        Scorer.load(altered)
    newer = tmp_path / "newer"
    shutil.copytree(model, newer)
    manifest = json.loads((newer / "manifest.json").read_text())
    manifest["schema_version"] = 99
    (newer / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="schema"):
        Scorer.load(newer)
    missing = tmp_path / "missing"
    shutil.copytree(model, missing)
    (missing / "model.npz").unlink()
    with pytest.raises(ArtifactError, match="missing"):
        Scorer.load(missing)


def test_training_refuses_too_little_data(tmp_path):
    log = write_log(tmp_path / "a.log", [combined_line("10.0.0.1", at(i), "GET / HTTP/1.1") for i in range(20)])
    con = fresh_db(tmp_path)
    ingest(con, log)
    update_derived(con)
    with pytest.raises(InsufficientDataError, match="at least"):
        train_request_model(con, tmp_path / "m")


@pytest.mark.parametrize("keep_blas", [False, True])
def test_loading_skips_numba_s_blas_probe_unless_asked_to_keep_it(trained, keep_blas):
    _, _, _, model, _ = trained
    code = (f"import sys; from waflens.runtime.scorer import Scorer; Scorer.load({str(model)!r}); "
            "import numba.np.arraymath as m; "
            "print(m._HAVE_BLAS, 'scipy.linalg' in sys.modules, 'scipy.linalg.cython_blas' in sys.modules)")
    env = {**os.environ, "WAFLENS_NUMBA_BLAS": "1" if keep_blas else "0"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    # skipped: no BLAS for numba, scipy.linalg never imported, and no placeholder left behind in sys.modules
    assert result.stdout.split() == (["True", "True", "True"] if keep_blas else ["False", "False", "False"])
