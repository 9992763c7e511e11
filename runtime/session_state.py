"""Per-client session state in a worker: session features as the session unfolds.

The same definitions as ``data/sql/session_features.sql`` (see :mod:`waflens.runtime.feature_spec`),
updated one request at a time. Memory is bounded by construction: at most ``max_clients``
sessions (least recently seen evicted first), each forgotten after ``gap_seconds`` of
silence (the next request starts a new session, as sessionizing does), and each one two
fixed-size arrays (:data:`SESSION_BYTES`, under 2 KB however long or hostile the session):
every counter and running mean in one array of doubles, and the keys in one array of
unsigned 64-bit hashes: the recent page views, and for the distinct paths, user agents and
parameter names a K-minimum-values sketch of :data:`SKETCH_SLOTS` slots each. A sketch
counts exactly up to its slots and estimates beyond them, ``(K - 1) / (K-th smallest hash /
2**64)``, rounded (and no more than it was given); the SQL computes the same estimate from the same md5-based hashes.

Imports only the standard library (and numpy for the feature row).
"""

from __future__ import annotations

import hashlib
import math
import re
import sys
import threading
from array import array
from bisect import bisect_left
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from waflens.runtime.feature_spec import (  # noqa: F401 (SESSION_FEATURE_NAMES: the order of the rows built here)
    EXT_SENSITIVE, EXT_STATIC, GAP_BINS, PAGE_EXT_CLASSES, RECENT_PAGES, REFERER_URL_RE, SESSION_FEATURE_NAMES,
    SKETCH_SLOTS)

REFERER_URL = re.compile(REFERER_URL_RE)

_EMPTY = (1 << 64) - 1     # an unused sketch slot (sorts after every hash)
_MASK = (1 << 64) - 1
_SCALE = 2.0 ** 64


def referer_path(referer: str | None) -> str | None:
    """The path a referer URL points at ('/' for a bare origin); None when it is absent or no URL."""
    if not referer or referer == "-":
        return None
    match = REFERER_URL.match(referer)
    return None if match is None else (match.group(1) or "/")


def gap_bin(gap: float) -> int:
    return 0 if gap < 1 else min(int(math.floor(math.log2(gap))) + 1, GAP_BINS - 1)


def sketch_key(text: bytes) -> int:
    """The distinct-count hash of a path, user agent or parameter name: DuckDB's ``md5_number_upper``
    of the same text (bytes that are not UTF-8 as the database stores them, with \\xHH escapes)."""
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        text = text.decode("utf-8", "backslashreplace").encode("utf-8")
    return int.from_bytes(hashlib.md5(text).digest()[:8], "little")


class RequestFacts(NamedTuple):
    """What a session needs to know of one request (from its request features)."""
    is_post: bool
    is_head: bool
    is_rare_method: bool
    ext_class: int
    attack_tokens: float
    payload_len: float
    entropy: float
    special_ratio: float
    has_referer: bool
    ua_class: int
    path_key: int          # sketch_key of the decoded path
    user_agent_key: int    # sketch_key of the user agent
    param_names: tuple     # sketch_keys of parameter names
    is_get: bool = False
    path_depth: int = 0
    raw_path_key: int = 0          # hash of the raw path (what a referer names)
    referer_path_key: int | None = None  # hash of the referer's path (see referer_path), None without one


# the session's numbers: slots of one array of doubles (counts are exact in a double up to 2**53)
(N, IAT_N, IAT_MEAN, IAT_M2, ERRORS, NOTFOUND, POSTS, HEADS, RARE, STATIC, SENSITIVE, ATTACKS, TOKEN_SUM,
 MAX_PAYLOAD, ENTROPY_SUM, SPECIAL, REFERERS, FIRST_UA_CLASS, PAGES, THINK_N, THINK_MEAN, THINK_M2, BURSTS, CONTINUOUS,
 REVISITS, DIRECT_DEEP, REDIRECTS, FIRST_TS, LAST_TS, LAST_PAGE_TS, MORE_PATHS, MORE_AGENTS, MORE_PARAMS,
 PARAMS_SEEN, BINS) = range(35)
N_NUMBERS = BINS + GAP_BINS
# the session's keys: slots of one array of unsigned 64-bit hashes
PATHS, AGENTS, PARAMS = 0, SKETCH_SLOTS, 2 * SKETCH_SLOTS  # three sketches, each sorted, unused slots _EMPTY
RECENT = 3 * SKETCH_SLOTS          # decoded-path keys of the last RECENT_PAGES page views (a ring)
PREVIOUS_PAGE = RECENT + RECENT_PAGES  # raw-path hash of the latest page view
N_KEYS = PREVIOUS_PAGE + 1
_NO_TIME = float("nan")
_FRESH_NUMBERS = array("d", [0.0] * N_NUMBERS)
_FRESH_NUMBERS[FIRST_TS] = _FRESH_NUMBERS[LAST_TS] = _FRESH_NUMBERS[LAST_PAGE_TS] = _NO_TIME
_FRESH_KEYS = array("Q", [_EMPTY] * N_KEYS)


class _Session:
    __slots__ = ("v", "k")

    def __init__(self):
        self.v = array("d", _FRESH_NUMBERS)
        self.k = array("Q", _FRESH_KEYS)


# what one tracked session holds, whatever it sees: the object and its two arrays (no other object grows)
SESSION_BYTES = (sys.getsizeof(_Session()) + sys.getsizeof(array("d", _FRESH_NUMBERS))
                 + sys.getsizeof(array("Q", _FRESH_KEYS)))


def _sketch_add(keys: array, start: int, key: int) -> bool:
    """Add ``key`` to the sketch at ``keys[start:start + SKETCH_SLOTS]``; True when it has now seen more
    distinct keys than it has slots (so its count is an estimate)."""
    end = start + SKETCH_SLOTS
    i = bisect_left(keys, key, start, end)
    if i == end:
        return True                  # full, and the key is larger than all it keeps
    if keys[i] == key:               # seen before: the usual case
        return False
    dropped = keys[end - 1]
    keys[i + 1:end] = keys[i:end - 1]
    keys[i] = key
    return dropped != _EMPTY


def _sketch_count(keys: array, start: int, more: float, added: float) -> int:
    """Distinct keys among the ``added`` the sketch saw: exact within its slots, else the K-minimum-values
    estimate (never more than were added)."""
    end = start + SKETCH_SLOTS
    if not more:
        return bisect_left(keys, _EMPTY, start, end) - start
    estimate = (SKETCH_SLOTS - 1) / (float(keys[end - 1]) / _SCALE)
    return int(min(max(math.floor(estimate + 0.5), SKETCH_SLOTS + 1), added))


class SessionTracker:
    """Bounded, thread-safe session state keyed by client (e.g. pseudonymized IP + UA)."""

    def __init__(self, gap_seconds: float = 1800.0, max_clients: int = 100_000):
        self.gap_seconds = gap_seconds
        self.max_clients = max_clients
        self._sessions: OrderedDict[object, _Session] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def observe_request(self, client, ts: float | None, facts: RequestFacts, status: int | None = None) -> np.ndarray:
        """Add a request (and its status, when known) to the client's session; return its features so far."""
        with self._lock:
            session = self._update(client, ts, facts)
            if status is not None:
                _count_status(session.v, status)
            return self._features(session)

    def update(self, client, ts: float | None, facts: RequestFacts) -> None:
        """Add a request to the client's session (the features are computed when asked for: :meth:`features`)."""
        with self._lock:
            self._update(client, ts, facts)

    def features(self, client) -> np.ndarray | None:
        """The client's session features so far, or None when no session is tracked for it."""
        with self._lock:
            session = self._sessions.get(client)
            return None if session is None else self._features(session)

    def _update(self, client, ts: float | None, facts: RequestFacts) -> "_Session":
        sessions = self._sessions
        session = sessions.get(client)
        if session is not None and ts is not None and ts - session.v[LAST_TS] > self.gap_seconds:
            session = None  # the gap ended the old session (a NaN last time compares False: no gap)
        if session is None:
            session = _Session()
            sessions[client] = session
            if len(sessions) > self.max_clients:
                sessions.popitem(last=False)
        else:
            sessions.move_to_end(client)
        self._add(session, ts, facts)
        return session

    def observe_response(self, client, status: int | None) -> None:
        """Count the status of the client's latest request (error and 404 ratios)."""
        if status is None:
            return
        with self._lock:
            session = self._sessions.get(client)
            if session is not None:
                _count_status(session.v, status)

    def expire(self, now: float) -> int:
        """Forget sessions silent for longer than the gap; returns how many."""
        with self._lock:
            stale = [k for k, s in self._sessions.items() if now - s.v[LAST_TS] > self.gap_seconds]
            for key in stale:
                del self._sessions[key]
            return len(stale)

    def _add(self, s: _Session, ts: float | None, f: RequestFacts) -> None:
        # one unpacking and a branch per rare event: most requests add 0 to most counters (p50 matters here)
        (is_post, is_head, is_rare, ext_class, attack_tokens, payload_len, entropy, special, has_referer, ua_class,
         path_key, agent_key, param_names, is_get, _depth, _raw_path_key, referer_key) = f
        v = s.v
        n = v[N]
        if n == 0:
            v[FIRST_UA_CLASS] = ua_class
        if ts is not None:
            last = v[LAST_TS]
            if last == last:             # not NaN: there was an earlier timed request
                gap = ts - last
                iat_n = v[IAT_N] + 1
                v[IAT_N] = iat_n
                mean = v[IAT_MEAN]
                delta = gap - mean
                mean += delta / iat_n
                v[IAT_MEAN] = mean
                v[IAT_M2] += delta * (gap - mean)
                if gap < 1:
                    v[BINS] += 1
                    v[BURSTS] += 1
                else:
                    v[BINS + gap_bin(gap)] += 1
            else:
                v[FIRST_TS] = ts
            v[LAST_TS] = ts
        v[N] = n + 1
        if is_post:
            v[POSTS] += 1
        if is_head:
            v[HEADS] += 1
        if is_rare:
            v[RARE] += 1
        if ext_class == EXT_STATIC:
            v[STATIC] += 1
        elif ext_class == EXT_SENSITIVE:
            v[SENSITIVE] += 1
        if attack_tokens > 0:
            v[ATTACKS] += 1
            v[TOKEN_SUM] += attack_tokens
        if payload_len > v[MAX_PAYLOAD]:
            v[MAX_PAYLOAD] = payload_len
        v[ENTROPY_SUM] += entropy
        v[SPECIAL] += special
        k = s.k
        if has_referer:
            v[REFERERS] += 1
            if referer_key is not None and v[PAGES] and (referer_key & _MASK) == k[PREVIOUS_PAGE]:
                v[CONTINUOUS] += 1
        if is_get and ext_class in PAGE_EXT_CLASSES:
            _add_page(v, k, ts, f)
        if _sketch_add(k, PATHS, path_key):
            v[MORE_PATHS] = 1
        if _sketch_add(k, AGENTS, agent_key):
            v[MORE_AGENTS] = 1
        if param_names:
            v[PARAMS_SEEN] += len(param_names)
            for name in param_names:
                if _sketch_add(k, PARAMS, name):
                    v[MORE_PARAMS] = 1

    @staticmethod
    def _features(s: _Session) -> np.ndarray:
        v, k = s.v, s.k
        n = v[N]
        first = v[FIRST_TS]
        duration = (v[LAST_TS] - first) if first == first else 0.0
        iat_n = v[IAT_N]
        iat_mean = v[IAT_MEAN] if iat_n else 0.0
        iat_std = math.sqrt(v[IAT_M2] / iat_n) if iat_n else 0.0
        return np.array([
            n, duration, n / max(duration, 1.0) * 60.0, iat_mean, iat_std,
            iat_std / iat_mean if iat_mean > 0 else 0.0,
            _sketch_count(k, PATHS, v[MORE_PATHS], n) / n, v[ERRORS] / n, v[NOTFOUND] / n, v[POSTS] / n,
            v[HEADS] / n, v[RARE] / n, v[STATIC] / n, v[SENSITIVE] / n, v[ATTACKS] / n, v[TOKEN_SUM] / n,
            v[MAX_PAYLOAD], v[ENTROPY_SUM] / n, v[SPECIAL] / n, v[REFERERS] / n,
            _sketch_count(k, AGENTS, v[MORE_AGENTS], n) - 1, v[FIRST_UA_CLASS],
            _sketch_count(k, PARAMS, v[MORE_PARAMS], v[PARAMS_SEEN]),
            *_behaviour(v, n, duration),
        ], dtype=np.float64)


def _count_status(v: array, status: int) -> None:
    v[ERRORS] += status >= 400
    v[NOTFOUND] += status == 404
    v[REDIRECTS] += 300 <= status <= 399


def _add_page(v: array, k: array, ts: float | None, f: RequestFacts) -> None:
    if ts is not None and v[PAGES]:
        last = v[LAST_PAGE_TS]
        if last == last:
            gap = ts - last
            v[THINK_N] += 1
            delta = gap - v[THINK_MEAN]
            v[THINK_MEAN] += delta / v[THINK_N]
            v[THINK_M2] += delta * (gap - v[THINK_MEAN])
    pages = int(v[PAGES])
    v[PAGES] = pages + 1
    v[LAST_PAGE_TS] = _NO_TIME if ts is None else ts
    seen = min(pages, RECENT_PAGES)
    v[REVISITS] += f.path_key in k[RECENT:RECENT + seen]
    v[DIRECT_DEEP] += (not f.has_referer) and f.path_depth >= 2
    k[RECENT + pages % RECENT_PAGES] = f.path_key
    k[PREVIOUS_PAGE] = f.raw_path_key & _MASK


def _behaviour(v: array, n: float, duration: float) -> tuple:
    pages = v[PAGES]
    think_n = v[THINK_N]
    think_mean = v[THINK_MEAN] if think_n else 0.0
    think_std = math.sqrt(v[THINK_M2] / think_n) if think_n else 0.0
    bins = v[BINS:BINS + GAP_BINS]
    gaps = sum(bins)
    entropy = (math.log2(gaps) - sum(c * math.log2(c) for c in bins if c) / gaps) if gaps else 0.0
    referers = v[REFERERS]
    return (pages / n, pages / max(duration, 1.0) * 60.0, think_mean,
            think_std / think_mean if think_mean > 0 else 0.0, n / max(pages, 1), v[STATIC] / max(pages, 1),
            entropy, v[BURSTS] / gaps if gaps else 0.0, v[CONTINUOUS] / referers if referers else 0.0,
            v[REVISITS] / pages if pages else 0.0, v[DIRECT_DEEP] / pages if pages else 0.0, v[REDIRECTS] / n)
