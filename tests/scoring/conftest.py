"""Fixtures shared by the scoring tests."""

import json
from pathlib import Path

import numpy as np
import pytest

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
    from scoring.feedback import fit_feedback

    names = json.loads((session / "manifest.json").read_text())["feature_spec"]["names"]
    rng = np.random.default_rng(0)
    X = rng.gamma(2.0, 3.0, size=(300, len(names)))
    classes = np.array(["unlabelled"] * 200 + ["benign"] * 50 + ["sqli"] * 50, dtype=object)
    X[250:, names.index("attack_ratio")] += 5.0
    fitted = fit_feedback(X, classes, rng.random(300))
    return tampered(session, into, arrays=lambda arrays: arrays.update(fitted.arrays),
                    manifest=lambda manifest: manifest.update(feedback=fitted.manifest))
