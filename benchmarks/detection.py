"""Detection quality of the request-level model on real attacks, unsupervised.

    .venv/bin/python benchmarks/detection.py [--per-family 400] [--seed 0] [--trees 100]

Train through the normal pipeline (raw-http ingest into a DuckDB file, ``train_request_model``)
on the CSIC 2010 benign training file only, then score with the runtime:

1. Real attacks: the CSIC 2010 validation halves ($WAFLENS_SHARED_DATASETS/validation: benign and
   anomalous test requests of the development half of the endpoints). ROC AUC, detection at
   1% and 0.1% false positives (thresholds from the benign validation scores) and the share
   reaching ``likely_attack``, overall and per kind. CSIC gives no per-request type, so the
   kind comes from :func:`attack_kind`, a documented heuristic (first rule that matches).
2. Injected payloads (the earlier benchmark, kept as a second table): benign validation
   requests with one parameter value replaced by a payload of each family in
   $WAFLENS_SHARED_DATASETS/payloads, and the remote file inclusion list written for waflens
   (data/payload_samples/rfi.txt). It exercises payload-likeness only, never structural novelty.
   (The code-likeness model was fitted on four fifths of these lists: partly in-sample.)
3. Labelled values: the fifth of HttpParamsDataset's training split that the code-likeness model
   was not fitted on (``waflens.scoring.code_model.held_out``), per family, placed (a) in the free-text
   address field ``direccion`` of CSIC registration requests (the endpoint is only in the
   training file, so its requests carry the values; the validation halves lack it) and (b) in a
   random parameter of a benign validation request. Share at ``likely_attack`` and ``attack``;
   the benign family is the false-positive rate. libinjection (SQLi or XSS verdict on the
   decoded value, ``pip install waflens[bench]``) on the same values as the anchor.
4. Benign text in the free-text field: sentences, names and addresses of several locales
   (Faker, a benchmark-only dependency), with punctuation and accents. Share flagged.
5. Benign URLs (benchmarks/data/benign_urls.txt, written for this benchmark, fitted on by nothing:
   redirect targets, CDN and asset links with queries, shared links, OAuth callbacks, a few
   intranet addresses) in the free-text field and in a random parameter, encoded whole as a form
   or encodeURIComponent sends them; and once with their own %XX escapes sent bare (the server
   decodes them: a URL whose query then holds spaces and '#'). Share flagged.
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import unquote_plus

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATASETS = Path(os.environ.get("WAFLENS_SHARED_DATASETS") or REPO.parent / "shared" / "datasets")
TRAINING = DATASETS / "raw_http" / "csic2010_normalTrafficTraining.txt.gz"
BENIGN_DEV = DATASETS / "validation" / "csic2010_normalTrafficTest_dev.txt.gz"
ATTACK_DEV = DATASETS / "validation" / "csic2010_anomalousTrafficTest_dev.txt.gz"

# file extensions of backups, sources, configs and archives (compared lower-case; a trailing '~' counts too)
BACKUP_EXTENSIONS = {"old", "bak", "inc", "orig", "save", "sav", "swp", "tmp", "java", "class", "cnf", "conf", "cfg",
                     "ini", "log", "zip", "tar", "gz", "tgz", "rar", "7z", "sql", "exe", "dll"}
KINDS = ("rare method", "backup/source file", "unseen path", "SSI", "CRLF", "XSS", "SQLi",
         "unknown param name", "altered value")
_SQL = re.compile(r"('|\")\s*(or|and|union|select|;|--|\))|\b(union\s+select|select\s+.+\s+from|insert\s+into|"
                  r"drop\s+table|delete\s+from|or\s+\d+\s*=\s*\d+|sleep\s*\(|benchmark\s*\()|--\s*$|/\*", re.I)
_XSS = re.compile(r"<\s*/?\s*(script|img|iframe|svg|body|a|div|style|input)\b|javascript:|\bon[a-z]+\s*=|alert\s*\(",
                  re.I)


def _params(request) -> list[tuple[str, str]]:
    """(name, decoded value) of the query and body parameters, decoded as CSIC is (Latin-1)."""
    _, _, query = request.target.partition("?")
    pairs = []
    for raw in (query, request.body):
        for piece in raw.split("&"):
            if piece:
                name, _, value = piece.partition("=")
                pairs.append((unquote_plus(name, "latin-1"), unquote_plus(value, "latin-1")))
    return pairs


def _path(request) -> str:
    return unquote_plus(request.target.partition("?")[0].replace("+", "%2B"), "latin-1")


def attack_kind(request, known: dict[str, set[str]]) -> str:
    """The kind of a CSIC anomalous request: the first of KINDS whose rule matches.

    ``known`` maps each training path to the parameter names seen on it. Rules: a method other
    than GET/POST/HEAD; a path whose last segment ends in a backup/source/config/archive
    extension (BACKUP_EXTENSIONS) or '~'; a path never requested in training; then, over the
    decoded parameter values: '<!--#' (SSI); a CR or LF (CRLF); an HTML tag, ``javascript:``,
    an event handler or ``alert(`` (XSS); a quote followed by SQL syntax, or SQL keywords (SQLi);
    then a parameter name never seen on that path; otherwise an altered value (tampered or
    oversized values, buffer overflows).
    """
    if request.method not in ("GET", "POST", "HEAD"):
        return "rare method"
    path = _path(request)
    last = path.rsplit("/", 1)[-1].lower()
    if last.endswith("~") or last.rpartition(".")[2] in BACKUP_EXTENSIONS and "." in last:
        return "backup/source file"
    if path not in known:
        return "unseen path"
    params = _params(request)
    values = " ".join(v for _, v in params)
    if "<!--#" in values:
        return "SSI"
    if "\r" in values or "\n" in values:
        return "CRLF"
    if _XSS.search(values):
        return "XSS"
    if _SQL.search(values):
        return "SQLi"
    if any(name not in known[path] for name, _ in params):
        return "unknown param name"
    return "altered value"


def _read(path: Path):
    from waflens.data.raw_http import RawHttpRequest, iter_raw_http

    text = gzip.decompress(path.read_bytes()).decode("latin-1")
    return [r for r in iter_raw_http(text) if isinstance(r, RawHttpRequest)]


def _inject(request, payload: str, rng: random.Random):
    """The request with one parameter value (query or body) replaced by the encoded payload."""
    from waflens.data.synthetic_payloads import encode_query_value

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


FREE_TEXT_PATH, FREE_TEXT_PARAM = "/tienda1/publico/registro.jsp", "direccion"
RFI_LIST = REPO / "data" / "payload_samples" / "rfi.txt"
BENIGN_URLS = REPO / "benchmarks" / "data" / "benign_urls.txt"
HTTP_PARAMS = DATASETS / "labelled" / "http_params_train.csv.gz"
TEXT_LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "pt_BR", "nl_NL")


def _held_out_values() -> dict[str, list[str]]:
    """The labelled values the code-likeness model was not fitted on, by family (benign = 'norm')."""
    import csv

    from waflens.scoring.code_model import held_out

    families: dict[str, list[str]] = defaultdict(list)
    with gzip.open(HTTP_PARAMS, "rt", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if held_out(row["payload"]):
                families["benign" if row["attack_type"] == "norm" else row["attack_type"]].append(row["payload"])
    return dict(families)


def _benign_text(count: int, seed: int) -> dict[str, list[str]]:
    """Sentences, names and addresses (one line each) of several locales; {} without Faker."""
    try:
        from faker import Faker
    except ImportError:
        return {}
    fake = Faker(list(TEXT_LOCALES))
    fake.seed_instance(seed)
    per_kind = count // 3 + 1
    return {"sentence": [fake.sentence(nb_words=10) for _ in range(per_kind)],
            "name": [fake.name() for _ in range(per_kind)],
            "address": [", ".join(fake.address().splitlines()) for _ in range(per_kind)]}


def _libinjection_flags(values: list[str]) -> np.ndarray | None:
    try:
        import libinjection
    except ImportError:
        return None
    return np.array([bool(libinjection.is_sql_injection(v)["is_sqli"] or libinjection.is_xss(v)["is_xss"])
                     for v in values])


def _place(request, name: str | None, value: str, rng: random.Random, whole: bool = False):
    """The request with parameter ``name`` (None: a random one) set to the encoded value (``whole``: every
    byte encoded, '%' too, as a browser's form or encodeURIComponent does; else %XX escapes in the value are
    kept, as payload lists are partly encoded already)."""
    from urllib.parse import quote_plus

    from waflens.data.synthetic_payloads import encode_query_value

    path, _, query = request.target.partition("?")
    places = [("query", i) for i, p in enumerate(query.split("&")) if p] + \
             [("body", i) for i, p in enumerate(request.body.split("&")) if p]
    if name is not None:
        places = [(w, i) for w, i in places
                  if (query if w == "query" else request.body).split("&")[i].split("=", 1)[0] == name]
    where, index = rng.choice(places)
    pieces = (query if where == "query" else request.body).split("&")
    encoded = quote_plus(value, safe="") if whole else encode_query_value(value, space="+")
    pieces[index] = f"{pieces[index].split('=', 1)[0]}={encoded}"
    joined = "&".join(pieces)
    if where == "query":
        return request.method, f"{path}?{joined}", request.headers, request.body
    return request.method, request.target, request.headers, joined


def _value_table(title: str, rows: list[tuple[str, int, np.ndarray, np.ndarray, np.ndarray | None]]) -> None:
    print(f"\n{title}\n{'values':<40}{'n':>7}{'>=likely':>10}{'>=attack':>10}{'libinj':>9}")
    for label, n, likely, attack, libinj in rows:
        anchor = f"{np.mean(libinj):>9.3f}" if libinj is not None else f"{'n/a':>9}"
        print(f"{label:<40}{n:>7}{np.mean(likely):>10.3f}{np.mean(attack):>10.3f}{anchor}")


def _rates(benign: np.ndarray, attack: np.ndarray) -> tuple[float, float, float]:
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(np.r_[np.zeros(benign.size), np.ones(attack.size)], np.r_[benign, attack])
    at1 = float(np.mean(attack > np.quantile(benign, 0.99)))
    at01 = float(np.mean(attack > np.quantile(benign, 0.999)))
    return auc, at1, at01


def _table(title: str, benign: np.ndarray, groups: dict[str, np.ndarray], likely_attack: float) -> None:
    print(f"\n{title}\n{'kind':<22}{'requests':>9}{'ROC AUC':>10}{'det@1%FP':>10}{'det@0.1%FP':>12}{'>=likely':>10}")
    rows = [(k, v) for k, v in groups.items() if v.size] + [("all", np.concatenate(list(groups.values())))]
    for kind, scores in rows:
        auc, at1, at01 = _rates(benign, scores)
        print(f"{kind:<22}{scores.size:>9}{auc:>10.4f}{at1:>10.3f}{at01:>12.3f}{np.mean(scores >= likely_attack):>10.3f}")
    print(f"{'benign (validation)':<22}{benign.size:>9}{'':>10}{'':>10}{'':>12}{np.mean(benign >= likely_attack):>10.3f}")


def _has_secret(request) -> bool:
    """True when a query or body parameter is secret-named (ingest masks its value: a login's password)."""
    from waflens.data.redaction import is_secret_name

    return any(is_secret_name(name) for name, _ in _params(request))


def _secret_lines(benign: np.ndarray, benign_dev: list, attack_dev: list, attack_scores: list[float],
                  likely_attack: float, attack: float) -> None:
    """How many of the benign top 1% carry a secret-named parameter (training saw it masked), how many benign
    requests with one reach ``likely_attack`` and ``attack`` (code-likeness reads their raw passwords, which
    training never saw), and how the anomalous requests that carry one fare at 1% false positives."""
    top = np.argsort(-benign)[:max(1, benign.size // 100)]
    logins = benign[np.array([_has_secret(r) for r in benign_dev])]
    print(f"benign with a secret-named parameter: {logins.size}; >=likely_attack {np.mean(logins >= likely_attack):.4f} "
          f"({int(np.sum(logins >= likely_attack))}), >=attack {np.mean(logins >= attack):.4f} "
          f"({int(np.sum(logins >= attack))})")
    with_secret = np.array([_has_secret(r) for r in attack_dev])
    detected = np.asarray(attack_scores) > np.quantile(benign, 0.99)
    print(f"benign top 1% ({top.size} requests): {sum(_has_secret(benign_dev[i]) for i in top)} carry a secret-named "
          f"parameter (of {sum(map(_has_secret, benign_dev))} benign); anomalous with one: {int(with_secret.sum())}, "
          f"detected at 1% FPR {np.mean(detected[with_secret]):.3f} (without: {np.mean(detected[~with_secret]):.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-family", type=int, default=400, help="injected requests per payload family")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--text", type=int, default=1200, help="benign text values (sentences, names, addresses)")
    args = parser.parse_args()

    from waflens.data.db import connect
    from waflens.data.ingest import IngestOptions, ingest_file
    from waflens.data.pseudonymize import Pseudonymizer
    from waflens.data.sessionize import update_derived
    from waflens.data.synthetic_payloads import clean_payload_lines, fill_placeholders
    from waflens.runtime.scorer import Scorer
    from waflens.scoring.train import TrainingOptions, train_request_model

    rng = random.Random(args.seed)
    training, benign_dev, attack_dev = _read(TRAINING), _read(BENIGN_DEV), _read(ATTACK_DEV)
    known: dict[str, set[str]] = defaultdict(set)
    for request in training:
        known[_path(request)].update(name for name, _ in _params(request))

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        con = connect(tmp / "detection.duckdb")
        started = time.perf_counter()
        ingest_file(con, TRAINING, IngestOptions(format="raw-http"), Pseudonymizer(b"detection-benchmark-key"))
        update_derived(con)
        train_request_model(con, tmp / "model", TrainingOptions(n_estimators=args.trees, seed=args.seed))
        train_seconds = time.perf_counter() - started
        con.close()
        scorer = Scorer.load(tmp / "model")
    likely_attack = scorer._thresholds[1]

    def score(method, target, headers, body) -> float:
        return scorer.score_request(method, target, headers, body).score

    benign = np.array([score(r.method, r.target, r.headers, r.body) for r in benign_dev])
    by_kind: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for request in attack_dev:
        by_kind[attack_kind(request, known)].append(score(request.method, request.target, request.headers, request.body))
    real = {kind: np.array(v) for kind, v in by_kind.items()}

    carriers = [r for r in benign_dev if "=" in r.target or "=" in r.body]
    families = {}
    for path in sorted((DATASETS / "payloads").glob("*.txt")) + [RFI_LIST]:
        lines = [fill_placeholders(line, rng) for line in clean_payload_lines(path.read_text("utf-8", "replace"))]
        chosen = rng.sample(lines, min(args.per_family, len(lines)))
        name = path.stem if path != RFI_LIST else "rfi (waflens list)"
        families[name] = np.array([score(*_inject(rng.choice(carriers), p, rng)) for p in chosen])

    free_text_carriers = [r for r in training if _path(r) == FREE_TEXT_PATH and f"{FREE_TEXT_PARAM}=" in r.body]
    values = _held_out_values()
    text = _benign_text(args.text, args.seed)
    likely, attack_at = scorer._thresholds[1], scorer._thresholds[2]

    def placed(value_list, name, carriers, whole=False):
        s = np.array([score(*_place(rng.choice(carriers), name, v, rng, whole)) for v in value_list])
        return s >= likely, s >= attack_at

    value_rows = []
    for family in sorted(values, key=lambda f: (f == "benign", f)):
        libinj = _libinjection_flags(values[family])
        for where, name, carriers in (("free text", FREE_TEXT_PARAM, free_text_carriers),
                                      ("random param", None, carriers)):
            value_rows.append((f"{family} in {where}", len(values[family]), *placed(values[family], name, carriers),
                               libinj))
    text_rows = []
    for kind, lines in text.items():
        text_rows.append((kind, len(lines), *placed(lines, FREE_TEXT_PARAM, free_text_carriers),
                          _libinjection_flags(lines)))
    if text_rows:
        text_rows.append(("all benign text", sum(r[1] for r in text_rows), np.concatenate([r[2] for r in text_rows]),
                          np.concatenate([r[3] for r in text_rows]),
                          None if text_rows[0][4] is None else np.concatenate([r[4] for r in text_rows])))

    urls = [line for line in BENIGN_URLS.read_text("utf-8").splitlines() if line and not line.startswith("#")]
    url_libinj = _libinjection_flags(urls)
    url_rows = [(f"benign URLs in {where}", len(urls), *placed(urls, name, carriers, whole), url_libinj)
                for where, name, carriers, whole in (("free text", FREE_TEXT_PARAM, free_text_carriers, True),
                                                     ("random param", None, carriers, True),
                                                     ("random param, %XX sent bare", None, carriers, False))]

    print(f"\ntrained on {len(training):,} CSIC benign training requests in {train_seconds:.1f} s ({args.trees} trees); "
          f"validation: {benign.size:,} benign, {len(attack_dev):,} anomalous; likely_attack >= {likely_attack:.3f}, "
          f"attack >= {attack_at:.3f} (calibrated on held-out training folds)")
    if _libinjection_flags(["x"]) is None:
        print("libinjection column skipped: libinjection-python is not installed (pip install 'waflens[bench]')")
    _table("1. real attacks: CSIC 2010 anomalous validation half, by kind (heuristic, see attack_kind)",
           benign, real, likely_attack)
    _secret_lines(benign, benign_dev, attack_dev, [score(r.method, r.target, r.headers, r.body) for r in attack_dev],
                  likely_attack, attack_at)
    _table("2. injected payloads: benign validation requests with one value replaced, by payload family",
           benign, families, likely_attack)
    _value_table("3. HttpParamsDataset held-out values (not fitted on), per family: share flagged", value_rows)
    if text_rows:
        _value_table(f"4. benign text in the free-text field {FREE_TEXT_PARAM!r} ({', '.join(TEXT_LOCALES)})",
                     text_rows)
    else:
        print("\n4. benign text skipped: Faker is not installed (pip install 'waflens[bench]')")
    _value_table(f"5. benign URLs ({BENIGN_URLS.relative_to(REPO)}): share flagged", url_rows)


if __name__ == "__main__":
    main()
