"""The Spark session every ``waflens spark`` step runs in, and a clear error when Spark cannot start."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time

from waflens.data.errors import ConfigError

DEFAULT_MASTER = "local[2]"
SHUFFLE_PARTITIONS_PER_CORE = 2   # local mode only; on a cluster, spark-submit's --conf decides
# Local mode only: the JVM's C2 compiler (the optimizing JIT) only for code 10x hotter than its defaults ask.
# With the defaults, C2 compiling was the largest JVM cost of every step on the shared real logs (0.5-3.6 s of CPU
# a step, run after run in one session: each new query plan brings code to compile), more than the tasks; with
# these, 0.1-1.5 s, and the steps' hot loops on 1M lines still reach C2 (no step slower there). C1 alone
# (-XX:TieredStopAtLevel=1) cut more on small logs but made ingest of 1M lines 45 % slower.
LOCAL_DRIVER_JAVA_OPTIONS = ("-XX:Tier4InvocationThreshold=50000 -XX:Tier4MinInvocationThreshold=6000 "
                             "-XX:Tier4CompileThreshold=150000 -XX:Tier4BackEdgeThreshold=400000")


class SparkUnavailable(ConfigError):
    """pyspark or the Java it needs is missing."""


def check_spark() -> None:
    """Raise :class:`SparkUnavailable`, saying how to fix it, when pyspark or Java is missing."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise SparkUnavailable("pyspark is not installed: pip install 'waflens[spark]'") from None
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and os.access(os.path.join(java_home, "bin", "java"), os.X_OK)) and not shutil.which("java"):
        raise SparkUnavailable("Spark needs Java 17 or newer and none was found: install it (Debian: "
                               "apt-get install openjdk-17-jre-headless) or set JAVA_HOME")


def spark_session(master: str | None = None, app_name: str = "waflens", config: dict[str, str] | None = None):
    """The active SparkSession, or a new one on ``master`` (default ``$WAFLENS_SPARK_MASTER`` or ``local[2]``).

    Under ``spark-submit`` the master and resources come from its command line and the session it built
    is returned, named by its ``--name`` when given (``app_name`` otherwise). The Python workers run this
    interpreter (``PYSPARK_PYTHON`` unless already set), so they see the same numpy, numba and waflens as the
    driver. Times are UTC, as in the DuckDB database.
    In local mode the JVM runs with :data:`LOCAL_DRIVER_JAVA_OPTIONS`; ``config`` (applied last) replaces any
    setting, ``spark.driver.extraJavaOptions`` included."""
    check_spark()
    from pyspark.sql import SparkSession

    from waflens.pipeline.spark.pandas_warning import ignore_pandas_support_warning

    ignore_pandas_support_warning()
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    submitted = bool(os.environ.get("SPARK_ENV_LOADED"))   # spark-submit sets the master itself
    builder = SparkSession.builder
    if not (submitted and submitted_app_name()):   # spark-submit's --name names the application
        builder = builder.appName(app_name)
    builder = (builder
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               # a cancelled task's worker ends without a traceback on stderr (see worker_daemon); the flush
               # failure must reach it as an exception, as Spark 4 sets by default, not be printed by pyspark
               .config("spark.python.daemon.module", "waflens.pipeline.spark.worker_daemon")
               .config("spark.python.daemon.killWorkerOnFlushFailure", "true"))
    if not submitted:
        master = master or os.environ.get("WAFLENS_SPARK_MASTER") or DEFAULT_MASTER
        builder = builder.master(master)
        cores = local_cores(master)
        if cores:   # Spark's 200 is for clusters; AQE would coalesce small shuffles to one task, leaving a core idle
            builder = builder.config("spark.sql.shuffle.partitions", str(SHUFFLE_PARTITIONS_PER_CORE * cores))
        if master.startswith("local"):   # the JVM starts here (a cluster's executors are launched by the cluster)
            builder = builder.config("spark.driver.extraJavaOptions", local_java_options())
            # one machine: bind to loopback, as Spark ends up doing, without its warning that the hostname
            # resolves to a loopback address (an operator's SPARK_LOCAL_IP wins)
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    for key, value in (config or {}).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    if submitted:
        _local_shuffle_default(session)
    from waflens.pipeline.spark.executors import check_executors

    check_executors(session)   # on a cluster: the executors run this waflens (local mode: nothing to check)
    return session


def submitted_app_name() -> str | None:
    """The application name spark-submit was given (``--name`` or ``--conf spark.app.name``), from its JVM; None
    when it named the application after the script, as it does without one (``__main__.py``): then waflens names
    it. Only under spark-submit (its JVM is running, waiting for this Python)."""
    from pyspark import SparkConf, SparkContext

    from waflens.pipeline.spark.submit_stderr import under_spark_submit

    if not under_spark_submit():   # no JVM to ask: connecting would start one, without spark-submit's settings
        return None
    SparkContext._ensure_initialized()   # connects to spark-submit's gateway; its properties are the JVM's
    name = SparkConf().get("spark.app.name", None)
    return None if name in (None, "", os.path.basename(sys.argv[0])) else name


def local_java_options() -> str:
    """The local-mode JVM's options: :data:`LOCAL_DRIVER_JAVA_OPTIONS` and waflens's log4j2 configuration
    (``log4j2.properties`` here: Spark's defaults at WARN without the startup warnings that say nothing about a
    run), unless its path holds a space, which Spark's option string would split."""
    from importlib import resources

    config = str(resources.files("waflens.pipeline.spark").joinpath("log4j2.properties"))
    if any(c.isspace() for c in config) or not os.path.isfile(config):
        return LOCAL_DRIVER_JAVA_OPTIONS
    return f"{LOCAL_DRIVER_JAVA_OPTIONS} -Dlog4j2.configurationFile=file:{config}"


def _local_shuffle_default(session) -> None:
    """``spark-submit --master local[N]`` without ``--conf spark.sql.shuffle.partitions``: the same few partitions
    as a local run of waflens (sessionizing 4k requests took 57 s with Spark's 200, 22 s with 4)."""
    context = session.sparkContext
    cores = local_cores(context.master)
    if cores and not context.getConf().contains("spark.sql.shuffle.partitions"):
        session.conf.set("spark.sql.shuffle.partitions", str(SHUFFLE_PARTITIONS_PER_CORE * cores))


def local_cores(master: str) -> int | None:
    """The cores of a local master (``local``, ``local[N]``, ``local[*]``, ``local[N,F]``); None for a cluster."""
    if master == "local":
        return 1
    if not (master.startswith("local[") and master.endswith("]")):
        return None
    inside = master[len("local["):-1].split(",")[0].strip()
    if inside == "*":
        return os.cpu_count() or 1
    return int(inside) if inside.isdigit() and int(inside) > 0 else None


# what Spark logs, with a Java trace each, when a task fails: said again in one line by the caller
_TASK_FAILURE_LOGGERS = {"org.apache.spark.executor.Executor": "OFF", "org.apache.spark.scheduler.TaskSetManager": "OFF",
                         "org.apache.spark.storage.BlockManager": "ERROR",
                         "org.apache.spark.sql.execution.python": "ERROR"}


CANCELLED_TASKS_WAIT_SECONDS = 10.0


@contextlib.contextmanager
def quiet_task_failures(spark):
    """Silence the driver's (and in local mode the executors') logs of failed tasks for the block: for a
    step that catches the failure and reports it itself in one line (a file that cannot be read). An error
    it does not catch keeps its Java trace in the exception. The loggers are put back as they were: a
    logger given a level of its own would bypass the level Spark's console filter applies.

    When the block fails, the loggers stay quiet until the job's other tasks, cancelled with it, have ended
    and the driver has logged them (at most ``CANCELLED_TASKS_WAIT_SECONDS``): Spark raises the failure before
    they stop, and each logs its kill ("Putting block ... TaskKilledException", "Lost task ... TaskKilled")."""
    jvm = spark._jvm
    context = jvm.org.apache.logging.log4j.LogManager.getContext(False)
    config = context.getConfiguration()
    saved = {name: config.getLoggers().get(name) for name in _TASK_FAILURE_LOGGERS}
    saved = {name: (own.getLevel() if own is not None else None) for name, own in saved.items()}
    configurator, level = jvm.org.apache.logging.log4j.core.config.Configurator, jvm.org.apache.logging.log4j.Level
    for name, quiet in _TASK_FAILURE_LOGGERS.items():
        configurator.setLevel(name, level.getLevel(quiet))
    try:
        yield
    except Exception:   # not on Ctrl-C
        wait_for_idle_scheduler(spark, CANCELLED_TASKS_WAIT_SECONDS)
        raise
    finally:
        for name, previous in saved.items():
            if previous is None:
                config.removeLogger(name)
            else:
                config.getLoggers().get(name).setLevel(previous)
        context.updateLoggers()


def wait_for_idle_scheduler(spark, seconds: float) -> bool:
    """Wait until the task scheduler holds no task set (True), or ``seconds`` have passed (False).

    A cancelled stage's task set leaves the scheduler after its last task ended and the driver logged it
    ("Lost task ... TaskKilled"); the count of running tasks drops to 0 before that log, and the status
    tracker's executor infos say 0 running tasks in local mode."""
    deadline = time.monotonic() + seconds
    while scheduled_task_sets(spark):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def scheduled_task_sets(spark) -> int:
    """The task sets (one a running or cancelled stage attempt) the driver's task scheduler holds now.

    Read from the pools' queues, where a task set stays until its last task has ended: the scheduler's sorted
    queue (``getSortedTaskSetQueue``) leaves out a cancelled stage's task set (a zombie) at once, while its
    killed tasks still run and are still to be logged. A queue holds task sets (FIFO) or pools (FAIR), whose
    own queue is None for a task set."""
    count, queues = 0, [spark._jsc.sc().taskScheduler().rootPool().schedulableQueue()]
    while queues:
        for schedulable in queues.pop().toArray():
            inner = schedulable.schedulableQueue()
            if inner is None:
                count += 1
            else:
                queues.append(inner)
    return count
