"""The session feature matrix: how a session behaves and what it asked for.

Numeric session features (``data/feature_spec.py``), log-compressed where they are
counts or rates and robust-scaled, sit beside a compact view of the requests'
content: character 3-5-gram TF-IDF of the session's decoded paths and queries,
reduced with TruncatedSVD. So an SQL-injection campaign and a scraper land apart
even at similar request rates. Non-finite values become 0 before scaling.
"""

from __future__ import annotations

from typing import NamedTuple

import duckdb
import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import RobustScaler

from data.feature_spec import feature_names

LOG_COMPRESSED = {"n_requests", "duration_s", "request_rate", "iat_mean", "iat_std", "max_payload_len",
                  "mean_attack_tokens", "distinct_params", "ua_changes"}
MAX_TARGETS_PER_SESSION = 12
CONTENT_WEIGHT = 1.5  # the content block's weight against the numeric block


class SessionMatrix(NamedTuple):
    session_ids: np.ndarray
    numeric: np.ndarray       # raw session features (for profiles' effect sizes)
    X: np.ndarray             # the clustering matrix
    names: list[str]


def session_documents(con: duckdb.DuckDBPyConnection, session_ids: np.ndarray) -> list[str]:
    """One text per session: its distinct decoded path?query strings (bounded), in order."""
    con.register("wanted_sessions", {"session_id": session_ids})
    try:
        rows = con.execute(
            f"""WITH targets AS (
                    SELECT session_id,
                           path_decoded || CASE WHEN query_decoded <> '' THEN '?' || query_decoded ELSE '' END AS target,
                           min(request_id) AS first_id
                    FROM requests WHERE session_id IN (SELECT session_id FROM wanted_sessions)
                    GROUP BY 1, 2
                ), firsts AS (
                    SELECT * FROM targets
                    QUALIFY row_number() OVER (PARTITION BY session_id ORDER BY first_id) <= {MAX_TARGETS_PER_SESSION}
                )
                SELECT session_id, string_agg(target, ' ' ORDER BY first_id) FROM firsts GROUP BY session_id"""
        ).fetchall()
    finally:
        con.unregister("wanted_sessions")
    texts = dict(rows)
    return [texts.get(int(s), "") for s in session_ids]


def build_matrix(con: duckdb.DuckDBPyConnection, session_ids: np.ndarray, numeric: np.ndarray,
                 n_components: int = 16, seed: int = 0) -> SessionMatrix:
    names = feature_names("session")
    values = np.nan_to_num(np.asarray(numeric, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    transformed = values.copy()
    for j, name in enumerate(names):
        if name in LOG_COMPRESSED:
            transformed[:, j] = np.log1p(np.maximum(transformed[:, j], 0.0))
    scaled = RobustScaler(quantile_range=(10.0, 90.0)).fit_transform(transformed)
    scaled = np.clip(scaled, -20, 20)
    blocks, block_names = [scaled], list(names)
    documents = session_documents(con, session_ids)
    if len(session_ids) >= 3 and any(documents):
        try:
            tfidf = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 4), min_df=2, max_features=8_192,
                                    sublinear_tf=True, dtype=np.float32).fit_transform(documents)
        except ValueError:  # no n-gram occurs twice
            tfidf = None
        if tfidf is not None and tfidf.shape[1] > 2:
            k = min(n_components, tfidf.shape[1] - 1, len(session_ids) - 1)
            content = TruncatedSVD(n_components=k, random_state=seed).fit_transform(tfidf)
            norms = np.linalg.norm(content, axis=1, keepdims=True)
            content = np.divide(content, norms, out=np.zeros_like(content), where=norms > 0)
            blocks.append(CONTENT_WEIGHT * np.sqrt(scaled.shape[1] / k) * content)
            block_names += [f"content_{i}" for i in range(k)]
    return SessionMatrix(np.asarray(session_ids), values, np.hstack(blocks), block_names)
