"""Long work from the workbench (ingest, clustering, summarizing, retraining) as a CLI subprocess.

The app process must never hold DuckDB's write lock for long (a cron retrain needs
it, and one process can write at a time), so long work runs as ``python -m waflens.app.cli
--json ...`` in its own process, exactly as cron would run it. Its stderr lines
(progress, warnings) stream into an ``st.status`` box while it runs; its one JSON
summary on stdout is the result. Exit code 4 means another process holds the
database: that is a warning to try again, not an error.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

import streamlit as st

from waflens.app.render import escape_markdown
from waflens.app.state import after_write, database_path

BUSY_EXIT = 4
LOCK_HELD_EXIT = 75  # `waflens retrain`: another retrain holds its lock
_MAX_LINES_SHOWN = 200


class JobResult(NamedTuple):
    code: int
    summary: dict | None     # the command's --json output, when it printed one
    log: list[str]           # its stderr lines

    @property
    def ok(self) -> bool:
        return self.code == 0


def cli_command(args: list[str]) -> list[str]:
    # -P: the job runs in the database's folder, and nothing there (an `app/`, a `duckdb.py`) may shadow a module
    return [sys.executable, "-P", "-m", "waflens.app.cli", "--db", database_path(), "--json", *args]


def _pump(stream, lines: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        lines.put(line.rstrip("\n"))
    stream.close()


def run_cli(args: list[str], label: str, *, env: dict[str, str] | None = None, ok_codes: tuple[int, ...] = (0,),
            timeout_s: float | None = None) -> JobResult:
    """Run a CLI command with its progress in an ``st.status`` box; returns its exit code and summary."""
    environment = {**os.environ, **(env or {})}
    environment["PYTHONUNBUFFERED"] = "1"
    log: list[str] = []
    started = time.monotonic()
    with st.status(f"{label}…", expanded=True) as status, tempfile.TemporaryFile("w+", encoding="utf-8") as out:
        process = subprocess.Popen(cli_command(args), stdout=out, stderr=subprocess.PIPE, text=True,
                                   encoding="utf-8", errors="backslashreplace", env=environment,
                                   cwd=str(Path(database_path()).parent), stdin=subprocess.DEVNULL)
        lines: queue.Queue = queue.Queue()
        reader = threading.Thread(target=_pump, args=(process.stderr, lines), daemon=True)
        reader.start()
        elapsed = st.empty()
        while True:
            finished = process.poll() is not None
            while not lines.empty():
                line = lines.get()
                log.append(line)
                if len(log) <= _MAX_LINES_SHOWN:
                    st.text(line)  # text, never markup: a line may quote a file name
            if finished and not reader.is_alive() and lines.empty():
                break
            elapsed.caption(f"running for {time.monotonic() - started:.0f} s")
            if timeout_s is not None and time.monotonic() - started > timeout_s and not finished:
                process.kill()
            time.sleep(0.2)
        code = process.wait()
        elapsed.caption(f"took {time.monotonic() - started:.1f} s")
        out.seek(0)
        summary = _last_json(out.read())
        after_write()
        if code in ok_codes:
            status.update(label=f"{label}: done", state="complete", expanded=False)
        elif code in (BUSY_EXIT, LOCK_HELD_EXIT):
            status.update(label=f"{label}: the database is busy", state="error", expanded=True)
        else:
            status.update(label=f"{label}: failed (exit code {code})", state="error", expanded=True)
    if code in (BUSY_EXIT, LOCK_HELD_EXIT):
        st.warning("The database is busy (a retrain or ingest is writing): nothing was done; try again in a moment.",
                   icon="⏳")
    elif code not in ok_codes:
        message = next((line for line in reversed(log) if line.strip()), f"exit code {code}")
        st.error(escape_markdown(message))
    return JobResult(code, summary, log)


def _last_json(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        return value if isinstance(value, dict) else {"result": value}
    return None


def finish(key: str, message: str, result: JobResult, *, kind: str = "success") -> None:
    """Keep a finished job's message and output for the next run, and rerun so the page shows the new data."""
    st.session_state[f"_job_{key}"] = (kind, message, result.log)
    st.rerun()


def show_finished(key: str) -> None:
    """The message (and output) of the job :func:`finish` kept, once."""
    kept = st.session_state.pop(f"_job_{key}", None)
    if not kept:
        return
    kind, message, log = kept
    {"success": st.success, "info": st.info, "warning": st.warning}[kind](escape_markdown(message))
    if log:
        with st.expander(f"Output ({len(log)} lines)"):
            st.code("\n".join(log[-_MAX_LINES_SHOWN:]), language=None)
