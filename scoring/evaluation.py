"""How a candidate model does on the held-out latest window, beside production: the promotion gates,
the shadow diff of alerts, alert rates and holdout metrics (``waflens retrain`` runs it; the JIT warm-up
runs it on a tiny model to compile the same kernels).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Callable

import duckdb
import numpy as np

from waflens.scoring.gates import GateConfig

SHADOW_EXAMPLES = 5


DEFAULT_HOLDOUT_FRACTION = 0.25  # retrain holds the latest quarter of sessions out of training, to judge the candidate


def held_out_labels(con: duckdb.DuckDBPyConnection, fraction: float = DEFAULT_HOLDOUT_FRACTION
                    ) -> tuple[int, int, datetime | None]:
    """(analyst-labelled sessions, how many of them the next retrain holds out, the split): labels on the
    latest window judge the candidate but reach training only when newer traffic moves the split past them."""
    from waflens.scoring.feedback import analyst_classes

    labelled = analyst_classes(con)
    split = holdout_split(con, fraction)
    if not labelled or split is None:
        return len(labelled), 0, split
    ids = np.fromiter(labelled, dtype=np.int64)
    held = con.execute("SELECT count(*) FROM sessions WHERE list_contains($ids, session_id) AND NOT end_ts < $split",
                       {"ids": ids.tolist(), "split": split}).fetchone()[0]
    return len(labelled), int(held), split


def holdout_split(con: duckdb.DuckDBPyConnection, fraction: float) -> datetime | None:
    """Sessions starting at or after this time are held out (None: no timestamps, nothing held out)."""
    if not 0 < fraction < 1:
        return None
    return con.execute("SELECT quantile_disc(start_ts, $q) FROM sessions WHERE start_ts IS NOT NULL",
                       {"q": 1.0 - fraction}).fetchall()[0][0]


EVALUATION_STEPS = ("holdout scored", "labelled holdout", "time holdout", "parity", "latency", "score sanity")


def _no_step(done: str) -> None:
    pass


def evaluate(con: duckdb.DuckDBPyConnection, candidate: Path, production: Path | None,
             split: datetime | None, config: GateConfig, step: Callable[[str], None] = _no_step) -> dict:
    """Gates, shadow diff, alert rates and holdout metrics of the candidate against production (``step``
    is told after each of EVALUATION_STEPS)."""
    from waflens.data.session_matrix import session_feature_matrix
    from waflens.runtime.artifact import ArtifactError
    from waflens.scoring.feedback import BENIGN, UNLABELLED, session_classes
    from waflens.scoring.gates import (gate, labelled_holdout_gate, latency_gate, parity_gate, score_sanity_gate,
                               time_holdout_gate)
    from waflens.runtime.scorer import Scorer, SessionScorer

    ids, X = session_feature_matrix(con, "$split IS NULL OR s.start_ts >= $split", {"split": split})
    # no warm-up: it compiles the one-request path of a session model (a minute on a cold numba cache),
    # which the gates never call; they score batches
    cand_session = SessionScorer.load(candidate / "session", warm_up=False)
    cand_scores = cand_session.score_batch(X) if len(ids) else np.empty(0)
    cand_threshold = cand_session.manifest["thresholds"]["likely_attack"]
    prod_session, prod_scores, prod_threshold, gates = None, None, None, []
    if production is not None:
        try:
            prod_session = SessionScorer.load(production / "session", warm_up=False)
            prod_scores = prod_session.score_batch(X) if len(ids) else np.empty(0)
            prod_threshold = prod_session.manifest["thresholds"]["likely_attack"]
        except (ArtifactError, FileNotFoundError) as error:
            gates.append(gate("production_loads", None, detail=f"production {production} cannot be compared: {error}"))
    step(EVALUATION_STEPS[0])
    classes = session_classes(con, ids) if len(ids) else np.empty(0, dtype=object)
    labelled = classes != UNLABELLED
    y = (classes[labelled] != BENIGN).astype(int)
    gates += labelled_holdout_gate(y, cand_scores[labelled], None if prod_scores is None else prod_scores[labelled],
                                   cand_threshold, prod_threshold, config)
    step(EVALUATION_STEPS[1])
    probabilities = cand_session.class_probabilities_batch(X) if len(ids) else np.empty((0, 0))
    attack_columns = [k for k, name in enumerate(cand_session.classes) if name not in (BENIGN, UNLABELLED)]
    explained = probabilities[:, attack_columns].sum(axis=1) >= 0.5 if attack_columns else None
    gates.append(time_holdout_gate(cand_scores, prod_scores, cand_threshold, prod_threshold, config, explained))
    step(EVALUATION_STEPS[2])
    requests, expected = _sample_requests(con, split, config.parity_sample)
    # no warm-up either: its `explain` path is not gated; the latency gate warms what it times
    cand_request = Scorer.load(candidate / "request", warm_up=False)
    gates.append(parity_gate(cand_request, requests, expected))
    step(EVALUATION_STEPS[3])
    gates.append(latency_gate(cand_request, requests[: config.latency_sample], config))
    step(EVALUATION_STEPS[4])
    request_scores = np.array([cand_request.score_request(*request).score for request in requests[:200]])
    gates.append(score_sanity_gate(np.concatenate([cand_scores, request_scores])))
    step(EVALUATION_STEPS[5])
    metrics = {"holdout_sessions": int(len(ids)), "labelled_holdout_sessions": int(labelled.sum()),
               "labelled_holdout_attacks": int(y.sum())}
    if len(y) and y.min() != y.max():
        from sklearn.metrics import roc_auc_score

        metrics["candidate_auc"] = round(float(roc_auc_score(y, cand_scores[labelled])), 4)
        if prod_scores is not None:
            metrics["production_auc"] = round(float(roc_auc_score(y, prod_scores[labelled])), 4)
    alert_rate = {"candidate": round(float(np.mean(cand_scores >= cand_threshold)), 4) if len(ids) else None,
                  "production": round(float(np.mean(prod_scores >= prod_threshold)), 4)
                  if prod_scores is not None and len(ids) else None}
    shadow = _shadow(con, ids, cand_scores, cand_threshold, prod_scores, prod_threshold)
    return {"gates": gates, "shadow": shadow, "alert_rate": alert_rate, "metrics": metrics,
            "candidate_scores": cand_scores, "ids": ids, "scorer": cand_session}


def _sample_requests(con, split, limit: int):
    """Up to ``limit`` held-out requests as raw fields, with their SQL features (the parity gate's input)."""
    from waflens.data.feature_spec import feature_names

    names = feature_names("request")
    rows = con.execute(
        f"""SELECT r.method, r.path, r.query, r.body, r.user_agent, r.referer, {", ".join("f." + n for n in names)}
            FROM requests r JOIN request_features f USING (request_id)
            WHERE $split IS NULL OR r.ts >= $split
            ORDER BY hash(r.request_id) LIMIT $n""", {"split": split, "n": limit}).fetchall()
    requests = [(method, path + ("?" + query if query else ""), {"User-Agent": agent, "Referer": referer}, body or b"")
                for method, path, query, body, agent, referer, *_ in rows]
    expected = np.array([row[6:] for row in rows], dtype=np.float64).reshape(len(rows), len(names))
    return requests, expected


def _shadow(con, ids, cand_scores, cand_threshold, prod_scores, prod_threshold) -> dict:
    """How alerts on the latest window would change if the candidate replaced production."""
    if prod_scores is None:
        return {"compared": False, "reason": "no production model to compare with",
                "candidate_alerts": int(np.sum(cand_scores >= cand_threshold))}
    cand_alert, prod_alert = cand_scores >= cand_threshold, prod_scores >= prod_threshold

    def examples(mask):
        chosen = np.flatnonzero(mask)[np.argsort(-np.abs(cand_scores[mask] - prod_scores[mask]))][:SHADOW_EXAMPLES]
        about = {sid: (client, n) for sid, client, n in con.execute(
            "SELECT session_id, client_key, n_requests FROM sessions WHERE list_contains($ids, session_id)",
            {"ids": [int(ids[i]) for i in chosen]}).fetchall()}
        return [{"session_id": int(ids[i]), "client_key": str(about[int(ids[i])][0])[:12],
                 "requests": int(about[int(ids[i])][1]), "candidate_score": round(float(cand_scores[i]), 4),
                 "production_score": round(float(prod_scores[i]), 4)} for i in chosen]

    return {"compared": True, "sessions": int(len(ids)), "both_alert": int(np.sum(cand_alert & prod_alert)),
            "new_alerts": int(np.sum(cand_alert & ~prod_alert)), "dropped_alerts": int(np.sum(prod_alert & ~cand_alert)),
            "new_examples": examples(cand_alert & ~prod_alert), "dropped_examples": examples(prod_alert & ~cand_alert)}
