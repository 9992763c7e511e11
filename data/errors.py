"""The one exception family of waflens, below the root the runtime owns.

Every error a user can cause or fix derives from :class:`WaflensError` (defined in
:mod:`waflens.runtime.errors`, so the runtime's :class:`~waflens.runtime.artifact.ArtifactError`
is one of them) and carries an ``exit_code`` that the CLI returns. Messages say what was wrong
and how to fix it, in one line, and never quote raw log content (it may be hostile or personal).
"""

import errno
import re

from waflens.runtime.errors import WaflensError

__all__ = ["WaflensError", "InputError", "DatabaseError", "ConfigError", "InsufficientDataError", "StorageError",
           "EXIT_CODES", "EXIT_NOTHING_PARSED", "storage_fault"]


class InputError(WaflensError):
    """A file or value given to waflens cannot be used (missing, unreadable, not a log)."""

    exit_code = 3


class DatabaseError(WaflensError):
    """The DuckDB database cannot be opened or written (busy, read-only, corrupt)."""

    exit_code = 4


class ConfigError(WaflensError):
    """Configuration is wrong: a key file with loose permissions, a bad option value."""

    exit_code = 5


class InsufficientDataError(WaflensError):
    """There is too little data for the requested step (training, clustering)."""

    exit_code = 6


class StorageError(WaflensError):
    """A write failed for lack of room: disk full, quota or file-size limit (database, WAL, models, reports)."""

    exit_code = 74  # EX_IOERR, beside retrain's 75 (EX_TEMPFAIL)


EXIT_NOTHING_PARSED = 7  # ingest: a whole file parsed to nothing (wrong --format / --log-format)


EXIT_CODES = {
    0: "success",
    1: "unexpected internal error (a bug: please report it with --debug output)",
    2: "usage error (unknown command or option)",
    InputError.exit_code: "input error: a file is missing, unreadable or not a log it can parse",
    DatabaseError.exit_code: "database error: busy (another writer), read-only or corrupt",
    ConfigError.exit_code: "configuration error: key file, environment variable or option value",
    InsufficientDataError.exit_code: "not enough data for this step",
    EXIT_NOTHING_PARSED: "ingest: no record of a file parsed (every one quarantined): wrong --format or --log-format; "
                         "the message says what to try, and ingesting the file again replaces that attempt",
    StorageError.exit_code: "no space left: the disk (or quota, or file-size limit) of the database or models is full",
    130: "interrupted (Ctrl-C); the file being ingested, or the update of sessions, was rolled back",
}


_FULL_TEXT = ("no space left", "file too large", "disk quota", "quota exceeded")
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def storage_fault(error: BaseException | None) -> StorageError | None:
    """The disk-full error behind ``error`` (the OS's, or DuckDB's in words, possibly under a later
    "cannot rollback" error), as a one-line :class:`StorageError`; None when it is something else."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _FULL_ERRNOS:
            return StorageError(_full_message(error.filename, error.strerror or "no space left"))
        text = str(error)
        if any(marker in text.lower() for marker in _FULL_TEXT):
            written = re.search(r'(?:write|extend|create|open) file "([^"]+)"', text, re.IGNORECASE)
            reason = text.strip().splitlines()[0].rsplit(": ", 1)[-1] if text.strip() else "no space left"
            return StorageError(_full_message(written.group(1) if written else None, reason))
        error = error.__cause__ or error.__context__
    return None


def _full_message(path: object, reason: str) -> str:
    where = f"cannot write {path}" if path else "cannot write"
    return (f"{where}: {reason} (the disk, a quota or the file-size limit is full); free space there, or move the "
            "database with --db / the models with --models; the step that failed was rolled back")
