"""Does analyst feedback improve the session scorer? Held-out quality after confirming 0, 1, 3, 10 clusters.

    .venv/bin/python benchmarks/feedback.py [--requests 60000] [--seeds 7 8 9] [--trees 100] [--quick]

Per seed: generate traffic (3 days), ingest, sessionize. A session's campaign is the
majority campaign of its requests; attack = campaign other than benign. Time split:
sessions that start in the last third of the window are held out (the analyst labels
yesterday, the model scores today); clustering and training see only the window
before the split (``until=``). The training window is clustered once (suspicious
selection, min-cluster-size 10) and a simulated analyst goes through the clusters in
``summarize_run``'s order (emerging first, then most recent), labelling each with the
truth: its member sessions' majority campaign -> that campaign's family, malicious;
majority benign -> benign. For k in 0, 1, 3, 10 the first k clusters are confirmed
(labels accumulate in one database; k = 0 is the unsupervised baseline) and a fresh
model is trained on the training window and scores the held-out sessions.

Metrics on held-out sessions: ROC AUC, precision@100 (share of attacks among the 100
highest scores), recall of attacks and alert rate of benign sessions at the model's
``likely_attack`` threshold; median and min over seeds. Campaigns that only run after
the split (path_traversal, cmd_injection) are new to every model: only the forest
can catch them. Goal: with <= 10 confirmed clusters, median AUC >= 0.98 and
precision@100 >= 0.95, AUC above the unsupervised baseline's and precision@100 not below.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CONFIRMED = (0, 1, 3, 10)
TOP = 100


def _session_campaigns(con, truth_path: Path) -> dict[int, str]:
    with open(truth_path) as handle:
        truth = {int(r["record"]): r["campaign"] for r in csv.DictReader(handle)}
    return {sid: Counter(truth[r] for r in records).most_common(1)[0][0]
            for sid, records in con.execute("SELECT session_id, list(record) FROM requests GROUP BY 1").fetchall()}


def _held_out(con, split):
    """Ids and feature matrix of the sessions that start at or after the split."""
    from waflens.data.feature_spec import feature_names

    names = feature_names("session")
    rows = con.execute(
        f"""SELECT s.session_id, {", ".join("f." + n for n in names)}
            FROM sessions s JOIN session_features f USING (session_id)
            WHERE s.start_ts >= $split ORDER BY s.session_id""", {"split": split}).fetchnumpy()
    return (np.asarray(rows["session_id"], dtype=np.int64),
            np.column_stack([np.asarray(rows[n], dtype=np.float64) for n in names]))


def _metrics(scores: np.ndarray, attack: np.ndarray, threshold: float) -> dict:
    from sklearn.metrics import roc_auc_score

    top = np.argsort(-scores, kind="stable")[:min(TOP, len(scores))]
    alert = scores >= threshold
    return {"auc": float(roc_auc_score(attack, scores)), "p100": float(attack[top].mean()),
            "recall": float(alert[attack].mean()), "benign_alerts": float(alert[~attack].mean())}


def _campaign_auc(scores: np.ndarray, names: np.ndarray) -> dict[str, float]:
    """Per campaign, ROC AUC of its held-out sessions against the benign ones: which campaigns rank low."""
    from sklearn.metrics import roc_auc_score

    benign = names == "benign"
    return {c: float(roc_auc_score(np.r_[np.zeros(benign.sum()), np.ones((names == c).sum())],
                                   np.r_[scores[benign], scores[names == c]]))
            for c in sorted(set(names) - {"benign"}) if benign.any()}


def run_seed(requests: int, seed: int, trees: int = 100, confirmed: tuple[int, ...] = CONFIRMED,
             min_cluster_size: int = 10) -> dict:
    """One seed of the protocol; per k confirmed: metrics, labelled sessions, train seconds, per-campaign recall."""
    from waflens.clustering.run import ClusterOptions, cluster_sessions
    from waflens.data.db import connect
    from waflens.data.ingest import IngestOptions, ingest_file
    from waflens.data.pseudonymize import Pseudonymizer
    from waflens.data.sessionize import update_derived
    from waflens.data.synthetic import generate_traffic
    from waflens.data.synthetic_campaigns import SPECS
    from waflens.labeling.labels import record_label
    from waflens.labeling.summarize import summarize_run
    from waflens.runtime.scorer import SessionScorer
    from waflens.scoring.train import TrainingOptions, train_session_model

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        log = tmp / "traffic.log"
        summary = generate_traffic(log, requests, seed=seed)
        con = connect(tmp / "feedback.duckdb")
        ingest_file(con, log, IngestOptions(format="combined"), Pseudonymizer(b"feedback-benchmark-key"))
        update_derived(con)
        campaign = _session_campaigns(con, summary.truth_path)
        start, end = summary.start.replace(tzinfo=None), summary.end.replace(tzinfo=None)
        split = start + (end - start) * 2 / 3

        run = cluster_sessions(con, ClusterOptions(until=split, min_cluster_size=min_cluster_size)).cluster_run_id
        order = [r["cluster_id"] for r in summarize_run(con, run)]
        members = dict(con.execute("SELECT cluster_id, list(session_id) FROM session_clusters "
                                   "WHERE cluster_run_id = $r AND cluster_id >= 0 GROUP BY 1", {"r": run}).fetchall())
        majority = {cid: Counter(campaign[s] for s in members[cid]).most_common(1)[0][0] for cid in order}

        ids, X = _held_out(con, split)
        names = np.array([campaign[int(s)] for s in ids])
        attack = names != "benign"
        rows, done = [], 0
        for k in confirmed:
            for cid in order[done:k]:
                name = majority[cid]
                family, verdict = ("benign", "benign") if name == "benign" else (SPECS[name].family, "malicious")
                record_label(con, run, cid, family=family, verdict=verdict, analyst="simulated-analyst")
            done = max(done, min(k, len(order)))
            started = time.perf_counter()
            manifest = train_session_model(con, tmp / f"model-{k}", TrainingOptions(
                until=split, n_estimators=trees, seed=seed, feedback=True))
            seconds = time.perf_counter() - started
            scores = SessionScorer.load(tmp / f"model-{k}").score_batch(X)
            threshold = manifest["thresholds"]["likely_attack"]
            per_class = (manifest["feedback"] or {}).get("sessions_per_class", {})
            alert = scores >= threshold
            rows.append({"k": k, "confirmed": done, **_metrics(scores, attack, threshold),
                         "labelled": sum(n for c, n in per_class.items() if c != "unlabelled"),
                         "seconds": seconds,
                         "campaign_recall": {c: float(alert[names == c].mean()) for c in sorted(set(names))},
                         "campaign_auc": _campaign_auc(scores, names),
                         "top_campaigns": dict(Counter(names[np.argsort(-scores, kind="stable")[:TOP]]))})
        con.close()
    return {"seed": seed, "clusters": [majority[c] for c in order], "held_out": int(len(ids)),
            "held_out_attacks": int(attack.sum()), "held_out_campaigns": dict(Counter(names)), "rows": rows}


def _cell(values: list[float], digits: int = 3) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f})"


def table(results: list[dict]) -> list[str]:
    """The Markdown table: one row per k, median (min) over seeds."""
    lines = ["| k confirmed | AUC median (min) | P@100 median (min) | recall@likely_attack | benign alert rate "
             "| labelled sessions | train seconds |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for i, k in enumerate(r["k"] for r in results[0]["rows"]):
        rows = [res["rows"][i] for res in results]
        short = "" if all(r["confirmed"] == k for r in rows) else \
            f" (only {'/'.join(str(r['confirmed']) for r in rows)})"
        lines.append(f"| {k}{short} | {_cell([r['auc'] for r in rows], 4)} | {_cell([r['p100'] for r in rows], 2)} "
                     f"| {_cell([r['recall'] for r in rows])} | {_cell([r['benign_alerts'] for r in rows])} "
                     f"| {statistics.median(r['labelled'] for r in rows):.0f} "
                     f"| {statistics.median(r['seconds'] for r in rows):.1f} |")
    return lines


def goal(results: list[dict]) -> tuple[bool, str]:
    """Met when some k in 1..10 has median AUC >= 0.98, P@100 >= 0.95, AUC > baseline and P@100 >= baseline."""
    median = lambda i, key: statistics.median(res["rows"][i][key] for res in results)  # noqa: E731
    ks = [r["k"] for r in results[0]["rows"]]
    base = ks.index(0) if 0 in ks else None
    for i, k in enumerate(ks):
        if k == 0 or k > 10:
            continue
        auc, p100 = median(i, "auc"), median(i, "p100")
        above = base is None or (auc > median(base, "auc") and p100 >= median(base, "p100"))
        if auc >= 0.98 and p100 >= 0.95 and above:
            return True, f"met at k = {k} (AUC {auc:.4f}, P@100 {p100:.2f})"
    return False, "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--min-cluster-size", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="20,000 requests, one seed (the first)")
    parser.add_argument("--details", action="store_true",
                        help="also print per seed: cluster order, held-out campaigns, per-campaign recall (JSON)")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.seeds = 20_000, args.seeds[:1]

    started = time.perf_counter()
    results = [run_seed(args.requests, seed, args.trees, CONFIRMED, args.min_cluster_size) for seed in args.seeds]
    seconds = time.perf_counter() - started
    print(f"\nheld-out sessions (last third of a 3-day window), {args.requests:,} generated requests per seed, "
          f"seeds {', '.join(map(str, args.seeds))}, {args.trees} trees; {seconds:.0f} s in all\n")
    print("\n".join(table(results)))
    print("\nprotocol: train and cluster on sessions before the split, score sessions starting after it; the "
          "simulated analyst confirms the first k clusters in summarize_run's order with the truth (majority "
          "campaign -> its family, malicious; majority benign -> benign); k = 0 is the unsupervised forest. "
          "Median (min) over seeds; recall and benign alert rate at the model's likely_attack threshold; "
          "labelled sessions = training sessions in a labelled class of the feedback model.")
    for res in results:
        print(f"seed {res['seed']}: {res['held_out']} held-out sessions ({res['held_out_attacks']} attacks); "
              f"{len(res['clusters'])} clusters in order: {', '.join(res['clusters'])}")
    if args.details:
        for res in results:
            print(json.dumps({"seed": res["seed"], "held_out_campaigns": res["held_out_campaigns"],
                              "rows": [{key: (round(v, 4) if isinstance(v, float) else v) for key, v in r.items()}
                                       for r in res["rows"]]}, default=str))
    met, how = goal(results)
    print(f"\ngoal: with <= 10 confirmed clusters, median AUC >= 0.98 and P@100 >= 0.95, above the unsupervised "
          f"baseline: {how}")


if __name__ == "__main__":
    main()
