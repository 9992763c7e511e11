"""numba kernel: one request from raw fields to score, in a single compiled call.

Calling numba costs about 40 ns per array argument (more for bytes), so the whole
model — token tables, profiles and the perfect-tree forest — travels as three
packed arrays (ints, floats, bytes) plus a layout of their sections; the kernel
slices them (no copies), splits the target at its first '?', and runs feature
extraction, profile lookups, code-likeness and the forest. Imports only numpy, numba and our kernels.

The score keeps "unusual" apart from "attack": the forest's score (how unusual the
request is) bends, above a knee, towards a ceiling it never reaches; the classes
``likely_attack`` and ``attack`` start at or above that ceiling, so only evidence
lifts a request into them: structural novelty (unknown endpoint, parameter, method,
file kind) and code-likeness of a value (see :mod:`waflens.runtime.kernels.code`), each
calibrated on the site's held-out training requests (:mod:`waflens.scoring.calibration`).

Character classes a parameter never carried (``id=1%2520``, ``pwd=G//lAc,IAr``) are
calibrated the same way, pooled by parameter kind, but they are news about a value, not
evidence of an attack: their weight adds to the forest's score *before* the bend, so it
lifts a request above benign ones that show none yet, on its own, stays below the
ceiling and so below ``likely_attack``; code-likeness or structural evidence takes it further.
"""

from __future__ import annotations

import numba
import numpy as np

from waflens.runtime.feature_spec import EXT_OTHER, EXT_SENSITIVE, N_REQUEST_FEATURES, request_column
from waflens.runtime.kernels.code import request_code_likeness
from waflens.runtime.kernels.forest import normalise, perfect_path_sum
from waflens.runtime.kernels.profile import N_PROFILE_FEATURES, N_VALUE_KINDS, VALUE_KIND_NAMES, profile_deviations
from waflens.runtime.kernels.request import request_features
from waflens.runtime.redaction import mask_secrets

INT_SECTIONS = ("tok_offsets", "tok_group", "tok_by_first", "tok_order", "ext_offsets", "ext_class",
                "endpoint_keys", "endpoint_count", "param_keys", "param_index", "enum_keys", "seen_classes", "value_kind")
FLOAT_SECTIONS = ("length_mean", "length_std", "length_max", "forest_val", "normaliser", "surprise", "code_weights",
                  "score_shape")
BYTE_SECTIONS = ("tok_data", "ext_data", "seen_bytes", "is_enum", "forest_feat", "forest_thr")
CODE_LIKENESS = N_REQUEST_FEATURES + N_PROFILE_FEATURES  # the highest value logit; the forest sees the columns before it
NOVEL_CLASSES = CODE_LIKENESS + 1  # then, per parameter kind, the most character classes new to a value's parameter
N_FEATURES = NOVEL_CLASSES + N_VALUE_KINDS
CODE_FEATURE_NAMES = ("code_likeness",)
# score_shape: where the forest's score bends and the ceiling it approaches; the code-likeness logits where its
# evidence starts and where it is full; the full evidence's weight; the code model's bias
SCORE_SHAPE_NAMES = ("knee", "ceiling", "code_start", "code_full", "code_weight", "code_bias")
KNEE, CEILING, CODE_START, CODE_FULL, CODE_WEIGHT, CODE_BIAS = range(len(SCORE_SHAPE_NAMES))
# Structural evidence: what never (or rarely) occurred in training. An isolation forest cannot split on a
# feature that was constant in training, so this evidence adds to the score directly, each kind weighted by
# its surprise (-log of how often training met it, see waflens.scoring.profiles.structural_weights).
# The last N_VALUE_KINDS kinds, character classes new to a parameter of each kind, are unusualness: they add to
# the forest's score before its bend (see unusualness), never past the ceiling on their own.
STRUCTURAL_NAMES = ("unknown endpoint (method + path)", "unknown parameter name", "rare HTTP method",
                    "sensitive file extension (backup, config, archive)", "file extension outside the known lists")
N_STRUCTURAL = len(STRUCTURAL_NAMES)
NOVEL_CLASS_EVIDENCE = tuple(f"character class new to a {kind} parameter" for kind in VALUE_KIND_NAMES)
EVIDENCE_NAMES = STRUCTURAL_NAMES + NOVEL_CLASS_EVIDENCE
N_EVIDENCE = len(EVIDENCE_NAMES)
_METHOD_IS_RARE, _EXT_CLASS = request_column("method_is_rare"), request_column("ext_class")
_ENDPOINT_UNKNOWN, _UNKNOWN_PARAMS = N_REQUEST_FEATURES, N_REQUEST_FEATURES + 1
_F32_MAX = float(np.finfo(np.float32).max)

# section numbers in the layout, in the order of the lists above (unpacking fails if a list changes length)
_N_INT, _N_FLOAT = len(INT_SECTIONS), len(FLOAT_SECTIONS)
(TOK_OFFSETS, TOK_GROUP, TOK_BY_FIRST, TOK_ORDER, EXT_OFFSETS, EXT_CLASS, ENDPOINT_KEYS, ENDPOINT_COUNT,
 PARAM_KEYS, PARAM_INDEX, ENUM_KEYS, SEEN_CLASSES, VALUE_KIND) = range(_N_INT)
LENGTH_MEAN, LENGTH_STD, LENGTH_MAX, FOREST_VAL, NORMALISER, SURPRISE, CODE_WEIGHTS, SCORE_SHAPE = range(
    _N_INT, _N_INT + _N_FLOAT)
TOK_DATA, EXT_DATA, SEEN_BYTES, IS_ENUM, FOREST_FEAT, FOREST_THR = range(_N_INT + _N_FLOAT,
                                                                          _N_INT + _N_FLOAT + len(BYTE_SECTIONS))
N_SECTIONS = _N_INT + _N_FLOAT + len(BYTE_SECTIONS)
# after the sections' (start, end) pairs: the profile rows, the trees and their depth
N_PARAM_ROWS, N_TREES, DEPTH = 2 * N_SECTIONS, 2 * N_SECTIONS + 1, 2 * N_SECTIONS + 2


def pack(sections: dict[str, np.ndarray], n_param_rows: int, trees: tuple, depth: int, normaliser: float,
         surprise: np.ndarray, code_weights: np.ndarray, score_shape: np.ndarray):
    """(ints, floats, bytes, layout) for the kernels below. ``trees`` is the perfect layout (feat uint8,
    thr float32, val float64); thresholds travel as their float32 bytes, 8-byte aligned. ``surprise``: the
    structural evidence weights (see :func:`structural_surprise`); ``code_weights`` and ``score_shape``: see
    :func:`combined_score`."""
    feat, thr, val = trees
    sections = {**sections, "forest_feat": feat, "forest_thr": np.ascontiguousarray(thr, np.float32).view(np.uint8),
                "forest_val": val, "normaliser": np.array([normaliser]), "surprise": surprise,
                "code_weights": code_weights, "score_shape": score_shape}
    layout = []
    packed = []
    for names, dtype in ((INT_SECTIONS, np.int64), (FLOAT_SECTIONS, np.float64), (BYTE_SECTIONS, np.uint8)):
        parts, start = [], 0
        for name in names:
            part = np.ascontiguousarray(sections[name]).astype(dtype).ravel()
            padding = -part.size % 8  # every section starts 8-byte aligned (the thresholds are viewed as float32)
            parts += [part, np.zeros(padding, dtype)]
            layout += [start, start + part.size]
            start += part.size + padding
        packed.append(np.concatenate(parts))
    layout += [n_param_rows, feat.shape[0], depth]
    return packed[0], packed[1], packed[2], np.array(layout, dtype=np.int64)


# _section's explicit signatures: one per packed array's dtype, the section number an int64. Without them numba
# compiles it once per literal section number its callers pass (25 compilations on an empty cache). They are
# compiled by compile_sections(), not in the decorator: a decorator's signatures compile at import, before
# Scorer.load has told numba's first compilation to skip its BLAS probe (see scorer._numba_without_blas).
_PACKED = tuple(numba.types.Array(dtype, 1, "C") for dtype in (numba.int64, numba.float64, numba.uint8))
SECTION_SIGNATURES = tuple(packed(packed, _PACKED[0], numba.int64) for packed in _PACKED)


@numba.njit(cache=True, nogil=True)
def _section(array, layout, k):
    return array[layout[2 * k]:layout[2 * k + 1]]


def compile_sections() -> None:
    """Compile :func:`_section` for its explicit signatures (from numba's cache when it holds them) and for
    no others. Idempotent; the kernels below work without it, compiling one ``_section`` per section number."""
    if _section._can_compile:
        for signature in SECTION_SIGNATURES:
            _section.compile(signature)
        _section.disable_compile()


@numba.njit(cache=True, nogil=True)
def _split_target(target):
    """(path, query) views of a target at its first '?'."""
    for i in range(target.size):
        if target[i] == 63:
            return target[:i], target[i + 1:]
    return target, target[target.size:]


@numba.njit(cache=True, nogil=True)
def features_one(method_code, target_bytes, body_bytes, ua_bytes, has_referer, I, F, B, L, row):
    """Fill ``row`` with the request's features (the model's order).

    What the site's model learned (request features, parameter profiles, new character classes) is read from the
    request with its secrets masked as ingest masks them (:mod:`waflens.runtime.redaction`): training only ever saw
    ``pwd=[redacted]``. Code-likeness reads the raw values, secrets included: its model was fitted on payload lists,
    not on the site's traffic, so a password has no skew to undo there, and an injection sent in a password field
    must still count (the marker itself never does, see :func:`request_code_likeness`)."""
    raw_target = np.frombuffer(target_bytes, np.uint8)
    raw_body = np.frombuffer(body_bytes, np.uint8)
    path, query = _split_target(mask_secrets(raw_target))
    body = mask_secrets(raw_body)
    ua = mask_secrets(np.frombuffer(ua_bytes, np.uint8))
    request_features(method_code, path, query, body, ua, has_referer,
                     _section(B, L, TOK_DATA), _section(I, L, TOK_OFFSETS), _section(I, L, TOK_GROUP),
                     _section(I, L, TOK_BY_FIRST), _section(I, L, TOK_ORDER), _section(B, L, EXT_DATA),
                     _section(I, L, EXT_OFFSETS), _section(I, L, EXT_CLASS), row[:N_REQUEST_FEATURES])
    seen = _section(B, L, SEEN_BYTES).reshape((L[N_PARAM_ROWS], 256))
    profile_deviations(method_code, path, query, body,
                       _section(I, L, ENDPOINT_KEYS), _section(I, L, ENDPOINT_COUNT), _section(I, L, PARAM_KEYS),
                       _section(I, L, PARAM_INDEX), _section(F, L, LENGTH_MEAN), _section(F, L, LENGTH_STD),
                       _section(F, L, LENGTH_MAX), seen, _section(B, L, IS_ENUM), _section(I, L, ENUM_KEYS),
                       _section(I, L, SEEN_CLASSES), _section(I, L, VALUE_KIND), row[N_REQUEST_FEATURES:CODE_LIKENESS],
                       row[NOVEL_CLASSES:N_FEATURES])
    raw_path, raw_query = _split_target(raw_target)
    row[CODE_LIKENESS] = request_code_likeness(raw_path, raw_query, raw_body, _section(F, L, CODE_WEIGHTS),
                                               _section(F, L, SCORE_SHAPE)[CODE_BIAS])


@numba.njit(cache=True, nogil=True)
def _as_float32(row):
    """float32 copy of a feature row, NaN as 0 and infinities clipped (as forest_kernel.sanitize)."""
    x = np.empty(row.size, dtype=np.float32)
    for j in range(row.size):
        v = row[j]
        if v != v:
            v = 0.0
        elif v > _F32_MAX:
            v = _F32_MAX
        elif v < -_F32_MAX:
            v = -_F32_MAX
        x[j] = v
    return x


@numba.njit(cache=True, nogil=True)
def score_row(row, feat, thr, val, depth, normaliser):
    """Score a feature row with the perfect-tree forest (float32 semantics, NaN as 0)."""
    return normalise(perfect_path_sum(_as_float32(row), feat, thr, val, depth), normaliser)


@numba.njit(cache=True, nogil=True)
def evidence_flags(row, flags):
    """Fill ``flags`` (N_EVIDENCE, bool) with the structural evidence a feature row shows."""
    flags[:] = False
    if row[_ENDPOINT_UNKNOWN] > 0:
        flags[0] = True
    elif row[_UNKNOWN_PARAMS] > 0:  # on an unknown endpoint every parameter is unknown: counted once
        flags[1] = True
    flags[2] = row[_METHOD_IS_RARE] > 0
    flags[3] = row[_EXT_CLASS] == EXT_SENSITIVE
    flags[4] = row[_EXT_CLASS] == EXT_OTHER
    for k in range(N_VALUE_KINDS):
        flags[N_STRUCTURAL + k] = row[NOVEL_CLASSES + k] > 0


@numba.njit(cache=True, nogil=True)
def evidence_surprise(row, weights, first, last):
    """Sum of the weights of the evidence kinds ``first`` .. ``last - 1`` the row shows."""
    flags = np.empty(N_EVIDENCE, dtype=np.bool_)
    evidence_flags(row, flags)
    total = 0.0
    for k in range(first, last):
        if flags[k]:
            total += weights[k]
    return total


@numba.njit(cache=True, nogil=True)
def structural_surprise(row, weights):
    """Sum of the weights of the structural evidence the row shows (what lifts a request past the ceiling)."""
    return evidence_surprise(row, weights, 0, N_STRUCTURAL)


@numba.njit(cache=True, nogil=True)
def novel_class_surprise(row, weights):
    """Sum of the weights of the new character classes the row shows (unusualness: added before the bend)."""
    return evidence_surprise(row, weights, N_STRUCTURAL, N_EVIDENCE)


@numba.njit(cache=True, nogil=True)
def unusualness(forest_score, shape):
    """The forest's score, bent above the knee towards the ceiling (never reaching it): rankings are kept,
    but unusualness alone stays below ``likely_attack``."""
    knee = shape[KNEE]
    span = shape[CEILING] - knee
    if forest_score <= knee:
        return forest_score
    if span <= 0.0:
        return knee
    return knee + span * -np.expm1(-(forest_score - knee) / span)


@numba.njit(cache=True, nogil=True)
def code_evidence(row, shape):
    """Score weight of the row's code-likeness: zero up to ``code_start``, rising linearly to the full
    weight at ``code_full``."""
    z = row[CODE_LIKENESS]
    if not z > shape[CODE_START]:  # (NaN: none)
        return 0.0
    share = min(1.0, (z - shape[CODE_START]) / (shape[CODE_FULL] - shape[CODE_START]))
    return shape[CODE_WEIGHT] * share


@numba.njit(cache=True, nogil=True)
def combined_score(forest_score, row, weights, shape):
    """Unusualness (the forest's score with the new character classes' weight) plus the structural surprise and
    the code evidence, capped at 1 (scores stay in (0, 1])."""
    return min(1.0, unusualness(forest_score + novel_class_surprise(row, weights), shape)
               + structural_surprise(row, weights) + code_evidence(row, shape))


@numba.njit(cache=True, nogil=True)
def combine_batch(rows, weights, shape, scores):
    """:func:`combined_score` over a batch, in place (``scores`` holds the forest's scores)."""
    for i in range(rows.shape[0]):
        scores[i] = combined_score(scores[i], rows[i], weights, shape)


@numba.njit(cache=True, nogil=True)
def score_packed_row(row, F, B, L):
    """:func:`score_row` with the forest taken from the packed arrays, combined with the evidence."""
    n_trees, depth = L[N_TREES], L[DEPTH]
    internal = 2 ** depth - 1
    feat = _section(B, L, FOREST_FEAT).reshape((n_trees, internal))
    thr = _section(B, L, FOREST_THR).view(np.float32).reshape((n_trees, internal))
    val = _section(F, L, FOREST_VAL).reshape((n_trees, internal + 1))
    return combined_score(score_row(row, feat, thr, val, depth, _section(F, L, NORMALISER)[0]), row,
                          _section(F, L, SURPRISE), _section(F, L, SCORE_SHAPE))


@numba.njit(cache=True, nogil=True)
def score_one(method_code, target_bytes, body_bytes, ua_bytes, has_referer, I, F, B, L):
    """Score of one request from its raw fields."""
    row = np.empty(N_FEATURES)
    features_one(method_code, target_bytes, body_bytes, ua_bytes, has_referer, I, F, B, L, row)
    return score_packed_row(row, F, B, L)
