"""The session feature matrix: how a session behaves and what it asked for.

Numeric session features (``waflens.runtime.feature_spec``), log-compressed where they are
counts or rates and robust-scaled, sit beside a compact view of the requests'
content: character 3-5-gram TF-IDF of the session's decoded paths and queries,
reduced with TruncatedSVD. So an SQL-injection campaign and a scraper land apart
even at similar request rates. A session's document ends with its client's targets
across the clustered sessions, and one more column counts the client's sessions, so
the many one-request sessions of a low-and-slow bot read as one pattern; for the same
reason the numeric features are half the session's own, half its client's mean.
Non-finite values become 0 before scaling. Last comes the payload view
(:mod:`waflens.clustering.payload_view`): the n-grams above mostly see endpoints, so campaigns
that share them and differ only in payload would be one cluster without it.
"""

from __future__ import annotations

from importlib import resources
from typing import NamedTuple

import duckdb
import numpy as np
from scipy import sparse
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.preprocessing import RobustScaler

from waflens.clustering.payload_view import class_entropy, inverse_document_frequency, payload_counts, tfidf_rows
from waflens.data.feature_spec import feature_names

LOG_COMPRESSED = {"n_requests", "duration_s", "request_rate", "iat_mean", "iat_std", "max_payload_len",
                  "mean_attack_tokens", "distinct_params", "ua_changes"}
MAX_TARGETS_PER_SESSION = 12
DOCUMENT_CHUNK = 50_000  # sessions per DuckDB query when building documents
# Between a document's targets: ASCII unit separator, whitespace to str.split (so the n-grams see words
# as before) but not inside a decoded target's own spaces (so the payload view counts requests).
TARGET_SEPARATOR = "\x1f"
FIRST_TARGETS_SQL = resources.files("waflens.clustering").joinpath("sql", "first_targets.sql").read_text(encoding="utf-8")
CONTENT_WEIGHT = 1.5  # the content block's weight against the numeric block
# Weight of log(sessions of the session's client): low-and-slow bots make many short sessions per
# client. With the client's targets in each session's document it lifts a slow login bot's F1 on
# generated traffic from 0.53 to 1.0 (ARI over attack sessions 0.59 -> 0.98).
CLIENT_WEIGHT = 1.0
# Share of a session's numeric features taken from the mean over its client's sessions. A slow bot's
# one-request sessions differ in what that one request hit (status, method, extension); its client's
# mean does not. On generated traffic (benchmarks/clustering.py, seeds 7-16) 0.5 keeps a slow login
# bot in one cluster (seed 14: two halves, F1 0.675 -> 1.0) and apart from credential stuffing in a
# window where both are small (seed 9: the stuffing is flagged emerging a window earlier).
CLIENT_BLEND = 0.5
# The payload view (waflens.clustering.payload_view): a session's attack-token mix, reduced to PAYLOAD_COMPONENTS,
# unit rows scaled by PAYLOAD_WEIGHT x the share of the session's targets that carry tokens (so a
# session without payloads sits at 0 and a scanner with a few payloads among probes near it). These
# columns skip the PCA before HDBSCAN (waflens.clustering.reduction.reduce_for_hdbscan): they are few sessions'
# variance and would be cut. 8 components hold the eight families apart. Weight: the families of
# data/synthetic_neutral.py (same pace, endpoints, statuses, agents) on 60k requests, seed 7: without
# the view ARI 0.00 (all in one cluster); weight 4: ARI 0.67 (sqli, xss and scanner merged within
# HDBSCAN's merge distance 1.5); weight 8: ARI 0.96; 12: no better. With MIXED_* and own targets
# (benchmarks/clustering.py, seeds 7-16, worst seed): neutral ARI 0.966, F1 0.933; over the real
# benign logs ARI 0.940, F1 0.884; behaviour-coupled campaigns unchanged (ARI >= 0.969). With command names as
# one token and strength over targets (payload_view.COLLAPSED, payload_counts): neutral ARI 0.973, F1 0.933;
# real ARI 0.959, F1 0.909 (rce 0.829 -> 0.957); coupled ARI 0.967 (sqli_scan seed 9 F1 0.772, as before).
# A token counted once per target (payload_view.payload_counts), seeds 7-9 only: coupled worst F1 0.772 -> 0.939
# (sqli_scan seed 9 0.772 -> 1.0; cmd_injection seed 8 1.0 -> 0.986, one mixed session to noise), neutral
# worst F1 0.943 -> 0.972, ARI 0.978 -> 0.985 (scanner 0.943 -> 0.972; rfi, xss seed 7 1.0 -> 0.991).
PAYLOAD_COMPONENTS = 8
PAYLOAD_WEIGHT = 8.0
# Behaviour of sessions that carry payloads is shrunk by this x their payload share: campaigns that
# differ only in payload separate on it, and one family's clients with different agents or pace stay one.
# Not tuned: 0.5 and 0.9 gave the same clusters on neutral seed 7 (weight 8); 0.5 keeps more behaviour.
BEHAVIOUR_DAMPING = 0.5
# A session whose tokens spread over many classes (a scanner mixing families) is a mix, not a direction:
# its direction is shrunk by d = clip((class entropy - MIXED_FROM) / MIXED_SPAN, 0, 1) and d goes into one
# more column, so scanners gather at one place instead of scattering between the families they mix.
# Class entropy per client on neutral traffic: one family 0.03-0.66 (java highest), scanners 0.66-0.91.
# Seed 7: scanner F1 0.70 (24 of 54 sessions noise) -> 0.97.
MIXED_FROM = 0.55
MIXED_SPAN = 0.25


class SessionMatrix(NamedTuple):
    session_ids: np.ndarray
    numeric: np.ndarray       # raw session features (for profiles' effect sizes)
    X: np.ndarray             # the clustering matrix
    names: list[str]


class Clients(NamedTuple):
    """Who each of some sessions' clients is, among those sessions (see :func:`session_clients`)."""
    keys: np.ndarray      # the client key of each session (object array)
    index: np.ndarray     # each session's client numbered 0 .. clients - 1
    sessions: np.ndarray  # how many of the sessions each session's client has (float; 1: seen once)


def session_documents(con: duckdb.DuckDBPyConnection, session_ids: np.ndarray,
                      clients: Clients | None = None, own: list | None = None) -> list[str]:
    """One text per session: its distinct decoded path?query strings (TARGET_SEPARATOR between), then its client's (bounded, in order).

    The client's part — what the same client asked for across the given sessions — is what makes a
    low-and-slow bot one pattern: each of its sessions is a request or two, to different targets,
    but every session of it carries the same list of targets. A client with one session repeats
    that session's list. ``clients``: :func:`session_clients` of the sessions, when already known.
    ``own``: a list that receives each session's own part alone (the payload view's documents)."""
    session_ids = np.asarray(session_ids, dtype=np.int64)
    clients = session_clients(con, session_ids) if clients is None else clients
    mine, theirs = _first_targets(con, session_ids, clients)
    if own is not None:
        own.extend(mine.get(int(s), "") for s in session_ids)
    return [mine.get(int(s), "") + " " + theirs.get(c, mine.get(int(s), "")) for s, c in zip(session_ids, clients.keys)]


def _first_targets(con: duckdb.DuckDBPyConnection, session_ids: np.ndarray, clients: Clients) -> tuple[dict, dict]:
    """({session id: its first MAX_TARGETS_PER_SESSION distinct targets}, {client key: the same over its
    sessions, for clients with more than one of them}), TARGET_SEPARATOR between targets, in one scan of
    the requests (``sql/first_targets.sql``; two scans, per session and per client, took 4.8 s of the matrix's
    6-16 s at 96k sessions). Sessions go to DuckDB in chunks that never split a client, so memory stays
    bounded (10M requests exceed DuckDB's 1 GB at once)."""
    order = np.argsort(clients.keys, kind="stable")
    session_ids, keys, returning = session_ids[order], clients.keys[order], clients.sessions[order] > 1
    mine: dict = {}
    theirs: dict = {}
    start = 0
    while start < len(session_ids):
        end = min(start + DOCUMENT_CHUNK, len(session_ids))
        while end < len(session_ids) and keys[end] == keys[end - 1]:  # keep a client's sessions together
            end += 1
        for session_id, client_key, targets in _first_targets_of_chunk(con, session_ids[start:end],
                                                                       returning[start:end]):
            if session_id is None:
                theirs[client_key] = targets
            else:
                mine[session_id] = targets
        start = end
    return mine, theirs


def _first_targets_of_chunk(con: duckdb.DuckDBPyConnection, session_ids: np.ndarray, returning: np.ndarray) -> list:
    con.register("wanted_sessions", {"session_id": session_ids, "returning_client": returning})
    try:
        return con.execute(FIRST_TARGETS_SQL, {"max_targets": MAX_TARGETS_PER_SESSION}).fetchall()
    finally:
        con.unregister("wanted_sessions")


def session_clients(con: duckdb.DuckDBPyConnection, session_ids: np.ndarray) -> Clients:
    """The clients of the given sessions, and how many of these sessions each has."""
    con.register("wanted_sessions", {"session_id": session_ids, "position": np.arange(len(session_ids))})
    try:
        rows = con.execute("""SELECT s.client_key FROM wanted_sessions w JOIN sessions s USING (session_id)
                              ORDER BY w.position""").fetchall()
    finally:
        con.unregister("wanted_sessions")
    if len(rows) != len(session_ids):
        raise ValueError("some sessions are not in the sessions table: run `waflens sessionize` first")
    keys = np.array([r[0] for r in rows], dtype=object)
    if len(keys) == 0:
        return Clients(keys, np.zeros(0, dtype=np.int64), np.zeros(0))
    # np.unique's counts, not np.isin: np.isin over strings compares every pair, minutes at 300k sessions
    _, index, counts = np.unique(keys, return_inverse=True, return_counts=True)
    index = index.ravel()
    return Clients(keys, index, counts[index].astype(np.float64))


def _with_client_context(scaled: np.ndarray, clients: Clients) -> np.ndarray:
    """Each session's numeric features blended with the mean over its client's sessions (CLIENT_BLEND).
    A client seen once keeps its own values."""
    if len(clients.keys) == 0 or CLIENT_BLEND == 0.0:
        return scaled
    sums = np.column_stack([np.bincount(clients.index, weights=scaled[:, j]) for j in range(scaled.shape[1])])
    return (1.0 - CLIENT_BLEND) * scaled + CLIENT_BLEND * sums[clients.index] / clients.sessions[:, None]


def build_matrix(con: duckdb.DuckDBPyConnection, session_ids: np.ndarray, numeric: np.ndarray,
                 n_components: int = 16, seed: int = 0, extra_ids: np.ndarray | None = None,
                 extra_numeric: np.ndarray | None = None) -> tuple[SessionMatrix, np.ndarray | None]:
    """The matrix of ``session_ids`` (transforms fitted on them) and, when given, of further sessions
    placed in the same space with the same fitted transforms (for assigning them to a run's clusters)."""
    names = feature_names("session")
    scaler = RobustScaler(quantile_range=(10.0, 90.0))
    values = _clean(numeric)
    scaled = np.clip(scaler.fit_transform(_compress(values, names)), -20, 20)
    clients = session_clients(con, session_ids)
    extra_clients = None if extra_ids is None else session_clients(con, extra_ids)
    blocks, block_names = [_with_client_context(scaled, clients)], list(names)
    extra_blocks = [None if extra_ids is None else _with_client_context(
        np.clip(scaler.transform(_compress(_clean(extra_numeric), names)), -20, 20), extra_clients)]
    if len(session_ids):
        repeat = RobustScaler(quantile_range=(10.0, 90.0))
        blocks.append(CLIENT_WEIGHT * repeat.fit_transform(np.log1p(clients.sessions)[:, None]))
        if extra_ids is not None:
            extra_blocks.append(CLIENT_WEIGHT * repeat.transform(np.log1p(extra_clients.sessions)[:, None]))
        block_names.append("client_sessions")
    own_documents: list[str] = []
    documents = session_documents(con, session_ids, clients, own_documents)
    extra_own: list[str] = []
    if len(session_ids) >= 3 and any(documents):
        vectorizer = RepeatAwareTfidf()
        tfidf = vectorizer.fit(documents)
        if tfidf is not None and tfidf.n_terms > 2:
            k = min(n_components, tfidf.n_terms - 1, len(session_ids) - 1)
            svd = TruncatedSVD(n_components=k, random_state=seed)
            weight = CONTENT_WEIGHT * np.sqrt(scaled.shape[1] / k)
            svd.fit(tfidf.weighted_unique)      # = the SVD of the full matrix: same Gram matrix, fewer rows
            blocks.append(weight * _unit_rows(svd.transform(tfidf.unique)[tfidf.inverse]))
            if extra_ids is not None:
                extra = vectorizer.transform(session_documents(con, extra_ids, extra_clients, extra_own))
                extra_blocks.append(weight * _unit_rows(svd.transform(extra.unique)[extra.inverse]))
            block_names += [f"content_{i}" for i in range(blocks[-1].shape[1])]  # fewer than k when few rows
    # the payload view reads a session's own targets: with its client's beside them, one client's sessions
    # share half their tokens and a family of three clients split in three (coupled xss, seed 13: F1 0.78)
    if extra_ids is not None and not extra_own:
        session_documents(con, extra_ids, extra_clients, extra_own)
    payload = _payload_blocks(own_documents, None if extra_ids is None else extra_own, seed)
    if payload is not None:
        (own, own_strength), extra_payload = payload
        blocks = [b * (1.0 - BEHAVIOUR_DAMPING * own_strength)[:, None] for b in blocks] + [own]
        if extra_payload is not None:
            block, strength = extra_payload
            extra_blocks = [b * (1.0 - BEHAVIOUR_DAMPING * strength)[:, None] for b in extra_blocks] + [block]
        block_names += [f"payload_{i}" for i in range(own.shape[1])]
    matrix = SessionMatrix(np.asarray(session_ids), values, np.hstack(blocks), block_names)
    return matrix, (None if extra_ids is None else np.hstack(extra_blocks))


def _payload_blocks(documents: list[str], extra_documents: list[str] | None, seed: int):
    """((block, strength) of the documents, (block, strength) of the extra documents or None), or None when
    fewer than 3 distinct documents carry attack tokens. See PAYLOAD_WEIGHT."""
    unique, inverse, counts = np.unique(np.asarray(documents, dtype=object), return_inverse=True, return_counts=True)
    inverse = np.asarray(inverse).ravel()
    bag, targets = _bag_of_targets(unique)
    view = payload_counts(bag, targets)
    carrying = view.counts.getnnz(axis=1) > 0
    if carrying.sum() < 3 or len(view.vocabulary) < 3:
        return None
    idf = inverse_document_frequency(view.counts, counts.astype(np.float64))
    rows = tfidf_rows(view.counts, idf)
    k = int(min(PAYLOAD_COMPONENTS, len(view.vocabulary) - 1, carrying.sum() - 1))
    svd = TruncatedSVD(n_components=k, random_state=seed)
    svd.fit(sparse.diags(np.sqrt(counts[carrying].astype(np.float64))) @ rows[carrying])

    def place(view_rows, strength, entropy):
        mixed = np.clip((entropy - MIXED_FROM) / MIXED_SPAN, 0.0, 1.0)
        block = np.hstack([(1.0 - mixed)[:, None] * _unit_rows(svd.transform(view_rows)), mixed[:, None]])
        return PAYLOAD_WEIGHT * strength[:, None] * block, strength

    own = place(rows, view.strength, class_entropy(view.counts, view.vocabulary))
    own = (own[0][inverse], own[1][inverse])
    extra = None
    if extra_documents is not None:
        e_unique, e_inverse = np.unique(np.asarray(extra_documents, dtype=object), return_inverse=True)
        e_bag, e_targets = _bag_of_targets(e_unique)
        e_view = payload_counts(e_bag, e_targets, {t: i for i, t in enumerate(view.vocabulary)})
        block, strength = place(tfidf_rows(e_view.counts, idf), e_view.strength,
                                class_entropy(e_view.counts, view.vocabulary))
        e_inverse = np.asarray(e_inverse).ravel()
        extra = (block[e_inverse], strength[e_inverse])
    return own, extra


class Vectorized(NamedTuple):
    unique: sparse.csr_matrix             # TF-IDF rows of the distinct documents
    inverse: np.ndarray                   # row of each document in ``unique``
    weighted_unique: sparse.csr_matrix    # rows times sqrt(multiplicity): its Gram matrix is the full one's
    n_terms: int


class RepeatAwareTfidf:
    """TF-IDF of character 3-4-grams (``char_wb``, sublinear tf, smooth idf, l2 rows, terms in at
    least 2 documents, the 8,192 most frequent) computed on *distinct* documents only.

    Sessions repeat each other (bots, and shoppers walking the same pages): at 96k generated
    sessions only 30% of the documents are distinct, and tokenizing is what costs; within them
    targets repeat, so n-grams are counted once per distinct target (see :func:`_bag_of_words`). Document
    frequencies and term counts are weighted by how often each document occurs, so the
    result is scikit-learn's ``TfidfVectorizer`` on the full list (up to which of equally
    frequent terms make the ``max_features`` cut: scikit-learn breaks those ties arbitrarily).
    """

    def __init__(self, ngram_range: tuple[int, int] = (3, 4), min_df: int = 2, max_features: int = 8_192):
        self.ngram_range, self.min_df, self.max_features = ngram_range, min_df, max_features

    def fit(self, documents: list[str]) -> Vectorized | None:
        unique, inverse, counts = np.unique(np.asarray(documents, dtype=object), return_inverse=True,
                                            return_counts=True)
        counter = CountVectorizer(analyzer="char_wb", ngram_range=self.ngram_range, dtype=np.float64)
        bag, words = _bag_of_words(unique)
        try:
            matrix = bag @ counter.fit_transform(words)
        except ValueError:  # no n-gram at all
            return None
        presence = matrix.copy()
        presence.data[:] = 1.0
        document_frequency = presence.T @ counts
        term_frequency = matrix.T @ counts
        keep = np.flatnonzero(document_frequency >= self.min_df)
        if len(keep) > self.max_features:  # as scikit-learn: the most frequent terms, in vocabulary order
            keep = np.sort(keep[np.argsort(-term_frequency[keep], kind="stable")[: self.max_features]])
        if len(keep) == 0:
            return None
        self.terms = counter.get_feature_names_out()[keep]
        self.idf = np.log((1.0 + len(documents)) / (1.0 + document_frequency[keep])) + 1.0
        self.counter = CountVectorizer(analyzer="char_wb", ngram_range=self.ngram_range, dtype=np.float64,
                                       vocabulary=self.terms)
        return self._weigh(matrix[:, keep], inverse, counts)

    def transform(self, documents: list[str]) -> Vectorized:
        unique, inverse, counts = np.unique(np.asarray(documents, dtype=object), return_inverse=True,
                                            return_counts=True)
        bag, words = _bag_of_words(unique)
        return self._weigh(bag @ self.counter.transform(words), inverse, counts)

    def _weigh(self, matrix, inverse: np.ndarray, counts: np.ndarray) -> Vectorized:
        from sklearn.preprocessing import normalize

        matrix = sparse.csr_matrix(matrix, dtype=np.float64)
        matrix.data = 1.0 + np.log(matrix.data)                  # sublinear tf
        matrix = normalize(matrix @ sparse.diags(self.idf), norm="l2").astype(np.float32)
        weighted = sparse.diags(np.sqrt(counts).astype(np.float32)) @ matrix
        return Vectorized(matrix.tocsr(), np.asarray(inverse).ravel(), weighted.tocsr(), matrix.shape[1])


def _bag_of_words(documents) -> tuple[sparse.csr_matrix, list[str]]:
    """(documents x distinct words) counts, and the words. ``char_wb`` n-grams never span words, so a
    document's n-gram counts are this times the words' own: each distinct target is analysed once."""
    index: dict[str, int] = {}
    indices: list[int] = []
    indptr = [0]
    for document in documents:
        indices.extend(index.setdefault(word, len(index)) for word in document.split())
        indptr.append(len(indices))
    bag = sparse.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(indptr) - 1, len(index)))
    bag.sum_duplicates()
    return bag, list(index)


def _bag_of_targets(documents) -> tuple[sparse.csr_matrix, list[str]]:
    """(documents x distinct targets) counts, and the targets: documents list targets separated by
    TARGET_SEPARATOR (:func:`session_documents`); a target sent with that byte in it reads as two."""
    index: dict[str, int] = {}
    indices: list[int] = []
    indptr = [0]
    for document in documents:
        indices.extend(index.setdefault(t, len(index)) for t in document.split(TARGET_SEPARATOR) if t.strip())
        indptr.append(len(indices))
    bag = sparse.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(indptr) - 1, len(index)))
    bag.sum_duplicates()
    return bag, list(index)


def _clean(numeric) -> np.ndarray:
    return np.nan_to_num(np.asarray(numeric, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)


def _compress(values: np.ndarray, names: list[str]) -> np.ndarray:
    out = values.copy()
    for j, name in enumerate(names):
        if name in LOG_COMPRESSED:
            out[:, j] = np.log1p(np.maximum(out[:, j], 0.0))
    return out


def _unit_rows(content: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(content, axis=1, keepdims=True)
    return np.divide(content, norms, out=np.zeros_like(content), where=norms > 0)
