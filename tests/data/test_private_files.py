"""Finding 5: the database, its WAL and the model registry are private to their owner (0600 / 0700)
whatever the umask; an existing database keeps its mode, with a warning."""

import os
import stat
import textwrap

from tests.data.cli_process import waflens
from tests.data.helpers import at, combined_line, write_log


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_database_and_wal_are_created_0600_under_umask_022(tmp_path):
    db = tmp_path / "w.duckdb"
    # a writer with the usual umask: the WAL exists while the connection is open (DuckDB recreates it after
    # every checkpoint, so only the process umask can keep it private)
    script = textwrap.dedent(f"""
        import os, stat
        os.umask(0o022)
        from data.db import connect
        con = connect({str(db)!r})
        con.execute("CREATE TABLE t (x INTEGER)")
        con.execute("INSERT INTO t VALUES (1)")
        wal = {str(db)!r} + ".wal"
        print(oct(stat.S_IMODE(os.stat({str(db)!r}).st_mode)), oct(stat.S_IMODE(os.stat(wal).st_mode)))
    """)
    result = waflens(python_args=("-c", script))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0o600", "0o600"]   # main: 0o644 0o644


def test_models_directory_is_created_0700_and_an_open_database_warns(tmp_path):
    log = write_log(tmp_path / "a.log", [combined_line("10.0.0.1", at(0), "GET / HTTP/1.1")])
    old = tmp_path / "old.duckdb"
    script = textwrap.dedent(f"""
        import os, sys
        os.umask(0o022)
        from pathlib import Path
        from scoring.registry import make_private_dir
        make_private_dir(Path({str(tmp_path / "models")!r}))
        from app.cli import main
        sys.exit(main(["--db", {str(old)!r}, "ingest", "--no-sessionize", {str(log)!r}]))
    """)
    result = waflens(python_args=("-c", script))
    assert result.returncode == 0, result.stderr
    assert _mode(tmp_path / "models") == 0o700 and _mode(old) == 0o600
    old.chmod(0o644)  # made by an older waflens, or by hand: left as it is, with a warning
    again = waflens("--db", str(old), "status")
    assert again.returncode == 0 and _mode(old) == 0o644
    assert f"{old} is readable by others (mode 0644)" in again.stderr and "chmod 600" in again.stderr
