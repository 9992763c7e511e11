"""Scoring speed: the numba runtime against scikit-learn on the same fitted forest.

    .venv/bin/python benchmarks/scoring.py [--rows 1000000] [--repeat 5] [--requests 20000]

One table; every baseline is measured in the same run; medians of repeats.
- batch: --rows feature rows, runtime vs IsolationForest.score_samples, one thread and all cores
  (goal: >= 5x faster);
- one request end to end from raw fields (URL decoding, 37 features, profile lookups, 100 trees)
  in a Python loop (goal: p50 <= 10 us, p99 <= 50 us, >= 500x faster than scikit-learn on one row);
- artifact load + warm-up with a warm numba cache (goal <= 0.5 s) and cold (empty cache), each in a
  fresh process (imports included, and shown apart), and in a running worker swapping in a new artifact.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _train_model(tmp: Path) -> tuple[Path, object, np.ndarray, list]:
    """A 100-tree model on generated traffic, its sklearn twin, feature rows and raw requests."""
    from sklearn.ensemble import IsolationForest

    from waflens.data.db import connect
    from waflens.data.ingest import IngestOptions, ingest_file
    from waflens.data.pseudonymize import Pseudonymizer
    from waflens.data.sessionize import update_derived
    from waflens.data.synthetic import generate_traffic
    from waflens.scoring.train import TrainingOptions, train_request_model

    log = tmp / "traffic.log"
    generate_traffic(log, 30_000, seed=11, attack_share=0.05)
    con = connect(tmp / "bench.duckdb")
    ingest_file(con, log, IngestOptions(format="combined"), Pseudonymizer(b"benchmark-key-0123456789"))
    update_derived(con)
    model = tmp / "model"
    train_request_model(con, model, TrainingOptions(n_estimators=100, seed=0))
    requests = con.execute("SELECT method, path, query, user_agent, referer FROM requests ORDER BY request_id").fetchall()
    con.close()
    from waflens.runtime.scorer import Scorer

    scorer = Scorer.load(model)
    rows = np.array([scorer.request_features(m, p + ("?" + q if q else ""), {"User-Agent": ua, "Referer": ref})
                     for m, p, q, ua, ref in requests])
    # the same forest, refitted by sklearn with the same seed on the same matrix, for the baseline
    twin = IsolationForest(n_estimators=100, max_samples=1024, random_state=0).fit(rows.astype(np.float32))
    return model, twin, rows, requests


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _load_time(model: Path, cache_dir: str) -> tuple[float, float]:
    """(import of the runtime with numpy and numba, then Scorer.load with warm-up) in a fresh process."""
    code = ("import time; t = time.perf_counter(); from waflens.runtime.scorer import Scorer; i = time.perf_counter(); "
            f"Scorer.load({str(model)!r}); print(i - t, time.perf_counter() - i)")
    env = {**os.environ, "WAFLENS_NUMBA_CACHE_DIR": cache_dir, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    imports, load = out.stdout.strip().splitlines()[-1].split()
    return float(imports), float(load)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()

    import numba
    from threadpoolctl import threadpool_limits

    from waflens.scoring.forest_export import flatten_isolation_forest
    from waflens.runtime.kernels.forest import float32_floor, perfect_layout, perfect_scores, sanitize
    from waflens.runtime.scorer import Scorer

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model, twin, rows, requests = _train_model(tmp)
        scorer = Scorer.load(model)
        flat = flatten_isolation_forest(twin)
        depth = int(np.ceil(np.log2(max(twin._max_samples, 2))))
        trees = perfect_layout(flat.feature, float32_floor(flat.threshold), flat.left, flat.right, flat.value,
                               flat.roots, depth)
        batch = sanitize(np.resize(rows, (args.rows, rows.shape[1])))
        out = np.empty(args.rows)
        perfect_scores(batch[:2000], *trees, depth, flat.normaliser, out[:2000])
        assert np.allclose(-twin.score_samples(batch[:2000]), out[:2000], rtol=0, atol=1e-9)  # same forest, same scores
        table = []
        for threads in (1, os.cpu_count() or 1):
            numba.set_num_threads(threads)
            ours = _median_time(lambda: perfect_scores(batch, *trees, depth, flat.normaliser, out), args.repeat)
            with threadpool_limits(threads):
                from joblib import parallel_backend
                with parallel_backend("threading", n_jobs=threads):
                    theirs = _median_time(lambda: twin.score_samples(batch), args.repeat)
            table.append((f"batch {args.rows:,} rows, {threads} thread(s)", ours, theirs))
        numba.set_num_threads(os.cpu_count() or 1)

        sample = [requests[i % len(requests)] for i in range(args.requests)]
        latencies = np.empty(len(sample))
        for i, (m, p, q, ua, ref) in enumerate(sample):
            target = p + ("?" + q if q else "")
            started = time.perf_counter_ns()
            scorer.score_request(m, target, {"User-Agent": ua, "Referer": ref})
            latencies[i] = (time.perf_counter_ns() - started) / 1000
        one_row = rows[:1].astype(np.float32)
        sklearn_one = _median_time(lambda: twin.score_samples(one_row), 50)
        p50, p99 = np.percentile(latencies, [50, 99])
        _load_time(model, str(tmp / "numba-cache"))  # fills the cache
        warm_runs = [_load_time(model, str(tmp / "numba-cache")) for _ in range(5)]
        warm = statistics.median(i + load for i, load in warm_runs)
        warm_imports = statistics.median(i for i, _ in warm_runs)
        hot_swap = _median_time(lambda: Scorer.load(model), 5)  # a running worker loading a new artifact
        cold_dir = tempfile.mkdtemp(dir=tmp)
        cold = sum(_load_time(model, cold_dir))

    print(f"\n{'measurement':<44}{'waflens':>14}{'scikit-learn':>14}{'speed-up':>10}")
    for name, ours, theirs in table:
        print(f"{name:<44}{ours:>12.3f} s{theirs:>12.3f} s{theirs / ours:>9.1f}x")
    print(f"{'one request end to end, p50':<44}{p50:>11.1f} us{sklearn_one * 1e6:>11.0f} us{sklearn_one * 1e6 / p50:>9.0f}x")
    print(f"{'one request end to end, p99':<44}{p99:>11.1f} us")
    print(f"{'load + warm-up, warm numba cache (median 5)':<44}{warm:>12.3f} s")
    print(f"{'  of which importing numpy, numba, runtime':<44}{warm_imports:>12.3f} s")
    print(f"{'load + warm-up in a running worker (swap)':<44}{hot_swap:>12.3f} s")
    print(f"{'load + warm-up, cold (empty cache)':<44}{cold:>12.3f} s")
    print("\ngoals: batch >= 5x; p50 <= 10 us, p99 <= 50 us, >= 500x sklearn on one row; warm load <= 0.5 s")


if __name__ == "__main__":
    main()
