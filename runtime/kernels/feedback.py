"""numba kernels: the analyst-feedback model blended with the isolation-forest score.

The feedback model is a gradient-boosted tree ensemble over the same features,
stored in the same perfect-tree layout as the forest (see
:mod:`waflens.runtime.kernels.forest`). Trees are ordered stage-major: tree ``t`` adds to
output ``t % n_outputs``. One output is a binary model (sigmoid); more is a
multinomial one (softmax over classes).

The blend (documented in :mod:`waflens.scoring.feedback`)::

    score = max(u * (1 - p_benign), p_attack)

``u`` the isolation score, ``p_benign`` the probability of the analyst-benign
class, ``p_attack`` the summed probability of the confirmed attack families.

Imports only numpy and numba: the runtime uses it.
"""

import math

import numba
import numpy as np

from waflens.runtime.kernels.forest import leaf_of


@numba.njit(cache=True, nogil=True)
def raw_outputs(x32, feat, thr, val, depth, n_outputs, init, raw):
    """The model's raw (pre-link) outputs for one float32 row, into ``raw``."""
    for k in range(n_outputs):
        raw[k] = init[k]
    for t in range(feat.shape[0]):
        raw[t % n_outputs] += val[t, leaf_of(x32, feat[t], thr[t], depth)]


@numba.njit(cache=True, nogil=True)
def class_probabilities(x32, feat, thr, val, depth, n_outputs, init, probs):
    """Fill ``probs`` (one per class) for one float32 row."""
    n_classes = probs.shape[0]
    raw = np.empty(n_outputs)
    raw_outputs(x32, feat, thr, val, depth, n_outputs, init, raw)
    if n_outputs == 1:
        positive = 1.0 / (1.0 + math.exp(-raw[0]))
        probs[0] = 1.0 - positive
        probs[1] = positive
        return
    top = raw[0]
    for k in range(1, n_classes):
        top = max(top, raw[k])
    total = 0.0
    for k in range(n_classes):
        probs[k] = math.exp(raw[k] - top)
        total += probs[k]
    for k in range(n_classes):
        probs[k] /= total


@numba.njit(cache=True, nogil=True)
def blend(u, probs, benign_index, attack_mask):
    attack = 0.0
    for k in range(probs.shape[0]):
        if attack_mask[k]:
            attack += probs[k]
    benign = probs[benign_index] if benign_index >= 0 else 0.0
    return min(max(u * (1.0 - benign), attack), 1.0)  # summed probabilities may round to 1 + 1 ulp


@numba.njit(cache=True, nogil=True)
def blend_one(x32, u, feat, thr, val, depth, n_outputs, init, benign_index, attack_mask, probs):
    class_probabilities(x32, feat, thr, val, depth, n_outputs, init, probs)
    return blend(u, probs, benign_index, attack_mask)


@numba.njit(cache=True, nogil=True, parallel=True)
def blend_batch(rows32, u, feat, thr, val, depth, n_outputs, init, benign_index, attack_mask, out, probs):
    """``out[i]`` = blended score of row i; ``probs[i]`` its class probabilities."""
    for i in numba.prange(rows32.shape[0]):
        class_probabilities(rows32[i], feat, thr, val, depth, n_outputs, init, probs[i])
        out[i] = blend(u[i], probs[i], benign_index, attack_mask)
