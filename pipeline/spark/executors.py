"""On a cluster, the executors must run the very waflens the driver runs.

The executors parse, sessionize and score; the driver plans and checks. If their Python holds another waflens (an
older environment archive, an executor image not rebuilt), the tables differ from what DuckDB and the driver's
checks would give, silently. So, once per application on a non-local master, before any step, a small job asks
every executor slot for a digest of waflens's code (every ``.py``, ``.sql`` and data file of the packages the tasks
run) and the versions of the libraries the tasks compute with, and the driver compares them with its own:

* another waflens (or none) on an executor is a :class:`ExecutorEnvironmentError` (exit 5), naming the host;
  so is a Python the executors cannot start (a relative ``PYSPARK_PYTHON``, which works in local mode only);
* another version of a library (numpy, numba, duckdb, …) is one warning line on stderr: results may differ in
  the last digits, not in what is computed.

Executors that join later (dynamic allocation) are not asked. Local mode runs the driver's own interpreter
(``PYSPARK_PYTHON``, set by :func:`waflens.pipeline.spark.session.spark_session`) and is not checked.
"""

from __future__ import annotations

import re
import sys

from waflens.data.errors import ConfigError

CODE_PACKAGES = ("waflens.data", "waflens.pipeline", "waflens.runtime", "waflens.clustering", "waflens.scoring")
CODE_SUFFIXES = (".py", ".sql", ".properties", ".json", ".txt")
LIBRARIES = ("numpy", "numba", "pyarrow", "pandas", "duckdb", "scikit-learn", "hdbscan")
CANNOT_RUN = re.compile(r'Cannot run program ("[^"]*"): error=\d+, ([^)\n]*)')
HOW_TO_SHIP = "ship the driver's environment to the executors (docs/scaling.md, Shipping Python)"


class ExecutorEnvironmentError(ConfigError):
    """An executor's Python does not run the driver's waflens."""


def python_environment() -> dict:
    """This Python's waflens code digest (None without waflens), its libraries' versions and its host.

    The standard library only: the packages are found and read as files, none of them imported (an executor with
    another waflens may fail to import it). An executor without waflens cannot run this module at all; its task
    fails with ModuleNotFoundError, which :func:`check_executors` reports."""
    import hashlib
    import importlib.metadata
    import importlib.util
    import os
    import socket

    digest = hashlib.sha256()
    for package in CODE_PACKAGES:
        try:
            spec = importlib.util.find_spec(package)
        except ModuleNotFoundError:
            spec = None
        if spec is None or not spec.submodule_search_locations:
            digest = None
            break
        for root in sorted(spec.submodule_search_locations):
            for directory, subdirectories, files in os.walk(root):
                subdirectories[:] = sorted(d for d in subdirectories if d != "__pycache__")
                for name in sorted(f for f in files if f.endswith(CODE_SUFFIXES)):
                    path = os.path.join(directory, name)
                    digest.update(f"{package}/{os.path.relpath(path, root)}\0".encode())
                    with open(path, "rb") as file:
                        digest.update(file.read())
    versions = {}
    for library in LIBRARIES:
        try:
            versions[library] = importlib.metadata.version(library)
        except importlib.metadata.PackageNotFoundError:
            versions[library] = None
    return {"host": socket.gethostname(), "waflens": digest and digest.hexdigest()[:16], "libraries": versions}


def _environment_of_slot(_) -> tuple:
    """What :func:`python_environment` says on an executor, as a hashable row."""
    environment = python_environment()
    return environment["host"], environment["waflens"], tuple(sorted(environment["libraries"].items()))


def check_executors(spark) -> None:
    """Refuse executors whose waflens differs from the driver's; warn when their libraries do (see the module)."""
    context = spark.sparkContext
    if context.master.startswith("local"):
        return
    slots = max(1, context.defaultParallelism)
    try:
        seen = context.parallelize(range(slots), slots).map(_environment_of_slot).distinct().collect()
    except Exception as error:
        if "No module named 'waflens" in str(error):
            raise ExecutorEnvironmentError(f"the executors' Python cannot import waflens: {HOW_TO_SHIP}") from None
        program = CANNOT_RUN.search(str(error))
        if program:   # a relative PYSPARK_PYTHON works in local mode, not in an executor's working directory
            raise ExecutorEnvironmentError(
                f"the executors cannot run the Python {program.group(1)} ({program.group(2)}): give "
                "PYSPARK_PYTHON (spark.pyspark.python) as a path on the executors: an absolute path, or "
                "./env/bin/python in an environment shipped with --archives env.tar.gz#env") from None
        raise
    driver = python_environment()
    for host, code, libraries in sorted(seen, key=lambda row: (row[0], str(row[1]))):
        if code != driver["waflens"]:
            found = "no waflens" if code is None else f"another waflens (code {code}, the driver's {driver['waflens']})"
            raise ExecutorEnvironmentError(f"the executors on {host} run {found}: their tables would not be the "
                                           f"driver's; {HOW_TO_SHIP}")
        differing = [f"{name} {version or 'missing'} (driver {driver['libraries'][name] or 'missing'})"
                     for name, version in libraries if version != driver["libraries"][name]]
        if differing:
            print(f"waflens: warning: the executors on {host} run {', '.join(differing)}: results may differ in "
                  f"the last digits; {HOW_TO_SHIP}", file=sys.stderr)
