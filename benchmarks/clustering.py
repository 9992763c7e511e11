"""Clustering quality on generated traffic with ground truth, and scaling.

    .venv/bin/python benchmarks/clustering.py [--requests 60000] [--seeds 7 8 9] [--scaling 10000 30000 100000]

Quality, per seed (a session's campaign = the majority campaign of its requests):
adjusted Rand index over attack sessions, best-match F1 per campaign, share of benign
sessions outside attack clusters (noise, unselected or benign-majority clusters), and
for each campaign the first of four equal windows in which it has >= min-cluster-size
sessions versus the first window in which a cluster of it is flagged emerging.
Goals: ARI >= 0.9, every campaign F1 >= 0.85, >= 95% benign outside attack clusters,
flagged in the first window with enough sessions.

Scaling: about N real generated sessions (N x 34 requests), clustered with select=all,
timed from session features to stored profiles (matrix, HDBSCAN, profiles), with the
peak RSS of the process that clusters (the traffic is generated and ingested by another).
"""

from __future__ import annotations

import argparse
import csv
import resource
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _quality(requests: int, seed: int, min_cluster_size: int) -> dict:
    from sklearn.metrics import adjusted_rand_score

    from clustering.run import ClusterOptions, cluster_sessions
    from data.db import connect
    from data.ingest import IngestOptions, ingest_file
    from data.pseudonymize import Pseudonymizer
    from data.sessionize import update_derived
    from data.synthetic import generate_traffic

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "traffic.log"
        summary = generate_traffic(log, requests, seed=seed)
        con = connect(Path(tmp) / "c.duckdb")
        ingest_file(con, log, IngestOptions(format="combined"), Pseudonymizer(b"clustering-benchmark-key"))
        update_derived(con)
        with open(f"{log}.truth.csv") as handle:
            truth = {int(r["record"]): r["campaign"] for r in csv.DictReader(handle)}
        campaign = {sid: Counter(truth[r] for r in records).most_common(1)[0][0]
                    for sid, records in con.execute("SELECT session_id, list(record) FROM requests GROUP BY 1").fetchall()}
        started = time.perf_counter()
        run = cluster_sessions(con, ClusterOptions(min_cluster_size=min_cluster_size))
        seconds = time.perf_counter() - started
        clusters = dict(con.execute("SELECT session_id, cluster_id FROM session_clusters WHERE cluster_run_id = $r",
                                    {"r": run.cluster_run_id}).fetchall())
        attack = [s for s in campaign if campaign[s] != "benign"]
        predicted = [clusters.get(s, -2) for s in attack]  # -2: not selected
        ari = adjusted_rand_score([campaign[s] for s in attack], predicted)
        majority = {cid: Counter(campaign[s] for s, c in clusters.items() if c == cid).most_common(1)[0][0]
                    for cid in set(clusters.values()) if cid >= 0}
        f1 = {}
        for name in sorted({campaign[s] for s in attack}):
            members = {s for s in attack if campaign[s] == name}
            best = 0.0
            for cid in majority:
                cluster = {s for s, c in clusters.items() if c == cid}
                hit = len(cluster & members)
                if hit:
                    best = max(best, 2 * hit / (len(cluster) + len(members)))
            f1[name] = best
        benign = [s for s in campaign if campaign[s] == "benign"]
        outside = np.mean([clusters.get(s, -1) < 0 or majority[clusters[s]] == "benign" for s in benign])

        # emergence over four windows
        start, end = summary.start.replace(tzinfo=None), summary.end.replace(tzinfo=None)
        span = (end - start) / 4
        starts = dict(con.execute("SELECT session_id, start_ts FROM sessions").fetchall())
        first_enough, first_flagged = {}, {}
        for w in range(4):
            # windows touch but do not overlap (a run follows the run whose window ends where its own starts);
            # the last one reaches one second past the end so that the last session is in it
            lo, hi = start + w * span, start + (w + 1) * span + (timedelta(seconds=1) if w == 3 else timedelta(0))
            window_run = cluster_sessions(con, ClusterOptions(since=lo, until=hi, min_cluster_size=min_cluster_size))
            in_window = Counter(campaign[s] for s, t in starts.items() if t is not None and lo <= t < hi)
            members = dict(con.execute("SELECT session_id, cluster_id FROM session_clusters WHERE cluster_run_id = $r",
                                       {"r": window_run.cluster_run_id}).fetchall())
            for cid in window_run.emerging:
                name = Counter(campaign[s] for s, c in members.items() if c == cid).most_common(1)[0][0]
                first_flagged.setdefault(name, w)
            for name, n in in_window.items():
                if name != "benign" and n >= min_cluster_size:
                    first_enough.setdefault(name, w)
        con.close()
    return {"seed": seed, "ari": ari, "f1": f1, "benign_outside": float(outside), "seconds": seconds,
            "first_enough": first_enough, "first_flagged": first_flagged, "selected": run.n_selected,
            "sessions": run.n_sessions, "clusters": run.n_clusters}


def _scaling(n: int) -> tuple[int, float, float, dict]:
    """Seconds and peak RSS from session features to stored profiles for about n real generated sessions.
    The traffic is generated and ingested by one process, clustered by another: the RSS is the clustering's."""
    import json
    import subprocess

    prepare = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from pathlib import Path
from data.db import connect
from data.ingest import IngestOptions, ingest_file
from data.pseudonymize import Pseudonymizer
from data.sessionize import update_derived
from data.synthetic import generate_traffic
tmp = Path(sys.argv[1])
log = tmp / "t.log"
generate_traffic(log, {n} * 34, seed=1)          # about 34 requests per generated session
con = connect(tmp / "s.duckdb")
ingest_file(con, log, IngestOptions(format="combined"), Pseudonymizer(b"scaling-key-0123456789"))
update_derived(con)
con.close()
"""
    cluster = f"""
import sys, json, resource
sys.path.insert(0, {str(REPO)!r})
from pathlib import Path
from data.db import connect
from clustering.run import ClusterOptions, cluster_sessions
con = connect(Path(sys.argv[1]) / "s.duckdb")
run = cluster_sessions(con, ClusterOptions(min_cluster_size=25, select="all"))
con.close()
print(json.dumps([run.n_selected, run.seconds["total"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  {{k: round(v, 2) for k, v in run.seconds.items()}}]))
"""
    with tempfile.TemporaryDirectory() as tmp:
        for code in (prepare, cluster):
            out = subprocess.run([sys.executable, "-c", code, tmp], capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"scaling run of {n:,} sessions failed:\n{out.stderr[-3000:]}")
    sessions, seconds, rss, stages = json.loads(out.stdout.strip().splitlines()[-1])
    return sessions, seconds, rss, stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60_000)
    parser.add_argument("--seeds", type=int, nargs="*", default=[7, 8, 9])
    parser.add_argument("--min-cluster-size", type=int, default=10)
    parser.add_argument("--scaling", type=int, nargs="*", default=[10_000, 30_000, 100_000, 300_000])
    args = parser.parse_args()

    results = [_quality(args.requests, seed, args.min_cluster_size) for seed in args.seeds]
    if results:
        _print_quality(args, results)
    if args.scaling:
        print(f"\n{'sessions':>10}{'seconds':>10}{'peak RSS MiB':>14}   (features -> stored profiles, select=all; per stage)")
        for n in args.scaling:
            try:
                sessions, seconds, rss, stages = _scaling(n)
            except RuntimeError as error:
                print(error)
                continue
            print(f"{sessions:>10,}{seconds:>10.1f}{rss:>14.0f}   {stages}")
    print("\ngoals: ARI >= 0.9, every F1 >= 0.85, benign outside attack clusters >= 0.95, "
          "flagged in the first window with enough sessions; 100k sessions <= 30 s, <= 4 GiB")


def _print_quality(args, results: list[dict]) -> None:
    campaigns = sorted({c for r in results for c in r["f1"]})
    print(f"\nquality on {args.requests:,} generated requests per seed, min-cluster-size {args.min_cluster_size}\n")
    print(f"{'seed':>5}{'sessions':>10}{'selected':>10}{'clusters':>10}{'ARI':>8}{'min F1':>8}{'benign ok':>11}{'seconds':>9}")
    for r in results:
        print(f"{r['seed']:>5}{r['sessions']:>10}{r['selected']:>10}{r['clusters']:>10}{r['ari']:>8.3f}"
              f"{min(r['f1'].values()):>8.3f}{r['benign_outside']:>11.3f}{r['seconds']:>9.2f}")
    print(f"\n{'campaign':<22}" + "".join(f"{'F1 s' + str(r['seed']):>9}" for r in results)
          + "   first window with enough sessions -> first flagged emerging, per seed")
    for name in campaigns:
        flags = "  ".join(f"{r['first_enough'].get(name, '-')}->{r['first_flagged'].get(name, '-')}" for r in results)
        print(f"{name:<22}" + "".join(f"{r['f1'].get(name, 0):>9.3f}" for r in results) + f"   {flags}")


if __name__ == "__main__":
    main()
