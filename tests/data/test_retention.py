from datetime import datetime

from data.retention import purge_older_than
from data.sessionize import update_derived
from tests.data.helpers import at, combined_line, fresh_db, ingest, write_log


def test_purge_removes_old_sessions_whole_and_keeps_the_rest(tmp_path):
    log = write_log(tmp_path / "a.log", [
        combined_line("10.0.0.1", at(0), "GET /old HTTP/1.1"),
        combined_line("10.0.0.1", at(60), "GET /old2 HTTP/1.1"),
        combined_line("10.0.0.2", at(10 * 86400), "GET /new HTTP/1.1"),
    ])
    con = fresh_db(tmp_path)
    ingest(con, log)
    update_derived(con)
    summary = purge_older_than(con, days=5, now=at(11 * 86400).replace(tzinfo=None))
    assert (summary.requests, summary.sessions) == (2, 1)
    assert con.execute("SELECT path FROM requests").fetchall() == [("/new",)]
    assert con.execute("SELECT count(*) FROM sessions").fetchall() == [(1,)]
    assert con.execute("SELECT count(*) FROM request_features").fetchall() == [(1,)]
    assert con.execute("SELECT count(*) FROM session_features").fetchall() == [(1,)]
