"""Shared fixtures: the public datasets beside the project, and fresh databases.

Tests that need ``../shared/datasets`` skip on a user's machine without it, but
fail in CI (``CI=true``), where a missing dataset means a broken set-up.
"""

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(os.environ.get("WAFLENS_SHARED_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))


def _require_shared() -> Path:
    if SHARED_DATASETS.is_dir():
        return SHARED_DATASETS
    message = f"shared datasets not found at {SHARED_DATASETS}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message + " (required in CI)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """Path of ``../shared/datasets``; skips (or fails in CI) when absent."""
    return _require_shared()


@pytest.fixture(scope="session")
def access_logs(shared_datasets) -> list[Path]:
    return sorted((shared_datasets / "access_logs").glob("*.gz"))


@pytest.fixture(scope="session")
def payload_dir(shared_datasets) -> Path:
    return shared_datasets / "payloads"


@contextlib.contextmanager
def once_per_run(tmp_path_factory, name: str) -> Iterator[Path]:
    """A directory ``name`` in the test run's directory, held under an exclusive file lock while in use.

    For what is built once per run, not once per xdist worker: every worker sees the run's directory
    (above each worker's own ``popen-gwK/``), the first to come builds inside the lock, the other waits
    and finds the result there. The lock is released when the block ends, also when a build fails."""
    import fcntl

    run_dir = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        run_dir = run_dir.parent          # .../pytest-N/, above each worker's popen-gwK/
    home = run_dir / name
    home.mkdir(exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield home


@pytest.fixture(scope="session")
def shared_db(tmp_path_factory, shared_datasets) -> tuple[Path, list[Path], dict]:
    """(database, files, the CLI's JSON summary): every shared access log and raw HTTP dump, ingested once
    through ``waflens ingest`` (20-40 s: the ingest tests and the runtime parity test both read it).
    Read it only; a test that writes works on a copy.

    Once per run, not once per xdist worker: the test files that use it may run on both workers, so the
    first to need it builds it in the run's directory (which every worker sees) under a file lock, and
    the other waits for it or finds it done."""
    import json

    from tests.data.cli_process import KEY, json_summary, waflens_here

    files = sorted((shared_datasets / "access_logs").glob("*.gz")) + sorted((shared_datasets / "raw_http").glob("*.gz"))
    with once_per_run(tmp_path_factory, "shared-db") as home:
        db, done = home / "shared.duckdb", home / "summary.json"
        if not done.exists():
            for left in home.glob("shared.duckdb*"):   # a build that failed on the other worker
                left.unlink()
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("WAFLENS_PSEUDONYM_KEY", KEY)
                code, out, err = waflens_here("--db", str(db), "--json", "ingest", *map(str, files))
            assert code == 0, err
            done.write_text(json.dumps(json_summary(out)))
    return db, files, json.loads(done.read_text())


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    """With parallel workers (``-n``), fill numba's cache first so that they do not both compile every kernel."""
    config = session.config
    if hasattr(config, "workerinput") or not config.getoption("numprocesses", default=None):
        return
    from tests.jit_cache import warm

    reporter = config.pluginmanager.get_plugin("terminalreporter")
    warm(log=reporter.write_line if reporter else print)


# Test files xdist hands out first (``--dist loadfile`` gives files out in collection order, one at a time to the
# worker that is free): the Spark tests, whose files run longest (a whole Spark application or cluster each, up
# to 90 s). Collected last, as the alphabet would have them, one worker ran them alone while the other had
# finished: longest first leaves the short files to even out the end.
LONGEST_FIRST = ("tests/spark/",)


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: not item.nodeid.startswith(LONGEST_FIRST))   # stable: each file keeps its order


# The repository's root is on sys.path while tests run (they import `tests.*`), so a left-over bare
# `import data` / `from scoring...` would still work here and fail for every installed user. Any such
# import fails the run: the folders are only ever the packages waflens.app, waflens.data, ...
_BARE_FOLDERS = ("app", "data", "clustering", "labeling", "scoring", "runtime", "pipeline")


@pytest.fixture(autouse=True, scope="session")
def _only_namespaced_imports():
    yield
    bare = sorted(name for name in sys.modules if name.split(".")[0] in _BARE_FOLDERS)
    assert not bare, f"modules imported by their folder's name instead of waflens.<folder>: {bare}"
