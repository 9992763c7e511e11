"""Analyst feedback in the scorer: confirmed labels become a supervised model blended with the forest.

The isolation forest ranks by rarity; an analyst's confirmations say which rare
things matter and which common-looking things are attacks. With confirmed labels,
training fits a gradient-boosted tree model (scikit-learn's
``GradientBoostingClassifier``, shallow trees) over the same features, with classes

* each confirmed attack family (sessions of clusters confirmed or edited as
  malicious or suspicious),
* ``benign`` (clusters confirmed benign, and allowlisted sessions),
* ``unlabelled`` (everything else: mostly normal traffic, possibly attacks nobody
  has looked at yet — which is why the forest stays in the blend),

weighted so each class counts equally. The exported score is::

    score = max(u * (1 - p_benign), p_attack)

so confirmed campaigns score near 1 wherever the forest put them, traffic like a
benign-confirmed cluster stops alerting, and everything else keeps the forest's
judgement ``u``. The per-class probabilities are the per-family sub-scores.

Why this rather than re-weighting forest leaves (Das et al., ICDM 2016): measured
on generated campaigns (``benchmarks/feedback.py``) the supervised blend lifts
held-out AUC and precision@100 further with a handful of confirmed clusters, and
its trees use the forest's exported layout, so the runtime stays numba-compiled
and pickle-free.
"""

from __future__ import annotations

import json
from typing import NamedTuple

import duckdb
import numpy as np

from waflens.runtime.kernels.feedback import blend_batch, raw_outputs
from waflens.runtime.kernels.forest import float32_floor, perfect_layout, sanitize
from waflens.runtime.scorer import _depth_of

UNLABELLED = "unlabelled"
BENIGN = "benign"
ATTACK_VERDICTS = ("malicious", "suspicious")
MIN_CLASS_SESSIONS = 5          # a labelled class with fewer sessions is left out (too few to learn from)
GBM_OPTIONS = {"n_estimators": 60, "max_depth": 3, "learning_rate": 0.2, "subsample": 0.8}


class FittedFeedback(NamedTuple):
    arrays: dict          # feedback_* arrays for the artifact
    manifest: dict        # the manifest's "feedback" entry
    scores: np.ndarray    # blended training scores (for thresholds)
    model: object         # the fitted scikit-learn model (for parity tests; never exported as such)


def analyst_classes(con: duckdb.DuckDBPyConnection) -> dict[int, str]:
    """The class each session's analyst label gives it (confirmed or edited, on any cluster run: a decision stays
    with the sessions it judged, so a new cluster run does not hide it)."""
    from waflens.labeling.labels import ensure_label_schema, has_relation

    ensure_label_schema(con)
    if not has_relation(con, "session_labels"):
        return {}
    # decisions on clusters, and those imported per session (labeling/label_import.py): the latest one wins
    imported = ("UNION ALL SELECT session_id, family, verdict, 'confirmed', label_event_id FROM session_label_imports"
                if has_relation(con, "session_label_imports") else "")
    return dict(con.execute(
        f"""SELECT session_id, CASE WHEN verdict = 'benign' OR family = 'benign' THEN 'benign' ELSE family END
            FROM (SELECT session_id, family, verdict, source, label_event_id FROM session_labels
                  WHERE source <> 'suggested' {imported})
            WHERE source IN ('confirmed', 'edited')
            QUALIFY row_number() OVER (PARTITION BY session_id ORDER BY label_event_id DESC) = 1""").fetchall())


def session_classes(con: duckdb.DuckDBPyConnection, session_ids: np.ndarray) -> np.ndarray:
    """The feedback class of each session: an attack family, ``benign`` or ``unlabelled``."""
    from waflens.labeling.allowlist import allowlisted_sessions

    labelled = analyst_classes(con)
    allowed = allowlisted_sessions(con)
    classes = np.array([labelled.get(int(s), UNLABELLED) for s in session_ids], dtype=object)
    if allowed:
        classes[np.isin(session_ids, np.fromiter(allowed, dtype=np.int64))] = BENIGN
    return classes


def learned_from_analysts(con: duckdb.DuckDBPyConnection, until, feedback: dict | None) -> int:
    """How many training sessions (those ending before ``until``, as in ``train_session_model``) gave the
    feedback model an analyst's label: labelled sessions of the classes it kept (see ``MIN_CLASS_SESSIONS``)."""
    if not feedback:
        return 0
    learnt = set(feedback.get("classes") or ()) - {UNLABELLED}
    labelled = analyst_classes(con)
    if not learnt or not labelled:
        return 0
    ids = con.execute("""SELECT s.session_id FROM sessions s JOIN session_features f USING (session_id)
                         WHERE $until IS NULL OR s.end_ts < $until ORDER BY s.session_id""",
                      {"until": until}).fetchnumpy()["session_id"]
    ids = np.asarray(ids, dtype=np.int64)
    ids = ids[np.isin(ids, np.fromiter(labelled, dtype=np.int64))]
    classes = session_classes(con, ids)
    return int(sum(1 for s, c in zip(ids, classes) if c in learnt and labelled[int(s)] == c))


def feedback_coverage(snap: duckdb.DuckDBPyConnection, split, session_manifest: dict, registry,
                      production: str | None, allow_loss: bool) -> tuple[dict, dict]:
    """The ``feedback_coverage`` gate of a candidate against ``production`` (a registry alias's version), and
    the counts recorded in the candidate's metrics: analyst-labelled training sessions its feedback model
    learnt from, and all its labelled sessions (the allowlist's too)."""
    from waflens.scoring.gates import feedback_coverage_gate

    def labelled(feedback: dict | None) -> int:
        return sum(int(n) for c, n in ((feedback or {}).get("sessions_per_class") or {}).items() if c != UNLABELLED)

    feedback = session_manifest.get("feedback")
    learned = {"analyst_labelled_sessions": learned_from_analysts(snap, split, feedback),
               "feedback_sessions": labelled(feedback)}
    if not production:
        return feedback_coverage_gate(learned["analyst_labelled_sessions"], None), learned
    version = registry.get(production)
    recorded = (version.metrics or {}).get("analyst_labelled_sessions")
    if recorded is not None:
        return feedback_coverage_gate(learned["analyst_labelled_sessions"], int(recorded), allow_loss,
                                      version.version), learned
    try:    # a version from before that count: compare what both feedback models learnt a labelled class from
        manifest = json.loads((registry.path(version.version, "session") / "manifest.json").read_text())
    except (OSError, ValueError):
        return feedback_coverage_gate(learned["analyst_labelled_sessions"], None), learned
    return feedback_coverage_gate(learned["feedback_sessions"], labelled(manifest.get("feedback")), allow_loss,
                                  version.version, measure="labelled sessions (analysts' and allowlisted)"), learned


def label_snapshot(con: duckdb.DuckDBPyConnection) -> dict:
    """What identifies the labels a model was trained with (recorded in the registry)."""
    from waflens.labeling.labels import ensure_label_schema, has_relation

    ensure_label_schema(con)
    if not has_relation(con, "label_events") or not has_relation(con, "allowlist"):
        return {"analyst_events": 0, "last_label_event_id": 0, "allowlist_rules": 0, "allowlist_changed_at": ""}
    events, last = con.execute("SELECT count(*), coalesce(max(label_event_id), 0) FROM label_events "
                               "WHERE source <> 'suggested'").fetchall()[0]
    if has_relation(con, "session_label_imports"):   # labels imported per session are analysts' events too
        more, latest = con.execute("SELECT count(*), coalesce(max(label_event_id), 0) "
                                   "FROM session_label_imports").fetchall()[0]
        events, last = events + more, max(last, latest)
    rules, changed = con.execute("SELECT count(*), coalesce(max(greatest(created_at, coalesce(revoked_at, created_at)))"
                                 "::VARCHAR, '') FROM allowlist").fetchall()[0]
    return {"analyst_events": int(events), "last_label_event_id": int(last), "allowlist_rules": int(rules),
            "allowlist_changed_at": changed}


def fit_feedback(X: np.ndarray, classes: np.ndarray, u: np.ndarray, seed: int = 0) -> FittedFeedback | None:
    """Fit the feedback model, or None when the labels are too few to learn from."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.utils.class_weight import compute_sample_weight

    classes = np.asarray(classes, dtype=object).copy()
    names, counts = np.unique(classes, return_counts=True)
    for name, count in zip(names, counts):
        if name != UNLABELLED and count < MIN_CLASS_SESSIONS:
            classes[classes == name] = UNLABELLED
    present = sorted(set(classes) - {UNLABELLED})
    if not present:
        return None
    rows = sanitize(X)
    gbm = GradientBoostingClassifier(random_state=seed, **GBM_OPTIONS)
    gbm.fit(rows, classes, sample_weight=compute_sample_weight("balanced", classes))
    order = [str(c) for c in gbm.classes_]
    flat = flatten_gradient_boosting(gbm)
    n_outputs = 1 if len(order) == 2 else len(order)
    depth = max(1, _depth_of(flat))
    trees = perfect_layout(flat["feature"], float32_floor(flat["threshold"]), flat["left"], flat["right"],
                           flat["value"], flat["roots"], depth)
    # the constant (prior) term: what the model predicts minus what the trees add, on one row
    attack_mask = np.array([c not in (UNLABELLED, BENIGN) for c in order])
    benign_index = order.index(BENIGN) if BENIGN in order else -1
    raw_trees = np.empty(n_outputs)
    raw_outputs(rows[0], *trees, depth, n_outputs, np.zeros(n_outputs), raw_trees)
    init = np.atleast_1d(gbm.decision_function(rows[:1])[0]).astype(np.float64) - raw_trees
    scores = np.empty(len(rows))
    probs = np.empty((len(rows), len(order)))
    blend_batch(rows, np.ascontiguousarray(u, dtype=np.float64), *trees, depth, n_outputs, init, benign_index,
                attack_mask, scores, probs)
    arrays = {f"feedback_{k}": v for k, v in flat.items()}
    arrays.update({"feedback_init": init, "feedback_attack_mask": attack_mask,
                   "feedback_benign_index": np.array(benign_index)})
    manifest = {"kind": "gradient_boosting", "classes": order, "n_outputs": n_outputs, "depth": depth,
                **GBM_OPTIONS, "seed": seed,
                "sessions_per_class": {name: int((classes == name).sum()) for name in order},
                "blend": "max(u * (1 - p_benign), p_attack)"}
    return FittedFeedback(arrays, manifest, scores, gbm)


def flatten_gradient_boosting(gbm) -> dict[str, np.ndarray]:
    """Stage-major flat node arrays; leaf values already multiplied by the learning rate."""
    features, thresholds, lefts, rights, values, roots = [], [], [], [], [], []
    offset = 0
    for stage in gbm.estimators_:
        for estimator in stage:
            t = estimator.tree_
            leaf = t.children_left == -1
            features.append(np.where(leaf, -1, t.feature).astype(np.int32))
            thresholds.append(t.threshold.astype(np.float64))
            lefts.append(np.where(leaf, -1, t.children_left + offset).astype(np.int32))
            rights.append(np.where(leaf, -1, t.children_right + offset).astype(np.int32))
            values.append(np.where(leaf, gbm.learning_rate * t.value[:, 0, 0], 0.0))
            roots.append(offset)
            offset += t.node_count
    return {"feature": np.concatenate(features), "threshold": np.concatenate(thresholds),
            "left": np.concatenate(lefts), "right": np.concatenate(rights), "value": np.concatenate(values),
            "roots": np.array(roots, dtype=np.int32)}
