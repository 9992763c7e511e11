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
    for command in ("ingest", "features", "sessionize", "score", "cluster", "attach"):
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
