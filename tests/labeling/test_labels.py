"""Analyst labels: append-only history, the latest event counts, labels reach member sessions."""

import contextlib
import json
from io import StringIO

import pytest

from waflens.app.cli import main
from waflens.clustering.run import ClusterOptions, cluster_sessions
from waflens.data.db import connect
from waflens.data.errors import InputError
from waflens.labeling.labels import record_label, session_labels
from tests.data.helpers import generated_db


@pytest.fixture(scope="module")
def clustered(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("labels")
    con = generated_db(tmp, 20_000, seed=7).con
    run = cluster_sessions(con, ClusterOptions(min_cluster_size=10))
    return con, run, tmp / "test.duckdb"


def test_history_is_append_only_and_the_latest_event_counts(clustered):
    con, run, _ = clustered
    record_label(con, run.cluster_run_id, 0, family="sqli", verdict="malicious", source="suggested", analyst="offline")
    record_label(con, run.cluster_run_id, 0, family="xss", verdict="malicious", analyst="ana", note="payloads are XSS")
    history = con.execute("SELECT family, source, analyst FROM label_events WHERE cluster_id = 0 ORDER BY label_event_id").fetchall()
    assert history == [("sqli", "suggested", "offline"), ("xss", "confirmed", "ana")]
    assert con.execute("SELECT family FROM current_labels WHERE cluster_id = 0").fetchall() == [("xss",)]
    members = session_labels(con, run.cluster_run_id, min_probability=0.0)
    in_cluster = {s for (s,) in con.execute("SELECT session_id FROM session_clusters WHERE cluster_run_id = $r AND cluster_id = 0",
                                            {"r": run.cluster_run_id}).fetchall()}
    assert {m[0] for m in members} == in_cluster and all(m[1] == "xss" for m in members)
    reached = con.execute("SELECT count(*), count(DISTINCT session_id), min(family), max(family) FROM request_labels "
                          "WHERE cluster_run_id = $r AND cluster_id = 0", {"r": run.cluster_run_id}).fetchall()[0]
    in_requests = con.execute("SELECT count(*) FROM requests WHERE session_id IN (SELECT session_id FROM session_labels "
                              "WHERE cluster_run_id = $r AND cluster_id = 0)", {"r": run.cluster_run_id}).fetchall()[0][0]
    assert reached[0] == in_requests > 0 and reached[2] == reached[3] == "xss"      # every request of those sessions
    strict = session_labels(con, run.cluster_run_id, min_probability=0.99)
    assert len(strict) <= len(members)
    record_label(con, run.cluster_run_id, 0, family="xss", verdict="malicious", source="rejected", analyst="bo")
    assert session_labels(con, run.cluster_run_id) == []        # a rejected label reaches no session


def test_bad_values_are_refused(clustered):
    con, run, _ = clustered
    with pytest.raises(InputError, match="family"):
        record_label(con, run.cluster_run_id, 0, family="lolcats", verdict="malicious")
    with pytest.raises(InputError, match="does not exist"):
        record_label(con, run.cluster_run_id, 999, family="sqli", verdict="malicious")


def test_label_from_the_cli(clustered):
    con, run, db = clustered
    con.close()
    out = StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--db", str(db), "--json", "label", "1", "--verdict", "malicious", "--family", "scanner",
                     "--note", "=cmd|' /C calc'!A0", "--analyst", "ana"])
    assert code == 0 and json.loads(out.getvalue())["cluster_id"] == 1
    con = connect(db, read_only=True)
    assert con.execute("SELECT family, analyst, note FROM current_labels WHERE cluster_id = 1").fetchall() == \
        [("scanner", "ana", "=cmd|' /C calc'!A0")]     # stored as given; exports neutralise it
