"""The one exception family of waflens.

Every error a user can cause or fix derives from :class:`WaflensError` and carries
an ``exit_code`` that the CLI returns. Messages say what was wrong and how to fix
it, in one line, and never quote raw log content (it may be hostile or personal).
"""


class WaflensError(Exception):
    """Root of all waflens errors; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


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


EXIT_CODES = {
    0: "success",
    1: "unexpected internal error (a bug: please report it with --debug output)",
    2: "usage error (unknown command or option)",
    InputError.exit_code: "input error: a file is missing, unreadable or not a log it can parse",
    DatabaseError.exit_code: "database error: busy (another writer), read-only or corrupt",
    ConfigError.exit_code: "configuration error: key file, environment variable or option value",
    InsufficientDataError.exit_code: "not enough data for this step",
    130: "interrupted (Ctrl-C); the file being ingested was rolled back",
}
