"""The real `waflens` CLI in its own process, for what only a process shows: exit codes, signals, rlimits, umask."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KEY = "test-key-0123456789abcdef"


def waflens(*args: str, timeout: float = 120, env: dict | None = None, preexec_fn=None,
            python_args: tuple[str, ...] = ("-m", "waflens.app.cli")) -> subprocess.CompletedProcess:
    environment = {**os.environ, "WAFLENS_PSEUDONYM_KEY": KEY, **(env or {})}
    return subprocess.run([sys.executable, *python_args, *args], cwd=REPO, env=environment, capture_output=True,
                          text=True, timeout=timeout, preexec_fn=preexec_fn)


def waflens_here(*args: str) -> tuple[int, str, str]:
    """The CLI's entry point in this process (what `waflens` returns as its exit status), for speed."""
    import contextlib
    from io import StringIO

    from waflens.app.cli import main

    out, err = StringIO(), StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def json_lines(stdout: str) -> list:
    """The JSON lines of a ``--json`` run's stdout (``retrain --json`` prints one per stage, then its summary)."""
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def json_summary(stdout: str):
    """A ``--json`` run's summary: its last JSON line; the raw stdout when it printed none (to show in a failure)."""
    lines = json_lines(stdout)
    return lines[-1] if lines else stdout
