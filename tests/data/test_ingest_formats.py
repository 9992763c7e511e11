"""Ingest of JSON lines, custom Apache/nginx formats, raw HTTP and gzip, end to end into DuckDB."""

import gzip
import json

from tests.data.helpers import fresh_db, ingest, write_log

NGINX_JSON = {"time_iso8601": "2026-11-02T10:00:00+02:00", "remote_addr": "198.51.100.7",
              "request": "GET /search?q=%3Cscript%3E HTTP/1.1", "status": "200", "body_bytes_sent": "512",
              "http_referer": "-", "http_user_agent": "curl/8.0", "request_time": "0.012"}
ECS = {"@timestamp": "2026-11-02T08:00:01Z", "client": {"ip": "198.51.100.8"},
       "http": {"request": {"method": "POST"}, "response": {"status_code": 403}},
       "url": {"original": "/login", "query": "next=%2Fadmin"}, "user_agent": {"original": "Mozilla/5.0"}}


def _rows(con, columns="client_ip, ts, method, path, query, query_decoded, status, bytes, user_agent, duration_ms"):
    return con.execute(f"SELECT {columns} FROM requests ORDER BY record").fetchall()


def test_json_lines_nginx_and_ecs(tmp_path):
    log = write_log(tmp_path / "a.json", [json.dumps(NGINX_JSON), json.dumps(ECS), "{not json", "[1, 2]"])
    con = fresh_db(tmp_path)
    summary = ingest(con, log)
    assert (summary.format, summary.records, summary.parsed, summary.quarantined) == ("json", 4, 2, 2)
    nginx, ecs = _rows(con)
    assert str(nginx[1]) == "2026-11-02 08:00:00"        # +02:00 normalized to UTC
    assert nginx[2:8] == ("GET", "/search", "q=%3Cscript%3E", "q=<script>", 200, 512)
    assert nginx[8] == "curl/8.0" and abs(nginx[9] - 12.0) < 1e-9
    assert nginx[0] != "198.51.100.7" and len(nginx[0]) == 16
    assert ecs[2:7] == ("POST", "/login", "next=%2Fadmin", "next=/admin", 403)
    reasons = [r[0] for r in con.execute("SELECT reason FROM quarantine ORDER BY record").fetchall()]
    assert reasons == ["not valid JSON", "JSON value is not an object"]


def test_json_field_mapping_is_configurable(tmp_path):
    log = write_log(tmp_path / "a.json", [json.dumps({"who": "203.0.113.1", "when": 1793527200, "what": "/x?y=1"})])
    con = fresh_db(tmp_path)
    summary = ingest(con, log, format="json",
                     json_fields={"client_ip": ["$.who"], "time": ["$.when"], "target": ["$.what"]})
    assert summary.parsed == 1
    (row,) = _rows(con, "client_ip, ts, path, query")
    assert row[0] is not None and str(row[1]) == "2026-11-01 10:00:00" and row[2:] == ("/x", "y=1")


def test_apache_logformat_with_cookie_duration_and_vhost(tmp_path):
    spec = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %{JSESSIONID}C %D %v'
    line = ('192.0.2.1 - alice [02/Nov/2026:10:00:00 +0100] "GET /a?b=c HTTP/1.1" 200 10 "-" "UA/1" '
            'ABC123 1500 shop.example')
    log = write_log(tmp_path / "a.log", [line])
    con = fresh_db(tmp_path)
    summary = ingest(con, log, log_format=spec)
    assert summary.parsed == 1
    (row,) = _rows(con, "ts, method, path, query, status, bytes, user_agent, duration_ms, vhost, session_cookie, remote_user")
    assert str(row[0]) == "2026-11-02 09:00:00"
    assert row[1:9] == ("GET", "/a", "b=c", 200, 10, "UA/1", 1.5, "shop.example")
    assert row[9] not in (None, "ABC123") and row[10] not in (None, "alice")   # both pseudonymized


def test_nginx_log_format_without_client_ip(tmp_path):
    spec = '$time_iso8601 "$request" $status $http_user_agent $cookie_sid $request_time'
    log = write_log(tmp_path / "a.log", ['2026-11-02T10:00:00+00:00 "GET /p HTTP/1.1" 302 Mozilla/5.0 s1 0.250',
                                         '2026-11-02T10:00:05+00:00 "GET /q HTTP/1.1" 200 Mozilla/5.0 s1 0.010'])
    con = fresh_db(tmp_path)
    summary = ingest(con, log, log_format=spec, session_key="cookie")
    assert summary.parsed == 2
    rows = _rows(con, "client_ip, path, status, duration_ms, session_cookie, client_key")
    assert rows[0][0] is None and rows[0][1:4] == ("/p", 302, 250.0)
    assert rows[0][4] is not None and rows[0][5] == rows[1][5]    # same session cookie, same client


def test_gzip_and_raw_http(tmp_path):
    dump = (b"POST http://shop:8080/tienda1/publico/anadir.jsp HTTP/1.1\r\nHost: shop:8080\r\n"
            b"Cookie: JSESSIONID=933185092E0B\r\nX-Forwarded-For: 203.0.113.77\r\nContent-Length: 19\r\n\r\n"
            b"id=3&B1=A%F1adir+al\r\n\r\n")
    path = tmp_path / "dump.txt.gz"
    path.write_bytes(gzip.compress(dump))
    con = fresh_db(tmp_path)
    summary = ingest(con, path)
    assert (summary.format, summary.parsed) == ("raw-http", 1)
    (row,) = _rows(con, "method, path, body, vhost, session_cookie, client_ip, headers")
    assert row[:4] == ("POST", "/tienda1/publico/anadir.jsp", "id=3&B1=A%F1adir+al", "shop:8080")
    headers = json.loads(row[6])
    assert "933185092E0B" not in row[6] and "203.0.113.77" not in row[6]
    assert row[4] is not None and row[5] is not None and row[5] != "203.0.113.77"
    assert headers["content-length"] == "19"


def test_apache_strftime_times_with_their_fraction_and_zone(tmp_path):
    """``%{format}t`` (any strftime, glibc's %F %T included) is the request's time, with ``%{usec_frac}t`` or
    ``%{msec_frac}t`` beside it added; a zone in the format (%z), or in a %{format}t of its own, is normalized to
    UTC, none is taken as UTC."""
    cases = {
        '%h [%{%Y-%m-%d %H:%M:%S}t.%{usec_frac}t] "%r" %>s': (
            ['192.0.2.1 [2026-11-02 10:00:00.123456] "GET /a HTTP/1.1" 200',
             '192.0.2.1 [2026-11-02 10:00:01.000007] "GET /b HTTP/1.1" 200'],
            ["2026-11-02 10:00:00.123456", "2026-11-02 10:00:01.000007"]),
        '%h %{%FT%T%z}t.%{msec_frac}t "%r" %>s': (
            ['192.0.2.1 2026-11-02T10:00:00+0100.042 "GET /a HTTP/1.1" 200'], ["2026-11-02 09:00:00.042000"]),
        # one time in three pieces, its zone apart (netnea's "extended" format); begin and end: two times, the first
        '%h [%{%Y-%m-%d %H:%M:%S}t.%{usec_frac}t %{%z}t] "%r" %>s': (
            ['192.0.2.1 [2026-11-02 10:00:00.123456 +0100] "GET /a HTTP/1.1" 200',
             '192.0.2.1 [2026-11-02 23:30:00.000001 -0100] "GET /b HTTP/1.1" 200'],
            ["2026-11-02 09:00:00.123456", "2026-11-03 00:30:00.000001"]),
        '%h [%{begin:%F %T %z}t] [%{end:%F %T %z}t] "%r" %>s': (
            ['192.0.2.1 [2026-11-02 10:00:00 +0100] [2026-11-02 10:00:07 +0100] "GET /a HTTP/1.1" 200'],
            ["2026-11-02 09:00:00"]),
        '%h %{end:%d/%b/%Y %T}t "%r" %>s': (
            ['192.0.2.1 02/Nov/2026 10:00:00 "GET /a HTTP/1.1" 200'], ["2026-11-02 10:00:00"]),
        '%h %{usec}t "%r" %>s': (['192.0.2.1 1793527200123456 "GET /a HTTP/1.1" 200'], ["2026-11-01 10:00:00.123456"]),
    }
    for i, (spec, (lines, expected)) in enumerate(cases.items()):
        log = write_log(tmp_path / f"{i}.log", lines)
        (tmp_path / str(i)).mkdir()
        con = fresh_db(tmp_path / str(i))
        summary = ingest(con, log, log_format=spec)
        assert summary.parsed == len(lines), spec
        assert [str(ts) for (ts,) in _rows(con, "ts")] == expected, spec


def test_apache_strftime_time_that_does_not_parse_is_quarantined_or_refused(tmp_path):
    import pytest

    from waflens.data.errors import ConfigError

    spec = '%h [%{%Y-%m-%d %H:%M:%S}t] "%r" %>s'
    log = write_log(tmp_path / "a.log", ['192.0.2.1 [2026-11-02 10:00:00] "GET /a HTTP/1.1" 200',
                                         '192.0.2.1 [2026-13-45 10:00:00] "GET /b HTTP/1.1" 200'])
    con = fresh_db(tmp_path)
    summary = ingest(con, log, log_format=spec)
    clf = write_log(tmp_path / "b.log", ['192.0.2.1 [45/Foo/2026:10:00:00 +0000] "GET /b HTTP/1.1" 200'])
    ingest(con, clf, log_format='%h %t "%r" %>s')
    reasons = [r for (r,) in con.execute("SELECT reason FROM quarantine ORDER BY source_id, record").fetchall()]
    assert summary.parsed == 1 and len(reasons) == 2 and reasons[0] == reasons[1]   # as a bad %t time is
    with pytest.raises(ConfigError, match=r"%\{%Y %Q\}t.*%Q"):
        ingest(con, log, log_format='%h [%{%Y %Q}t] "%r" %>s')
