"""Analyst labels weigh the bot score's evidence (see waflens.runtime.bot_score).

Unsupervised, every question the bot score asks counts the same. On a given site some
answers separate its people from its bots and some do not (on the web_bot logs the moderate
bots load assets and send referers like browsers, but do not pause to read): labels say
which. A logistic regression of the labelled sessions, automated (any attack or bot family)
against human (``benign``), on the evidence's normal quantiles ``Phi^-1(e_j)`` gives each
question a weight; Stouffer's weighted Z then combines them. A negative weight is cut to 0:
labels may say a prior does not hold here, not that bots are more human on it. Measured by
cross-validation on the web_bot train annotations only (``benchmarks/bots.py``): AUC 0.946
with equal weights and the feedback blend, 0.981 with these weights and the blend.
"""

from __future__ import annotations

import numpy as np

from waflens.runtime.bot_score import BotReference, normal_quantiles
from waflens.scoring.feedback import BENIGN, MIN_CLASS_SESSIONS, UNLABELLED

REGULARISATION_C = 1.0      # scikit-learn's default; few labels, so some shrinkage towards no weight


def label_weights(X: np.ndarray, classes: np.ndarray, arrays: dict[str, np.ndarray]) -> np.ndarray | None:
    """Evidence weights from the sessions' analyst classes; None when labels are too few (fewer than
    MIN_CLASS_SESSIONS human or automated sessions) or say nothing (every weight 0)."""
    from sklearn.linear_model import LogisticRegression

    classes = np.asarray(classes, dtype=object)
    human = classes == BENIGN
    automated = (classes != BENIGN) & (classes != UNLABELLED)
    if human.sum() < MIN_CLASS_SESSIONS or automated.sum() < MIN_CLASS_SESSIONS:
        return None
    reference = BotReference(arrays["bot_columns"], arrays["bot_automated_high"], arrays["bot_quantiles"])
    labelled = human | automated
    q = normal_quantiles(X[labelled], reference)
    model = LogisticRegression(C=REGULARISATION_C, class_weight="balanced", max_iter=1000)
    model.fit(q, automated[labelled].astype(np.int64))
    weights = np.clip(model.coef_[0], 0.0, None)
    return weights if weights.sum() > 0 else None
