"""Sessionization edge cases: the gap boundary, order, clients, and incremental updates."""

from waflens.data.sessionize import resessionize, update_derived
from tests.data.helpers import at, combined_line, fresh_db, ingest, write_log

GAP = 30 * 60
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"
CHROME = "Mozilla/5.0 (Windows NT 10.0) Chrome/130.0"


def _sessions(con):
    """Per session: (client's first request record, records in the session), ordered."""
    rows = con.execute(
        """SELECT list(r.record ORDER BY r.record) FROM requests r GROUP BY r.session_id ORDER BY min(r.record)"""
    ).fetchall()
    return [row[0] for row in rows]


def _check_invariants(con):
    unassigned = con.execute("SELECT count(*) FROM requests WHERE session_id IS NULL").fetchall()[0][0]
    assert unassigned == 0
    mismatched = con.execute(
        """SELECT count(*) FROM sessions s
           JOIN (SELECT session_id, count(*) n, min(ts) a, max(ts) b, min(request_id) first
                 FROM requests GROUP BY session_id) r USING (session_id)
           WHERE s.n_requests <> r.n OR s.start_ts IS DISTINCT FROM r.a OR s.end_ts IS DISTINCT FROM r.b
              OR s.session_id <> r.first"""
    ).fetchall()[0][0]
    assert mismatched == 0
    total = con.execute("SELECT (SELECT sum(n_requests) FROM sessions) = (SELECT count(*) FROM requests)").fetchall()
    assert total[0][0]
    assert con.execute("SELECT count(*) FROM sessions").fetchall()[0][0] == \
        con.execute("SELECT count(*) FROM session_features").fetchall()[0][0]


def test_gap_boundary_is_inclusive(tmp_path):
    log = write_log(tmp_path / "a.log", [
        combined_line("10.0.0.1", at(0), "GET / HTTP/1.1"),
        combined_line("10.0.0.1", at(GAP), "GET /a HTTP/1.1"),           # exactly the gap: same session
        combined_line("10.0.0.1", at(2 * GAP + 1), "GET /b HTTP/1.1"),   # gap + 1 s: new session
    ])
    con = fresh_db(tmp_path)
    ingest(con, log)
    update_derived(con)
    assert _sessions(con) == [[1, 2], [3]]
    _check_invariants(con)


def test_out_of_order_lines_are_sessionized_by_time(tmp_path):
    log = write_log(tmp_path / "a.log", [
        combined_line("10.0.0.1", at(3 * GAP), "GET /late HTTP/1.1"),
        combined_line("10.0.0.1", at(0), "GET /first HTTP/1.1"),
        combined_line("10.0.0.1", at(60), "GET /second HTTP/1.1"),
    ])
    con = fresh_db(tmp_path)
    ingest(con, log)
    update_derived(con)
    assert _sessions(con) == [[1], [2, 3]]
    _check_invariants(con)


def test_same_ip_two_user_agents_are_two_clients(tmp_path):
    log = write_log(tmp_path / "a.log", [
        combined_line("10.0.0.1", at(0), "GET / HTTP/1.1", agent=FIREFOX),
        combined_line("10.0.0.1", at(5), "GET / HTTP/1.1", agent=CHROME),
        combined_line("10.0.0.1", at(10), "GET /x HTTP/1.1", agent=FIREFOX),
    ])
    con = fresh_db(tmp_path)
    ingest(con, log)
    update_derived(con)
    assert _sessions(con) == [[1, 3], [2]]
    _check_invariants(con)


def test_incremental_file_bridging_two_sessions_merges_them(tmp_path):
    first = write_log(tmp_path / "1.log", [
        combined_line("10.0.0.1", at(0), "GET / HTTP/1.1"),
        combined_line("10.0.0.1", at(2 * GAP), "GET /b HTTP/1.1"),
        combined_line("10.0.0.9", at(0), "GET / HTTP/1.1"),
    ])
    second = write_log(tmp_path / "2.log", [combined_line("10.0.0.1", at(GAP), "GET /bridge HTTP/1.1")])
    con = fresh_db(tmp_path)
    ingest(con, first)
    update_derived(con)
    assert con.execute("SELECT count(*) FROM sessions").fetchall()[0][0] == 3
    untouched = con.execute("SELECT session_id FROM sessions WHERE n_requests = 1 ORDER BY session_id").fetchall()
    ingest(con, second)
    summary = update_derived(con)
    assert summary.sessions_touched == 1
    assert con.execute("SELECT count(*) FROM sessions").fetchall()[0][0] == 2
    merged = con.execute("SELECT n_requests FROM sessions WHERE session_id = 1").fetchall()
    assert merged == [(3,)]
    assert (3,) in untouched  # the other client's session kept its id
    assert con.execute("SELECT count(*) FROM sessions WHERE session_id = 3").fetchall()[0][0] == 1
    _check_invariants(con)


def test_rebuild_with_another_gap_and_session_cookie_key(tmp_path):
    log = write_log(tmp_path / "a.log", [
        combined_line("10.0.0.1", at(0), "GET / HTTP/1.1"),
        combined_line("10.0.0.1", at(600), "GET /a HTTP/1.1"),
    ])
    con = fresh_db(tmp_path)
    ingest(con, log)
    update_derived(con)
    assert len(_sessions(con)) == 1
    resessionize(con, gap_minutes=5)
    assert _sessions(con) == [[1], [2]]
    _check_invariants(con)


def test_untimed_requests_keep_file_order_in_one_session(tmp_path):
    dump = (tmp_path / "dump.txt")
    dump.write_bytes(b"".join(
        f"GET /p{i}?a={i} HTTP/1.1\r\nHost: shop\r\nCookie: JSESSIONID=ABC\r\nUser-Agent: x\r\n\r\n\r\n".encode()
        for i in range(4)))
    con = fresh_db(tmp_path)
    summary = ingest(con, dump)
    assert summary.format == "raw-http" and summary.parsed == 4
    update_derived(con)
    assert _sessions(con) == [[1, 2, 3, 4]]
    assert con.execute("SELECT count(*) FROM requests WHERE ts IS NULL").fetchall()[0][0] == 4
    _check_invariants(con)
