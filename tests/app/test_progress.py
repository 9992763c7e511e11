"""The stage progress renderer: a bar with counts and an ETA on a terminal, lines elsewhere, JSON lines."""

import io
import json
import time

from waflens.app.progress import StageProgress, previous_stage_seconds


def test_terminal_bar_shows_counts_elapsed_and_an_eta_from_the_counts():
    screen = io.StringIO()
    progress = StageProgress("retrain", stream=screen, tty=True)
    progress.begin("train", 12, "steps")
    progress._began -= 30.0                       # as if the stage began 30 s ago
    progress.advance(3, "request model: profile fold 2/5")
    line = progress.line()
    assert line.startswith("retrain: train") and " 3/12 steps" in line
    assert "[" + "#" * 6 + "-" * 18 + "]" in line                  # a quarter of the bar
    assert "30s" in line and "ETA 1m30s" in line                   # 30 s for 3 steps: 90 s for the other 9
    assert "profile fold 2/5" in line
    assert screen.getvalue().startswith("\r\x1b[Kretrain: train")   # redrawn in place, not appended
    progress.end("train", 31.0, {"requests": 45000, "sessions": 3000})
    progress.close()
    assert screen.getvalue().endswith("\r\x1b[Kretrain: train      done in 31.0 s (requests 45,000, sessions 3,000)\n")


def test_a_stage_without_counts_takes_its_eta_from_the_previous_run_and_keeps_moving():
    screen = io.StringIO()
    progress = StageProgress("retrain", stream=screen, tty=True, expected={"cluster": 40.0})
    progress.begin("cluster")
    progress._began -= 10.0
    assert "ETA 30s" in progress.line() and "[" + "#" * 6 + "-" * 18 + "]" in progress.line()
    progress.begin("sessionize")                                   # no history: a moving block, no ETA
    first = progress.line(now=progress._began)
    later = progress.line(now=progress._began + 1.0)
    assert "###" in first and first != later and "ETA" not in later
    time.sleep(0.6)                                                # the ticker redraws while nothing advances
    assert screen.getvalue().count("\r\x1b[Kretrain: sessionize") >= 2
    progress.close()


def test_without_a_terminal_each_stage_is_a_start_line_and_an_end_line_and_json_goes_to_its_stream():
    screen, out = io.StringIO(), io.StringIO()
    with StageProgress("demo", stream=screen, json_out=out, tty=False) as progress:
        progress.begin("ingest", 1, "files")
        progress.advance(1, "traffic.log")
        progress.end("ingest", 7.61, {"files": 1, "records": 60000})
        progress.message("v0001 promoted to production (was none)")
    assert screen.getvalue().splitlines() == ["demo: ingest…", "demo: ingest done in 7.6 s (files 1, records 60,000)",
                                              "demo: v0001 promoted to production (was none)"]
    assert "\x1b" not in screen.getvalue()
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [
        {"event": "stage", "stage": "ingest", "seconds": 7.61, "counts": {"files": 1, "records": 60000}}]


def test_previous_stage_seconds_come_from_the_newest_report_that_trained(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "20261101T000000Z.json").write_text(json.dumps({"stages": {"ingest": 5.0, "train": 20.0}}))
    (runs / "20261102T000000Z.json").write_text(json.dumps({"stages": {"ingest": 1.0}}))   # nothing new: no train
    (runs / "20261103T000000Z.json").write_text("{not json")
    assert previous_stage_seconds(tmp_path) == {"ingest": 5.0, "train": 20.0}
    assert previous_stage_seconds(tmp_path / "missing") == {}


def test_demo_reports_every_stage_from_generating_to_promoting(tmp_path, monkeypatch):
    import contextlib

    from waflens.app.cli import main

    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", "progress-test-key-0123456789")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--db", str(tmp_path / "demo.duckdb"), "--json", "demo", "--dir", str(tmp_path / "demo"),
                     "--requests", "3000", "--no-app"])
    assert code == 0, err.getvalue()
    stages = [json.loads(line) for line in out.getvalue().splitlines()
              if line.startswith("{") and json.loads(line).get("event") == "stage"]
    names = [s["stage"] for s in stages]
    assert names[0] == "generate" and stages[0]["counts"] == {"requests": 3000}
    assert {"ingest", "sessionize", "cluster", "summarize", "train", "gates", "register", "drift"} <= set(names)
    lines = err.getvalue().splitlines()
    assert "demo: generate…" in lines and any(line.startswith("demo: gates done in ") for line in lines)
