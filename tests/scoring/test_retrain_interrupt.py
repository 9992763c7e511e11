"""Ctrl-C during `waflens retrain` (a real process and a real SIGINT): exit 130, a message that says what was kept,
no half version, the lock released, and the next retrain works."""

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest

from waflens.app.cli import main
from waflens.data.db import connect
from waflens.data.synthetic import generate_traffic
from waflens.scoring.registry import Registry

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def traffic(tmp_path_factory):
    log = tmp_path_factory.mktemp("retrain_interrupt") / "traffic.log"
    generate_traffic(log, 3_000, seed=5)
    return log


def interrupted_retrain(db: Path, models: Path, log: Path, stage: str) -> tuple[int, str, str]:
    """Run retrain and send SIGINT once the line saying ``stage`` began appears on stderr."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "WAFLENS_PSEUDONYM_KEY": "test-key-0123456789abcdef"}
    process = subprocess.Popen([sys.executable, "-m", "waflens.app.cli", "--db", str(db), "--json", "retrain", "--source",
                                str(log), "--models", str(models), "--trees", "20"], cwd=REPO, env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err = []
    try:
        for line in process.stderr:
            err.append(line)
            if line.strip() == f"retrain: {stage}…":
                process.send_signal(signal.SIGINT)
        out = process.stdout.read()
        return process.wait(timeout=120), out, "".join(err)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("stage", ["train"])  # cluster works the same way; each stage costs ~18 s
def test_ctrl_c_exits_130_saying_what_was_kept_and_the_next_retrain_works(traffic, tmp_path, stage):
    db, models = tmp_path / "w.duckdb", tmp_path / "models"
    code, out, err = interrupted_retrain(db, models, traffic, stage)
    assert code == 130, err[-2000:]
    assert f"retrain interrupted during {stage}: ingested files are kept; no model was registered" in err, err[-2000:]
    assert "internal error" not in err and "Traceback" not in err
    report = json.loads(out.splitlines()[-1])
    assert report["status"] == "interrupted" and report["exit_code"] == 130
    assert Path(report["report_path"]).exists()                      # cron's monitoring sees the interrupted run
    registry = Registry(models)
    assert registry.versions() == [] and registry.alias("production") is None   # no half version
    assert not list((models / "versions").glob("*"))                 # nor a staging directory left behind
    assert not list(models.glob(".bundle-*"))                         # the staging bundle is gone
    with open(models / "retrain.lock", "a+") as lock:                 # released: a new run can take it
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(lock, fcntl.LOCK_UN)
    con = connect(db, read_only=True)
    try:
        requests, unsessionized = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE session_id IS NULL) FROM requests").fetchall()[0]
    finally:
        con.close()
    assert requests == 3_000 and unsessionized == 0                 # the ingested file is kept, sessionized

    again_out, again_err = StringIO(), StringIO()
    with contextlib.redirect_stdout(again_out), contextlib.redirect_stderr(again_err):
        again = main(["--db", str(db), "--json", "retrain", "--source", str(traffic), "--models", str(models),
                      "--trees", "20"])
    assert again in (0, 11), again_err.getvalue()[-2000:]
    assert [v.version for v in Registry(models).versions()] == ["v0001"]
