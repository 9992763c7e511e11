"""pyspark's Python worker daemon, without the traceback a cancelled task's worker prints.

When one task of a job fails (a .gz corrupt past its head: ``waflens spark ingest`` reports it in one line and
scans again without it), Spark cancels the job's other tasks and closes their workers' sockets. A worker that
was still sending rows then fails to flush them, and pyspark's daemon prints that ``BrokenPipeError`` with its
traceback to the worker's stderr, which Spark copies as is to the driver's stderr (not through log4j, so
:func:`~waflens.pipeline.spark.session.quiet_task_failures` cannot silence it): noise that looks like a crash.

Only a worker whose socket to Spark is closed ends silently here, as pyspark would end it (exit status 1, never
reused). Spark closed that socket and knows why: the reason, if it is an error, is the task's own failure, which
Spark reports. Every other error of a worker is printed as pyspark prints it. Spark runs this module in place of
``pyspark.daemon`` (``spark.python.daemon.module``, set by
:func:`~waflens.pipeline.spark.session.spark_session`).
"""

from __future__ import annotations

import os

from pyspark import daemon

_pyspark_worker = daemon.worker


def worker(*args, **kwargs) -> int:
    """pyspark's ``daemon.worker`` (one task in a forked process), ending quietly when Spark closed its socket."""
    try:
        return _pyspark_worker(*args, **kwargs)
    except (BrokenPipeError, ConnectionResetError):
        os._exit(1)   # what pyspark's daemon does after printing the traceback: this process is never reused


if __name__ == "__main__":
    daemon.worker = worker   # the daemon's manager looks ``worker`` up in its module for each task it forks
    daemon.manager()
