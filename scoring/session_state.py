"""Per-client session state in a worker: session features as the session unfolds.

The same definitions as ``data/sql/session_features.sql`` (see ``data/feature_spec.py``),
updated one request at a time. Memory is bounded: at most ``max_clients`` sessions
(least recently seen evicted first), each forgotten after ``gap_seconds`` of
silence (the next request starts a new session, as sessionizing does), and
distinct paths / parameter names / user agents are tracked exactly up to
``max_distinct`` each (beyond that they are counted approximately, never stored).

Imports only the standard library (and numpy for the feature row).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

SESSION_FEATURE_NAMES = (
    "n_requests", "duration_s", "request_rate", "iat_mean", "iat_std", "iat_cv", "path_diversity",
    "error_ratio", "notfound_ratio", "post_ratio", "head_ratio", "rare_method_ratio", "static_ratio",
    "sensitive_ratio", "attack_ratio", "mean_attack_tokens", "max_payload_len", "mean_entropy",
    "mean_special_ratio", "referer_ratio", "ua_changes", "ua_class", "distinct_params",
)


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


class _Session:
    __slots__ = ("first_ts", "last_ts", "n", "iat_n", "iat_mean", "iat_m2", "errors", "notfound", "posts",
                 "heads", "rare", "static", "sensitive", "attacks", "attack_tokens", "max_payload", "entropy",
                 "special", "referers", "ua_class", "paths", "agents", "params", "overflow")

    def __init__(self):
        self.first_ts = self.last_ts = None
        self.n = self.iat_n = 0
        self.iat_mean = self.iat_m2 = 0.0
        self.errors = self.notfound = self.posts = self.heads = self.rare = 0
        self.static = self.sensitive = self.attacks = self.referers = 0
        self.attack_tokens = self.entropy = self.special = 0.0
        self.max_payload = 0.0
        self.ua_class = 0
        self.paths, self.agents, self.params = set(), set(), set()
        self.overflow = [0, 0, 0]


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
            session = self._sessions.get(client)
            if session is not None and ts is not None and session.last_ts is not None \
                    and ts - session.last_ts > self.gap_seconds:
                session = None  # the gap ended the old session
            if session is None:
                session = _Session()
                self._sessions[client] = session
                if len(self._sessions) > self.max_clients:
                    self._sessions.popitem(last=False)
            self._sessions.move_to_end(client)
            self._add(session, ts, facts)
            return self._features(session)

    def observe_response(self, client, status: int | None) -> None:
        """Count the status of the client's latest request (error and 404 ratios)."""
        if status is None:
            return
        with self._lock:
            session = self._sessions.get(client)
            if session is not None:
                session.errors += status >= 400
                session.notfound += status == 404

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
            if s.first_ts is None:
                s.first_ts = ts
            s.last_ts = ts
        s.n += 1
        s.posts += f.is_post
        s.heads += f.is_head
        s.rare += f.is_rare_method
        s.static += f.ext_class == 1
        s.sensitive += f.ext_class == 3
        s.attacks += f.attack_tokens > 0
        s.attack_tokens += f.attack_tokens
        s.max_payload = max(s.max_payload, f.payload_len)
        s.entropy += f.entropy
        s.special += f.special_ratio
        s.referers += f.has_referer
        for k, (bucket, keys) in enumerate(((s.paths, (f.path_key,)), (s.agents, (f.user_agent_key,)),
                                            (s.params, f.param_names))):
            for key in keys:
                if key not in bucket:
                    if len(bucket) < self.max_distinct:
                        bucket.add(key)
                    else:
                        s.overflow[k] += 1

    @staticmethod
    def _features(s: _Session) -> np.ndarray:
        n = s.n
        duration = (s.last_ts - s.first_ts) if s.first_ts is not None else 0.0
        iat_mean = s.iat_mean if s.iat_n else 0.0
        iat_std = math.sqrt(s.iat_m2 / s.iat_n) if s.iat_n else 0.0
        return np.array([
            n, duration, n / max(duration, 1.0) * 60.0, iat_mean, iat_std,
            iat_std / iat_mean if iat_mean > 0 else 0.0,
            (len(s.paths) + s.overflow[0]) / n, s.errors / n, s.notfound / n, s.posts / n, s.heads / n, s.rare / n,
            s.static / n, s.sensitive / n, s.attacks / n, s.attack_tokens / n, s.max_payload, s.entropy / n,
            s.special / n, s.referers / n, len(s.agents) + s.overflow[1] - 1, s.ua_class,
            len(s.params) + s.overflow[2],
        ], dtype=np.float64)
