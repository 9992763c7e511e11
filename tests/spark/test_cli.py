"""`waflens spark` through the real CLI entry points: exit codes and one-line errors, as the rest of the CLI."""

from __future__ import annotations

import contextlib
from io import StringIO

from tests.data.cli_process import waflens_here


def _spark_main(*args: str) -> tuple[int, str, str]:
    from waflens.pipeline.spark.cli import main

    out, err = StringIO(), StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_missing_file_is_an_input_error(spark, tmp_path):
    code, _, err = waflens_here("spark", "ingest", str(tmp_path / "nope.log"), "--out", str(tmp_path / "out"))
    assert code == 3
    assert err.startswith("waflens: error: ") and "nope.log" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_file_of_which_nothing_parses_exits_7_with_a_hint(spark, tmp_path, monkeypatch):
    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", "test-key-0123456789abcdef")
    log = tmp_path / "access.log"
    log.write_text('1.2.3.4 - - [01/Nov/2026:12:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "x"\n' * 3)
    code, out, err = _spark_main("--json", "ingest", str(log), "--format", "json", "--out", str(tmp_path / "out"))
    assert code == 7
    assert "none of its 3 records parsed as json" in err and "--format combined" in err
    quarantine = spark.read.parquet(str(tmp_path / "out" / "quarantine")).collect()
    assert sorted(row["record"] for row in quarantine) == [1, 2, 3]
    assert {row["reason"] for row in quarantine} == {"not valid JSON"}


def test_features_without_files_reads_an_earlier_ingest(spark, tmp_path, monkeypatch):
    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", "test-key-0123456789abcdef")
    log = tmp_path / "access.log"
    log.write_text('1.2.3.4 - - [01/Nov/2026:12:00:00 +0000] "GET /a?id=1%27%20union%20select HTTP/1.1" 200 1 "-" "x"\n'
                   '5.6.7.8 - - [02/Nov/2026:12:00:00 +0000] "POST /b HTTP/1.1" 200 1 "-" "curl/8"\n')
    out = tmp_path / "out"
    assert _spark_main("ingest", str(log), "--out", str(out))[0] == 0
    assert not (out / "request_features").exists()
    code, _, err = _spark_main("features", "--out", str(out))
    assert code == 0, err
    rows = {r["record"]: r for r in spark.read.parquet(str(out / "request_features")).collect()}
    assert set(rows) == {1, 2}
    assert rows[1]["sql_tokens"] == 2 and rows[2]["method_is_post"] == 1
    assert str(rows[1]["day"]) == "2026-11-01" and rows[2]["request_id"] == 2


def test_features_without_files_or_requests_says_what_to_run(spark, tmp_path):
    code, _, err = _spark_main("features", "--out", str(tmp_path / "empty"))
    assert code == 3 and "waflens spark ingest" in err


def test_local_masters_get_a_few_shuffle_partitions_and_clusters_keep_theirs():
    import os

    from waflens.pipeline.spark.session import local_cores

    assert local_cores("local[2]") == 2 and local_cores("local") == 1 and local_cores("local[3,4]") == 3
    assert local_cores("local[*]") == (os.cpu_count() or 1)
    assert local_cores("yarn") is None and local_cores("spark://host:7077") is None and local_cores("local[x]") is None


def test_a_local_session_runs_its_jvm_with_the_jit_options_for_short_steps(spark):
    from waflens.pipeline.spark.session import LOCAL_DRIVER_JAVA_OPTIONS

    arguments = set(spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    assert set(LOCAL_DRIVER_JAVA_OPTIONS.split()) <= arguments


def test_the_spark_group_runs_every_step_as_one_command_group():
    code, out, _ = _spark_main("--help")
    assert code == 0
    for command in ("ingest", "features", "sessionize", "score", "cluster", "attach", "run"):
        assert f"  {command} " in out, command


def test_waiting_for_an_idle_scheduler_ends_when_the_last_task_set_does(spark):
    """What quiet_task_failures waits on after a failed scan, so the cancelled tasks log while it is quiet."""
    import threading
    import time

    from waflens.pipeline.spark.session import scheduled_task_sets, wait_for_idle_scheduler

    done = []
    job = threading.Thread(target=lambda: done.append(
        spark.sparkContext.parallelize([1, 2], 2).map(lambda x: time.sleep(1.5) or x).collect()))
    job.start()
    deadline = time.monotonic() + 60
    while not scheduled_task_sets(spark) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert scheduled_task_sets(spark) == 1 and not done
    assert wait_for_idle_scheduler(spark, 60)
    assert scheduled_task_sets(spark) == 0
    job.join(10)
    assert done == [[1, 2]]


def test_a_cancelled_stage_counts_until_its_killed_tasks_have_ended(spark, tmp_path):
    """A failed scan cancels its stage: the stage's task set is a zombie from then on, and the driver logs each
    of its tasks' kills ("Lost task ... TaskKilled") as they end, after the job has already failed. The wait
    must hold until then (the scheduler's own queue of schedulable task sets leaves zombies out at once)."""
    import threading
    import time

    from waflens.pipeline.spark.session import scheduled_task_sets, wait_for_idle_scheduler

    started, failed = tmp_path / "started", []
    started.mkdir()

    def slow(x):   # in the task's Python worker: says it runs, then outlasts the check below
        (started / str(x)).touch()
        time.sleep(8)
        return x

    def slow_job():
        try:
            spark.sparkContext.parallelize([1, 2], 2).map(slow).collect()
        except Exception as error:   # cancelled: the job fails at once, its tasks end later
            failed.append(error)

    job = threading.Thread(target=slow_job)
    job.start()
    deadline = time.monotonic() + 60
    while len(list(started.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    spark.sparkContext.cancelAllJobs()
    job.join(60)
    assert failed, "the job was not cancelled"
    assert scheduled_task_sets(spark) == 1   # its killed tasks are still winding down
    assert wait_for_idle_scheduler(spark, 60)
    assert scheduled_task_sets(spark) == 0


def _jobs_so_far(spark) -> int:
    """How many Spark jobs this application has run (the status tracker keeps the last 1000)."""
    return len(spark.sparkContext.statusTracker().getJobIdsForGroup(None))


def test_run_refuses_a_model_of_the_wrong_level_or_a_bad_gap_before_any_job(spark, tmp_path, monkeypatch):
    from tests.spark.pipeline import MODELS

    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", "test-key-0123456789abcdef")
    log = tmp_path / "access.log"
    log.write_text('1.2.3.4 - - [01/Nov/2026:12:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "x"\n')
    before = _jobs_so_far(spark)
    for args, error in (
            (("--model", str(MODELS / "request")), f"{MODELS / 'request'} is a request-level model: `spark run --model` "
                                                   "takes a session model (scored while sessionizing); give a request "
                                                   "model as --request-model"),
            (("--request-model", str(MODELS / "session")), f"{MODELS / 'session'} is a session-level model: `spark run "
                                                           "--request-model` takes a request model; give a session "
                                                           "model as --model"),
            (("--gap-minutes", "0"), "session gap must be positive minutes, got 0.0")):
        code, out, err = _spark_main("run", str(log), "--out", str(tmp_path / "out"), *args)
        assert (code, out, err) == (3, "", f"waflens: error: {error}\n")
    assert _jobs_so_far(spark) == before
    assert not (tmp_path / "out").exists()


def test_run_stops_at_the_step_that_fails_and_names_it(spark, tmp_path):
    code, out, err = _spark_main("run", str(tmp_path / "nope.log"), "--out", str(tmp_path / "out"))
    assert (code, out) == (3, "")
    assert err.startswith("waflens: error: ingest: ") and "nope.log" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()   # nothing ingested: no later step ran


def test_run_writes_every_step_and_exits_with_the_code_of_a_skipped_file(spark, tmp_path, monkeypatch):
    """A file that cannot be read is skipped, as `spark features` skips it; the other steps still run."""
    import json

    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", "test-key-0123456789abcdef")
    log, out = tmp_path / "access.log", tmp_path / "out"
    log.write_text('1.2.3.4 - - [01/Nov/2026:12:00:00 +0000] "GET /a?id=1%27%20or%201=1 HTTP/1.1" 200 1 "-" "x"\n'
                   '1.2.3.4 - - [01/Nov/2026:12:00:05 +0000] "GET /b HTTP/1.1" 404 1 "-" "x"\n'
                   '5.6.7.8 - - [01/Nov/2026:13:00:00 +0000] "POST /c HTTP/1.1" 200 1 "-" "curl/8"\n')
    code, stdout, err = _spark_main("--json", "run", str(log), str(tmp_path / "nope.log"), "--out", str(out))
    assert code == 3
    assert [line for line in err.splitlines() if line.startswith("waflens: ")] == [err.strip()]
    assert "nope.log" in err
    summary = json.loads(stdout)
    assert [(f["records"], f["status"]) for f in summary["ingest"]["files"]] == [(3, "ingested"), (0, "failed")]
    assert len(summary["ingest"]["failed"]) == 1 and summary["score"] is None
    assert (summary["sessionize"]["requests"], summary["sessionize"]["sessions"]) == (3, 2)
    assert summary["cluster"]["sessions"] == 2 and summary["cluster"]["output"] == f"{out}/cluster_assignments"
    for table in ("requests", "request_features", "sessions", "session_features", "cluster_assignments"):
        assert (out / table).is_dir(), table
    sessions = {r["session_id"]: r["n_requests"] for r in spark.read.parquet(str(out / "sessions")).collect()}
    assert sessions == {1: 2, 3: 1}


def test_a_step_of_run_is_named_in_its_error_or_in_a_note_on_an_unexpected_exception():
    import pytest

    from waflens.data.errors import EXIT_NOTHING_PARSED, ConfigError, WaflensError
    from waflens.pipeline.spark.run import StepFailed, step

    class NothingParsed(WaflensError):
        exit_code = EXIT_NOTHING_PARSED

    for error, code in ((ConfigError("bad key file"), 5), (NothingParsed("nothing parsed"), 7)):
        with pytest.raises(StepFailed) as failed, step("sessionize"):
            raise error
        assert (str(failed.value), failed.value.exit_code, failed.value.__cause__) == (f"sessionize: {error}", code,
                                                                                       error)
    with pytest.raises(ZeroDivisionError) as bug, step("cluster"):
        1 / 0
    assert bug.value.__notes__ == ["(in the cluster step of `waflens spark run`)"]
