"""Fixtures shared by the scoring tests."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from waflens.data.raw_http import RawHttpRequest, iter_raw_http

from tests.scoring.artifact_tamper import tampered
from tests.scoring.model_bundles import train_bundles


@pytest.fixture(scope="session")
def artifact_models(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(request model, session model, session model with an analyst-feedback part) of one small training run:
    the originals that the artifact tests edit."""
    tmp = tmp_path_factory.mktemp("artifact_models")
    bundle, = train_bundles(tmp, seeds=(1,), requests=3000)
    return bundle / "request", bundle / "session", _with_feedback(bundle / "session", tmp / "session-feedback")


def _with_feedback(session: Path, into: Path) -> Path:
    """The session model plus a feedback model fitted on made-up labels (what a retrain with labels exports)."""
    from waflens.scoring.feedback import fit_feedback

    names = json.loads((session / "manifest.json").read_text())["feature_spec"]["names"]
    rng = np.random.default_rng(0)
    X = rng.gamma(2.0, 3.0, size=(300, len(names)))
    classes = np.array(["unlabelled"] * 200 + ["benign"] * 50 + ["sqli"] * 50, dtype=object)
    X[250:, names.index("attack_ratio")] += 5.0
    fitted = fit_feedback(X, classes, rng.random(300))
    return tampered(session, into, arrays=lambda arrays: arrays.update(fitted.arrays),
                    manifest=lambda manifest: manifest.update(feedback=fitted.manifest))


TRAINING_REQUESTS = 4000  # a subsample keeps the fixture short; every CSIC endpoint occurs in it many times


def csic_requests(path):
    text = gzip.decompress(path.read_bytes()).decode("latin-1")
    return [r for r in iter_raw_http(text) if isinstance(r, RawHttpRequest)]


@pytest.fixture(scope="session")
def csic_training(shared_datasets) -> list:
    """The CSIC 2010 benign training requests, parsed."""
    return csic_requests(shared_datasets / "raw_http" / "csic2010_normalTrafficTraining.txt.gz")


@pytest.fixture(scope="session")
def csic(tmp_path_factory, csic_training):
    """(scorer, a CSIC request's headers, model directory) of a request model trained on a CSIC 2010 benign
    training subsample: trained once per test session (test_structural_evidence, test_attack_likeness)."""
    from waflens.data.sessionize import update_derived
    from waflens.runtime.scorer import Scorer
    from waflens.scoring.train import TrainingOptions, train_request_model
    from tests.data.helpers import fresh_db, ingest

    tmp = tmp_path_factory.mktemp("csic")
    training = csic_training
    picked = np.random.default_rng(0).choice(len(training), TRAINING_REQUESTS, replace=False)
    dump = tmp / "train.txt"
    dump.write_bytes("".join(training[i].raw for i in sorted(picked)).encode("latin-1"))
    con = fresh_db(tmp)
    ingest(con, dump, format="raw-http")
    update_derived(con)
    train_request_model(con, tmp / "model", TrainingOptions(n_estimators=20, seed=0))
    con.close()
    return Scorer.load(tmp / "model"), training[0].headers, tmp / "model"
