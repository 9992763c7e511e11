"""Secrets masked as ingest masks them, so the runtime scores what training saw.

Ingest (``waflens.data.redaction``) replaces secret values by :data:`MARKER` before anything is
stored, so a model trains on ``pwd=[redacted]``. A live request carries the real password: scored
raw, its bytes, length and character classes are values the model never met (training/serving
skew; on CSIC it put benign logins among the most anomalous requests). :func:`mask_secrets` does,
on a request's target and on its body, what ingest does to them, byte for byte:

* ``name=value`` where the name (a run of ``A-Za-z0-9_.-[]%``, at most 64, not preceded by one)
  is secret by :func:`secret_name`: the value (up to ``&``, ``;``, whitespace, ``"`` or a lone
  backslash; an optional ``Bearer ``-like scheme prefix included) becomes the marker;
* a credential after a scheme word (``Bearer``, ``Basic``... then 1-8 of space, tab, ``%20``, ``+``):
  8 or more of ``A-Za-z0-9._~+/=%-`` become the marker, the scheme stays;
* a JSON Web Token (``eyJ``..., three dot-separated parts) becomes the marker.

The secret words and the marker live in :mod:`waflens.runtime.feature_spec`, the one home both sides
read (the runtime installs alone, so ingest imports them from there). Not emulated, because the
runtime cannot or need not: IP addresses (ingest writes ``ip:`` and a keyed token the runtime has no key for: 0 of 59k CSIC requests, 57 of 50k
shared access-log lines carry one), header-style ``name: value`` lines and JSON ``"key": value``
pairs inside a body (ingest masks those too; none in CSIC or the shared logs), and a word boundary
after a character beyond U+00FF that is neither a letter nor whitespace (taken as a letter).
Imports only numpy, numba and the standard library.
"""

from __future__ import annotations

import re

import numba
import numpy as np

from waflens.runtime.feature_spec import (CREDENTIAL_SCHEMES, JWT_PREFIX, KEY_EXCEPTIONS, KEY_WORD, MARKER,
                                          MAX_NAME, MIN_CREDENTIAL, MIN_JWT_PART, SECRET_SUBSTRINGS, SECRET_WORDS)

_MARKER = np.frombuffer(MARKER.encode("ascii"), np.uint8).copy()


def _word_table(words) -> tuple[np.ndarray, np.ndarray]:
    data = np.frombuffer("".join(words).encode("ascii"), np.uint8).copy()
    offsets = np.zeros(len(words) + 1, np.int64)
    offsets[1:] = np.cumsum([len(w) for w in words])
    return data, offsets


_SUBSTRINGS, _SUBSTRING_OFFSETS = _word_table(SECRET_SUBSTRINGS)
_WORDS, _WORD_OFFSETS = _word_table(SECRET_WORDS)
_SCHEMES, _SCHEME_OFFSETS = _word_table(CREDENTIAL_SCHEMES)
_JWT_PREFIX = np.frombuffer(JWT_PREFIX.encode("ascii"), np.uint8).copy()
_KEY = np.frombuffer(KEY_WORD.encode("ascii"), np.uint8).copy()
_KEY_REST = np.frombuffer(KEY_EXCEPTIONS[0][len(KEY_WORD):].encode("ascii"), np.uint8).copy()  # "word"


def _byte_set(chars: bytes) -> np.ndarray:
    table = np.zeros(256, np.bool_)
    table[list(chars)] = True
    return table


_LETTERS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_DIGITS = b"0123456789"
_IS_NAME = _byte_set(_LETTERS + _DIGITS + b"_.-[]%")
_IS_LETTER = _byte_set(_LETTERS)
_IS_WORD = np.array([re.match(r"\w", chr(c)) is not None for c in range(256)])  # by code point, as re's \w
_IS_CREDENTIAL = _byte_set(_LETTERS + _DIGITS + b"._~+/=%-")
_IS_JWT = _byte_set(_LETTERS + _DIGITS + b"_-")
_IS_HEX = _byte_set(_DIGITS + b"abcdefABCDEF")
# ASCII whitespace as Python's str.isspace (and re's \s) sees it
_IS_SPACE = _byte_set(b"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f ")


@numba.njit(cache=True, nogil=True)
def _lower(c):
    return c | 32 if 65 <= c <= 90 else c


@numba.njit(cache=True, nogil=True)
def _at(text, i, end, word):
    """True when ``text[i:end]`` starts with ``word`` (lower-case), ASCII case-insensitive."""
    if i + word.size > end:
        return False
    for k in range(word.size):
        if _lower(text[i + k]) != word[k]:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def _starts(text, i, word):
    """True when ``text[i:]`` starts with ``word`` exactly."""
    if i + word.size > text.size:
        return False
    for k in range(word.size):
        if text[i + k] != word[k]:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def secret_name(text, start, end):
    """True when the name ``text[start:end]`` is secret (see the module's word lists)."""
    for i in range(start, end):
        for w in range(_SUBSTRING_OFFSETS.size - 1):
            if _at(text, i, end, _SUBSTRINGS[_SUBSTRING_OFFSETS[w]:_SUBSTRING_OFFSETS[w + 1]]):
                return True
        after_letter = i > start and _IS_LETTER[text[i - 1]]
        if not after_letter:
            for w in range(_WORD_OFFSETS.size - 1):
                word = _WORDS[_WORD_OFFSETS[w]:_WORD_OFFSETS[w + 1]]
                j = i + word.size
                if _at(text, i, end, word) and (j == end or not _IS_LETTER[text[j]]):
                    return True
        if _at(text, i, end, _KEY):
            j = i + _KEY.size
            if not _at(text, j, end, _KEY_REST):
                return True
            j += _KEY_REST.size  # "keyword": an exception when the letters end there or after one more 's'
            if j == end or not _IS_LETTER[text[j]]:
                continue
            if _lower(text[j]) == 115 and (j + 1 == end or not _IS_LETTER[text[j + 1]]):
                continue
            return True
    return False


@numba.njit(cache=True, nogil=True)
def _unicode_space(text, i):
    """Length of the non-ASCII whitespace character (UTF-8) at ``i`` that Python's ``\\s`` matches, else 0."""
    n = text.size
    c = text[i]
    if c == 0xC2 and i + 1 < n and (text[i + 1] == 0x85 or text[i + 1] == 0xA0):
        return 2
    if i + 2 >= n:
        return 0
    b, d = text[i + 1], text[i + 2]
    if c == 0xE1 and b == 0x9A and d == 0x80:
        return 3
    if c == 0xE2 and b == 0x80 and (0x80 <= d <= 0x8A or d == 0xA8 or d == 0xA9 or d == 0xAF):
        return 3
    if (c == 0xE2 and b == 0x81 and d == 0x9F) or (c == 0xE3 and b == 0x80 and d == 0x80):
        return 3
    return 0


@numba.njit(cache=True, nogil=True)
def _word_boundary(text, i):
    """True when the character before ``i`` is not a word character (``\\b`` before a letter at ``i``), as
    Python sees it up to U+00FF; a later one counts as a letter unless it is whitespace."""
    if i == 0:
        return True
    c = text[i - 1]
    if c < 0x80:
        return not _IS_WORD[c]
    lead = i - 1
    while lead > 0 and lead > i - 4 and 0x80 <= text[lead] < 0xC0:  # back to the character's first byte
        lead -= 1
    if i - lead == 2 and (text[lead] == 0xC2 or text[lead] == 0xC3):
        return not _IS_WORD[(text[lead] & 0x1F) << 6 | (c & 0x3F)]
    return _unicode_space(text, lead) == i - lead


@numba.njit(cache=True, nogil=True)
def _separators(text, i):
    """End of the 1-8 separators (space, tab, ``%20``, ``+``) after a scheme word at ``i``, or -1."""
    n = text.size
    count = 0
    while count < 8 and i < n:
        c = text[i]
        if c == 32 or c == 9 or c == 43:
            i += 1
        elif c == 37 and i + 2 < n and text[i + 1] == 50 and text[i + 2] == 48:
            i += 3
        else:
            break
        count += 1
    return i if count > 0 else -1


@numba.njit(cache=True, nogil=True)
def _scheme_end(text, i):
    """End of a scheme word and its separators starting at ``i`` (ASCII case-insensitive), or -1."""
    for w in range(_SCHEME_OFFSETS.size - 1):
        word = _SCHEMES[_SCHEME_OFFSETS[w]:_SCHEME_OFFSETS[w + 1]]
        if _at(text, i, text.size, word):
            end = _separators(text, i + word.size)
            if end >= 0:
                return end
    return -1


@numba.njit(cache=True, nogil=True)
def _pair_value_end(text, i):
    """End of a secret parameter's value starting at ``i``."""
    n = text.size
    scheme = _scheme_end(text, i)
    if scheme >= 0:
        i = scheme
    while i < n:
        c = text[i]
        if c == 38 or c == 59 or c == 34 or _IS_SPACE[c]:
            break
        if c == 92:  # a backslash only as \xHH or \\
            if i + 3 < n and text[i + 1] == 120 and _IS_HEX[text[i + 2]] and _IS_HEX[text[i + 3]]:
                i += 4
                continue
            if i + 1 < n and text[i + 1] == 92:
                i += 2
                continue
            break
        if c >= 0x80 and _unicode_space(text, i) > 0:
            break
        i += 1
    return i


@numba.njit(cache=True, nogil=True)
def _run_end(text, i, allowed):
    while i < text.size and allowed[text[i]]:
        i += 1
    return i


@numba.njit(cache=True, nogil=True)
def next_secret(text, pos, spans):
    """Find the first secret at or after ``pos`` as ingest's scanner does (leftmost start; at one start a
    credential before a parameter before a token). Writes (masked start, masked end, resume) into ``spans``
    and returns True, or False when there is none. A parameter name that is not secret is stepped over."""
    n = text.size
    i = pos
    while i < n:
        c = text[i]
        lower = c | 32
        # b, d, n: a credential scheme? (the word boundary, dearer, is only looked at before those letters)
        if (lower == 98 or lower == 100 or lower == 110) and _word_boundary(text, i):
            start = _scheme_end(text, i)
            if start >= 0:
                end = _run_end(text, start, _IS_CREDENTIAL)
                if end - start >= MIN_CREDENTIAL:
                    spans[0], spans[1], spans[2] = start, end, end
                    return True
                i = start  # a short credential: the scan goes on after the separators
                continue
        if _IS_NAME[c] and (i == 0 or not _IS_NAME[text[i - 1]]):
            eq = _run_end(text, i, _IS_NAME)
            if eq < n and text[eq] == 61 and eq - i <= MAX_NAME:
                if secret_name(text, i, eq):
                    end = _pair_value_end(text, eq + 1)
                    spans[0], spans[1], spans[2] = eq + 1, end, end
                    return True
                i = eq + 1
                continue
        if c == 101 and _starts(text, i, _JWT_PREFIX) and _word_boundary(text, i):  # 'e': a JSON Web Token?
            a = _run_end(text, i + _JWT_PREFIX.size, _IS_JWT)
            if a - (i + _JWT_PREFIX.size) >= MIN_JWT_PART and a < n and text[a] == 46:
                b = _run_end(text, a + 1, _IS_JWT)
                if b - (a + 1) >= MIN_JWT_PART and b < n and text[b] == 46:
                    end = _run_end(text, b + 1, _IS_JWT)
                    spans[0], spans[1], spans[2] = i, end, end
                    return True
        i += 1
    return False


@numba.njit(cache=True, nogil=True)
def has_secret(text):
    """True when :func:`mask_secrets` would change ``text``."""
    spans = np.empty(3, np.int64)
    pos = 0
    while next_secret(text, pos, spans):
        if spans[1] > spans[0]:
            return True
        pos = spans[2]
    return False


@numba.njit(cache=True, nogil=True)
def mask_secrets(text):
    """``text`` (UTF-8 bytes) with every secret replaced by the marker; ``text`` itself when it holds none."""
    spans = np.empty(3, np.int64)
    if not next_secret(text, 0, spans):
        return text
    size = 0
    pos = 0
    while next_secret(text, pos, spans):
        if spans[1] > spans[0]:  # an empty value stays empty
            size += spans[0] - pos + _MARKER.size
        else:
            size += spans[0] - pos
        pos = spans[2]
    out = np.empty(size + text.size - pos, np.uint8)
    pos = 0
    k = 0
    while next_secret(text, pos, spans):
        out[k:k + spans[0] - pos] = text[pos:spans[0]]
        k += spans[0] - pos
        if spans[1] > spans[0]:
            out[k:k + _MARKER.size] = _MARKER
            k += _MARKER.size
        pos = spans[2]
    out[k:] = text[pos:]
    return out


def mask_secret_bytes(data: bytes) -> bytes:
    """:func:`mask_secrets` on bytes (the explanations' and the session model's path; the score kernels call
    :func:`mask_secrets` themselves)."""
    array = np.frombuffer(data, np.uint8)
    return mask_secrets(array).tobytes() if data and has_secret(array) else data
