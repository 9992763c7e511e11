"""Finding 5: the database, its WAL and the model registry are private to their owner (0600 / 0700)
whatever the umask; an existing database keeps its mode, with a warning."""

import os
import stat
from contextlib import contextmanager

from waflens.data.db import connect
from waflens.scoring.registry import make_private_dir
from tests.data.cli_process import waflens_here
from tests.data.helpers import at, combined_line, write_log


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@contextmanager
def usual_umask():
    """The umask most systems give (022), for the duration; the test's own umask afterwards."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_database_and_wal_are_created_0600_under_umask_022(tmp_path):
    db = tmp_path / "w.duckdb"
    with usual_umask():
        con = connect(db)
        try:  # the WAL exists while the connection is open; DuckDB recreates it after every checkpoint,
            con.execute("CREATE TABLE t (x INTEGER)")  # so only the process umask can keep it private
            con.execute("INSERT INTO t VALUES (1)")
            assert (_mode(db), _mode(f"{db}.wal")) == (0o600, 0o600)   # main: 0644, 0644
        finally:
            con.close()


def test_models_directory_is_created_0700_and_an_open_database_warns(tmp_path, monkeypatch):
    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", "test-key-0123456789abcdef")
    with usual_umask():
        make_private_dir(tmp_path / "models")
        assert _mode(tmp_path / "models") == 0o700                      # main: 0755
        existing = tmp_path / "shared"
        existing.mkdir(mode=0o755)
        make_private_dir(existing)
        assert _mode(existing) == 0o755                                  # an existing directory is left alone
    log = write_log(tmp_path / "a.log", [combined_line("10.0.0.1", at(0), "GET / HTTP/1.1")])
    old = tmp_path / "old.duckdb"
    assert waflens_here("--db", str(old), "ingest", "--no-sessionize", str(log))[0] == 0
    old.chmod(0o644)  # made by an older waflens, or by hand: left as it is, with a warning
    code, _, err = waflens_here("--db", str(old), "status")
    assert code == 0 and _mode(old) == 0o644
    assert f"{old} is readable by others (mode 0644)" in err and "chmod 600" in err
