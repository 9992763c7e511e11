"""A real Spark standalone cluster on 127.0.0.1: one master and one worker, each its own JVM (``spark-class
org.apache.spark.deploy.master.Master`` and ``…worker.Worker``, the classes ``start-master.sh`` and
``start-worker.sh`` run), on ports the system picks.

An application submitted to it runs its executors in a JVM the worker launches, with their own Python workers:
what a cluster does and local mode does not (local mode runs the tasks in the driver's JVM, where a file added
with ``SparkContext.addFile`` is the driver's own). Ended with the ``with`` block; a cluster that does not come up
within ``timeout`` seconds is an error with its log's tail.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

MASTER_URL = re.compile(r"Starting Spark master at (spark://\S+)")
WORKER_REGISTERED = "Successfully registered with master"


def _spark_class() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-class"


def _start(log: Path, env: dict, *args: str) -> subprocess.Popen:
    with open(log, "w") as out:   # its own process group: spark-class execs java, the group ends both
        return subprocess.Popen([str(_spark_class()), *args], stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


def _wait_for(log: Path, process: subprocess.Popen, found, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if (result := found(text)) is not None:
            return result
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise RuntimeError(f"the standalone cluster did not come up ({log.name}):\n{text[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def standalone_cluster(directory: Path, env: dict, *, secret: str | None = None, cores: int = 2,
                       memory: str = "2g", timeout: float = 120) -> Iterator[str]:
    """The master's URL (``spark://127.0.0.1:PORT``) of a cluster whose worker has ``cores`` and ``memory``; its
    logs and the executors' work directories are under ``directory``. With ``secret``, the daemons authenticate
    every connection with it (``spark.authenticate``): applications must then give the same secret."""
    env = {**env, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(directory)}
    if secret is not None:
        env["SPARK_DAEMON_JAVA_OPTS"] = f"-Dspark.authenticate=true -Dspark.authenticate.secret={secret}"
    master_log, worker_log = directory / "master.log", directory / "worker.log"
    processes = [_start(master_log, env, "org.apache.spark.deploy.master.Master",
                        "--host", "127.0.0.1", "--port", "0", "--webui-port", "0")]
    try:
        url = _wait_for(master_log, processes[0], lambda text: (m := MASTER_URL.search(text)) and m.group(1), timeout)
        processes.append(_start(worker_log, env, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                                "--port", "0", "--webui-port", "0", "--cores", str(cores), "--memory", memory,
                                "--work-dir", str(directory / "work"), url))
        _wait_for(worker_log, processes[1], lambda text: url if WORKER_REGISTERED in text else None, timeout)
        yield url
    finally:
        for process in reversed(processes):
            _stop(process)
