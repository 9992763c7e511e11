"""Run the Streamlit server as a child process that lives and dies with ``waflens app``.

A server started with ``subprocess.call`` outlives a ``kill -TERM`` of its parent (it
keeps the port, with PPID 1). Here the child gets its own process group; SIGTERM,
SIGINT or SIGHUP to ``waflens app`` are forwarded to that whole group, the child gets
a few seconds to close, then is killed; on Linux the child also dies with its parent
when the parent is killed outright (``kill -9``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import NamedTuple

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
STOP_GRACE_S = 10.0


class ServerExit(NamedTuple):
    code: int                 # the server's exit status
    stopped_by: int | None    # the signal that stopped it, when we were asked to stop


def _die_with_parent(parent: int):
    """A preexec function: SIGTERM to the child when its parent dies (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:  # not glibc Linux: the signal forwarding still covers TERM/INT/HUP
        return lambda: None

    def setup() -> None:
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(0)

    return setup


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def run_server(command: list[str], env: dict[str, str], *, grace_s: float = STOP_GRACE_S) -> ServerExit:
    """Start ``command`` in its own process group and wait for it; a stop signal stops the whole group."""
    preexec = _die_with_parent(os.getpid()) if sys.platform.startswith("linux") else None
    process = subprocess.Popen(command, env=env, start_new_session=True, preexec_fn=preexec)
    received: list[int] = []
    asked_at: list[float] = []

    def on_stop(signum, _frame) -> None:
        if not received:
            received.append(signum)
            asked_at.append(time.monotonic())
            _signal_group(process.pid, signal.SIGTERM)

    previous = {}
    for signum in STOP_SIGNALS:
        try:
            previous[signum] = signal.signal(signum, on_stop)
        except ValueError:  # not the main thread: the caller owns signals
            pass
    try:
        while True:
            try:
                code = process.wait(timeout=0.25)
                break
            except subprocess.TimeoutExpired:
                if asked_at and time.monotonic() - asked_at[0] > grace_s:
                    _signal_group(process.pid, signal.SIGKILL)
    finally:
        _signal_group(process.pid, signal.SIGKILL)  # anything the server started and left behind
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return ServerExit(code, received[0] if received else None)
