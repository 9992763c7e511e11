"""`waflens spark features --log-format` against `waflens ingest --log-format` on an Apache LogFormat with a
strftime time in pieces, its microseconds and its zone apart (``[%{%Y-%m-%d %H:%M:%S}t.%{usec_frac}t %{%z}t]``),
a request duration, a unique id and headers: the same records parsed and quarantined, the same times, targets
and durations."""

from __future__ import annotations

import duckdb

from tests.data.cli_process import KEY, waflens_here

SPEC = ('%h %{GEOIP_COUNTRY_CODE}e %u [%{%Y-%m-%d %H:%M:%S}t.%{usec_frac}t %{%z}t] "%r" %>s %b "%{Referer}i" '
        '"%{User-Agent}i" %v %A %p %{UNIQUE_ID}e %I %O %D')
LINES = [
    '192.0.2.1 CH - [2026-11-02 10:00:00.123456 +0000] "GET /index.html HTTP/1.1" 200 512 "-" "Mozilla/5.0" '
    'shop.example 10.0.0.1 443 aBcD1 410 812 1234',
    '192.0.2.1 CH - [2026-11-02 10:00:00.623001 +0100] "GET /search?q=%27%20OR%201=1-- HTTP/1.1" 403 99 '
    '"https://shop.example/" "sqlmap/1.7" shop.example 10.0.0.1 443 aBcD2 300 200 887',
    '2001:db8::9 - bob [2026-11-02 23:59:59.999999 -0100] "POST /login HTTP/1.1" 302 0 "-" "curl/8.0" '
    'shop.example 10.0.0.1 443 aBcD3 120 90 15',
    '192.0.2.7 DE - [2026-13-45 10:00:00.000001 +0000] "GET /bad-date HTTP/1.1" 200 1 "-" "x" s 10.0.0.1 443 id 1 1 1',
    'garbage that is not a log line at all',
    '192.0.2.7 DE - [2026-11-03 00:00:01.5 +0000] "GET /short-fraction HTTP/1.1" 200 1 "-" "x" s 10.0.0.1 443 id 1 1 1',
]


def test_spark_reads_an_apache_strftime_format_as_duckdb_does(spark, tmp_path, monkeypatch):
    from waflens.pipeline.spark.cli import main

    log = tmp_path / "access.log"
    log.write_text("\n".join(LINES) + "\n")
    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", KEY)
    db = tmp_path / "w.duckdb"
    code, _, err = waflens_here("--db", str(db), "ingest", str(log), "--log-format", SPEC)
    assert code == 0, err
    assert main(["features", str(log), "--out", str(tmp_path / "out"), "--log-format", SPEC]) == 0

    con = duckdb.connect(str(db), read_only=True)
    try:
        duck = con.execute("SELECT record, ts, method, path, query, status, duration_ms, client_key, vhost "
                           "FROM requests ORDER BY record").fetchall()
        duck_quarantine = con.execute("SELECT record, reason FROM quarantine ORDER BY record").fetchall()
    finally:
        con.close()
    requests = spark.read.parquet(str(tmp_path / "out" / "requests")).orderBy("record").select(
        "record", "ts", "method", "path", "query", "status", "duration_ms", "client_key", "vhost").collect()
    quarantine = spark.read.parquet(str(tmp_path / "out" / "quarantine")).orderBy("record").select(
        "record", "reason").collect()
    assert [tuple(row) for row in requests] == duck
    assert [tuple(row) for row in quarantine] == duck_quarantine
    assert [str(row[1]) for row in duck] == ["2026-11-02 10:00:00.123456", "2026-11-02 09:00:00.623001",
                                             "2026-11-03 00:59:59.999999", "2026-11-03 00:00:01.000005"]
    assert [r for r, _ in duck_quarantine] == [4, 5] and duck[1][6] == 0.887
