"""numba kernels: what is normal per endpoint and parameter (after Kruegel & Vigna, CCS 2003).

Attacks hide in one parameter's value, where whole-request statistics dilute them.
A profile remembers, per endpoint (method + path with numeric and hex segments
generalised) and per parameter of that endpoint: how often it was seen, its value
lengths, which byte values its values ever contained, and — for parameters with
few distinct values — the values themselves. A request is then described by how
far it strays: unknown endpoint or parameters, too-long values, bytes a parameter
never carried, values outside an enumeration.

Character classes (digits, lower-case letters, upper-case letters, non-ASCII bytes,
space, control bytes, and each ASCII punctuation byte on its own) a parameter never
carried in training are counted apart, by the parameter's *kind* (enumerated, numeric,
word-like, free text; decided in training from the classes it carried): an ordinary
value with punctuation put in (``nombre=Vino .*?Rioja``, ``id=1%2520``) is structural
news, weighed like an unknown parameter name (see :mod:`waflens.runtime.kernels.score`).

Keys are 64-bit FNV-1a hashes in open-addressing tables (key 0 = empty), so the
runtime looks everything up without Python objects. Imports only numpy and numba.
"""

from __future__ import annotations

import numba
import numpy as np

from waflens.runtime.kernels.request import url_decode

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
N_PROFILE_FEATURES = 7
PROFILE_FEATURE_NAMES = ("endpoint_unknown", "unknown_params", "max_length_excess", "max_length_z",
                         "max_novel_bytes", "max_novel_share", "enum_violations")

# Character classes of value bytes: 0 digit, 1 lower-case letter, 2 upper-case letter, 3 non-ASCII byte, 4 space,
# 5 control byte (0-31, 127), then one class per ASCII punctuation byte, in byte order.
PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
CHAR_CLASS_NAMES = ("digit", "lower-case letter", "upper-case letter", "non-ASCII byte", "space", "control byte") + \
    tuple(repr(c) for c in PUNCTUATION)
N_CHAR_CLASSES = len(CHAR_CLASS_NAMES)  # 38: a parameter's classes fit in one int64 bit set


def _char_class_table() -> np.ndarray:
    table = np.empty(256, dtype=np.int64)
    for c in range(256):
        if 48 <= c <= 57:
            table[c] = 0
        elif 97 <= c <= 122:
            table[c] = 1
        elif 65 <= c <= 90:
            table[c] = 2
        elif c >= 128:
            table[c] = 3
        elif c == 32:
            table[c] = 4
        elif c < 32 or c == 127:
            table[c] = 5
        else:
            table[c] = 6 + PUNCTUATION.index(chr(c))
    return table


CHAR_CLASS = _char_class_table()
# Parameter kinds, for pooling the calibration of new character classes (waflens.scoring.profiles.value_kinds):
# enumerated (few distinct values), numeric (digits, maybe '.', ',' or '-'), word-like (no space), free text;
# NOT_PROFILED for a parameter training only saw masked (a password: ingest stores "[redacted]"). The runtime now
# masks the same values (waflens.runtime.redaction), so for those it changes nothing; it is kept for the masked
# forms the runtime does not emulate (JSON and header lines in bodies, addresses), whose live values are no news.
VALUE_KIND_NAMES = ("enumerated", "numeric", "word-like", "free-text")
N_VALUE_KINDS = len(VALUE_KIND_NAMES)
NOT_PROFILED = -1
NOVEL_CLASS_FEATURE_NAMES = tuple(f"novel_classes_{name.replace('-', '_')}" for name in VALUE_KIND_NAMES)


@numba.njit(cache=True, nogil=True)
def value_classes(data, start, end):
    """Bit set of the character classes of ``data[start:end]``."""
    mask = np.int64(0)
    for i in range(start, end):
        mask |= np.int64(1) << CHAR_CLASS[data[i]]
    return mask


@numba.njit(cache=True, nogil=True)
def bit_count(mask):
    n = 0
    while mask != 0:
        mask &= mask - 1
        n += 1
    return n


@numba.njit(cache=True, nogil=True)
def fnv1a(data, start, end, seed):
    h = seed
    for i in range(start, end):
        h = (h ^ np.uint64(data[i])) * FNV_PRIME
    return h


@numba.njit(cache=True, nogil=True)
def mix(a, b):
    """Combine two hashes into a non-zero table key."""
    h = (a ^ (b + np.uint64(0x9E3779B97F4A7C15) + (a << np.uint64(6)) + (a >> np.uint64(2)))) * FNV_PRIME
    key = np.int64(h)
    return key if key != 0 else np.int64(1)


@numba.njit(cache=True, nogil=True)
def endpoint_key(method_code, path_decoded):
    """Hash of method and path; all-digit segments become {n}, long hex ones {h}."""
    h = (FNV_OFFSET ^ np.uint64(method_code + 1)) * FNV_PRIME
    n = path_decoded.size
    start = 0
    for i in range(n + 1):
        if i == n or path_decoded[i] == 47:
            length = i - start
            digits = length > 0
            hexes = length >= 8
            for j in range(start, i):
                c = path_decoded[j]
                if not (48 <= c <= 57):
                    digits = False
                if not (48 <= c <= 57 or 97 <= c <= 102 or 65 <= c <= 70 or c == 45):
                    hexes = False
            h = (h ^ np.uint64(47)) * FNV_PRIME
            if digits:
                h = (h ^ np.uint64(1)) * FNV_PRIME
            elif hexes:
                h = (h ^ np.uint64(2)) * FNV_PRIME
            else:
                h = fnv1a(path_decoded, start, i, h)
            start = i + 1
    return mix(h, np.uint64(0))


@numba.njit(cache=True, nogil=True)
def lookup(keys, key):
    """Slot of ``key`` in an open-addressing table, or -1."""
    mask = keys.size - 1
    slot = np.int64(np.uint64(key) & np.uint64(mask))
    while True:
        k = keys[slot]
        if k == key:
            return slot
        if k == 0:
            return -1
        slot = (slot + 1) & mask


@numba.njit(cache=True, nogil=True)
def split_params(raw, plus_as_space, name_hashes, value_data, value_offsets, count):
    """Append the '&'-separated pieces of ``raw``: name hash, decoded value bytes. Returns the new count."""
    n = raw.size
    start = 0
    for i in range(n + 1):
        if i == n or raw[i] == 38:
            if i > start and count < name_hashes.size:
                eq = i
                for j in range(start, i):
                    if raw[j] == 61:
                        eq = j
                        break
                name = url_decode(raw[start:eq], plus_as_space)
                name_hashes[count] = fnv1a(name, 0, name.size, FNV_OFFSET)
                value = url_decode(raw[eq + 1:i], plus_as_space) if eq < i else np.empty(0, np.uint8)
                a = value_offsets[count]
                if a + value.size > value_data.size:
                    return count
                value_data[a:a + value.size] = value
                value_offsets[count + 1] = a + value.size
                count += 1
            start = i + 1
    return count


MAX_PARAMS = 64


@numba.njit(cache=True, nogil=True)
def request_params(path, query, body):
    """(decoded path, name hashes, value bytes, value offsets, count) of a request's parameters."""
    names = np.zeros(MAX_PARAMS, dtype=np.uint64)
    data = np.empty(query.size + body.size + 1, dtype=np.uint8)
    offsets = np.zeros(MAX_PARAMS + 1, dtype=np.int64)
    count = split_params(query, True, names, data, offsets, 0)
    count = split_params(body, True, names, data, offsets, count)
    return url_decode(path, False), names, data, offsets, count


@numba.njit(cache=True, nogil=True)
def value_hash(data, start, end):
    return mix(fnv1a(data, start, end, FNV_OFFSET), np.uint64(7))


@numba.njit(cache=True, nogil=True)
def param_key(endpoint, name_hash):
    """Table key of a parameter name (hash) on an endpoint (key)."""
    return mix(np.uint64(endpoint), name_hash)


@numba.njit(cache=True, nogil=True)
def enum_key(param_row, value_key):
    """Table key of a value (hash) of an enumerated parameter (row)."""
    return mix(np.uint64(param_row + 1), np.uint64(value_key))


@numba.njit(cache=True, nogil=True)
def profile_deviations(method_code, path, query, body,
                       endpoint_keys, endpoint_count, param_keys, param_index,
                       length_mean, length_std, length_max, seen_bytes, is_enum, enum_keys, seen_classes, value_kind,
                       out, novel_out):
    """Fill ``out`` (N_PROFILE_FEATURES) with the request's deviations from the profiles, and ``novel_out``
    (N_VALUE_KINDS) with, per parameter kind, the most character classes new to its parameter in one value."""
    path_decoded, names, data, offsets, count = request_params(path, query, body)
    endpoint = endpoint_key(method_code, path_decoded)
    slot = lookup(endpoint_keys, endpoint)
    known_endpoint = slot >= 0 and endpoint_count[slot] > 0
    unknown = 0
    excess = 0.0
    z = 0.0
    novel = 0
    novel_share = 0.0
    enum_violations = 0
    local = np.zeros(256, dtype=np.bool_)
    novel_out[:] = 0.0
    for k in range(count):
        pslot = lookup(param_keys, param_key(endpoint, names[k])) if known_endpoint else -1
        if pslot < 0:
            unknown += 1
            continue
        p = param_index[pslot]
        a = offsets[k]
        b = offsets[k + 1]
        length = b - a
        if length > length_max[p]:
            excess = max(excess, (length - length_max[p]) / (length_max[p] + 1.0))
        z = max(z, (length - length_mean[p]) / (length_std[p] + 1.0))
        local[:] = False
        distinct_novel = 0
        novel_bytes = 0
        for i in range(a, b):
            c = data[i]
            if not seen_bytes[p, c]:
                novel_bytes += 1
                if not local[c]:
                    local[c] = True
                    distinct_novel += 1
        novel = max(novel, distinct_novel)
        if length > 0:
            novel_share = max(novel_share, novel_bytes / length)
        if is_enum[p] and lookup(enum_keys, enum_key(p, value_hash(data, a, b))) < 0:
            enum_violations += 1
        kind = value_kind[p]
        if kind != NOT_PROFILED:
            new_classes = bit_count(value_classes(data, a, b) & ~seen_classes[p])
            if new_classes > novel_out[kind]:
                novel_out[kind] = new_classes
    out[0] = 0.0 if known_endpoint else 1.0
    out[1] = unknown
    out[2] = excess
    out[3] = z
    out[4] = novel
    out[5] = novel_share
    out[6] = enum_violations
