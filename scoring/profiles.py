"""Fitting endpoint and parameter profiles (see ``scoring/profile_kernel.py`` for what they hold).

Profiles are fitted in Python from the same kernel that evaluates them, so the
runtime and training cut requests into endpoints and parameters identically.
"""

from __future__ import annotations

from typing import Callable, Iterable, NamedTuple

import numpy as np

from waflens.runtime.feature_spec import METHOD_CODES, METHOD_OTHER
from waflens.data.redaction import MARKER
from waflens.runtime.kernels.profile import (CHAR_CLASS, N_PROFILE_FEATURES, N_VALUE_KINDS, NOT_PROFILED, endpoint_key,
                                             enum_key, param_key, profile_deviations, request_params, value_hash)
from waflens.runtime.kernels.score import EVIDENCE_NAMES, N_EVIDENCE, evidence_flags

ENUM_MAX_VALUES = 16        # a parameter with at most this many distinct values ...
ENUM_MIN_OBSERVATIONS = 30  # ... seen at least this often is an enumeration


class ProfileTables(NamedTuple):
    endpoint_keys: np.ndarray   # int64 open-addressing keys
    endpoint_count: np.ndarray  # int64 per slot
    param_keys: np.ndarray      # int64 keys: mix(endpoint key, name hash)
    param_index: np.ndarray     # int64 per slot: row of the per-parameter arrays
    length_mean: np.ndarray     # float64 per parameter
    length_std: np.ndarray
    length_max: np.ndarray
    seen_bytes: np.ndarray      # bool (n_params, 256)
    is_enum: np.ndarray         # bool per parameter
    enum_keys: np.ndarray       # int64 keys: mix(parameter row + 1, value hash)
    seen_classes: np.ndarray    # int64 per parameter: bit set of the character classes its values carried
    value_kind: np.ndarray      # int64 per parameter: index into VALUE_KIND_NAMES


class EncodedRequest(NamedTuple):
    method_code: int
    path: np.ndarray
    query: np.ndarray
    body: np.ndarray


def method_code(method: str | None) -> int:
    return METHOD_CODES.get(method or "", METHOD_OTHER)


_EMPTY = np.frombuffer(b"", dtype=np.uint8)


def encode(text: str | bytes | None) -> np.ndarray:
    # always a read-only view, like the runtime's: one compiled signature of the kernels, not two
    if text is None or text is np.ma.masked:  # (DuckDB's fetchnumpy hands NULL back as numpy's masked constant)
        return _EMPTY
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogatepass")
    return np.frombuffer(text, dtype=np.uint8)


def encode_request(method: str | None, path: str, query: str, body: str | None) -> EncodedRequest:
    return EncodedRequest(method_code(method), encode(path), encode(query), encode(body))


def _table(keys: list[int]) -> tuple[np.ndarray, dict[int, int]]:
    size = 1
    while size < max(4, 2 * len(keys)):
        size *= 2
    table = np.zeros(size, dtype=np.int64)
    slots = {}
    mask = size - 1
    for key in keys:
        slot = key & mask  # Python ints: two's complement masking, as the kernel's uint64 cast
        while table[slot] != 0 and table[slot] != key:
            slot = (slot + 1) & mask
        table[slot] = key
        slots[key] = slot
    return table, slots


class ParsedRequests(NamedTuple):
    """Every request's endpoint and parameters, cut once by the kernel: the folds of
    :func:`out_of_fold_deviations` and the final profiles aggregate these arrays instead of
    parsing each request again for every fold."""
    endpoint: np.ndarray     # int64 endpoint key per request
    request: np.ndarray      # per parameter observation: its request's index
    key: np.ndarray          # int64 parameter key
    length: np.ndarray       # int64 value length (decoded bytes)
    value: np.ndarray        # int64 value hash
    seen: np.ndarray         # bool (n_observations, 256): byte values in the value


def parse_requests(requests: list[EncodedRequest]) -> ParsedRequests:
    n = len(requests)
    endpoints = np.empty(n, dtype=np.int64)
    owner, keys, lengths, values, seen_rows = [], [], [], [], []
    for i, request in enumerate(requests):
        path_decoded, names, data, offsets, count = request_params(request.path, request.query, request.body)
        endpoint = int(endpoint_key(request.method_code, path_decoded))
        endpoints[i] = endpoint
        for k in range(count):
            a, b = int(offsets[k]), int(offsets[k + 1])
            owner.append(i)
            keys.append(int(param_key(endpoint, names[k])))
            lengths.append(b - a)
            values.append(int(value_hash(data, a, b)))
            seen_rows.append(data[a:b])
    seen = np.zeros((len(keys), 256), dtype=np.bool_)
    for row, piece in enumerate(seen_rows):
        seen[row, piece] = True
    return ParsedRequests(endpoints, np.asarray(owner, dtype=np.int64), np.asarray(keys, dtype=np.int64),
                          np.asarray(lengths, dtype=np.int64), np.asarray(values, dtype=np.int64), seen)


def _bit(cls: int) -> int:
    return 1 << cls


_DIGIT, _SPACE, _CONTROL = _bit(0), _bit(4), _bit(5)
_NUMBER_PUNCTUATION = sum(_bit(int(CHAR_CLASS[ord(c)])) for c in ".,-")


def class_sets(seen_bytes: np.ndarray) -> np.ndarray:
    """Each parameter's character classes (int64 bit sets) from the bytes its values carried."""
    bits = np.left_shift(np.int64(1), CHAR_CLASS)  # (256,) one bit per byte's class
    masks = np.zeros(seen_bytes.shape[0], dtype=np.int64)
    for c in range(256):
        masks[seen_bytes[:, c]] |= bits[c]
    return masks


_MASKED = encode(MARKER)


def value_kinds(seen_classes: np.ndarray, is_enum: np.ndarray, masked: np.ndarray) -> np.ndarray:
    """Each parameter's kind (VALUE_KIND_NAMES), the pool its new character classes are calibrated in:
    NOT_PROFILED when training only saw it ``masked`` (ingest's redaction marker); else enumerated; else
    numeric (digits, perhaps with '.', ',' or '-'); else word-like (no space or control byte ever); else free
    text. Pooled by kind, not per parameter: one parameter's few thousand values would calibrate its own
    surprise to its training sample."""
    numeric = ((seen_classes & _DIGIT) != 0) & ((seen_classes & ~(_DIGIT | _NUMBER_PUNCTUATION)) == 0)
    word_like = (seen_classes & (_SPACE | _CONTROL)) == 0
    kind = np.where(is_enum, 0, np.where(numeric, 1, np.where(word_like, 2, 3)))
    return np.where(masked, NOT_PROFILED, kind).astype(np.int64)


def _first_seen_groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct keys in order of first appearance, each element's group number in that order)."""
    distinct, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return distinct[order], rank[inverse.ravel()]


def fit_profiles(requests: Iterable[EncodedRequest]) -> ProfileTables:
    return profiles_of(parse_requests(list(requests)))


def profiles_of(parsed: ParsedRequests, selected: np.ndarray | None = None) -> ProfileTables:
    """Profiles of the ``selected`` requests (a boolean mask; default all) of parsed requests."""
    if selected is None:
        selected = np.ones(len(parsed.endpoint), dtype=np.bool_)
    endpoint_list, endpoint_group = _first_seen_groups(parsed.endpoint[selected])
    endpoint_keys, endpoint_slots = _table(endpoint_list.tolist())
    counts = np.zeros(endpoint_keys.size, dtype=np.int64)
    counts[[endpoint_slots[k] for k in endpoint_list.tolist()]] = np.bincount(endpoint_group,
                                                                             minlength=len(endpoint_list))
    used = selected[parsed.request]
    param_list, group = _first_seen_groups(parsed.key[used])
    n_params = len(param_list)
    param_keys, param_slots = _table(param_list.tolist())
    index = np.full(param_keys.size, -1, dtype=np.int64)
    index[[param_slots[k] for k in param_list.tolist()]] = np.arange(n_params)
    length = parsed.length[used].astype(np.float64)
    observations = np.bincount(group, minlength=n_params)
    mean = np.bincount(group, weights=length, minlength=n_params) / np.maximum(observations, 1)
    std = np.sqrt(np.bincount(group, weights=(length - mean[group]) ** 2, minlength=n_params)
                  / np.maximum(observations, 1))
    maximum = np.full(n_params, -np.inf)
    np.maximum.at(maximum, group, length)
    seen_bytes = np.zeros((n_params, 256), dtype=np.bool_)
    np.logical_or.at(seen_bytes, group, parsed.seen[used])
    pairs = np.unique(np.column_stack([group, parsed.value[used]]), axis=0) if n_params else np.empty((0, 2), np.int64)
    distinct = np.bincount(pairs[:, 0], minlength=n_params)
    is_enum = (distinct <= ENUM_MAX_VALUES) & (observations >= ENUM_MIN_OBSERVATIONS)
    enum_entries = [int(enum_key(int(row), int(value))) for row, value in pairs[is_enum[pairs[:, 0]]]]
    enum_keys, _ = _table(enum_entries)
    seen_classes = class_sets(seen_bytes)
    marker = int(value_hash(_MASKED, 0, _MASKED.size))
    masked = np.bincount(pairs[:, 0], weights=pairs[:, 1] != marker, minlength=n_params) == 0  # only the marker
    return ProfileTables(endpoint_keys, counts, param_keys, index, mean, std, maximum, seen_bytes, is_enum, enum_keys,
                         seen_classes, value_kinds(seen_classes, is_enum, masked))


N_DEVIATIONS = N_PROFILE_FEATURES + N_VALUE_KINDS


def deviations(requests: list[EncodedRequest], tables: ProfileTables) -> np.ndarray:
    """The profile features of each request, then its new character classes per parameter kind: shape
    (n, N_PROFILE_FEATURES + N_VALUE_KINDS)."""
    out = np.zeros((len(requests), N_DEVIATIONS))
    # the bool tables as the runtime's packed artifact holds them (uint8 0/1): one compiled kernel for both,
    # not a second ~4 CPU-s compile of profile_deviations for bool arguments
    tables = tables._replace(seen_bytes=tables.seen_bytes.view(np.uint8), is_enum=tables.is_enum.view(np.uint8))
    for i, r in enumerate(requests):
        profile_deviations(r.method_code, r.path, r.query, r.body, *tables, out[i, :N_PROFILE_FEATURES],
                           out[i, N_PROFILE_FEATURES:])
    return out


def out_of_fold_deviations(requests: list[EncodedRequest], folds: int = 5, seed: int = 0, *,
                           parsed: ParsedRequests | None = None,
                           progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Deviations of each request from profiles fitted without it (k folds).

    In-sample deviations are all zero — every training value was seen — so a forest
    trained on them would never split on them; out of fold, rare-but-normal values
    show the spread that real attacks then exceed.
    """
    n = len(requests)
    parsed = parsed if parsed is not None else parse_requests(requests)
    fold_of = np.random.default_rng(seed).integers(0, folds, size=n)
    out = np.zeros((n, N_DEVIATIONS))
    for fold in range(folds):
        held_out = np.flatnonzero(fold_of == fold)
        if held_out.size == 0:
            continue
        tables = profiles_of(parsed, fold_of != fold)
        out[held_out] = deviations([requests[i] for i in held_out], tables)
        if progress is not None:
            progress(fold + 1, folds)
    return out


def structural_weights(X: np.ndarray, median: float, attack: float) -> tuple[np.ndarray, dict]:
    """Score weights of the structural evidence (see ``waflens.runtime.kernels.score.EVIDENCE_NAMES``).

    ``X`` holds the training rows with out-of-fold profile features, so "unknown endpoint"
    and "unknown parameter" fire as often as new traffic met something new when part of
    the training data was held back; so do the character classes new to a parameter, one
    kind per parameter kind (a held-out value of an enumerated, numeric, word-like or
    free-text parameter with a class its parameter never carried in the other folds). Each
    kind's surprise is -log p with p = (times met + 1) / (n + 2); it is scaled so that
    evidence never met in training lifts a median request to the ``attack`` threshold, and
    evidence met in 1 of 10 requests by a fifth of that. (The new character classes add
    before the forest score's bend: see ``waflens.runtime.kernels.score.combined_score``.)
    """
    flags = np.zeros((len(X), N_EVIDENCE), dtype=np.bool_)
    for i in range(len(X)):
        evidence_flags(X[i], flags[i])
    n = len(X)
    met = flags.sum(axis=0)
    surprise = -np.log((met + 1.0) / (n + 2.0))
    scale = max(attack - median, 0.0) / np.log(n + 2.0)
    weights = np.clip(scale * surprise, 0.0, 1.0)
    manifest = {name: {"met_in_training": int(m), "surprise": float(s), "weight": float(w)}
                for name, m, s, w in zip(EVIDENCE_NAMES, met, surprise, weights)}
    return weights, manifest
