"""Runtime features equal the SQL features on every record of the shared logs and the CSIC dump."""

import shutil

import numpy as np
import pytest

from waflens.data.feature_spec import feature_names
from waflens.runtime.scorer import Scorer
from waflens.scoring.train import TrainingOptions, train_request_model
from tests.data.helpers import fresh_db


@pytest.fixture(scope="module")
def shared_model(tmp_path_factory, shared_db):
    """The shared logs and CSIC as ingested for the ingest tests (a copy: training writes), and a model on them."""
    tmp = tmp_path_factory.mktemp("parity")
    for part in shared_db[0].parent.glob(shared_db[0].name + "*"):              # the database, and a WAL if any
        shutil.copy(part, tmp / part.name.replace(shared_db[0].name, "test.duckdb"))
    con = fresh_db(tmp)
    train_request_model(con, tmp / "model", TrainingOptions(n_estimators=10, folds=2))
    return con, Scorer.load(tmp / "model")


def test_every_shared_record(shared_model):
    con, scorer = shared_model
    assert scorer.uses_bodies                      # CSIC has POST bodies, so bodies are featurised
    scorer.max_body_bytes = 1 << 30                # compare whole bodies with the SQL
    names = feature_names("request")
    rows = con.execute(f"""SELECT r.method, r.path, r.query, r.body, r.user_agent, r.referer, {", ".join("f." + n for n in names)}
                           FROM requests r JOIN request_features f USING (request_id) ORDER BY request_id""").fetchall()
    assert len(rows) == con.execute("SELECT sum(parsed) FROM sources").fetchall()[0][0] > 79_000
    mismatches = []
    for method, path, query, body, agent, referer, *expected in rows:
        target = path + ("?" + query if query else "")
        got = scorer.request_features(method, target, {"User-Agent": agent, "Referer": referer}, body or b"")[:30]
        if not np.allclose(got, expected, rtol=1e-9, atol=1e-9):
            mismatches.append((method, target, [n for n, a, b in zip(names, got, expected) if not np.isclose(a, b)]))
    assert mismatches == []
