"""Fit the code-likeness weights shipped in ``scoring/code_weights.json``.

    .venv/bin/python scripts/fit_code_model.py   # needs $WAFLENS_SHARED_DATASETS

Attacks: the attack values of HttpParamsDataset's training split (MIT) and the payload
lists (fuzzdb, PayloadsAllTheThings: BSD-3/CC BY 3.0, MIT), decoded as a server decodes
them; the SSRF list's URLs among them (the tokenizer tells a host address from a host name).
Benign: the benign values of HttpParamsDataset's training split (names, addresses,
e-mails, numbers of an e-shop), English prose: sentences of the docstrings and of the
reference topics (``pydoc_data``) of Python's standard library, so that "unusual text" has
examples, and URLs: the distinct referers of a public website's access log (elastic/examples,
Apache-2.0), so that a URL in a parameter has benign examples too; and, as the public lists hold
no remote file inclusion, the list written for waflens (``data/payload_samples/rfi.txt``: URLs
with an address host or a query mark that ends the value, as CRS's RFI rules look for). A fifth
of the labelled values
(``waflens.scoring.code_model.held_out``) is kept out for ``benchmarks/detection.py``; no CSIC
request, validation half or hidden test split is used. Prints the held-out rates.
"""

from __future__ import annotations

import csv
import gzip
import importlib
import io
import json
import os
import random
import re
import sys
from pathlib import Path
from urllib.parse import unquote

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATASETS = Path(os.environ.get("WAFLENS_SHARED_DATASETS") or REPO.parent / "shared" / "datasets")
# families whose lines are attack strings on their own (ldap: 1-3 character items, benign-looking out of
# context, left to the benchmark; ssrf joined with tokenizer version 2, which gives URLs classes of their own)
FAMILIES = ("sqli", "xss", "path_traversal", "lfi", "cmd_injection", "crlf", "ssti", "nosql", "xxe", "ssrf")
REFERER_LOG = "access_logs/elastic_apache_logs.log.gz"  # benign URLs: a public website's referers
MAX_PER_FAMILY = 3000
C = 10.0  # inverse L2 strength: 1 left classic short SQLi near even odds, 100 overfits the prose
PROSE_MODULES = ("os", "re", "json", "collections", "argparse", "textwrap", "logging", "pathlib", "datetime",
                 "decimal", "fractions", "random", "statistics", "string", "inspect", "email.message",
                 "http.client", "urllib.request", "shutil", "tarfile", "zipfile", "calendar", "locale", "gettext",
                 "smtplib", "ftplib", "csv", "sqlite3", "subprocess", "threading", "socket", "difflib", "heapq")


def http_params() -> list[tuple[str, bool]]:
    with gzip.open(DATASETS / "labelled" / "http_params_train.csv.gz", "rt", encoding="utf-8", newline="") as f:
        return [(row["payload"], row["label"] != "norm") for row in csv.DictReader(f)]


def payloads(rng: random.Random) -> list[str]:
    from waflens.data.synthetic_payloads import clean_payload_lines, fill_placeholders

    out = []
    for family in FAMILIES:
        lines = clean_payload_lines((DATASETS / "payloads" / f"{family}.txt").read_text("utf-8", "replace"))
        if family == "cmd_injection":
            lines = [line for line in lines if not re.fullmatch(r"\s*[a-z]+\s*", line)]  # bare command words
        lines = [unquote(fill_placeholders(line, rng)) for line in lines]
        out += rng.sample(lines, min(MAX_PER_FAMILY, len(lines)))
    rfi = (REPO / "data" / "payload_samples" / "rfi.txt").read_text("utf-8")
    return out + [unquote(line) for line in clean_payload_lines(rfi)]


def referer_urls() -> list[str]:
    """The distinct http(s) referers of a public website's access log (search engines, blogs, its own pages)."""
    field = re.compile(r'" \d{3} \S+ "(https?://[^"]*)"')
    with gzip.open(DATASETS / REFERER_LOG, "rt", encoding="latin-1") as f:
        return sorted({m.group(1) for line in f if (m := field.search(line))})


def prose(rng: random.Random, limit: int = 12000) -> list[str]:
    """Sentences of English prose: the standard library's docstrings and the reference topics of ``pydoc``
    (paragraph text only: indented lines are code examples)."""
    from pydoc_data.topics import topics

    sentences = set()
    for text in topics.values():
        paragraph = " ".join(line for line in text.splitlines() if line and not line.startswith((" ", ">>>")))
        for sentence in re.split(r"(?<=[.!?])\s+", paragraph):
            if 15 <= len(sentence) <= 200:
                sentences.add(sentence)
    for name in PROSE_MODULES:
        module = importlib.import_module(name)
        docs = [module.__doc__ or ""] + [getattr(getattr(module, a, None), "__doc__", "") or "" for a in dir(module)]
        for doc in docs:
            if not isinstance(doc, str):
                continue
            for sentence in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())):
                if 15 <= len(sentence) <= 200:
                    sentences.add(sentence)
    return rng.sample(sorted(sentences), min(limit, len(sentences)))


def main() -> None:
    from waflens.runtime.kernels.code import TOKENIZER_VERSION
    from waflens.scoring.code_model import WEIGHTS_FILE, fit_code_weights, held_out, value_matrix

    rng = random.Random(0)
    labelled = [(v, a) for v, a in http_params()] + [(p, True) for p in payloads(rng)] + \
        [(s, False) for s in prose(rng)] + [(u, False) for u in referer_urls()]
    fit = [(v, a) for v, a in labelled if not held_out(v)]
    kept = [(v, a) for v, a in labelled if held_out(v)]
    weights, bias = fit_code_weights([v for v, _ in fit], np.array([a for _, a in fit]), C=C)
    z = value_matrix([v for v, _ in kept]) @ weights + bias
    attack = np.array([a for _, a in kept])
    print(f"fitted on {len(fit):,} values ({sum(a for _, a in fit):,} attacks); held out {len(kept):,}: "
          f"attacks with logit > 0: {np.mean(z[attack] > 0):.4f}, benign with logit > 0: {np.mean(z[~attack] > 0):.4f}")
    provenance = {"attacks": "HttpParamsDataset train split (attack rows) + payload lists " + ", ".join(FAMILIES)
                  + " + data/payload_samples/rfi.txt",
                  "benign": "HttpParamsDataset train split (norm rows) + sentences of Python standard library docstrings and pydoc topics + distinct referer URLs of " + REFERER_LOG,
                  "held_out": "sha256(value)[0] % 5 == 0 (waflens.scoring.code_model.held_out)",
                  "fitted_values": len(fit), "model": f"logistic regression, L2, C={C:g}, balanced classes"}
    out = REPO / "scoring" / WEIGHTS_FILE
    out.write_text(json.dumps({"tokenizer_version": TOKENIZER_VERSION, "bias": bias,
                               "weights": [round(float(w), 6) for w in weights], "provenance": provenance}) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
