"""The schema bootstrap and retrain's snapshot: what training reads holds every label an analyst gave."""

from __future__ import annotations

import pytest

from waflens.data.db import connect
from waflens.labeling.labels import has_relation
from waflens.pipeline.retrain import snapshot
from waflens.pipeline.schema import ensure_schemas
from waflens.scoring.feedback import analyst_classes, label_snapshot
from tests.data.cli_process import waflens_here

LOG_FORMAT = '%h %l %t "%r" %>s %b "%{Referer}i" %{PHPSESSID}C "%{User-Agent}i"'
READERS = ("cluster_runs", "session_clusters", "cluster_profiles", "label_events", "session_labels",
           "cluster_labels", "allowlist", "session_label_imports")


@pytest.fixture()
def db(tmp_path, monkeypatch):
    """Three cookie sessions, never clustered; two of them labelled with `waflens labels import`."""
    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", "pipeline-schema-key-0123456789")
    log = tmp_path / "access.log"
    log.write_text("".join(f'- - [01/Nov/2019:10:{m:02d}:{s:02d} +0000] "GET /p{s % 3}.php HTTP/1.1" 200 100 "-" '
                           f'{cookie} "Mozilla/5.0 (X11; Linux x86_64) Firefox/70.0"\n'
                           for m, cookie in enumerate(("aaa111", "bbb222", "ccc333")) for s in range(0, 50, 10)))
    labels = tmp_path / "labels.txt"
    labels.write_text("aaa111 human\nbbb222 moderate_bot\n")
    path = tmp_path / "w.duckdb"
    for args in (("ingest", "--log-format", LOG_FORMAT, "--session-key", "cookie", "--session-cookie", "PHPSESSID",
                  str(log)), ("labels", "import", str(labels))):
        code, _, err = waflens_here("--db", str(path), *args)
        assert code == 0, err
    return path


def test_retrain_s_snapshot_keeps_the_labels_imported_per_session(db):
    """The run's fingerprint counted imported labels, but training read a snapshot without them: a retrain
    after `waflens labels import` trained as if nothing had been imported."""
    con = connect(db, read_only=True)
    try:
        classes, labels = analyst_classes(con), label_snapshot(con)
    finally:
        con.close()
    assert sorted(classes.values()) == ["benign", "scraping"] and labels["analyst_events"] == 2
    snap = snapshot(db)
    try:
        assert analyst_classes(snap) == classes and label_snapshot(snap) == labels
    finally:
        snap.close()


def test_every_reader_s_tables_exist_on_a_database_that_never_saw_a_cluster_run(tmp_path):
    con = connect(tmp_path / "fresh.duckdb")
    try:
        assert not any(has_relation(con, name) for name in READERS)
        ensure_schemas(con)
        assert [name for name in READERS if not has_relation(con, name)] == []
        ensure_schemas(con)      # and again: nothing to do, nothing fails
    finally:
        con.close()
    read_only = connect(tmp_path / "fresh.duckdb", read_only=True)
    try:
        ensure_schemas(read_only)   # a reader's connection: it creates nothing, and does not fail
    finally:
        read_only.close()
