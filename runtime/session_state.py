"""Per-client session state in a worker: session features as the session unfolds.

The same definitions as ``data/sql/session_features.sql`` (see :mod:`waflens.runtime.feature_spec`),
updated one request at a time. Memory is bounded: at most ``max_clients`` sessions
(least recently seen evicted first), each forgotten after ``gap_seconds`` of
silence (the next request starts a new session, as sessionizing does), and
distinct paths / parameter names / user agents are tracked exactly up to
``max_distinct`` each (beyond that they are counted approximately, never stored).

Imports only the standard library (and numpy for the feature row).
"""

from __future__ import annotations

import math
import re
import threading
from array import array
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from waflens.runtime.feature_spec import (  # noqa: F401 (SESSION_FEATURE_NAMES: the order of the rows built here)
    EXT_SENSITIVE, EXT_STATIC, GAP_BINS, PAGE_EXT_CLASSES, RECENT_PAGES, REFERER_URL_RE, SESSION_FEATURE_NAMES)

REFERER_URL = re.compile(REFERER_URL_RE)


def referer_path(referer: str | None) -> str | None:
    """The path a referer URL points at ('/' for a bare origin); None when it is absent or no URL."""
    if not referer or referer == "-":
        return None
    match = REFERER_URL.match(referer)
    return None if match is None else (match.group(1) or "/")


def gap_bin(gap: float) -> int:
    return 0 if gap < 1 else min(int(math.floor(math.log2(gap))) + 1, GAP_BINS - 1)


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
    path_key: int          # hash of the decoded path
    user_agent_key: int    # hash of the user agent
    param_names: tuple     # hashes of parameter names
    is_get: bool = False
    path_depth: int = 0
    raw_path_key: int = 0          # hash of the raw path (what a referer names)
    referer_path_key: int | None = None  # hash of the referer's path (see referer_path), None without one


class _Session:
    __slots__ = ("first_ts", "last_ts", "n", "iat_n", "iat_mean", "iat_m2", "errors", "notfound", "posts",
                 "heads", "rare", "static", "sensitive", "attacks", "attack_tokens", "max_payload", "entropy",
                 "special", "referers", "ua_class", "paths", "agents", "params", "overflow_paths",
                 "overflow_agents", "overflow_params",
                 "pages", "last_page_ts", "think_n", "think_mean", "think_m2", "bins", "bursts", "continuous",
                 "previous_page", "recent", "revisits", "direct_deep", "redirects")

    def __init__(self):
        self.first_ts = self.last_ts = None
        self.n = self.iat_n = 0
        self.iat_mean = self.iat_m2 = 0.0
        self.errors = self.notfound = self.posts = self.heads = self.rare = 0
        self.static = self.sensitive = self.attacks = self.referers = 0
        self.attack_tokens = self.entropy = self.special = 0.0
        self.max_payload = 0.0
        self.ua_class = 0
        # distinct keys as flat int64 arrays: a set costs 200+ bytes empty and ~50 per key, an array 8 per key
        self.paths, self.agents, self.params = array("q"), array("q"), array("q")
        self.overflow_paths = self.overflow_agents = self.overflow_params = 0
        self.pages = self.think_n = self.bursts = self.continuous = self.revisits = self.direct_deep = 0
        self.redirects = 0
        self.last_page_ts = None
        self.think_mean = self.think_m2 = 0.0
        self.bins = array("l", bytes(8 * GAP_BINS))   # counts of inter-arrival gaps per bin
        self.previous_page = None                     # raw-path hash of the latest page view
        self.recent = array("q")                      # decoded-path hashes of the last RECENT_PAGES page views


def _remember(keys: array, key: int, limit: int) -> int:
    """Add ``key`` to the distinct ``keys`` while they hold fewer than ``limit``; 1 when a new key did not fit."""
    if key in keys:
        return 0
    if len(keys) < limit:
        keys.append(key)
        return 0
    return 1


class SessionTracker:
    """Bounded, thread-safe session state keyed by client (e.g. pseudonymized IP + UA)."""

    def __init__(self, gap_seconds: float = 1800.0, max_clients: int = 100_000, max_distinct: int = 256):
        self.gap_seconds = gap_seconds
        self.max_clients = max_clients
        self.max_distinct = max_distinct
        self._sessions: OrderedDict[object, _Session] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def observe_request(self, client, ts: float | None, facts: RequestFacts) -> np.ndarray:
        """Add a request to the client's session; return the session's features so far."""
        with self._lock:
            return self._features(self._update(client, ts, facts))

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
        if session is not None and ts is not None and session.last_ts is not None \
                and ts - session.last_ts > self.gap_seconds:
            session = None  # the gap ended the old session
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
                session.errors += status >= 400
                session.notfound += status == 404
                session.redirects += 300 <= status <= 399

    def expire(self, now: float) -> int:
        """Forget sessions silent for longer than the gap; returns how many."""
        with self._lock:
            stale = [k for k, s in self._sessions.items() if s.last_ts is not None and now - s.last_ts > self.gap_seconds]
            for key in stale:
                del self._sessions[key]
            return len(stale)

    def _add(self, s: _Session, ts: float | None, f: RequestFacts) -> None:
        if s.n == 0:
            s.ua_class = f.ua_class
        if ts is not None:
            if s.last_ts is not None:
                gap = ts - s.last_ts
                s.iat_n += 1
                delta = gap - s.iat_mean
                s.iat_mean += delta / s.iat_n
                s.iat_m2 += delta * (gap - s.iat_mean)
                s.bins[gap_bin(gap)] += 1
                s.bursts += gap < 1
            if s.first_ts is None:
                s.first_ts = ts
            s.last_ts = ts
        s.n += 1
        s.posts += f.is_post
        s.heads += f.is_head
        s.rare += f.is_rare_method
        s.static += f.ext_class == EXT_STATIC
        s.sensitive += f.ext_class == EXT_SENSITIVE
        s.attacks += f.attack_tokens > 0
        s.attack_tokens += f.attack_tokens
        s.max_payload = max(s.max_payload, f.payload_len)
        s.entropy += f.entropy
        s.special += f.special_ratio
        s.referers += f.has_referer
        if f.has_referer and f.referer_path_key is not None and f.referer_path_key == s.previous_page:
            s.continuous += 1
        if f.is_get and f.ext_class in PAGE_EXT_CLASSES:
            self._add_page(s, ts, f)
        limit = self.max_distinct
        s.overflow_paths += _remember(s.paths, _int64(f.path_key), limit)
        s.overflow_agents += _remember(s.agents, _int64(f.user_agent_key), limit)
        for name in f.param_names:
            s.overflow_params += _remember(s.params, _int64(name), limit)

    @staticmethod
    def _add_page(s: _Session, ts: float | None, f: RequestFacts) -> None:
        if ts is not None and s.pages and s.last_page_ts is not None:
            gap = ts - s.last_page_ts
            s.think_n += 1
            delta = gap - s.think_mean
            s.think_mean += delta / s.think_n
            s.think_m2 += delta * (gap - s.think_mean)
        s.pages += 1
        s.last_page_ts = ts
        s.revisits += _int64(f.path_key) in s.recent
        s.direct_deep += (not f.has_referer) and f.path_depth >= 2
        if len(s.recent) == RECENT_PAGES:
            s.recent.pop(0)
        s.recent.append(_int64(f.path_key))
        s.previous_page = f.raw_path_key

    @staticmethod
    def _features(s: _Session) -> np.ndarray:
        n = s.n
        duration = (s.last_ts - s.first_ts) if s.first_ts is not None else 0.0
        iat_mean = s.iat_mean if s.iat_n else 0.0
        iat_std = math.sqrt(s.iat_m2 / s.iat_n) if s.iat_n else 0.0
        return np.array([
            n, duration, n / max(duration, 1.0) * 60.0, iat_mean, iat_std,
            iat_std / iat_mean if iat_mean > 0 else 0.0,
            (len(s.paths) + s.overflow_paths) / n, s.errors / n, s.notfound / n, s.posts / n, s.heads / n, s.rare / n,
            s.static / n, s.sensitive / n, s.attacks / n, s.attack_tokens / n, s.max_payload, s.entropy / n,
            s.special / n, s.referers / n, len(s.agents) + s.overflow_agents - 1, s.ua_class,
            len(s.params) + s.overflow_params,
            *_behaviour(s, n, duration),
        ], dtype=np.float64)


def _behaviour(s: _Session, n: int, duration: float) -> tuple:
    pages = max(s.pages, 1)
    think_mean = s.think_mean if s.think_n else 0.0
    think_std = math.sqrt(s.think_m2 / s.think_n) if s.think_n else 0.0
    gaps = sum(s.bins)
    entropy = (math.log2(gaps) - sum(c * math.log2(c) for c in s.bins if c) / gaps) if gaps else 0.0
    return (s.pages / n, s.pages / max(duration, 1.0) * 60.0, think_mean,
            think_std / think_mean if think_mean > 0 else 0.0, n / pages, s.static / pages, entropy,
            s.bursts / gaps if gaps else 0.0, s.continuous / s.referers if s.referers else 0.0,
            s.revisits / s.pages if s.pages else 0.0, s.direct_deep / s.pages if s.pages else 0.0,
            s.redirects / n)


def _int64(key: int) -> int:
    """A hash as a signed 64-bit value (what array('q') holds); Python's own hashes already are."""
    if -(1 << 63) <= key < (1 << 63):
        return key
    return (key + (1 << 63)) % (1 << 64) - (1 << 63)
