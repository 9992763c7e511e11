"""Under ``spark-submit``, what waflens writes to stderr goes to spark-submit's stderr, not into its stdout.

``spark-submit app.py`` runs the Python driver as a child of its JVM (Spark's ``PythonRunner``), which merges
the child's stderr into its stdout (``redirectErrorStream``): without this, waflens's one-line errors and
warnings would land in the ``--json`` summary a script reads from stdout. The JVM's own stderr is
spark-submit's (where Spark logs), and ``PythonRunner`` has already started a Py4J gateway to that JVM
(``PYSPARK_GATEWAY_PORT``): Python's ``sys.stderr`` writes through it for the length of the command.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from typing import Iterator


def under_spark_submit() -> bool:
    """True when ``spark-submit`` started this Python (its JVM is waiting on a gateway); a plain ``python``
    run starts its own JVM later and sets nothing in its environment."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


class JvmStderr(io.TextIOBase):
    """A text stream that prints to a JVM's ``System.err``."""

    def __init__(self, system_err):
        self._system_err = system_err

    @property
    def encoding(self) -> str:   # click asks, and writes text (not bytes) to a stream that answers utf-8
        return "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):   # as a text file does: click probes streams with b"" to find binary ones
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._system_err.print(text)
        return len(text)

    def flush(self) -> None:
        self._system_err.flush()


@contextlib.contextmanager
def stderr_to_spark_submit() -> Iterator[None]:
    """Point ``sys.stderr`` at spark-submit's stderr for the block (nothing changes outside spark-submit)."""
    if not under_spark_submit():
        yield
        return
    from pyspark.java_gateway import launch_gateway   # with PYSPARK_GATEWAY_PORT set, connects; starts nothing

    from waflens.pipeline.spark.pandas_warning import ignore_pandas_support_warning

    ignore_pandas_support_warning()   # the first write can be the JVM call that makes pyspark give it
    gateway = launch_gateway()
    merged, sys.stderr = sys.stderr, JvmStderr(gateway.jvm.System.err)
    try:
        yield
    except BaseException:   # a bug's traceback, printed by Python after this, goes there too: leave it pointed
        sys.stderr.flush()
        raise
    sys.stderr.flush()
    sys.stderr = merged
    gateway.close()
