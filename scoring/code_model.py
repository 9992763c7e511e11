"""The code-likeness model's weights: fitting them, and the copy shipped with waflens.

The weights are site-independent (what SQL or a shell command looks like does not
depend on the site), so they are fitted once, from public labelled values, by
``scripts/fit_code_model.py``, and shipped as ``scoring/code_weights.json``;
``waflens train`` copies them into every artifact and calibrates, on the site's own
training requests, where evidence starts (:mod:`waflens.scoring.calibration`).
"""

from __future__ import annotations

import json
from importlib.resources import files

import numpy as np

from waflens.runtime.kernels.code import (MAX_TOKENS, N_BIGRAM_CLASSES, N_CLASSES, N_CODE_WEIGHTS, TOKENIZER_VERSION,
                                 code_features)
from waflens.scoring.profiles import encode

WEIGHTS_FILE = "code_weights.json"


def value_matrix(values: list[bytes | str], dtype=np.float32) -> np.ndarray:
    """The model's input rows of decoded values: log1p class counts, then bigram presence (float32 by default:
    the fitting set is large; the kernel evaluates them in float64)."""
    X = np.zeros((len(values), N_CODE_WEIGHTS), dtype=dtype)
    counts = np.zeros(N_CLASSES, dtype=np.int64)
    classes = np.empty(MAX_TOKENS + 1, dtype=np.int64)
    bigrams = np.empty(MAX_TOKENS + 2, dtype=np.int64)
    seen = np.zeros(N_BIGRAM_CLASSES * N_BIGRAM_CLASSES, dtype=np.bool_)
    for i, value in enumerate(values):
        n = code_features(encode(value), counts, bigrams, classes, seen)
        X[i, :N_CLASSES] = np.log1p(counts)
        X[i, N_CLASSES + bigrams[:n]] = 1.0
    return X


def fit_code_weights(values: list[bytes | str], is_attack: np.ndarray, C: float = 1.0) -> tuple[np.ndarray, float]:
    """(weights, bias) of an L2 logistic regression, both classes weighted equally."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, class_weight="balanced", max_iter=5000)
    model.fit(value_matrix(values), np.asarray(is_attack, dtype=bool))
    return model.coef_[0].astype(np.float64), float(model.intercept_[0])


def shipped_code_weights() -> tuple[np.ndarray, float, dict]:
    """(weights, bias, provenance) of the weights shipped with waflens."""
    data = json.loads(files("waflens.scoring").joinpath(WEIGHTS_FILE).read_text())
    if data["tokenizer_version"] != TOKENIZER_VERSION or len(data["weights"]) != N_CODE_WEIGHTS:
        raise RuntimeError(f"scoring/{WEIGHTS_FILE} was fitted for another tokenizer: run scripts/fit_code_model.py")
    return np.asarray(data["weights"], dtype=np.float64), float(data["bias"]), data["provenance"]


def held_out(value: str) -> bool:
    """The fifth of the labelled values kept out of fitting, for the benchmark (by a hash of the value, so
    the split is the same everywhere)."""
    import hashlib

    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()[0] % 5 == 0
