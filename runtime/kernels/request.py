"""numba kernels: request features computed online, exactly as ``data/sql/request_features.sql``.

Imports only numpy and numba: the scoring runtime (what WAF workers embed) uses it.
The definitions, codes and byte sets are in :mod:`waflens.runtime.feature_spec`; the
token and extension lists come in as a :class:`TokenTables` built from the artifact's
manifest, so the runtime evaluates the spec the model was trained with. Tests check
every feature against the reference implementation and the SQL.

Everything works on UTF-8 bytes (``uint8`` arrays). Feature order is the spec's.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from waflens.runtime.feature_spec import (BROWSER_UA_PREFIXES, EXT_NONE, EXT_OTHER, EXTENSION_GROUPS, METHOD_OTHER,
                                          METHOD_POST, N_REQUEST_FEATURES, SPECIAL_BYTES, TOKEN_GROUPS, UA_BROWSER,
                                          UA_BOT, UA_EMPTY, UA_OTHER, UA_TOOL)

# token groups (the manifest's list names), numbered in the spec's order; the kernels below rely on the
# payload groups SQL..SHELL being consecutive and TOOL_UA, BOT_UA last (unpacking fails if the count changes)
GROUP_NAMES = tuple(TOKEN_GROUPS)
N_GROUPS = len(GROUP_NAMES)
SQL, TRAVERSAL, XSS, SHELL, TEMPLATE, SCHEME, TOOL_UA, BOT_UA = range(N_GROUPS)
EXT_GROUPS = tuple(EXTENSION_GROUPS)
_IS_SPECIAL = np.zeros(256, dtype=np.bool_)  # the bytes special_ratio counts
_IS_SPECIAL[list(SPECIAL_BYTES)] = True


class TokenTables(NamedTuple):
    """Tokens of every group, flattened for numba, with an index by first byte."""
    data: np.ndarray          # uint8, all tokens concatenated
    offsets: np.ndarray       # int64, token i is data[offsets[i]:offsets[i+1]]
    group: np.ndarray         # int64, group of token i
    by_first: np.ndarray      # int64 CSR offsets: tokens starting with byte b of groups lo..hi-1 are
                              # order[by_first[8*b + lo]:by_first[8*b + hi]]
    order: np.ndarray         # int64 token ids sorted by first byte, then group
    ext_data: np.ndarray      # uint8, extensions concatenated
    ext_offsets: np.ndarray   # int64
    ext_class: np.ndarray     # int64: the extension's ext_class code (EXTENSION_GROUPS)


def build_token_tables(lists: dict[str, list[str]]) -> TokenTables:
    """Tables from the spec's lists (keys as in ``waflens.data.feature_spec.sql_parameters``)."""
    tokens, groups = [], []
    for g, name in enumerate(GROUP_NAMES):
        for token in lists[name]:
            tokens.append(token.encode("utf-8"))
            groups.append(g)
    offsets = np.zeros(len(tokens) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(t) for t in tokens])
    bucket = np.array([t[0] * N_GROUPS + g for t, g in zip(tokens, groups)], dtype=np.int64)
    order = np.argsort(bucket, kind="stable").astype(np.int64)
    by_first = np.searchsorted(bucket[order], np.arange(256 * N_GROUPS + 1)).astype(np.int64)
    extensions, classes = [], []
    for name, (c, _) in EXTENSION_GROUPS.items():
        for ext in lists[name]:
            extensions.append(ext.encode("utf-8"))
            classes.append(c)
    ext_offsets = np.zeros(len(extensions) + 1, dtype=np.int64)
    ext_offsets[1:] = np.cumsum([len(e) for e in extensions])
    return TokenTables(np.frombuffer(b"".join(tokens), np.uint8).copy(), offsets, np.array(groups, np.int64),
                       by_first, order, np.frombuffer(b"".join(extensions), np.uint8).copy(), ext_offsets,
                       np.array(classes, np.int64))


@numba.njit(cache=True, nogil=True)
def _hex(c):
    if 48 <= c <= 57:
        return c - 48
    if 65 <= c <= 70:
        return c - 55
    if 97 <= c <= 102:
        return c - 87
    return -1


@numba.njit(cache=True, nogil=True)
def _valid_utf8(b, n):
    """Strict UTF-8 validation, as Python's decoder (no overlongs, surrogates or > U+10FFFF)."""
    i = 0
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            need, lo, hi = 1, 0x80, 0xBF
        elif c == 0xE0:
            need, lo, hi = 2, 0xA0, 0xBF
        elif 0xE1 <= c <= 0xEC or 0xEE <= c <= 0xEF:
            need, lo, hi = 2, 0x80, 0xBF
        elif c == 0xED:
            need, lo, hi = 2, 0x80, 0x9F
        elif c == 0xF0:
            need, lo, hi = 3, 0x90, 0xBF
        elif 0xF1 <= c <= 0xF3:
            need, lo, hi = 3, 0x80, 0xBF
        elif c == 0xF4:
            need, lo, hi = 3, 0x80, 0x8F
        else:
            return False
        if i + need >= n:
            return False
        if not (lo <= b[i + 1] <= hi):
            return False
        for k in range(2, need + 1):
            if not (0x80 <= b[i + k] <= 0xBF):
                return False
        i += need + 1
    return True


@numba.njit(cache=True, nogil=True)
def url_decode(src, plus_as_space):
    """``waflens.data.url_decoding.url_decode`` on UTF-8 bytes: %XX escapes, '+' as space, UTF-8 else Latin-1."""
    n = src.size
    out = np.empty(n, dtype=np.uint8)
    m = 0
    i = 0
    while i < n:
        c = src[i]
        if c == 37 and i + 2 < n:
            h1 = _hex(src[i + 1])
            h2 = _hex(src[i + 2])
            if h1 >= 0 and h2 >= 0:
                out[m] = h1 * 16 + h2
                m += 1
                i += 3
                continue
        if c == 43 and plus_as_space:
            out[m] = 32
        else:
            out[m] = c
        m += 1
        i += 1
    if _valid_utf8(out, m):
        return out[:m]
    wide = np.empty(2 * m, dtype=np.uint8)
    w = 0
    for k in range(m):
        c = out[k]
        if c < 0x80:
            wide[w] = c
            w += 1
        else:
            wide[w] = 0xC0 | (c >> 6)
            wide[w + 1] = 0x80 | (c & 0x3F)
            w += 2
    return wide[:w]


@numba.njit(cache=True, nogil=True)
def _lower(b):
    out = b.copy()
    for i in range(out.size):
        if 65 <= out[i] <= 90:
            out[i] += 32
    return out


@numba.njit(cache=True, nogil=True)
def _token_at(text, i, tables_data, tables_offsets, t):
    """True when token t occurs in text at position i (its first byte already matched)."""
    a = tables_offsets[t]
    length = tables_offsets[t + 1] - a
    if i + length > text.size:
        return False
    for j in range(1, length):
        if text[i + j] != tables_data[a + j]:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def _count_groups(text, tables_data, tables_offsets, tables_group, by_first, order, counts, lo, hi, next_free):
    """Add to counts[g] the non-overlapping occurrences (per token, left to right) of each token of the
    groups lo..hi-1. ``next_free`` is scratch space, one slot per token."""
    next_free[:] = 0
    for i in range(text.size):
        b = text[i]
        for k in range(by_first[N_GROUPS * b + lo], by_first[N_GROUPS * b + hi]):
            t = order[k]
            g = tables_group[t]
            if i >= next_free[t] and _token_at(text, i, tables_data, tables_offsets, t):
                counts[g] += 1
                next_free[t] = i + tables_offsets[t + 1] - tables_offsets[t]


@numba.njit(cache=True, nogil=True)
def _agent_tokens(text, tables_data, tables_offsets, tables_group, by_first, order):
    """UA_TOOL when a tool token occurs in the user agent, else UA_BOT when a bot token does, else -1."""
    bot = False
    for i in range(text.size):
        b = text[i]
        for k in range(by_first[N_GROUPS * b + TOOL_UA], by_first[N_GROUPS * b + BOT_UA + 1]):
            t = order[k]
            g = tables_group[t]
            if (g == TOOL_UA or not bot) and _token_at(text, i, tables_data, tables_offsets, t):
                if g == TOOL_UA:
                    return UA_TOOL
                bot = True
    return UA_BOT if bot else -1


@numba.njit(cache=True, nogil=True)
def _join3(a, b, c):
    out = np.empty(a.size + b.size + c.size + 2, dtype=np.uint8)
    out[:a.size] = a
    out[a.size] = 10
    out[a.size + 1:a.size + 1 + b.size] = b
    out[a.size + 1 + b.size] = 10
    out[a.size + 2 + b.size:] = c
    return out


@numba.njit(cache=True, nogil=True)
def _pieces_stats(raw, n_params, max_value):
    """Count non-empty '&' pieces of raw and the longest value; returns the updated pair."""
    start = 0
    n = raw.size
    for i in range(n + 1):
        if i == n or raw[i] == 38:
            if i > start:
                n_params += 1
                eq = -1
                for j in range(start, i):
                    if raw[j] == 61:
                        eq = j
                        break
                length = i - eq - 1 if eq >= 0 else i - start
                if length > max_value:
                    max_value = length
            start = i + 1
    return n_params, max_value


@numba.njit(cache=True, nogil=True)
def _extension_class(path_decoded, ext_data, ext_offsets, ext_class):
    n = path_decoded.size
    seg = 0
    for i in range(n):
        if path_decoded[i] == 47:
            seg = i + 1
    dot = -1
    for i in range(seg, n):
        if path_decoded[i] == 46:
            dot = i
    if dot < 0:
        return EXT_NONE
    ext = _lower(path_decoded[dot + 1:n])
    for e in range(ext_class.size):
        a = ext_offsets[e]
        b = ext_offsets[e + 1]
        if b - a != ext.size:
            continue
        same = True
        for j in range(ext.size):
            if ext[j] != ext_data[a + j]:
                same = False
                break
        if same:
            return ext_class[e]
    return EXT_OTHER


@numba.njit(cache=True, nogil=True)
def _ua_class(ua, tables_data, tables_offsets, tables_group, by_first, order):
    lo = 0
    hi = ua.size
    while lo < hi and ua[lo] == 32:
        lo += 1
    while hi > lo and ua[hi - 1] == 32:
        hi -= 1
    if hi == lo or (hi - lo == 1 and ua[lo] == 45):
        return UA_EMPTY
    lower = _lower(ua[lo:hi])
    tokens = _agent_tokens(lower, tables_data, tables_offsets, tables_group, by_first, order)
    if tokens >= 0:
        return tokens
    if _starts_with_any(lower, _BROWSER_DATA, _BROWSER_OFFSETS):
        return UA_BROWSER
    return UA_OTHER


_BROWSER_DATA = np.frombuffer("".join(BROWSER_UA_PREFIXES).encode("ascii"), np.uint8).copy()
_BROWSER_OFFSETS = np.cumsum([0] + [len(p) for p in BROWSER_UA_PREFIXES]).astype(np.int64)


@numba.njit(cache=True, nogil=True)
def _starts_with_any(text, data, offsets):
    """Whether text starts with one of the prefixes data[offsets[k]:offsets[k+1]]."""
    for k in range(offsets.size - 1):
        a = offsets[k]
        length = offsets[k + 1] - a
        if text.size < length:
            continue
        same = True
        for j in range(length):
            if text[j] != data[a + j]:
                same = False
                break
        if same:
            return True
    return False


@numba.njit(cache=True, nogil=True)
def request_features(method_code, path, query, body, user_agent, has_referer,
                     tables_data, tables_offsets, tables_group, by_first, order,
                     ext_data, ext_offsets, ext_class, out):
    """Fill ``out`` (float64, N_REQUEST_FEATURES) with the spec's request features.

    method_code: the method's code in ``feature_spec.METHOD_CODES``, METHOD_OTHER for any other or none.
    """
    path_decoded = url_decode(path, False)
    query_decoded = url_decode(query, True)
    body_decoded = url_decode(body, True)
    p = _join3(path_decoded, query_decoded, body_decoded)
    lp = _lower(p)
    raw_all = _join3(path, query, body)
    n = p.size
    counts = np.zeros(N_GROUPS, dtype=np.int64)
    scratch = np.empty(tables_group.size, dtype=np.int64)
    _count_groups(lp, tables_data, tables_offsets, tables_group, by_first, order, counts, SQL, SHELL + 1, scratch)
    raw_lower = np.empty(path.size + 1 + query.size, dtype=np.uint8)
    raw_lower[:path.size] = path
    raw_lower[path.size] = 10
    raw_lower[path.size + 1:] = query
    _count_groups(_lower(raw_lower), tables_data, tables_offsets, tables_group, by_first, order, counts,
                  TRAVERSAL, TRAVERSAL + 1, scratch)
    _count_groups(p, tables_data, tables_offsets, tables_group, by_first, order, counts, TEMPLATE, TEMPLATE + 1,
                  scratch)
    args = np.empty(query_decoded.size + 1 + body_decoded.size, dtype=np.uint8)
    args[:query_decoded.size] = query_decoded
    args[query_decoded.size] = 10
    args[query_decoded.size + 1:] = body_decoded
    _count_groups(_lower(args), tables_data, tables_offsets, tables_group, by_first, order, counts, SCHEME,
                  SCHEME + 1, scratch)

    digits = alpha = upper = special = nonascii = quotes = nul = 0
    histogram = np.zeros(256, dtype=np.int64)
    for i in range(n):
        c = p[i]
        histogram[c] += 1
        if 48 <= c <= 57:
            digits += 1
        elif 65 <= c <= 90:
            alpha += 1
            upper += 1
        elif 97 <= c <= 122:
            alpha += 1
        elif c >= 128:
            nonascii += 1
        elif _IS_SPECIAL[c]:
            special += 1
        if c == 39 or c == 34:
            quotes += 1
        if c == 0:
            nul += 1
    entropy = 0.0
    for i in range(n):  # over the bytes present only, each once (its count is cleared after use)
        c = p[i]
        if histogram[c]:
            share = histogram[c] / n
            entropy -= share * np.log2(share)
            histogram[c] = 0
    denominator = max(n, 1)

    pct = 0
    double = 0
    i = 0
    m = raw_all.size
    while i < m:
        if raw_all[i] == 37 and i + 2 < m and _hex(raw_all[i + 1]) >= 0 and _hex(raw_all[i + 2]) >= 0:
            pct += 1
            i += 3
        else:
            i += 1
    i = 0
    while i < m:
        if raw_all[i] == 37 and i + 4 < m and raw_all[i + 1] == 50 and raw_all[i + 2] == 53 \
                and _hex(raw_all[i + 3]) >= 0 and _hex(raw_all[i + 4]) >= 0:
            double += 1
            i += 5
        else:
            i += 1

    n_params, max_value = _pieces_stats(query, 0, 0)
    n_params, max_value = _pieces_stats(body, n_params, max_value)
    depth = 0
    for c in path_decoded:
        if c == 47:
            depth += 1
    attack = counts[SQL] + counts[TRAVERSAL] + counts[XSS] + counts[SHELL] + counts[TEMPLATE]

    out[0] = 1.0 if method_code == METHOD_POST else 0.0
    out[1] = 1.0 if method_code == METHOD_OTHER else 0.0
    out[2] = path.size
    out[3] = query.size
    out[4] = body.size
    out[5] = depth
    out[6] = n_params
    out[7] = max_value
    out[8] = n
    out[9] = digits / denominator
    out[10] = alpha / denominator
    out[11] = upper / denominator
    out[12] = special / denominator
    out[13] = nonascii / denominator
    out[14] = entropy
    out[15] = pct
    out[16] = double
    out[17] = quotes
    out[18] = counts[SQL]
    out[19] = counts[TRAVERSAL]
    out[20] = counts[XSS]
    out[21] = counts[SHELL]
    out[22] = counts[TEMPLATE]
    out[23] = counts[SCHEME]
    out[24] = nul
    out[25] = attack
    out[26] = _extension_class(path_decoded, ext_data, ext_offsets, ext_class)
    out[27] = _ua_class(user_agent, tables_data, tables_offsets, tables_group, by_first, order)
    out[28] = user_agent.size
    out[29] = 1.0 if has_referer else 0.0
