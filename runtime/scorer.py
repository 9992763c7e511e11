"""The scoring runtime WAF workers embed: load an exported model, score live requests.

Imports only numpy, numba, the standard library and our kernel modules (a test
checks it). All compilation happens at load — kernels come from numba's on-disk
cache and a warm-up call — so no request ever waits for the JIT. Set
``WAFLENS_NUMBA_CACHE_DIR`` (before importing this module) when the package
directory is read-only.

    scorer = Scorer.load("models/request-20261122")
    result = scorer.score_request("GET", "/search?q=%27%20OR%201=1--", {"User-Agent": "curl/8"})
    result.score, result.score_class          # 0.71, 'attack'

Fail-open: with ``fail_open=True`` (default) an unexpected error while scoring
returns ``score=nan, score_class="error"`` (count in ``scorer.errors``) instead of
raising, so a scoring bug never blocks traffic; the WAF decides what "error" means.
"""

from __future__ import annotations

import os

if os.environ.get("WAFLENS_NUMBA_CACHE_DIR"):
    import numba

    numba.config.CACHE_DIR = os.environ["WAFLENS_NUMBA_CACHE_DIR"]

import re
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from waflens.runtime.artifact import ArtifactError, read_artifact
from waflens.runtime.artifact_checks import Forest, check_request_model, check_session_model, tree_depth
from waflens.runtime.feature_spec import FEATURE_SPEC_VERSION, METHOD_CODES, METHOD_OTHER, N_REQUEST_FEATURES, request_column
from waflens.runtime.kernels.feedback import blend_batch, blend_one, class_probabilities
from waflens.runtime.kernels.forest import float32_floor, perfect_layout, perfect_scores, sanitize
from waflens.runtime.kernels.profile import (CHAR_CLASS_NAMES, FNV_OFFSET, NOT_PROFILED, VALUE_KIND_NAMES, endpoint_key,
                                             fnv1a, lookup, param_key, request_params, value_classes)
from waflens.runtime.kernels.request import build_token_tables, url_decode
from waflens.runtime.redaction import mask_secret_bytes
from waflens.runtime.kernels.code import CLASS_NAMES, MAX_TOKENS, N_BIGRAM_CLASSES, N_CLASSES, code_features, value_code_logits
from waflens.runtime.kernels.score import (CODE_BIAS, CODE_LIKENESS, EVIDENCE_NAMES, N_EVIDENCE, N_FEATURES, N_STRUCTURAL,
                                    NOVEL_CLASSES, code_evidence, combine_batch, compile_sections, evidence_flags,
                                    features_one, pack, score_one, score_packed_row, score_row)

DEFAULT_MAX_BODY_BYTES = 8192
_ABSOLUTE_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*")
_CLASSES = ("clean", "likely_clean", "likely_attack", "attack")
_new_tuple = tuple.__new__


class ScoreResult(NamedTuple):
    score: float                 # higher = more anomalous, in (0, 1]
    score_class: str             # clean | likely_clean | likely_attack | attack | error
    explanation: tuple = ()      # ((feature, value, score change), ...) when asked for


class SessionResult(NamedTuple):
    """A request's session so far: the session model's score, and the bot score as the session stands."""
    score: float                 # higher = more anomalous, in (0, 1]
    score_class: str             # clean | likely_clean | likely_attack | attack | error
    explanation: tuple = ()
    bot_score: int = 0           # 1..99, low = automated (as `waflens score --level session`); 0 = the model has none
    reasons: tuple = ()          # the strongest evidence of automation, readable (empty when nothing stands out)


def _as_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value)
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("utf-8", "backslashreplace")
    return str(value)


def _encode(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)


# the request feature columns a session's RequestFacts take
(_IS_POST, _IS_RARE, _PATH_DEPTH, _PAYLOAD_LEN, _SPECIAL_RATIO, _ENTROPY, _ATTACK_TOKENS, _EXT_CLASS, _UA_CLASS,
 _HAS_REFERER) = map(request_column, ("method_is_post", "method_is_rare", "path_depth", "payload_len", "special_ratio",
                                      "entropy", "attack_tokens", "ext_class", "ua_class", "has_referer"))


def _user_agent_and_referer(headers) -> tuple[str, str | None]:
    """User-Agent and Referer; a dict is looked up by the usual spellings before any scan."""
    if not headers:
        return "", None
    if isinstance(headers, dict):
        agent = headers.get("User-Agent", headers.get("user-agent"))
        referer = headers.get("Referer", headers.get("referer"))
        if agent is None:
            agent = _header(headers, "user-agent")
        if referer is None:
            referer = _header(headers, "referer")
        return (agent if type(agent) is str else _as_text(agent)), (
            referer if referer is None or type(referer) is str else _as_text(referer))
    return _header(headers, "user-agent") or "", _header(headers, "referer")


@contextmanager
def _numba_without_blas():
    """Let numba's first load of compiled code in this process skip its BLAS probe.

    On its first compile or cache load numba imports ``scipy.linalg`` to see whether
    ``np.dot`` can be supported: about 0.2 s, a third of a worker's start. Our kernels
    use no BLAS, so while a model loads, the probe is told scipy's BLAS is absent.
    The probe runs once per process, so afterwards *other* numba code in the same
    process cannot use ``np.dot`` & co.: set ``WAFLENS_NUMBA_BLAS=1`` to keep them.
    Nothing changes when numba or scipy.linalg was already initialised.
    """
    name = "scipy.linalg.cython_blas"
    skip = (os.environ.get("WAFLENS_NUMBA_BLAS") != "1" and "numba.np.arraymath" not in sys.modules
            and "scipy.linalg" not in sys.modules and name not in sys.modules)
    if skip:
        sys.modules[name] = None  # makes `import scipy.linalg.cython_blas` fail at once
    try:
        yield
    finally:
        if skip and sys.modules.get(name, 0) is None:
            del sys.modules[name]


def _read_level(path, level: str, what: str):
    """Arrays and manifest of a verified artifact of the given level."""
    arrays, manifest = read_artifact(path, expected_spec_version=FEATURE_SPEC_VERSION)
    if manifest.get("level") != level:
        raise ArtifactError(f"{path} is a {manifest.get('level')!r}-level model; {what}")
    return arrays, manifest


def _perfect(forest: Forest):
    """The perfect-tree layout of a checked forest."""
    try:
        return perfect_layout(forest.feature, float32_floor(forest.threshold), forest.left, forest.right,
                              forest.value, forest.roots, forest.depth)
    except ValueError as error:
        raise ArtifactError(f"this runtime cannot load the artifact's forest: {error}") from None


def _load_feedback(arrays: dict[str, np.ndarray], feedback: Forest | None, n_classes: int):
    """The analyst-feedback model's kernel arguments (see waflens.scoring.feedback), or None when it has none."""
    if feedback is None:
        return None
    n_outputs = 1 if n_classes == 2 else n_classes
    return (*_perfect(feedback), feedback.depth, n_outputs, np.ascontiguousarray(arrays["feedback_init"]),
            int(arrays["feedback_benign_index"]), np.ascontiguousarray(arrays["feedback_attack_mask"]))


def _depth_of(forest: dict[str, np.ndarray]) -> int:
    """Depth of the deepest leaf over all trees (the perfect layout's depth) of well-formed flat arrays."""
    return tree_depth(*(np.asarray(forest[k]) for k in ("feature", "left", "right", "roots")))


def split_target(target: str) -> tuple[str, str]:
    """(path, query) of a request target, as ingest stores them (absolute URIs reduced)."""
    if not target.startswith("/"):
        target = _ABSOLUTE_URI.sub("", target, count=1)
    path, _, query = target.partition("?")
    return path, query


def _header(headers, name: str) -> str | None:
    if not headers:
        return None
    items = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in items:
        if _as_text(key).lower() == name:
            return _as_text(value)
    return None


class Scorer:
    """A loaded model. Thread-safe: scoring allocates only per call."""

    def __init__(self, arrays: dict[str, np.ndarray], manifest: dict, *, fail_open: bool = True,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, path: str | None = None):
        checked = check_request_model(arrays, manifest, path or "the artifact")  # before anything uses them
        self.manifest = manifest
        self.path = path
        self.fail_open = fail_open
        self.max_body_bytes = max_body_bytes
        # A model trained without bodies (access logs) ignores them: any body would look anomalous to it.
        self.uses_bodies = manifest.get("training", {}).get("body_share", 1.0) > 0
        self.errors = 0
        self._lock = threading.Lock()
        spec = manifest["feature_spec"]
        self.feature_names = tuple(spec["names"])
        tables = build_token_tables(spec["lists"])
        self._trees, self._depth = _perfect(checked.forest), checked.forest.depth
        self._normaliser = float(arrays["forest_normaliser"])
        sections = {
            "tok_offsets": tables.offsets, "tok_group": tables.group, "tok_by_first": tables.by_first,
            "tok_order": tables.order, "ext_offsets": tables.ext_offsets, "ext_class": tables.ext_class,
            "tok_data": tables.data, "ext_data": tables.ext_data,
        }
        for name in ("endpoint_keys", "endpoint_count", "param_keys", "param_index", "length_mean", "length_std",
                     "length_max", "seen_bytes", "is_enum", "enum_keys", "seen_classes", "value_kind"):
            sections[name] = arrays[f"profile_{name}"]
        self._surprise = checked.surprise
        self._code_weights, self._shape = checked.code_weights, checked.score_shape
        self._param_keys = np.ascontiguousarray(arrays["profile_param_keys"])
        self._param_index = np.ascontiguousarray(arrays["profile_param_index"])
        self._seen_classes = np.ascontiguousarray(arrays["profile_seen_classes"])
        self._value_kind = np.ascontiguousarray(arrays["profile_value_kind"])
        self._packed = pack(sections, int(arrays["profile_seen_bytes"].shape[0]), self._trees, self._depth,
                            self._normaliser, self._surprise, self._code_weights, self._shape)
        self._median = np.asarray(arrays["feature_median"], dtype=np.float64)
        self._thresholds = checked.thresholds

    @classmethod
    def load(cls, path: str | os.PathLike, *, warm_up: bool = True, **options) -> "Scorer":
        """Verify and load an artifact directory; compile and warm up the kernels."""
        with _numba_without_blas():
            scorer = cls(*_read_level(path, "request", "Scorer scores requests"), path=str(Path(path)), **options)
            compile_sections()  # before the first kernel that slices the packed model compiles
            if warm_up:
                for explain in (False, True):
                    scorer.score_request("GET", "/warm-up?a=1", {"User-Agent": "warm-up"}, b"b=2", explain=explain)
                scorer._unknown_parameters("GET", "/warm-up?a=1", b"b=2")  # compiled now, not at a first explanation
                scorer._code_like_values("GET", "/warm-up?a=1", b"b=2")
                scorer._novel_classes("GET", "/warm-up?a=1", b"b=2")
        return scorer

    # --- features ---
    def _fields(self, method, target, headers, body):
        if type(target) is not str:
            target = _as_text(target)
        if not target.startswith("/"):
            target = _ABSOLUTE_URI.sub("", target, count=1)
        if body and self.uses_bodies and self.max_body_bytes:
            body = _as_text(body[: self.max_body_bytes]).encode("utf-8", "surrogatepass")
        else:
            body = b""
        user_agent, referer = _user_agent_and_referer(headers)
        return (METHOD_CODES.get(method, METHOD_OTHER), target.encode("utf-8", "surrogatepass"), body,
                user_agent.encode("utf-8", "surrogatepass"), bool(referer) and referer != "-")

    def _masked_fields(self, method, target, headers, body):
        """:meth:`_fields` with secrets masked as ingest masks them (the score kernels mask their own copy):
        what explanations and session facts read, so they name what the features saw."""
        code, target_bytes, body_bytes, agent, has_referer = self._fields(method, target, headers, body)
        return code, mask_secret_bytes(target_bytes), mask_secret_bytes(body_bytes), mask_secret_bytes(agent), has_referer

    def request_features(self, method: str | None, target, headers=None, body=b"") -> np.ndarray:
        """The model's feature row for one request (float64, in ``feature_names`` order)."""
        row = np.zeros(N_FEATURES)
        features_one(*self._fields(method, target, headers, body), *self._packed, row)
        return row

    # --- scores ---
    def score_features(self, row: np.ndarray) -> float:
        return score_packed_row(np.asarray(row, dtype=np.float64), *self._packed[1:])

    def score_batch(self, features: np.ndarray) -> np.ndarray:
        """Scores of a (n, n_features) matrix, in parallel over rows."""
        rows = sanitize(np.atleast_2d(features))
        if rows.shape[1] != len(self.feature_names):
            raise ValueError(f"expected {len(self.feature_names)} features per row, got {rows.shape[1]}")
        out = np.empty(rows.shape[0])
        perfect_scores(rows, *self._trees, self._depth, self._normaliser, out)
        # the evidence from the float64 rows, as score_one reads them (the forest's copy is float32)
        combine_batch(np.ascontiguousarray(np.atleast_2d(features), dtype=np.float64), self._surprise, self._shape, out)
        return out

    def evidence(self, row: np.ndarray) -> tuple[tuple[str, float], ...]:
        """(structural evidence, its score weight) that a feature row shows."""
        flags = np.empty(N_EVIDENCE, dtype=np.bool_)
        evidence_flags(np.asarray(row, dtype=np.float64), flags)
        return tuple((EVIDENCE_NAMES[k], float(self._surprise[k])) for k in range(N_EVIDENCE) if flags[k])

    def score_class(self, score: float) -> str:
        if score != score:
            return "error"
        likely_clean, likely_attack, attack = self._thresholds
        if score >= likely_attack:
            return "attack" if score >= attack else "likely_attack"
        return "likely_clean" if score >= likely_clean else "clean"

    def score_request(self, method: str | None, target, headers=None, body=b"", client=None, ts=None,
                      *, explain: bool = False) -> ScoreResult:
        """Score one request from its raw fields (target = path with query string)."""
        try:
            if explain:
                row = self.request_features(method, target, headers, body)
                score = self.score_features(row)
                return ScoreResult(score, self.score_class(score), self._explain(row, score, (method, target, body)))
            score = score_one(*self._fields(method, target, headers, body), *self._packed)
            return _new_tuple(ScoreResult, (score, self.score_class(score), ()))  # half the cost of ScoreResult()
        except Exception:
            if not self.fail_open:
                raise
            with self._lock:
                self.errors += 1
            return ScoreResult(float("nan"), "error", ())

    def _unknown_parameters(self, method, target, body) -> list[str]:
        """Names of the request's parameters its (known) endpoint never had in training, shortened and
        escaped: they come from the attacker."""
        code, target_bytes, body_bytes, _, _ = self._masked_fields(method, target, None, body)
        path, _, query = target_bytes.partition(b"?")
        endpoint = endpoint_key(code, url_decode(np.frombuffer(path, np.uint8), False))
        names = []
        for piece in (query + b"&" + body_bytes).split(b"&"):
            if piece:
                name = url_decode(np.frombuffer(piece.split(b"=", 1)[0], np.uint8), True)
                name_hash = np.uint64(fnv1a(name, 0, name.size, FNV_OFFSET))  # numba hands uint64 back as int
                if lookup(self._param_keys, param_key(endpoint, name_hash)) < 0:
                    text = bytes(name).decode("utf-8", "replace")
                    names.append(repr(text[:40] + ("..." if len(text) > 40 else "")))
        return names

    def _novel_classes(self, method, target, body) -> list[tuple[str, str, tuple[str, ...]]]:
        """(parameter name, its kind, character classes it never carried in training) of each value of a
        known parameter that holds such classes; names shortened and escaped (they come from the attacker)."""
        code, target_bytes, body_bytes, _, _ = self._masked_fields(method, target, None, body)
        path, _, query = target_bytes.partition(b"?")
        path_decoded, _, data, offsets, count = request_params(
            np.frombuffer(path, np.uint8), np.frombuffer(query, np.uint8), np.frombuffer(body_bytes, np.uint8))
        endpoint = endpoint_key(code, path_decoded)
        pieces = [p for raw in (query, body_bytes) for p in raw.split(b"&") if p]
        found = []
        for k in range(min(count, len(pieces))):
            name = url_decode(np.frombuffer(pieces[k].split(b"=", 1)[0], np.uint8), True)
            slot = lookup(self._param_keys, param_key(endpoint, np.uint64(fnv1a(name, 0, name.size, FNV_OFFSET))))
            if slot < 0:
                continue
            row = self._param_index[slot]
            if self._value_kind[row] == NOT_PROFILED:
                continue
            new = int(value_classes(data, offsets[k], offsets[k + 1])) & ~int(self._seen_classes[row])
            if new:
                classes = tuple(CHAR_CLASS_NAMES[c] for c in range(len(CHAR_CLASS_NAMES)) if new >> c & 1)
                found.append((repr(_short(bytes(name))), VALUE_KIND_NAMES[self._value_kind[row]], classes))
        return found

    def _code_like_values(self, method, target, body) -> list[tuple[str, float, tuple[str, ...]]]:
        """(where, code-likeness, token classes that weigh towards code) of each parameter value,
        most code-like first; names shortened and escaped (they come from the attacker). Read from the raw request,
        as the code-likeness feature is (secrets included): only names and token classes are quoted, never a value."""
        _, target_bytes, body_bytes, _, _ = self._fields(method, target, None, body)
        path, _, query = target_bytes.partition(b"?")
        logits = np.empty(64)
        n = value_code_logits(np.frombuffer(path, np.uint8), np.frombuffer(query, np.uint8),
                              np.frombuffer(body_bytes, np.uint8), self._code_weights, self._shape[CODE_BIAS], logits)
        pieces = [p for raw in (query, body_bytes) for p in raw.split(b"&") if p]
        names = [repr(_short(bytes(url_decode(np.frombuffer(p.split(b"=", 1)[0], np.uint8), True)))) for p in pieces]
        values = [bytes(url_decode(np.frombuffer(p.split(b"=", 1)[1] if b"=" in p else b"", np.uint8), True))
                  for p in pieces]
        found = [(f"parameter {names[k]}", float(logits[k]), self._code_classes(values[k]))
                 for k in range(min(n, len(names)))]
        return sorted(found, key=lambda item: -item[1])

    def _code_classes(self, value: bytes, top: int = 3) -> tuple[str, ...]:
        """The token classes of a value whose weights push it most towards code."""
        counts = np.zeros(N_CLASSES, dtype=np.int64)
        bigrams = np.empty(MAX_TOKENS + 2, dtype=np.int64)
        m = code_features(np.frombuffer(value, np.uint8), counts, bigrams, np.empty(MAX_TOKENS + 1, np.int64),
                          np.zeros(N_BIGRAM_CLASSES * N_BIGRAM_CLASSES, np.bool_))
        weight = {}
        for c in np.flatnonzero(counts):
            weight[CLASS_NAMES[c]] = weight.get(CLASS_NAMES[c], 0.0) + self._code_weights[c] * np.log1p(counts[c])
        for b in bigrams[:m]:
            first, second = divmod(int(b), N_BIGRAM_CLASSES)
            label = " then ".join(CLASS_NAMES[c] if c < N_CLASSES else ("start", "end")[c - N_CLASSES]
                                  for c in (first, second))
            weight[label] = weight.get(label, 0.0) + self._code_weights[N_CLASSES + b]
        return tuple(name for name, w in sorted(weight.items(), key=lambda item: -item[1])[:top] if w > 0)

    def _explain(self, row: np.ndarray, score: float, request: tuple = (), top: int = 5) -> tuple:
        """Evidence first: structural (named, with its weight) and code-like values (the parameter and the token
        classes); "unusual, no attack evidence" when there is none; then the features whose replacement by
        the training median lowers the score most."""
        changes = []
        for name, weight in self.evidence(row):
            if weight > 0 and name in EVIDENCE_NAMES[:N_STRUCTURAL]:
                changes.append((name, 1.0, weight))
                if name == EVIDENCE_NAMES[1] and request:
                    changes += [(f"unknown parameter {p}", 1.0, weight) for p in self._unknown_parameters(*request)[:3]]
        code = code_evidence(row, self._shape)
        found = self._code_like_values(*request) if code > 0 and request else []
        if found:
            where, z, classes = found[0]
            changes.append((f"code-like value in {where}: " + ", ".join(classes), z, code))
        novel = [name for name, weight in self.evidence(row) if name in EVIDENCE_NAMES[N_STRUCTURAL:] and weight > 0]
        if (not changes and score >= self._thresholds[0]) or (novel and not changes):
            changes.append(("unusual, no attack evidence", score, 0.0))
        if novel:  # unusualness, bent below the ceiling: its share of the score is what removing it takes away
            probe = row.copy()
            probe[NOVEL_CLASSES:] = 0.0
            lift = score - self.score_features(probe)
            named = (self._novel_classes(*request) if request else [])[:3]
            changes += [(f"character class new to a {kind} parameter: {where} never held " + ", ".join(classes),
                         float(len(classes)), lift) for where, kind, classes in named] or \
                [(name, 1.0, lift) for name in novel]
        for j, name in enumerate(self.feature_names[:NOVEL_CLASSES]):  # (the new classes are named above)
            if row[j] == self._median[j]:
                continue
            probe = row.copy()
            probe[j] = self._median[j]
            changes.append((name, float(row[j]), score - self.score_features(probe)))
        changes.sort(key=lambda item: (item[0] != "unusual, no attack evidence", -item[2]))
        return tuple(c for c in changes[:top] if c[2] > 0 or c[0] == "unusual, no attack evidence")


def _short(name: bytes) -> str:
    text = name.decode("utf-8", "replace")
    return text[:40] + ("..." if len(text) > 40 else "")


def score_class_names() -> Sequence[str]:
    return _CLASSES


class SessionScorer:
    """A session-level model: scores each client's session so far, as it unfolds.

    ``client`` keys the session state (pass what the request model's client key is
    built from, e.g. a pseudonymized IP + User-Agent); ``ts`` is epoch seconds
    (default: now). Report statuses with :meth:`observe_response` (or pass ``status=``
    when it is known, replaying a log) so error and 404 ratios count. Each
    :meth:`score_request` gives the session's bot score and reasons so far
    (:class:`SessionResult`), the value ``waflens score --level session`` gives the
    same requests. Memory: see :class:`waflens.runtime.session_state.SessionTracker`.
    """

    def __init__(self, arrays: dict[str, np.ndarray], manifest: dict, *, max_clients: int = 100_000,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, path: str | None = None):
        from waflens.runtime.session_state import SESSION_FEATURE_NAMES, SessionTracker

        self.manifest = manifest
        self.path = path
        self.max_body_bytes = max_body_bytes
        self.uses_bodies = True
        self.errors = 0
        self._lock = threading.Lock()
        checked = check_session_model(arrays, manifest, path or "the artifact", SESSION_FEATURE_NAMES)
        spec = manifest["feature_spec"]
        self.feature_names = tuple(spec["names"])
        self._tables = build_token_tables(spec["lists"])
        self._trees, self._depth = _perfect(checked.forest), checked.forest.depth
        self._normaliser = float(arrays["forest_normaliser"])
        self._thresholds = checked.thresholds
        self._feedback = _load_feedback(arrays, checked.feedback, len(checked.classes))
        self.classes = checked.classes if self._feedback else ()
        self._bot = checked.bot
        self._live_bot = None
        if self._bot is not None:
            from waflens.runtime.bot_score import LiveBotScore

            evidence = manifest.get("bot_score", {}).get("evidence", [])
            self._live_bot = LiveBotScore(self._bot, [e.get("reason", e.get("feature", "?")) for e in evidence],
                                          list(self.feature_names))
        self.tracker = SessionTracker(float(manifest.get("training", {}).get("gap_seconds", 1800.0)), max_clients)

    score_class = Scorer.score_class
    _fields = Scorer._fields
    _masked_fields = Scorer._masked_fields

    @classmethod
    def load(cls, path: str | os.PathLike, *, warm_up: bool = True, **options) -> "SessionScorer":
        with _numba_without_blas():
            scorer = cls(*_read_level(path, "session", "SessionScorer scores sessions"), path=str(Path(path)),
                         **options)
            if warm_up:
                scorer.score_request("GET", "/warm-up?a=1", {"User-Agent": "warm-up"}, b"", client=("warm-up",),
                                     ts=0.0)
            scorer.tracker.expire(float("inf"))
        return scorer

    def request_facts(self, method, target, headers=None, body=b""):
        from waflens.runtime.kernels.request import request_features, url_decode
        from waflens.runtime.session_state import RequestFacts, referer_path, sketch_key

        code, target_bytes, body_bytes, agent, has_referer = self._masked_fields(method, target, headers, body)
        pointed_at = referer_path(_user_agent_and_referer(headers)[1]) if has_referer else None
        path, _, query = target_bytes.partition(b"?")
        row = np.zeros(N_REQUEST_FEATURES)
        request_features(code, np.frombuffer(path, np.uint8), np.frombuffer(query, np.uint8),
                         np.frombuffer(body_bytes, np.uint8), np.frombuffer(agent, np.uint8), has_referer,
                         *self._tables, row)
        names = tuple(sketch_key(piece.split(b"=", 1)[0]) for raw in (query, body_bytes) for piece in raw.split(b"&")
                      if piece)
        return RequestFacts(row[_IS_POST] == 1, method == "HEAD", row[_IS_RARE] == 1, int(row[_EXT_CLASS]),
                            row[_ATTACK_TOKENS], row[_PAYLOAD_LEN], row[_ENTROPY], row[_SPECIAL_RATIO],
                            row[_HAS_REFERER] == 1, int(row[_UA_CLASS]),
                            sketch_key(bytes(url_decode(np.frombuffer(path, np.uint8), False))), sketch_key(agent),
                            names, method == "GET", int(row[_PATH_DEPTH]), hash(path),
                            None if pointed_at is None else hash(pointed_at.encode("utf-8", "surrogatepass")))

    def session_features(self, method, target, headers=None, body=b"", client=None, ts=None,
                         status: int | None = None) -> np.ndarray:
        """Add the request (and its status, when known) to its client's session; return the session's features."""
        facts = self.request_facts(method, target, headers, body)
        key = client if client is not None else facts.user_agent_key
        return self.tracker.observe_request(key, _epoch(ts), facts, status)

    def observe_response(self, client, status: int | None) -> None:
        self.tracker.observe_response(client, status)

    def score_features(self, row: np.ndarray) -> float:
        return self._score_and_probabilities(row)[0]

    def _score_and_probabilities(self, row: np.ndarray) -> tuple[float, np.ndarray | None]:
        """The session score and the feedback model's class probabilities (None without one)."""
        # single-threaded on purpose: a parallel kernel per request would wake numba's thread pool
        u = score_row(np.asarray(row, dtype=np.float64), *self._trees, self._depth, self._normaliser)
        if self._feedback is None:
            return u, None
        probs = np.empty(len(self.classes))
        return blend_one(sanitize(row[None, :])[0], u, *self._feedback, probs), probs

    def family_scores(self, row: np.ndarray) -> dict[str, float]:
        """Per-class probabilities of the feedback model (attack families, benign, unlabelled); {} without one."""
        if self._feedback is None:
            return {}
        probs = np.empty(len(self.classes))
        class_probabilities(sanitize(row[None, :])[0], *self._feedback[:6], probs)
        return dict(zip(self.classes, probs.tolist()))

    def class_probabilities_batch(self, features: np.ndarray) -> np.ndarray:
        """(n, len(classes)) probabilities of the feedback model's classes; (n, 0) without one."""
        rows = sanitize(np.atleast_2d(features))
        probs = np.empty((rows.shape[0], len(self.classes)))
        if self._feedback is not None:
            blend_batch(rows, np.zeros(rows.shape[0]), *self._feedback, np.empty(rows.shape[0]), probs)
        return probs

    def score_batch(self, features: np.ndarray) -> np.ndarray:
        """Scores of a (n, n_features) matrix of session features, in parallel over rows."""
        rows = sanitize(np.atleast_2d(features))
        if rows.shape[1] != len(self.feature_names):
            raise ValueError(f"expected {len(self.feature_names)} features per row, got {rows.shape[1]}")
        u = np.empty(rows.shape[0])
        perfect_scores(rows, *self._trees, self._depth, self._normaliser, u)
        if self._feedback is None:
            return u
        out = np.empty(rows.shape[0])
        blend_batch(rows, u, *self._feedback, out, np.empty((rows.shape[0], len(self.classes))))
        return out

    @property
    def has_bot_score(self) -> bool:
        return self._bot is not None

    def bot_scores(self, features: np.ndarray) -> np.ndarray:
        """Bot scores 1..99 (low = automated) of a (n, n_features) matrix; see runtime/bot_score.py."""
        from waflens.runtime.bot_score import bot_scores, with_labels

        if self._bot is None:
            raise ArtifactError(f"{self.path or 'this model'} has no bot score: retrain it with this waflens version")
        rows = np.atleast_2d(features)
        scores = bot_scores(rows, self._bot, self._live_bot.tables)
        return with_labels(scores, self.class_probabilities_batch(rows), tuple(self.classes)) if self.classes \
            else scores

    def bot_reasons(self, row: np.ndarray, top: int = 3) -> list[str]:
        """The strongest evidence of automation in one session's features, readable (may be empty)."""
        from waflens.runtime.bot_score import bot_reasons

        if self._bot is None:
            return []
        evidence = self.manifest.get("bot_score", {}).get("evidence", [])
        return bot_reasons(row, self._bot, [e.get("reason", e.get("feature", "?")) for e in evidence],
                           list(self.feature_names), top)

    def bot_score(self, row: np.ndarray, probabilities: np.ndarray | None = None) -> tuple[int, tuple[str, ...]]:
        """(bot score, reasons) of one session's features, as :meth:`bot_scores` and :meth:`bot_reasons` give
        them; (0, ()) when the model has no bot score. ``probabilities``: the feedback model's, when known."""
        if self._live_bot is None:
            return 0, ()
        score, reasons = self._live_bot.score(row)
        if self.classes:
            from waflens.runtime.bot_score import with_labels_one

            if probabilities is None:   # the batch's per-row kernel, without waking its thread pool
                probabilities = np.empty(len(self.classes))
                class_probabilities(sanitize(row[None, :])[0], *self._feedback[:6], probabilities)
            score = with_labels_one(score, probabilities.tolist(), self.classes)
        return score, reasons

    def score_request(self, method, target, headers=None, body=b"", client=None, ts=None,
                      status: int | None = None) -> SessionResult:
        """Add the request to its client's session; the session's score and bot score so far."""
        try:
            row = self.session_features(method, target, headers, body, client, ts, status)
            score, probabilities = self._score_and_probabilities(row)
            return SessionResult(score, self.score_class(score), (), *self.bot_score(row, probabilities))
        except Exception:
            with self._lock:
                self.errors += 1
            return SessionResult(float("nan"), "error", ())


def _epoch(ts) -> float:
    import time as _time
    from datetime import datetime as _datetime, timezone as _timezone

    if ts is None:
        return _time.time()
    if isinstance(ts, _datetime):
        return (ts if ts.tzinfo else ts.replace(tzinfo=_timezone.utc)).timestamp()
    return float(ts)
