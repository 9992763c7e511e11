"""What a model's arrays and manifest must satisfy before any kernel touches them.

The kernels index without bounds checks and trust the artifact: an out-of-range
index reads outside an array (a SIGSEGV in the worker), a cycle in a tree or a
hash table without an empty slot loops for ever, a NaN threshold silences every
alert. The hashes of :mod:`waflens.runtime.artifact` only prove the files are the ones the
manifest names, so the loader checks the structure itself, here: every array
present with its dtype and shape, every index in range, trees acyclic with one
parent per node, hash tables a power of two in size with an empty slot, numbers
finite, thresholds in (0, 1] and in order. Vectorised numpy, O(nodes): it adds
about a millisecond to a load.

Every failure is an :class:`~waflens.runtime.artifact.ArtifactError` naming the array or
manifest field and what is wrong with it. Imports only the standard library, numpy
and our kernel modules' constants (the runtime's import rule).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from waflens.runtime.artifact import ArtifactError
from waflens.runtime.kernels.profile import (N_CHAR_CLASSES, N_VALUE_KINDS, NOT_PROFILED, NOVEL_CLASS_FEATURE_NAMES,
                                             PROFILE_FEATURE_NAMES)
from waflens.runtime.feature_spec import EXTENSION_GROUPS, N_REQUEST_FEATURES, TOKEN_GROUPS
from waflens.runtime.kernels.code import N_CODE_WEIGHTS, TOKENIZER_VERSION
from waflens.runtime.kernels.score import (CEILING, CODE_FEATURE_NAMES, CODE_FULL, CODE_START, CODE_WEIGHT, KNEE, N_EVIDENCE,
                                    N_FEATURES, SCORE_SHAPE_NAMES)

THRESHOLD_NAMES = ("likely_clean", "likely_attack", "attack")
MAX_TREE_DEPTH = 24
MAX_PERFECT_LEAVES = 2 ** 25      # n_trees * 2**depth: the perfect layout holds 13 bytes per leaf (about 440 MB)
MAX_FEATURES = 256                # the perfect layout stores feature ids in one byte
MAX_TOKEN_BYTES = 1 << 20         # all token lists together
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_FIX = "export the model again (waflens train)"


class Forest(NamedTuple):
    """A checked forest's flat arrays (contiguous) and its depth."""
    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    depth: int


class _Checker:
    def __init__(self, where):
        self.where = where

    def fail(self, what: str) -> ArtifactError:
        return ArtifactError(f"{self.where}: {what}: the artifact is malformed or was altered; {_FIX}")

    def array(self, arrays: dict, name: str, dtype, ndim: int | None = None, shape: tuple | None = None
              ) -> np.ndarray:
        if name not in arrays:
            raise self.fail(f"array {name!r} is missing")
        array = arrays[name]
        if array.dtype != np.dtype(dtype):
            raise self.fail(f"array {name!r} is {array.dtype}, expected {np.dtype(dtype)}")
        if shape is not None and array.shape != shape:
            raise self.fail(f"array {name!r} has shape {array.shape}, expected {shape}")
        if ndim is not None and array.ndim != ndim:
            raise self.fail(f"array {name!r} has {array.ndim} dimensions, expected {ndim}")
        return array if array.ndim == 0 else np.ascontiguousarray(array)  # (ascontiguousarray makes 0-d 1-d)

    def require(self, ok, what: str) -> None:
        if not ok:
            raise self.fail(what)

    # --- trees ---
    def forest(self, arrays: dict, prefix: str, n_features: int, *, path_lengths: bool) -> Forest:
        """The flat forest ``<prefix>_*``: features < n_features, children after their parent and each node
        with at most one parent (so walks end and visit each node once), finite numbers, bounded depth."""
        feature = self.array(arrays, f"{prefix}_feature", np.int32, ndim=1)
        n = feature.shape[0]
        threshold = self.array(arrays, f"{prefix}_threshold", np.float64, shape=(n,))
        left = self.array(arrays, f"{prefix}_left", np.int32, shape=(n,))
        right = self.array(arrays, f"{prefix}_right", np.int32, shape=(n,))
        value = self.array(arrays, f"{prefix}_value", np.float64, shape=(n,))
        roots = self.array(arrays, f"{prefix}_roots", np.int32, ndim=1)
        self.require(n > 0 and roots.size > 0, f"{prefix}_roots / {prefix}_feature: the forest has no trees")
        self.require(((feature >= -1) & (feature < n_features)).all(),
                     f"array '{prefix}_feature' holds feature ids outside -1 .. {n_features - 1}")
        self.require(((roots >= 0) & (roots < n)).all(), f"array '{prefix}_roots' holds node ids outside 0 .. {n - 1}")
        inner = np.flatnonzero(feature >= 0)
        for name, children in ((f"{prefix}_left", left[inner]), (f"{prefix}_right", right[inner])):
            self.require(((children > inner) & (children < n)).all(),
                         f"array {name!r}: a child is not after its parent or is outside 0 .. {n - 1} (a cycle "
                         "or a dangling node)")
        parents = np.bincount(np.concatenate([roots, left[inner], right[inner]]), minlength=n)
        if (parents > 1).any():
            node = int(np.flatnonzero(parents > 1)[0])
            culprit = f"{prefix}_roots" if node in roots else \
                (f"{prefix}_right" if (right[inner] == node).any() else f"{prefix}_left")
            raise self.fail(f"array {culprit!r}: node {node} has two parents (trees must not share nodes)")
        self.require((np.abs(threshold[inner]) <= _FLOAT32_MAX).all(),  # features are compared as float32
                     f"array '{prefix}_threshold' holds NaN thresholds or ones beyond float32's range")
        leaves = value[feature < 0]
        self.require(np.isfinite(leaves).all() and math.isfinite(float(np.abs(leaves).sum())),
                     f"array '{prefix}_value' holds NaN, infinite or overflowing leaf values")
        if path_lengths:
            self.require((leaves >= 0).all(), f"array '{prefix}_value' holds negative path lengths")
        depth = self._depth(feature, left, right, roots, prefix)
        self.require(roots.size * 2 ** depth <= MAX_PERFECT_LEAVES,
                     f"{prefix}: {roots.size} trees of depth {depth} need more than {MAX_PERFECT_LEAVES} leaves")
        return Forest(feature, threshold, left, right, value, roots, depth)

    def _depth(self, feature, left, right, roots, prefix) -> int:
        try:
            return tree_depth(feature, left, right, roots, MAX_TREE_DEPTH)
        except ValueError as error:
            raise self.fail(f"array '{prefix}_left': {error}") from None

    # --- profiles ---
    def table(self, arrays: dict, name: str) -> np.ndarray:
        """An open-addressing key table: a power of two in size (the kernel masks) with an empty slot (0), or a
        lookup of an unknown key never ends."""
        keys = self.array(arrays, name, np.int64, ndim=1)
        self.require(keys.size > 0 and keys.size & (keys.size - 1) == 0,
                     f"array {name!r} has {keys.size} slots, not a power of two")
        self.require((keys == 0).any(), f"array {name!r} has no empty slot")
        return keys

    def profiles(self, arrays: dict) -> None:
        self.table(arrays, "profile_endpoint_keys")
        self.array(arrays, "profile_endpoint_count", np.int64, shape=arrays["profile_endpoint_keys"].shape)
        param_keys = self.table(arrays, "profile_param_keys")
        index = self.array(arrays, "profile_param_index", np.int64, shape=param_keys.shape)
        n_params = self.array(arrays, "profile_length_mean", np.float64, ndim=1).shape[0]
        used = param_keys != 0
        self.require(((index[used] >= 0) & (index[used] < n_params)).all() and (index >= -1).all()
                     and (index < n_params).all(),
                     f"array 'profile_param_index' holds parameter rows outside 0 .. {n_params - 1}")
        for name in ("profile_length_mean", "profile_length_std", "profile_length_max"):
            values = self.array(arrays, name, np.float64, shape=(n_params,))
            self.require(np.isfinite(values).all() and (name.endswith("mean") or (values >= 0).all()),
                         f"array {name!r} holds NaN, infinite or negative lengths")
        self.array(arrays, "profile_seen_bytes", np.bool_, shape=(n_params, 256))
        self.array(arrays, "profile_is_enum", np.bool_, shape=(n_params,))
        self.table(arrays, "profile_enum_keys")
        classes = self.array(arrays, "profile_seen_classes", np.int64, shape=(n_params,))
        self.require(bool(np.all((classes >= 0) & (classes < (1 << N_CHAR_CLASSES)))),
                     f"array 'profile_seen_classes' holds bits beyond the {N_CHAR_CLASSES} character classes")
        kinds = self.array(arrays, "profile_value_kind", np.int64, shape=(n_params,))
        self.require(bool(np.all((kinds >= NOT_PROFILED) & (kinds < N_VALUE_KINDS))),  # the kernel indexes by it
                     f"array 'profile_value_kind' holds kinds outside {NOT_PROFILED} .. {N_VALUE_KINDS - 1}")

    # --- manifest ---
    def field(self, manifest: dict, path: str, kind: type | tuple = dict):
        value = manifest
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        self.require(isinstance(value, kind) and not isinstance(value, bool),
                     f"manifest field {path!r} is {_shown(value)}, expected {_kind_name(kind)}")
        return value

    def thresholds(self, manifest: dict) -> tuple[float, float, float]:
        self.field(manifest, "thresholds")
        values = []
        for name in THRESHOLD_NAMES:
            value = self.field(manifest, f"thresholds.{name}", (int, float))
            self.require(math.isfinite(value) and 0 < value <= 1,
                         f"manifest field 'thresholds.{name}' is {value!r}, expected a score in (0, 1]")
            values.append(float(value))
        named = list(zip(THRESHOLD_NAMES, values))
        for (low_name, low), (high_name, high) in zip(named, named[1:]):
            self.require(low <= high, f"manifest field 'thresholds.{high_name}' ({high!r}) is below "
                                      f"'thresholds.{low_name}' ({low!r}): they must not decrease")
        return tuple(values)

    def feature_spec(self, manifest: dict, names: list[str] | None, n_features: int) -> dict:
        spec = self.field(manifest, "feature_spec")
        listed = self.field(manifest, "feature_spec.names", list)
        self.require(all(isinstance(name, str) for name in listed) and len(listed) == n_features
                     and (names is None or listed == names),
                     f"manifest field 'feature_spec.names' does not list the {n_features} features this runtime "
                     "computes, in its order")
        self.field(manifest, "feature_spec.lists")
        total = 0
        for group in (*TOKEN_GROUPS, *EXTENSION_GROUPS):
            tokens = self.field(manifest, f"feature_spec.lists.{group}", list)
            self.require(all(isinstance(t, str) and t for t in tokens),
                         f"manifest field 'feature_spec.lists.{group}' holds an empty or non-string token")
            total += sum(len(t.encode("utf-8", "surrogatepass")) for t in tokens)
        self.require(total <= MAX_TOKEN_BYTES, f"manifest field 'feature_spec.lists' holds more than "
                                               f"{MAX_TOKEN_BYTES} bytes of tokens")
        return spec

    def training(self, manifest: dict, name: str, low: float, high: float, *, low_open: bool) -> None:
        training = manifest.get("training", {})
        self.require(isinstance(training, dict), f"manifest field 'training' is {_shown(training)}, expected an object")
        if name in training:
            value = self.field(manifest, f"training.{name}", (int, float))
            self.require(math.isfinite(value) and (value > low if low_open else value >= low) and value <= high,
                         f"manifest field 'training.{name}' is {value!r}, out of range")


def tree_depth(feature, left, right, roots, limit: int | None = None) -> int:
    """Depth of the deepest leaf over all trees, level by level in numpy. Each node must have one parent at
    most (then each is visited once); ValueError when a tree goes deeper than ``limit``."""
    frontier, level, deepest = np.asarray(roots), 0, 0
    while frontier.size:
        leaf = feature[frontier] < 0
        if leaf.any():
            deepest = level
        inner = frontier[~leaf]
        if inner.size and limit is not None and level == limit:
            raise ValueError(f"trees deeper than {limit} levels")
        frontier = np.concatenate([left[inner], right[inner]])
        level += 1
    return deepest


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _kind_name(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {dict: "an object", list: "a list", int: "a number", float: "a number", str: "a string"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


class RequestModel(NamedTuple):
    forest: Forest
    thresholds: tuple[float, float, float]
    surprise: np.ndarray      # float64 (N_EVIDENCE,): the structural evidence weights
    code_weights: np.ndarray  # float64 (N_CODE_WEIGHTS,): the code-likeness model
    score_shape: np.ndarray   # float64 (len(SCORE_SHAPE_NAMES),): see waflens.runtime.kernels.score


class SessionModel(NamedTuple):
    forest: Forest
    thresholds: tuple[float, float, float]
    feedback: Forest | None
    classes: tuple[str, ...]
    bot: object = None   # waflens.runtime.bot_score.BotReference, or None (models from before the bot score)


def check_request_model(arrays: dict, manifest: dict, where) -> RequestModel:
    """Refuse a request-level artifact that the runtime could not score safely (see the module docstring)."""
    check = _Checker(where)
    n_features = N_FEATURES
    request_features = check.field(manifest, "feature_spec.request_features", list)
    profile_features = check.field(manifest, "feature_spec.profile_features", list)
    code_features = check.field(manifest, "feature_spec").get("code_features")
    check.require(code_features == list(CODE_FEATURE_NAMES),
                  "the model predates code-likeness evidence (manifest field 'feature_spec.code_features' is "
                  f"{_shown(code_features)}): retrain it with this waflens (waflens train)")
    novel_features = check.field(manifest, "feature_spec").get("novel_class_features")
    check.require(novel_features == list(NOVEL_CLASS_FEATURE_NAMES),
                  "the model predates character-class evidence (manifest field 'feature_spec.novel_class_features' is "
                  f"{_shown(novel_features)}): retrain it with this waflens (waflens train)")
    spec = check.feature_spec(manifest, None, n_features)
    check.require(len(request_features) == N_REQUEST_FEATURES and profile_features == list(PROFILE_FEATURE_NAMES)
                  and spec["names"] == request_features + profile_features + code_features + novel_features,
                  "manifest field 'feature_spec.names' does not list the request, profile, code and character-class "
                  "features this runtime computes")
    version = check.field(manifest, "model.code_model.tokenizer_version", int)
    check.require(version == TOKENIZER_VERSION,
                  f"manifest field 'model.code_model.tokenizer_version' is {version}, this runtime tokenizes as "
                  f"version {TOKENIZER_VERSION}: retrain the model")
    thresholds = check.thresholds(manifest)
    check.training(manifest, "body_share", 0.0, 1.0, low_open=False)
    forest = _forest_with_normaliser(check, arrays, n_features)
    check.array(arrays, "feature_median", np.float64, shape=(n_features,))
    check.profiles(arrays)
    surprise = check.array(arrays, "structural_surprise", np.float64, shape=(N_EVIDENCE,))
    check.require(bool(np.all((surprise >= 0) & (surprise <= 1))),
                  "array 'structural_surprise' must hold weights in [0, 1] (retrain the model)")
    code_weights = check.array(arrays, "code_weights", np.float64, shape=(N_CODE_WEIGHTS,))
    check.require(bool(np.isfinite(code_weights).all()) and float(np.abs(code_weights).max()) < 1e6,
                  "array 'code_weights' holds NaN, infinite or absurd weights")
    shape = check.array(arrays, "score_shape", np.float64, shape=(len(SCORE_SHAPE_NAMES),))
    check.require(bool(np.isfinite(shape).all()) and float(np.abs(shape).max()) < 1e6,
                  "array 'score_shape' holds NaN, infinite or absurd values")
    check.require(0 <= shape[KNEE] <= shape[CEILING] <= 1 and shape[CODE_FULL] > shape[CODE_START]
                  and 0 <= shape[CODE_WEIGHT] <= 1,
                  "array 'score_shape' must hold 0 <= knee <= ceiling <= 1, code_start < code_full and a code "
                  "weight in [0, 1]")
    return RequestModel(forest, thresholds, surprise, code_weights, shape)


def check_session_model(arrays: dict, manifest: dict, where, names: tuple[str, ...]) -> SessionModel:
    """Refuse a session-level artifact (forest, manifest and analyst-feedback model) the runtime could not
    score safely."""
    check = _Checker(where)
    check.feature_spec(manifest, list(names), len(names))
    thresholds = check.thresholds(manifest)
    check.training(manifest, "gap_seconds", 0.0, 1e9, low_open=True)
    forest = _forest_with_normaliser(check, arrays, len(names))
    feedback, classes = None, ()
    if manifest.get("feedback"):
        check.field(manifest, "feedback")
        classes = check.field(manifest, "feedback.classes", list)
        check.require(len(classes) >= 2 and all(isinstance(c, str) for c in classes) and len(set(classes)) == len(classes),
                      "manifest field 'feedback.classes' must list two or more distinct class names")
        n_outputs = check.field(manifest, "feedback.n_outputs", int)
        check.require(n_outputs == (1 if len(classes) == 2 else len(classes)),
                      f"manifest field 'feedback.n_outputs' is {n_outputs}, but {len(classes)} classes need "
                      f"{1 if len(classes) == 2 else len(classes)}")
        feedback = check.forest(arrays, "feedback", len(names), path_lengths=False)
        init = check.array(arrays, "feedback_init", np.float64, shape=(n_outputs,))
        check.require(np.isfinite(init).all() and math.isfinite(float(np.abs(init).max()) +
                                                                 float(np.abs(feedback.value).sum())),
                      "array 'feedback_init' holds NaN or infinite values")
        check.array(arrays, "feedback_attack_mask", np.bool_, shape=(len(classes),))
        benign = check.array(arrays, "feedback_benign_index", np.int64, shape=())
        check.require(-1 <= int(benign) < len(classes),
                      f"array 'feedback_benign_index' is {int(benign)}, outside -1 .. {len(classes) - 1}")
    return SessionModel(forest, thresholds, feedback, tuple(classes), _bot_reference(check, arrays, len(names)))


def _bot_reference(check: _Checker, arrays: dict, n_features: int):
    """The bot score's reference values (scoring/bot_score.py), checked; None when the artifact has none."""
    from waflens.runtime.bot_score import BotReference

    if "bot_quantiles" not in arrays:
        return None
    columns = check.array(arrays, "bot_columns", np.int64)
    k = columns.shape[0] if columns.ndim == 1 else -1
    check.require(k >= 1 and bool(np.all((columns >= 0) & (columns < n_features))),
                  f"array 'bot_columns' must list session feature columns 0 .. {n_features - 1}")
    high = check.array(arrays, "bot_automated_high", np.bool_, shape=(k,))
    quantiles = check.array(arrays, "bot_quantiles", np.float64)
    check.require(quantiles.ndim == 2 and quantiles.shape[0] == k and quantiles.shape[1] >= 2
                  and bool(np.isfinite(quantiles).all()) and bool(np.all(np.diff(quantiles, axis=1) >= 0)),
                  f"array 'bot_quantiles' must hold {k} sorted rows of finite training values")
    weights = None
    if "bot_weights" in arrays:      # learnt from analyst labels (models from before them have none)
        weights = check.array(arrays, "bot_weights", np.float64, shape=(k,))
        check.require(bool(np.isfinite(weights).all()) and bool((weights >= 0).all()) and float(weights.max()) < 1e6,
                      f"array 'bot_weights' must hold {k} finite weights >= 0")
    return BotReference(columns, high, quantiles, weights)


def _forest_with_normaliser(check: _Checker, arrays: dict, n_features: int) -> Forest:
    check.require(n_features <= MAX_FEATURES, f"{n_features} features: the runtime handles at most {MAX_FEATURES}")
    forest = check.forest(arrays, "forest", n_features, path_lengths=True)
    normaliser = check.array(arrays, "forest_normaliser", np.float64, shape=())
    check.require(math.isfinite(float(normaliser)) and float(normaliser) > 0,
                  f"array 'forest_normaliser' is {float(normaliser)!r}, expected a positive number")
    return forest
