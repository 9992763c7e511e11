from datetime import datetime

from waflens.data.retention import purge_older_than
from waflens.data.sessionize import update_derived
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


def test_purge_is_as_consistent_as_forget_memberships_straddling_sessions_and_ids(tmp_path):
    from waflens.clustering.schema import ensure_cluster_schema

    log = write_log(tmp_path / "a.log", [
        combined_line("10.0.0.1", at(0), "GET /old HTTP/1.1"),
        combined_line("10.0.0.2", at(6 * 86400 - 60), "GET /straddle-old HTTP/1.1"),   # one session across the cut-off
        combined_line("10.0.0.2", at(6 * 86400 + 60), "GET /straddle-new HTTP/1.1"),
        combined_line("10.0.0.3", at(10 * 86400), "GET /new HTTP/1.1"),
    ])
    con = fresh_db(tmp_path)
    ingest(con, log)
    update_derived(con)
    ensure_cluster_schema(con)
    con.execute("INSERT INTO session_clusters SELECT 1, session_id, 0, 1.0, 0.0, 0.0, 0.0 FROM sessions")
    before_max = con.execute("SELECT max(request_id) FROM requests").fetchall()[0][0]
    summary = purge_older_than(con, days=5, now=at(11 * 86400).replace(tzinfo=None))
    # no membership, session or feature row is left of a purged session; the straddling session's newer request
    # waits for the next sessionize, which puts it in a session of its own
    assert con.execute("""SELECT count(*) FROM session_clusters
                          WHERE session_id NOT IN (SELECT session_id FROM sessions)""").fetchall() == [(0,)]
    assert con.execute("SELECT path FROM requests WHERE session_id IS NULL").fetchall() == [("/straddle-new",)]
    assert (summary.requests, summary.sessions, summary.cluster_memberships, summary.unsessionized) == (2, 2, 2, 1)
    update_derived(con)
    assert con.execute("SELECT sum(n_requests) FROM sessions").fetchall() == [(2,)]
    assert con.execute("SELECT count(*) FROM session_features").fetchall() == [(2,)]
    # everything purged: the next file's requests still come after every id ever given
    purge_older_than(con, days=1, now=at(30 * 86400).replace(tzinfo=None))
    assert con.execute("SELECT count(*) FROM requests").fetchall() == [(0,)]
    later = write_log(tmp_path / "b.log", [combined_line("10.0.0.4", at(31 * 86400), "GET /later HTTP/1.1")])
    ingest(con, later)
    assert con.execute("SELECT min(request_id) FROM requests").fetchall()[0][0] > before_max
