"""Ctrl-C acted on at safe points: between chunks of work, not wherever the signal lands.

Python raises KeyboardInterrupt at the next bytecode, which can be inside a ctypes
callback of numba's compiler (the exception is then swallowed, or LLVM is left
half-done and the process crashes) or inside DuckDB's own signal polling. During a
file's ingest we therefore only *note* the first Ctrl-C and raise it ourselves at
the next :meth:`DeferredInterrupt.check`, where the transaction rolls back cleanly.
A second Ctrl-C raises at once, for the impatient.

    with DeferredInterrupt() as interrupt:
        for chunk in chunks:
            work(chunk)
            interrupt.check()

Outside the main thread signals cannot be handled: the context then changes nothing.
"""

from __future__ import annotations

import signal

import duckdb


def was_interrupted(error: BaseException | None) -> bool:
    """True when Ctrl-C caused this error, directly or as the cause of a later one."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (KeyboardInterrupt, duckdb.InterruptException)):
            return True
        if isinstance(error, RuntimeError) and "interrupted" in str(error).lower():  # DuckDB 2's "Query interrupted"
            return True
        if isinstance(error, duckdb.Error) and "KeyboardInterrupt" in str(error):  # raised inside a Python UDF
            return True
        error = error.__context__
    return False


class InterruptedDerived(KeyboardInterrupt):
    """Ctrl-C while sessions and features were brought up to date. ``done``: the last step committed anyway
    (Ctrl-C landed in COMMIT); else it was rolled back. Ingested files stay either way, and the next
    ``sessionize`` or ``retrain`` picks their requests up."""

    def __init__(self, done: bool = False):
        super().__init__("sessions and features up to date" if done else "sessions and features rolled back")
        self.done = done


class InterruptedAfterFile(KeyboardInterrupt):
    """Ctrl-C arrived after the last check of a file's ingest: that file was committed whole; the caller
    stops before the next one. ``path``: the file that is in."""

    def __init__(self, path: str):
        super().__init__(path)
        self.path = path


class DeferredInterrupt:
    def __init__(self):
        self.requested = False
        self._previous = None
        self._installed = False

    def __enter__(self) -> "DeferredInterrupt":
        try:
            self._previous = signal.signal(signal.SIGINT, self._note)
            self._installed = True
        except ValueError:  # not the main thread
            self._installed = False
        return self

    def _note(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> None:
        """Raise KeyboardInterrupt if Ctrl-C was pressed since entering."""
        if self.requested:
            raise KeyboardInterrupt

    def __exit__(self, *exc) -> bool:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False
        return False
