"""The offline summarizer's family accuracy on generated campaigns, and its time per cluster.

    .venv/bin/python benchmarks/labeling.py [--requests 40000] [--seeds 7 8 9]

Per seed: generate traffic, ingest, cluster (suspicious sessions, min-cluster-size 10),
summarize every cluster offline; a cluster's true family is its majority campaign's.
Goal: >= 90% family accuracy.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
EXPECTED = {"sqli_scan": "sqli", "xss_probe": "xss", "path_traversal": "path_traversal", "cmd_injection": "cmd_injection",
            "credential_stuffing": "credential_stuffing", "vuln_scanner": "scanner", "scraper": "scraping",
            "slow_bot": "credential_stuffing", "benign": "benign"}


def run_seed(requests: int, seed: int):
    from waflens.clustering.run import ClusterOptions, cluster_sessions
    from waflens.data.db import connect
    from waflens.data.ingest import IngestOptions, ingest_file
    from waflens.data.pseudonymize import Pseudonymizer
    from waflens.data.sessionize import update_derived
    from waflens.data.synthetic import generate_traffic
    from waflens.labeling.summarize import summarize_run

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "traffic.log"
        generate_traffic(log, requests, seed=seed)
        con = connect(Path(tmp) / "l.duckdb")
        ingest_file(con, log, IngestOptions(format="combined"), Pseudonymizer(b"labeling-benchmark-key"))
        update_derived(con)
        run = cluster_sessions(con, ClusterOptions(min_cluster_size=10))
        with open(f"{log}.truth.csv") as handle:
            truth = {int(r["record"]): r["campaign"] for r in csv.DictReader(handle)}
        majority = {cid: Counter(truth[r] for r in records).most_common(1)[0][0] for cid, records in con.execute(
            """SELECT c.cluster_id, list(r.record) FROM session_clusters c JOIN requests r USING (session_id)
               WHERE c.cluster_run_id = $r AND c.cluster_id >= 0 GROUP BY 1""", {"r": run.cluster_run_id}).fetchall()}
        started = time.perf_counter()
        results = summarize_run(con, run.cluster_run_id)
        seconds = time.perf_counter() - started
        con.close()
    return [(majority[r["cluster_id"]], r["family"]) for r in results], seconds / max(len(results), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    args = parser.parse_args()
    print(f"{'seed':>5}{'clusters':>10}{'accuracy':>10}{'ms/cluster':>12}   mistakes (campaign -> family)")
    total = correct = 0
    for seed in args.seeds:
        pairs, per_cluster = run_seed(args.requests, seed)
        right = [EXPECTED.get(c) == f for c, f in pairs]
        total += len(pairs)
        correct += sum(right)
        wrong = [f"{c}->{f}" for (c, f), ok in zip(pairs, right) if not ok]
        print(f"{seed:>5}{len(pairs):>10}{sum(right) / len(pairs):>10.3f}{per_cluster * 1000:>12.1f}   {', '.join(wrong) or '-'}")
    print(f"\noverall family accuracy {correct / total:.3f} over {total} clusters (goal >= 0.90)")


if __name__ == "__main__":
    main()
