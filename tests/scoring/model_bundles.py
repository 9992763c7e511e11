"""Model bundles for the registry tests: real trained ones, and tiny hand-written ones."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from waflens.runtime.artifact import write_artifact
from waflens.scoring.train import TrainingOptions, train_request_model, train_session_model
from tests.data.helpers import generated_db

# unusual but not evidence of an attack: two versions score it differently (an SQL injection scores 1.0 with both)
PROBE = ("GET", "/search?q=red+wool+socks+size+42&page=17",
         {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"})


def train_bundles(tmp: Path, seeds=(1, 2), requests: int = 3000) -> list[Path]:
    """One bundle per seed (request/ and session/ models trained on the same small database)."""
    con = generated_db(tmp, requests, seed=3, attack_share=0.03).con
    try:
        bundles = []
        for seed in seeds:
            bundle = tmp / f"bundle-{seed}"
            options = TrainingOptions(n_estimators=20, seed=seed)
            train_request_model(con, bundle / "request", options)
            train_session_model(con, bundle / "session", options)
            bundles.append(bundle)
    finally:
        con.close()
    return bundles


def tiny_bundle(path: Path, marker: float, levels=("request",)) -> Path:
    """A bundle of small valid artifacts (not loadable by a Scorer); ``marker`` makes each one distinct."""
    for level in levels:
        write_artifact(path / level, {"marker": np.array([marker])},
                       {"level": level, "feature_spec": {"version": "1.0"}, "metrics": {"marker": marker}})
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
