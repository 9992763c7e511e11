"""``waflens spark attach s3a://bucket/prefix`` against a real S3 API: moto's server on 127.0.0.1 holding the Spark
output of the shared logs (``spark_pipeline``), read through s3fs (``waflens[s3]``) because DuckDB's httpfs extension
cannot be had here. The analyst loop on it must see what it sees on the local directory (``spark_attached``), in
this process and in a fresh one; a missing bucket or refused credentials fail in one line.

Never the internet: the endpoint is moto's (checked before the first request), the credentials are made up, the
instance metadata service is off, and ``HOME`` is a fresh directory (no ~/.aws, no ~/.duckdb/extensions)."""

from __future__ import annotations

import importlib
import json
import os
import sys
import urllib.request
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.data.cli_process import json_summary, waflens, waflens_here
from tests.spark.pipeline import MIN_CLUSTER_SIZE

BUCKET = "waflens-spark-output"
PREFIX = "2026-11-22/out"
TABLES = ("requests", "sessions", "session_features")
WORKBENCH = Path(__file__).resolve().parents[2] / "app" / "workbench.py"


class ObjectStore(NamedTuple):
    endpoint: str        # moto's S3 API on 127.0.0.1
    directory: str       # s3a://BUCKET/PREFIX: the Spark output, uploaded


@pytest.fixture(scope="module")
def object_store(spark_pipeline, tmp_path_factory):
    """moto's S3 server with ``spark_pipeline``'s output directory in a bucket; the environment of this module
    (and of the processes it starts) points every AWS client at it."""
    import logging

    s3fs = _require("s3fs")
    ThreadedMotoServer = _require("moto.server").ThreadedMotoServer
    import botocore.session   # s3fs's

    logging.getLogger("werkzeug").setLevel(logging.ERROR)    # moto's access log
    home = tmp_path_factory.mktemp("s3-home")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        with pytest.MonkeyPatch.context() as patch:
            for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
                         "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                         "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
                patch.delenv(name, raising=False)
            for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "waflens-test",
                                "AWS_SECRET_ACCESS_KEY": "waflens-test", "AWS_DEFAULT_REGION": "us-east-1",
                                "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": str(home / "aws-config"),
                                "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"), "HOME": str(home),
                                "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}.items():
                patch.setenv(name, value)
            # the standard endpoint setting is what keeps waflens off the internet: fail before any request if ignored
            resolved = botocore.session.get_session().create_client("s3").meta.endpoint_url
            assert resolved == endpoint, f"botocore ignores AWS_ENDPOINT_URL ({resolved}): refusing to go on"
            uploader = s3fs.S3FileSystem(skip_instance_cache=True, client_kwargs={"endpoint_url": endpoint})
            uploader.mkdir(BUCKET)
            uploader.put(str(spark_pipeline.out) + "/", f"{BUCKET}/{PREFIX}", recursive=True)
            assert uploader.glob(f"{BUCKET}/{PREFIX}/sessions/*.parquet")
            yield ObjectStore(endpoint, f"s3a://{BUCKET}/{PREFIX}")
    finally:
        server.stop()


def _require(module: str):
    """The test extra's s3fs and moto[server]: skipped without them on a user's machine, a failure in CI."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        message = f"{error}: `scripts/setup.sh test` installs it (the test extra)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + " (required in CI)")
        pytest.skip(message)


def _counts(db: Path) -> dict[str, int]:
    from waflens.data.db import connect

    con = connect(db, read_only=True)
    try:
        return {table: con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] for table in TABLES}
    finally:
        con.close()


def _cli(*args: str) -> dict:
    code, out, err = waflens_here("--json", *args)
    assert code == 0, (args[:3], err[-3000:])
    return json_summary(out)


def test_the_analyst_loop_on_s3_sees_what_it_sees_on_the_local_directory(object_store, spark_attached, tmp_path):
    db = tmp_path / "analyst.duckdb"
    attached = _cli("spark", "attach", object_store.directory, "--db", str(db))
    local = spark_attached.steps["attach"]
    assert (attached["files"], attached["requests"], attached["sessions"]) == \
        (local["files"], local["requests"], local["sessions"])
    counts = _counts(db)
    assert counts == _counts(spark_attached.db) and counts["requests"] > 1000

    run = _cli("--db", str(db), "cluster", "--min-cluster-size", str(MIN_CLUSTER_SIZE))
    assert run["n_sessions"] == spark_attached.steps["cluster"]["n_sessions"] and run["n_clusters"] >= 1
    summary = _cli("--db", str(db), "summarize", "--provider", "offline")
    assert summary["clusters"] and all(not c["status"].startswith("error") for c in summary["clusters"])

    # a fresh process registers s3fs again from the database's own record of where its Parquet is
    done = waflens("--db", str(db), "--json", "status")
    assert done.returncode == 0, done.stderr[-3000:]
    status = json.loads(done.stdout.strip().splitlines()[-1])
    assert {table: status[table] for table in TABLES} == counts


def test_without_httpfs_or_s3fs_an_attached_database_says_how_to_read_it(object_store, tmp_path, monkeypatch):
    from waflens.data.db import connect
    from waflens.data.errors import ConfigError

    db = tmp_path / "analyst.duckdb"
    _cli("spark", "attach", object_store.directory, "--db", str(db))
    monkeypatch.setitem(sys.modules, "s3fs", None)     # as on a machine without waflens[s3]
    with pytest.raises(ConfigError, match=r"pip install 'waflens\[s3\]'.*INSTALL httpfs|INSTALL httpfs.*waflens\[s3\]"):
        connect(db, read_only=True)
    code, _, err = waflens_here("--db", str(db), "status")
    assert code == ConfigError.exit_code and "waflens[s3]" in err and "Traceback" not in err


def test_a_missing_bucket_fails_in_one_line_and_leaves_no_database(object_store, tmp_path):
    db = tmp_path / "analyst.duckdb"
    code, _, err = waflens_here("spark", "attach", f"s3a://waflens-no-such-bucket/{PREFIX}", "--db", str(db))
    assert code == 3, err
    assert "The specified bucket does not exist" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("analyst.duckdb*"))


def test_refused_credentials_fail_in_one_line(object_store, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "not-a-key-of-this-store")
    db = tmp_path / "analyst.duckdb"
    _moto_checks_credentials(object_store.endpoint, True)
    try:
        code, _, err = waflens_here("spark", "attach", object_store.directory, "--db", str(db))
    finally:
        _moto_checks_credentials(object_store.endpoint, False)
    assert code == 3, err
    assert "Access Key Id you provided does not exist" in err and "credentials" in err and "Traceback" not in err
    assert not list(tmp_path.glob("analyst.duckdb*"))


def _moto_checks_credentials(endpoint: str, on: bool) -> None:
    """moto accepts any key until told to authenticate (its server's reset-auth: requests allowed before it does)."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=b"0" if on else b"inf", method="POST",
                                     headers={"Content-Type": "application/octet-stream"})   # not a form: the raw body
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_credentials_refused_after_attach_fail_each_command_in_one_line(object_store, tmp_path, monkeypatch):
    """The views read the bucket at every query: when the store stops taking the key (rotated, expired), each
    command says so in one line with the input error's exit code, not as a bug of waflens (exit 1)."""
    db = tmp_path / "analyst.duckdb"
    _cli("spark", "attach", object_store.directory, "--db", str(db))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a-key-rotated-since")
    _moto_checks_credentials(object_store.endpoint, True)
    try:
        runs = [waflens_here("--db", str(db), *command)
                for command in (("status",), ("cluster", "--min-cluster-size", str(MIN_CLUSTER_SIZE)))]
    finally:
        _moto_checks_credentials(object_store.endpoint, False)
    for code, _, err in runs:
        assert code == 3, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "internal error" not in err, err
        assert "Access Key Id you provided does not exist" in err and "credentials" in err
    assert _counts(db)["sessions"] > 0   # with the key back, the database reads as before


def test_the_workbench_shows_a_refused_key_as_the_pages_error(object_store, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    db = tmp_path / "analyst.duckdb"
    _cli("spark", "attach", object_store.directory, "--db", str(db))
    monkeypatch.setenv("WAFLENS_DB", str(db))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a-key-rotated-since")
    _moto_checks_credentials(object_store.endpoint, True)
    try:
        app = AppTest.from_file(str(WORKBENCH), default_timeout=120).run()
    finally:
        _moto_checks_credentials(object_store.endpoint, False)
    assert not app.exception, [e.value for e in app.exception]
    errors = [e.value for e in app.error]
    assert len(errors) == 1 and "Access Key Id you provided does not exist" in errors[0], errors
