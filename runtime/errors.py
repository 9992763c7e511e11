"""The root of every waflens error, owned by the runtime so that a WAF worker (which has only
``waflens.runtime``) and the full toolkit raise one family: ``except WaflensError`` catches both.

Every error a user can cause or fix derives from :class:`WaflensError` and carries the ``exit_code``
the CLI returns (the codes are listed in :data:`waflens.data.errors.EXIT_CODES`).
"""


class WaflensError(Exception):
    """Root of all waflens errors; ``exit_code`` is what the CLI exits with."""

    exit_code = 1
