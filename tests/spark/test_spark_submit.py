"""The Spark entry point through the real ``spark-submit`` (local mode), as docs/scaling.md runs it on a cluster.

One ``spark-submit`` of ``waflens/pipeline/spark/__main__.py --json features LOG --out DIR`` on a shared log, and
one of a missing file, each in its own JVM (while they run, this process computes the same with the in-process
``waflens spark features``). Checked: the exit codes are waflens's; the master is spark-submit's (not
``$WAFLENS_SPARK_MASTER``), with waflens's local shuffle partitions; a relative path is read; the pseudonym key is
``$WAFLENS_PSEUDONYM_KEY`` (no key file is made); stdout holds the ``--json`` summary alone and the error line is
on stderr (Spark's PythonRunner merges the Python driver's stderr into its stdout; see
:mod:`waflens.pipeline.spark.submit_stderr`); the Parquet equals the in-process run's.

Then the daily job as one application, on a real standalone cluster (a master and a worker on 127.0.0.1, each its
own JVM: :mod:`tests.spark.standalone`): ``spark-submit --master spark://… --name NAME .../__main__.py --json run
LOG --out DIR --model SESSION_MODEL --request-model REQUEST_MODEL`` while this process runs the per-step commands
on the same log, with connections authenticated and encrypted and I/O encrypted, as a cluster holding personal data
should run. Its executors run in a JVM of the worker, so the models travel as a cluster ships them (a model shipped
as a directory worked in local mode and failed here; a broadcast numpy array failed under I/O encryption). Checked:
stdout is the run's JSON summary alone, stderr has no pyspark FutureWarning and no traceback, the application ran
on the cluster's executors and is named by ``--name``, and every table the run writes equals what the steps
wrote. Then two applications the cluster must refuse before any step (exit 5, one line, nothing written): executors
that find another waflens, and executors given a relative Python path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds

from tests.data.cli_process import KEY, waflens_here
from tests.spark.pipeline import MODELS
from tests.spark.standalone import standalone_cluster

LOG = "scanner_w3af.log.gz"   # the smallest shared access log: 3996 requests
# the smallest shared log with clusters: 1262 requests, 795 sessions, 620 suspicious; a sample of 300 of them is
# fitted on the driver and the rest placed on the executors (the cluster step's two paths)
RUN_LOG = "secrepo_2022-12-22.log.gz"
RUN_CLUSTERING = ("--sample", "300", "--min-cluster-size", "5")
RUN_NAME = "waflens daily (test)"
SUBMIT_MASTER = "local[2]"
WAFLENS_MASTER = "local[1]"   # what waflens would pick itself: spark-submit's master must win over it
# set by spark-submit (or a pyspark gateway) in its children: this process's own must not leak into the runs
SPARK_CHILD_ENV = ("SPARK_ENV_LOADED", "PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET", "PYSPARK_SUBMIT_ARGS",
                   "WAFLENS_KEY_FILE", "WAFLENS_DB")


def _submit_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SPARK_CHILD_ENV}
    env.update(PYSPARK_PYTHON=sys.executable, WAFLENS_PSEUDONYM_KEY=KEY, WAFLENS_SPARK_MASTER=WAFLENS_MASTER)
    return env


def _spark_submit(cwd: Path, *args: str, master: str = SUBMIT_MASTER,
                  submit_options: tuple[str, ...] = ()) -> subprocess.Popen:
    import pyspark

    import waflens.pipeline.spark.__main__ as entry_point

    submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    event_log = cwd / "events"
    event_log.mkdir()
    command = [str(submit), "--master", master, "--conf", "spark.eventLog.enabled=true",
               "--conf", f"spark.eventLog.dir={event_log}", "--conf", "spark.eventLog.compress=false",
               "--conf", "spark.eventLog.rolling.enabled=false", *submit_options, entry_point.__file__, "--json", *args]
    return subprocess.Popen(command, cwd=cwd, env=_submit_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(run: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = run.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        run.kill()
        out, err = run.communicate()
    return run.returncode, out, err


def _events(event_log: Path) -> list[dict]:
    (log,) = event_log.iterdir()
    return [json.loads(line) for line in log.read_text().splitlines()]


def _recorded(event_log: Path) -> tuple[str, set]:
    """What the application's event log records: ``spark.master`` (what its SparkContext ran on) and the
    ``spark.sql.shuffle.partitions`` its queries ran with."""
    events = _events(event_log)
    # one environment update at the start, and on a cluster others as executors come
    (master,) = {event["Spark Properties"]["spark.master"] for event in events
                 if event["Event"] == "SparkListenerEnvironmentUpdate"}
    partitions = {event["modifiedConfigs"].get("spark.sql.shuffle.partitions") for event in events
                  if event["Event"].endswith("SparkListenerSQLExecutionStart")}
    return master, partitions


def _executor_hosts(event_log: Path) -> set:
    """The hosts of the executors the application was given (none in local mode: the driver runs the tasks)."""
    return {event["Executor Info"]["Host"] for event in _events(event_log)
            if event["Event"] == "SparkListenerExecutorAdded"}


def _application_name(event_log: Path) -> str:
    (name,) = [event["App Name"] for event in _events(event_log) if event["Event"] == "SparkListenerApplicationStart"]
    return name


def _table(directory: Path, file: str) -> pd.DataFrame:
    """A table of the run, its ``file`` column (the path as given) checked and left out."""
    frame = ds.dataset(directory, format="parquet", partitioning="hive").to_table().to_pandas()
    assert set(frame["file"]) == {file}
    return frame.drop(columns="file").sort_values("request_id").reset_index(drop=True)


def test_spark_submit_runs_the_entry_point_as_waflens_spark_does(spark, shared_datasets, tmp_path, monkeypatch):
    log = shared_datasets / "access_logs" / LOG
    submitted, failing = tmp_path / "submitted", tmp_path / "failing"
    submitted.mkdir(), failing.mkdir()
    relative = os.path.relpath(log, submitted)   # resolved against the driver's working directory, as by a shell
    run = _spark_submit(submitted, "features", relative, "--out", "out")
    missing = _spark_submit(failing, "features", str(failing / "nope.log"), "--out", str(failing / "out"))

    try:
        monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", KEY)
        here = tmp_path / "here"
        code_here, _, err_here = waflens_here("spark", "features", str(log), "--out", str(here))
        assert code_here == 0, err_here
        missing_here = waflens_here("spark", "features", str(failing / "nope.log"), "--out", str(tmp_path / "no-out"))

        code, out, err = _finish(run)
        assert code == 0, err[-3000:]
        (summary_line,) = out.splitlines()   # the summary alone: Spark's logs are on stderr
        summary = json.loads(summary_line)
        assert [(f["records"], f["parsed"], f["pseudonymized"]) for f in summary["files"]] == [(3996, 3996, True)]
        assert _recorded(submitted / "events") == (SUBMIT_MASTER, {"4"})   # 2 shuffle partitions a core, as here
        assert _application_name(submitted / "events") == "waflens spark"   # not the script's name: no --name given
        assert not list(submitted.glob("*.key"))   # the key came from $WAFLENS_PSEUDONYM_KEY
        for table in ("requests", "request_features"):
            pd.testing.assert_frame_equal(_table(submitted / "out" / table, relative), _table(here / table, str(log)),
                                          obj=table)

        code, out, err = _finish(missing)
        assert missing_here[0] == 3 and code == missing_here[0], err[-3000:]
        assert out == ""
        errors = [line for line in err.splitlines() if line.startswith("waflens: ")]
        assert errors == [missing_here[2].strip()] and "nope.log" in errors[0]
        assert not (failing / "out").exists()
    finally:   # a failed check leaves no JVM behind
        for process in (run, missing):
            if process.poll() is None:
                process.kill()
                process.communicate()


def _sorted(directory: Path, by: str) -> pd.DataFrame:
    """A table of a run, ordered by ``by``, without its ``file`` column (the path as given) when it has one."""
    frame = ds.dataset(directory, format="parquet", partitioning="hive").to_table().to_pandas()
    return frame.drop(columns=[c for c in ("file",) if c in frame]).sort_values(by).reset_index(drop=True)


def _secured(secret: str) -> tuple[str, ...]:
    """spark-submit options of a cluster that holds personal data: connections authenticated and encrypted,
    shuffle and broadcast files encrypted (pyspark's broadcast of a numpy array fails under the last one)."""
    return tuple(option for setting in (f"spark.authenticate.secret={secret}", "spark.authenticate=true",
                                        "spark.network.crypto.enabled=true", "spark.io.encryption.enabled=true")
                 for option in ("--conf", setting))


def _counts(summary: dict) -> dict:
    """A step's summary without the paths it wrote (relative under spark-submit, absolute here)."""
    return {k: v for k, v in summary.items() if k not in ("scores", "output", "out")}


def test_spark_submit_runs_the_daily_job_as_one_application(spark, shared_datasets, tmp_path, monkeypatch):
    cluster = tmp_path / "cluster"
    cluster.mkdir()
    secret = os.urandom(16).hex()
    with standalone_cluster(cluster, _submit_env(), secret=secret) as master:
        _daily_job_on(master, secret, shared_datasets, tmp_path, monkeypatch)
        _executors_without_the_drivers_waflens_are_refused(master, secret, shared_datasets, tmp_path)


def _executors_without_the_drivers_waflens_are_refused(master: str, secret: str, shared_datasets: Path,
                                                        tmp_path: Path) -> None:
    """Two applications refused before any step, each with exit 5, one line, nothing written: executors whose
    Python finds another waflens (here a copy of ``waflens.data`` with one line added, first on their PYTHONPATH,
    as an executor image not rebuilt would have), and executors given a relative Python path (it works in local
    mode, where the working directory is the driver's)."""
    import shutil

    import waflens.data

    shadow = tmp_path / "shadow"
    copied = shutil.copytree(Path(waflens.data.__file__).parent, shadow / "waflens" / "data",
                             ignore=shutil.ignore_patterns("__pycache__"))
    with open(copied / "feature_spec.py", "a") as spec:
        spec.write("# another version\n")
    relative_python = "waflens-env/bin/python"   # as docs/scaling.md's local-mode commands give it
    runs = {}
    for name, options in (("another", ("--conf", f"spark.executorEnv.PYTHONPATH={shadow}")),
                          ("relative", ("--conf", f"spark.pyspark.python={relative_python}",
                                        "--conf", f"spark.pyspark.driver.python={sys.executable}"))):
        (tmp_path / name).mkdir()
        runs[name] = _spark_submit(tmp_path / name, "features", str(shared_datasets / "access_logs" / LOG),
                                   "--out", "out", master=master, submit_options=(*_secured(secret), *options))
    lines = {}
    for name, run in runs.items():
        code, out, err = _finish(run)
        assert (code, out) == (5, ""), (name, err[-3000:])
        (lines[name],) = [line for line in err.splitlines() if line.startswith("waflens: ")]
        assert not (tmp_path / name / "out").exists()
    assert lines["another"].startswith("waflens: error: the executors on ") and "run another waflens (code " in \
        lines["another"] and "Shipping Python" in lines["another"], lines["another"]
    assert lines["relative"] == (
        f'waflens: error: the executors cannot run the Python "{relative_python}" (No such file or directory): '
        "give PYSPARK_PYTHON (spark.pyspark.python) as a path on the executors: an absolute path, or "
        "./env/bin/python in an environment shipped with --archives env.tar.gz#env")


def _daily_job_on(master: str, secret: str, shared_datasets: Path, tmp_path: Path, monkeypatch) -> None:
    log = shared_datasets / "access_logs" / RUN_LOG
    submitted = tmp_path / "submitted"
    submitted.mkdir()
    relative = os.path.relpath(log, submitted)
    session_model, request_model = str(MODELS / "session"), str(MODELS / "request")
    # on a cluster, waflens keeps the cluster's shuffle partitions (Spark's 200 would triple this test's time)
    run = _spark_submit(submitted, "run", relative, "--out", "out", "--model", session_model,
                        "--request-model", request_model, *RUN_CLUSTERING, master=master,
                        submit_options=("--name", RUN_NAME, "--conf", "spark.sql.shuffle.partitions=4",
                                        *_secured(secret)))
    refused = tmp_path / "refused"   # a request model as --model: refused before the session starts
    refused.mkdir()
    wrong_model = _spark_submit(refused, "run", relative, "--out", "out", "--model", request_model)

    try:   # meanwhile, the per-step commands in this process
        monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", KEY)
        here = tmp_path / "here"
        steps = {}
        for step, args in (("ingest", ("features", str(log), "--out", str(here))),
                           ("sessionize", ("sessionize", str(here), "--model", session_model)),
                           ("score", ("score", str(here), "--model", request_model)),
                           ("cluster", ("cluster", str(here), *RUN_CLUSTERING))):
            code, out, err = waflens_here("--json", "spark", *args)
            assert code == 0, (step, err)
            steps[step] = json.loads(out)

        code, out, err = _finish(wrong_model)
        assert (code, out) == (3, ""), err[-3000:]
        # its error line was the first JVM call with an argument, which makes pyspark warn about pandas 3
        assert "FutureWarning" not in err and not (refused / "out").exists(), err[-3000:]
        assert [line for line in err.splitlines() if line.startswith("waflens: ")] == [
            f"waflens: error: {request_model} is a request-level model: `spark run --model` takes a session model "
            "(scored while sessionizing); give a request model as --request-model"]

        code, out, err = _finish(run)
        assert code == 0, err[-3000:]
        (summary_line,) = out.splitlines()   # the summary alone
        summary = json.loads(summary_line)
        assert "FutureWarning" not in err and "Traceback" not in err, err[-3000:]
        assert _application_name(submitted / "events") == RUN_NAME
        assert _recorded(submitted / "events")[0] == master
        assert _executor_hosts(submitted / "events") == {"127.0.0.1"}   # the worker's executor ran the tasks
        assert [(f["file"], f["records"], f["parsed"]) for f in summary["ingest"]["files"]] == [(relative, 1262, 1262)]
        assert summary["ingest"]["failed"] == [] and summary["out"] == "out"
        for step in ("sessionize", "score", "cluster"):
            assert _counts(summary[step]) == _counts(steps[step]), step
        assert summary["cluster"]["placed"] > 0 and summary["cluster"]["clusters"] > 0   # both paths of the step ran
        for table, by in (("sessions", "session_id"), ("session_features", "session_id"),
                          ("scores/level=session", "session_id"), ("scores/level=request", "request_id"),
                          ("cluster_assignments", "session_id")):
            pd.testing.assert_frame_equal(_sorted(submitted / "out" / table, by), _sorted(here / table, by), obj=table)
    finally:   # a failed check leaves no JVM behind
        for process in (run, wrong_model):
            if process.poll() is None:
                process.kill()
                process.communicate()
