"""``waflens spark attach s3a://…``: DuckDB reads object storage through its httpfs extension, which the duckdb
wheel does not hold (``INSTALL httpfs`` downloads it into ~/.duckdb/extensions), or else through s3fs
(``waflens[s3]``; tests/spark/test_attach_s3.py). Where neither is there, attach says so and how to get either,
instead of DuckDB's "error while trying to automatically install" as an internal error."""

from __future__ import annotations

import sys

from waflens.app.cli import main
from waflens.pipeline.spark.attach import _duckdb_location


def test_hadoop_s3a_is_duckdbs_s3_and_local_paths_are_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _duckdb_location("s3a://logs/waflens/2026-11-22") == "s3://logs/waflens/2026-11-22"
    assert _duckdb_location("gs://logs/day") == "gs://logs/day"
    assert _duckdb_location("out") == str(tmp_path / "out")


def test_attach_over_s3a_without_httpfs_or_s3fs_says_how_to_get_either(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))     # DuckDB looks for extensions in ~/.duckdb/extensions: none here
    monkeypatch.setitem(sys.modules, "s3fs", None)    # as where waflens[s3] is not installed
    db = tmp_path / "analyst.duckdb"
    assert main(["spark", "attach", "s3a://waflens-logs/2026-11-22", "--db", str(db)]) == 5
    error = capsys.readouterr().err
    assert "reading s3://waflens-logs/2026-11-22 needs DuckDB's httpfs extension" in error
    assert "INSTALL httpfs" in error and "copy the Parquet to a local directory" in error
    assert "pip install 'waflens[s3]'" in error and "AWS_ENDPOINT_URL" in error
    assert "internal error" not in error and "docs/scaling.md" in error
    assert not list(tmp_path.glob("analyst.duckdb*"))    # no half-made database left behind
