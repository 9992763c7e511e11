"""Fitting endpoint and parameter profiles (see ``scoring/profile_kernel.py`` for what they hold).

Profiles are fitted in Python from the same kernel that evaluates them, so the
runtime and training cut requests into endpoints and parameters identically.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, NamedTuple

import numpy as np

from scoring.profile_kernel import (N_PROFILE_FEATURES, endpoint_key, enum_key, param_key, profile_deviations,
                                    request_params, value_hash)
from scoring.runtime_kernel import EVIDENCE_NAMES, N_EVIDENCE, evidence_flags

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


class EncodedRequest(NamedTuple):
    method_code: int
    path: np.ndarray
    query: np.ndarray
    body: np.ndarray


def method_code(method: str | None) -> int:
    return {"GET": 0, "POST": 1, "HEAD": 2}.get(method or "", 3)


def encode(text: str | bytes | None) -> np.ndarray:
    if text is None:
        return np.zeros(0, dtype=np.uint8)
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


def fit_profiles(requests: Iterable[EncodedRequest]) -> ProfileTables:
    endpoint_counts: dict[int, int] = defaultdict(int)
    lengths: dict[int, list[int]] = defaultdict(list)
    seen: dict[int, np.ndarray] = {}
    values: dict[int, set[int] | None] = {}
    for request in requests:
        path_decoded, names, data, offsets, count = request_params(request.path, request.query, request.body)
        endpoint = int(endpoint_key(request.method_code, path_decoded))
        endpoint_counts[endpoint] += 1
        for k in range(count):
            key = int(param_key(endpoint, names[k]))
            a, b = int(offsets[k]), int(offsets[k + 1])
            lengths[key].append(b - a)
            if key not in seen:
                seen[key] = np.zeros(256, dtype=np.bool_)
                values[key] = set()
            seen[key][data[a:b]] = True
            distinct = values[key]
            if distinct is not None:
                distinct.add(int(value_hash(data, a, b)))
                if len(distinct) > ENUM_MAX_VALUES:
                    values[key] = None
    endpoint_keys, endpoint_slots = _table(list(endpoint_counts))
    counts = np.zeros(endpoint_keys.size, dtype=np.int64)
    for key, n in endpoint_counts.items():
        counts[endpoint_slots[key]] = n
    param_list = list(lengths)
    param_keys, param_slots = _table(param_list)
    index = np.full(param_keys.size, -1, dtype=np.int64)
    n_params = len(param_list)
    mean, std, maximum = np.zeros(n_params), np.zeros(n_params), np.zeros(n_params)
    seen_bytes = np.zeros((n_params, 256), dtype=np.bool_)
    is_enum = np.zeros(n_params, dtype=np.bool_)
    enum_entries = []
    for row, key in enumerate(param_list):
        index[param_slots[key]] = row
        observed = np.asarray(lengths[key], dtype=np.float64)
        mean[row], std[row], maximum[row] = observed.mean(), observed.std(), observed.max()
        seen_bytes[row] = seen[key]
        distinct = values[key]
        if distinct is not None and len(observed) >= ENUM_MIN_OBSERVATIONS:
            is_enum[row] = True
            enum_entries.extend(int(enum_key(row, v)) for v in distinct)
    enum_keys, _ = _table(enum_entries)
    return ProfileTables(endpoint_keys, counts, param_keys, index, mean, std, maximum, seen_bytes, is_enum, enum_keys)


def deviations(requests: list[EncodedRequest], tables: ProfileTables) -> np.ndarray:
    """The profile features of each request, shape (n, N_PROFILE_FEATURES)."""
    out = np.zeros((len(requests), N_PROFILE_FEATURES))
    for i, r in enumerate(requests):
        profile_deviations(r.method_code, r.path, r.query, r.body, *tables, out[i])
    return out


def out_of_fold_deviations(requests: list[EncodedRequest], folds: int = 5, seed: int = 0) -> np.ndarray:
    """Deviations of each request from profiles fitted without it (k folds).

    In-sample deviations are all zero — every training value was seen — so a forest
    trained on them would never split on them; out of fold, rare-but-normal values
    show the spread that real attacks then exceed.
    """
    n = len(requests)
    fold_of = np.random.default_rng(seed).integers(0, folds, size=n)
    out = np.zeros((n, N_PROFILE_FEATURES))
    for fold in range(folds):
        held_out = np.flatnonzero(fold_of == fold)
        if held_out.size == 0:
            continue
        tables = fit_profiles(requests[i] for i in np.flatnonzero(fold_of != fold))
        out[held_out] = deviations([requests[i] for i in held_out], tables)
    return out


def structural_weights(X: np.ndarray, median: float, attack: float) -> tuple[np.ndarray, dict]:
    """Score weights of the structural evidence (see ``scoring.runtime_kernel.EVIDENCE_NAMES``).

    ``X`` holds the training rows with out-of-fold profile features, so "unknown endpoint"
    and "unknown parameter" fire as often as new traffic met something new when part of
    the training data was held back. Each kind's surprise is -log p with p = (times met + 1)
    / (n + 2); it is scaled so that evidence never met in training lifts a median request
    to the ``attack`` threshold, and evidence met in 1 of 10 requests by a fifth of that.
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
