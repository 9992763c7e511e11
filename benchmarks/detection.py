"""Detection quality of the request-level model, unsupervised, on real benign requests.

    .venv/bin/python benchmarks/detection.py [--per-family 400] [--seed 0] [--trees 100]

Train on 80% of the CSIC 2010 benign requests (../shared/datasets/raw_http), ingested
through the normal pipeline into a DuckDB file. Test on the other 20% against the
same requests with one parameter value (query or form body) replaced by a payload
from every family in ../shared/datasets/payloads. Reports ROC AUC and detection at
1% and 0.1% false positives (thresholds from the benign test scores), overall and
per family. Goal: AUC >= 0.99 and >= 95% detection at 1% false positives.
"""

from __future__ import annotations

import argparse
import gzip
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATASETS = REPO.parent / "shared" / "datasets"


def _inject(request, payload: str, rng: random.Random):
    """The request with one parameter value (query or body) replaced by the encoded payload."""
    from data.synthetic_payloads import encode_query_value

    path, _, query = request.target.partition("?")
    places = [("query", i) for i, p in enumerate(query.split("&")) if p] + \
             [("body", i) for i, p in enumerate(request.body.split("&")) if p]
    where, index = rng.choice(places)
    pieces = (query if where == "query" else request.body).split("&")
    name = pieces[index].split("=", 1)[0]
    pieces[index] = f"{name}={encode_query_value(payload, space='+')}"
    joined = "&".join(pieces)
    if where == "query":
        return request.method, f"{path}?{joined}", request.headers, request.body
    return request.method, request.target, request.headers, joined


def _rates(benign: np.ndarray, attack: np.ndarray) -> tuple[float, float, float]:
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(np.r_[np.zeros(benign.size), np.ones(attack.size)], np.r_[benign, attack])
    at1 = float(np.mean(attack > np.quantile(benign, 0.99)))
    at01 = float(np.mean(attack > np.quantile(benign, 0.999)))
    return auc, at1, at01


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-family", type=int, default=400, help="attack requests per payload family")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trees", type=int, default=100)
    args = parser.parse_args()

    from data.db import connect
    from data.ingest import IngestOptions, ingest_file
    from data.pseudonymize import Pseudonymizer
    from data.raw_http import RawHttpRequest, iter_raw_http
    from data.sessionize import update_derived
    from data.synthetic_payloads import clean_payload_lines, fill_placeholders
    from scoring.runtime import Scorer
    from scoring.train import TrainingOptions, train_request_model

    rng = random.Random(args.seed)
    text = gzip.decompress((DATASETS / "raw_http" / "csic2010_normalTrafficTraining.txt.gz").read_bytes()).decode("latin-1")
    requests = [r for r in iter_raw_http(text) if isinstance(r, RawHttpRequest)]
    order = list(range(len(requests)))
    rng.shuffle(order)
    cut = int(0.8 * len(order))
    train, test = [requests[i] for i in order[:cut]], [requests[i] for i in order[cut:]]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dump = tmp / "train.txt"
        dump.write_bytes("".join(r.raw for r in train).encode("latin-1"))
        con = connect(tmp / "detection.duckdb")
        started = time.perf_counter()
        ingest_file(con, dump, IngestOptions(format="raw-http"), Pseudonymizer(b"detection-benchmark-key"))
        update_derived(con)
        train_request_model(con, tmp / "model", TrainingOptions(n_estimators=args.trees, seed=args.seed))
        train_seconds = time.perf_counter() - started
        con.close()
        scorer = Scorer.load(tmp / "model")

        def score(method, target, headers, body) -> float:
            return scorer.score_request(method, target, headers, body.encode("latin-1")).score

        benign = np.array([score(r.method, r.target, r.headers, r.body) for r in test])
        carriers = [r for r in test if "=" in r.target or "=" in r.body]
        families = {}
        for path in sorted((DATASETS / "payloads").glob("*.txt")):
            lines = [fill_placeholders(line, rng) for line in clean_payload_lines(path.read_text("utf-8", "replace"))]
            chosen = rng.sample(lines, min(args.per_family, len(lines)))
            families[path.stem] = np.array([score(*_inject(rng.choice(carriers), p, rng)) for p in chosen])

    print(f"\ntrained on {len(train):,} CSIC benign requests in {train_seconds:.1f} s ({args.trees} trees); "
          f"test: {len(test):,} benign, {sum(v.size for v in families.values()):,} injected\n")
    print(f"{'family':<16}{'attacks':>9}{'ROC AUC':>10}{'det@1%FP':>10}{'det@0.1%FP':>12}")
    for family, scores in families.items():
        auc, at1, at01 = _rates(benign, scores)
        print(f"{family:<16}{scores.size:>9}{auc:>10.4f}{at1:>10.3f}{at01:>12.3f}")
    auc, at1, at01 = _rates(benign, np.concatenate(list(families.values())))
    print(f"{'all':<16}{sum(v.size for v in families.values()):>9}{auc:>10.4f}{at1:>10.3f}{at01:>12.3f}")
    print(f"\ngoal: AUC >= 0.99 ({'met' if auc >= 0.99 else 'NOT met'}), "
          f">= 95% detection at 1% FP ({'met' if at1 >= 0.95 else 'NOT met'})")


if __name__ == "__main__":
    main()
