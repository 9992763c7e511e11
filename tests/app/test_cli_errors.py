"""Finding 12: operator faults get their documented exit codes and one line, never "internal error ...
report it": a bad --json-field, disk full on the database or the models, Ctrl-C during features."""

import contextlib
import json
import resource
import signal
import textwrap

import pytest

from waflens.data.db import connect
from waflens.data.synthetic import generate_traffic
from tests.data.cli_process import waflens, waflens_here
from tests.data.helpers import write_log


def test_bad_json_field_is_an_input_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", "test-key-0123456789abcdef")
    log = write_log(tmp_path / "a.json", [json.dumps({"ip": "10.0.0.1", "request": "GET / HTTP/1.1"})])
    db = str(tmp_path / "w.duckdb")
    for field, says in (("client_ip=$..x", "--json-field client_ip=$..x: not a JSON path DuckDB understands"),
                        ("client_ip=$[", "--json-field client_ip=$[: not a JSON path"),
                        ("client_ip=ip", "a path starts with '$'"),
                        ("clientip=$.ip", "unknown column 'clientip'")):
        code, _, err = waflens_here("--db", db, "ingest", "--format", "json", "--json-field", field, str(log))
        assert code == 3, (field, err)   # main: 1, "internal error: TransactionException ... report it"
        assert says in err and "internal error" not in err
    code, out, err = waflens_here("--db", db, "--json", "ingest", "--json-field", "client_ip=$.ip", str(log))
    assert code == 0 and json.loads(out)["files"][0]["parsed"] == 1, err


def _file_size_limit(limit: int):
    def apply() -> None:  # a full disk, as the process sees it: writes past the limit fail (EFBIG)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.slow
def test_disk_full_on_the_database_and_the_models_is_one_line_and_exit_74(tmp_path, monkeypatch):
    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", "test-key-0123456789abcdef")  # the key the subprocesses use
    log = tmp_path / "traffic.log"
    generate_traffic(log, 3000, seed=4)
    db = tmp_path / "w.duckdb"
    full = waflens("--db", str(db), "ingest", str(log), preexec_fn=_file_size_limit(1_000_000))
    assert full.returncode == 74, full.stderr  # main: 1, "internal error: ... cannot rollback"
    assert "cannot write" in full.stderr and "File too large" in full.stderr
    assert "internal error" not in full.stderr and len(full.stderr.strip().splitlines()) == 1
    con = connect(db, read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM sources").fetchall() == [(0,)]  # rolled back
    finally:
        con.close()
    assert waflens_here("--db", str(db), "ingest", str(log))[0] == 0  # with room, it goes in
    model = tmp_path / "models" / "request-1"
    with _soft_file_size_limit(20_000):  # here, for speed: the artifact is written past the limit
        code, _, err = waflens_here("--db", str(db), "train", "--trees", "10", "--out", str(model))
    assert code == 74, err  # main: 1, "internal error: OSError ..."
    assert "cannot write" in err and "internal error" not in err


@contextlib.contextmanager
def _soft_file_size_limit(limit: int):
    """This process's writes fail past ``limit`` bytes (EFBIG) for the duration; then as before."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


_SIGINT_IN_FEATURES = textwrap.dedent("""
    # Ctrl-C at the worst moment, every time: a real SIGINT the first time DuckDB calls waflens'
    # entropy function (a Python UDF) while computing request features. DuckDB runs on one thread here so
    # that the call happens on the main thread, where Python handles signals.
    import os, signal, sys, threading
    import duckdb
    _connect = duckdb.connect
    duckdb.connect = lambda *a, **k: _connect(*a, **{**k, "config": {**k.get("config", {}), "threads": 1}})
    fired = []
    def hook(frame, event, arg):
        if event == "call" and frame.f_code.co_name == "_arrow_entropy" and not fired:
            fired.append(1)
            os.kill(os.getpid(), signal.SIGINT)
    sys.setprofile(hook)
    from waflens.app.cli import main
    code = main(sys.argv[1:])
    sys.setprofile(None)
    sys.exit(code if fired else 99)
""")


def test_ctrl_c_during_feature_computation_exits_130_and_keeps_the_data_consistent(tmp_path, monkeypatch):
    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", "test-key-0123456789abcdef")
    log = tmp_path / "traffic.log"
    generate_traffic(log, 1500, seed=3)
    db = tmp_path / "w.duckdb"
    assert waflens_here("--db", str(db), "ingest", "--no-sessionize", str(log))[0] == 0
    result = waflens("--db", str(db), "sessionize", python_args=("-c", _SIGINT_IN_FEATURES))
    assert result.returncode == 130, result.stderr  # main: 1, "internal error: InvalidInputException ... UDF"
    assert "interrupted; the update of sessions and features was rolled back" in result.stderr
    con = connect(db, read_only=True)
    try:
        assert con.execute("SELECT count(*), count(session_id) FROM requests").fetchall() == [(1500, 0)]
        assert con.execute("SELECT count(*) FROM request_features").fetchall() == [(0,)]
    finally:
        con.close()
    assert waflens_here("--db", str(db), "sessionize")[0] == 0  # the next run takes them
