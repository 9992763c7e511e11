"""`waflens spark features` against `waflens ingest` on the same files, record by record.

Every shared access log and the CSIC training dump (raw HTTP), which each side ingests once per run (``shared_db``
and the ``spark_pipeline`` fixture), and apart from them the head of that dump cut mid-request, a JSON-lines file
and a file of hostile lines go through both; on every record: the same records parsed, the same quarantine
(reason and redacted text), the same pseudonyms and columns, and the same request features (integers exactly,
floats within 1e-9)."""

from __future__ import annotations

import gzip
import json
import math
import re
from pathlib import Path

import duckdb
import pytest

from tests.data.cli_process import KEY, json_summary, waflens_here
from waflens.data.feature_spec import REQUEST_FEATURES

CSIC_REQUESTS = 600
PLANTED_IP = "10.98.76.54"
PLANTED_SECRET = "Sk-planted-secret-4711"
REQUEST_COLUMNS = ("ts", "client_key", "client_ip", "remote_user", "session_cookie", "vhost", "method", "path",
                   "query", "path_decoded", "query_decoded", "protocol", "status", "bytes", "referer", "user_agent",
                   "duration_ms", "headers", "body")

_OK = b'1.2.3.4 - - [01/Nov/2026:12:00:00 +0100] "GET /a?b=1 HTTP/1.1" 200 12 "-" "Mozilla/5.0"'
HOSTILE_LINES = [
    _OK,
    b"",
    b"   ",
    _OK.replace(b"/a?b=1", b"/nul\x00byte"),
    _OK.replace(b"Mozilla/5.0", b"bad \xff\xfe utf8 \xc3("),
    f"garbage from {PLANTED_IP} password={PLANTED_SECRET} [17/May/2015:10:05:03".encode(),
    _OK.replace(b"01/Nov/2026", b"99/Foo/2026"),
    b'5.6.7.8 - - [01/Nov/2026:12:00:01 +0000] "GET /unterminated HTTP/1.1" 200 1 "-" "agent',
    _OK.replace(b"/a?b=1", b"/bare\rcarriage"),
    _OK + b"\r",
    _OK.replace(b"/a?b=1", b"/" + b"x" * 50_000),
    b'"' + _OK.replace(b"1.2.3.4", b"9.9.9.9") + b'"',
    _OK.replace(b"1.2.3.4", b"2001:db8::7"),
    b'"',
    _OK.replace(b"/a?b=1", b"http://evil.example:8080/x?y=%27%3B%20DROP%20TABLE%20requests%3B--"),
    _OK.replace(b"/a?b=1", f"/login?user={PLANTED_IP}&password={PLANTED_SECRET}".encode()),
    _OK.replace(b"/a?b=1", b"/%F1o%zz%2e%252e/../etc/passwd").replace(b"Mozilla/5.0", b"sqlmap/1.7"),
    _OK.replace(b'"-"', f'"http://{PLANTED_IP}/ref"'.encode(), 1),
    b"\t",
    _OK.replace(b"GET", b"PROPFIND"),
    _OK.replace(b"01/Nov/2026:12:00:00 +0100", b"31/Dec/2026:23:59:59 -0500"),
    b"{not json at all",
    _OK,   # the last line has no newline
]
JSON_LINES = [
    {"remote_addr": "1.2.3.4", "time_iso8601": "2026-11-01T12:00:00+01:00", "request": "GET /j?x=1 HTTP/1.1",
     "status": 200, "body_bytes_sent": 5, "http_user_agent": "curl/8.0", "http_referer": "-"},
    {"client": {"ip": "2001:db8::1"}, "@timestamp": "2026-11-01T12:00:01Z", "method": "POST", "url": "/form",
     "query_string": "a=1&b=%3Cscript%3E", "request_body": "user=bob&password=x", "status": "201"},
    "not json",
    [1, 2, 3],
    {"remote_addr": "1.2.3.4", "time": "1790000000", "request_uri": "/epoch"},
    {"remote_addr": "1.2.3.4", "note": "no request field"},
    {"remote_addr": "1.2.3.4", "time": "yesterday", "request_uri": "/bad-time"},
    {"remote_addr": PLANTED_IP, "request_uri": f"/x?token={PLANTED_SECRET}", "ts": "2026-11-02 00:00:00"},
]


@pytest.fixture(scope="module")
def extras(tmp_path_factory, shared_datasets) -> list[Path]:
    """The files beside the shared logs: the head of the CSIC dump cut mid-request, hostile lines, JSON lines."""
    home = tmp_path_factory.mktemp("spark-inputs")
    dump = gzip.decompress((shared_datasets / "raw_http" / "csic2010_normalTrafficTraining.txt.gz").read_bytes())
    starts = [m.start() for m in re.finditer(rb"^(?:GET|POST|PUT) http", dump, re.MULTILINE)]
    csic = home / "csic_head.txt"
    csic.write_bytes(dump[:starts[CSIC_REQUESTS] - 40])   # the last request cut short, as a truncated dump is
    hostile = home / "hostile.log"
    hostile.write_bytes(b"\n".join(HOSTILE_LINES))
    jsonl = home / "requests.jsonl"
    jsonl.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in JSON_LINES) + "\n")
    return [csic, hostile, jsonl]


@pytest.fixture(scope="module")
def duckdb_side(spark_pipeline, extras, tmp_path_factory, monkeypatch_module):
    """`waflens ingest` of the shared logs (``shared_db``, ingested once per run) and of the extra files."""
    db = tmp_path_factory.mktemp("duckdb-side") / "w.duckdb"
    monkeypatch_module.setenv("WAFLENS_PSEUDONYM_KEY", KEY)
    code, out, err = waflens_here("--db", str(db), "--json", "ingest", *map(str, extras))
    assert code == 0, err
    shared, own = _duckdb_tables(spark_pipeline.db, spark_pipeline.files), _duckdb_tables(db, extras)
    return {"requests": {**shared["requests"], **own["requests"]},
            "quarantine": {**shared["quarantine"], **own["quarantine"]},
            "sources": sorted(shared["sources"] + own["sources"])}


def _duckdb_tables(db: Path, files: list[Path]) -> dict:
    by_path = {str(p.resolve()): str(p) for p in files}
    con = duckdb.connect(str(db), read_only=True)
    try:
        con.create_function("given", lambda p: by_path[p], ["VARCHAR"], "VARCHAR")
        requests = con.sql(f"""SELECT given(s.path) AS file, r.record, {', '.join('r.' + c for c in REQUEST_COLUMNS)},
                                      {', '.join('f.' + f.name for f in REQUEST_FEATURES)}
                               FROM requests r JOIN sources s USING (source_id)
                               JOIN request_features f USING (request_id)""").to_arrow_table().to_pylist()
        quarantine = con.sql("""SELECT given(s.path) AS file, q.record, q.raw, q.reason
                                FROM quarantine q JOIN sources s USING (source_id)""").to_arrow_table().to_pylist()
        sources = con.sql("SELECT given(path) AS file, records, parsed, quarantined FROM sources").fetchall()
    finally:
        con.close()
    return {"requests": _keyed(requests), "quarantine": _keyed(quarantine), "sources": sources}


@pytest.fixture(scope="module")
def spark_side(spark, spark_pipeline, extras, tmp_path_factory, monkeypatch_module):
    """`waflens spark features` of the shared logs (the ``spark_pipeline`` fixture's run) and of the extra files."""
    from waflens.pipeline.spark.cli import main

    out = tmp_path_factory.mktemp("spark-side") / "run"
    monkeypatch_module.setenv("WAFLENS_PSEUDONYM_KEY", KEY)
    assert main(["features", *map(str, extras), "--out", str(out)]) == 0
    side = {"requests": {}, "quarantine": {}, "runs": []}
    for run, files in ((spark_pipeline.out, spark_pipeline.files), (out, extras)):
        requests = spark.read.parquet(str(run / "requests"))
        features = spark.read.parquet(str(run / "request_features")).drop("day", "request_id")
        side["requests"].update(_keyed(requests.join(features, ["file", "record"], "left").toArrow().to_pylist()))
        side["quarantine"].update(_keyed(spark.read.parquet(str(run / "quarantine")).toArrow().to_pylist()))
        side["runs"].append((list(map(str, files)), spark.read.parquet(str(run / "sources")).toArrow().to_pylist()))
    side["sources"] = [row for _, rows in side["runs"] for row in rows]
    return side


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _keyed(rows: list[dict]) -> dict[tuple[str, int], dict]:
    return {(row["file"], row["record"]): row for row in rows}


def test_same_records_parsed_and_quarantined(duckdb_side, spark_side):
    assert set(spark_side["requests"]) == set(duckdb_side["requests"])
    assert len(duckdb_side["requests"]) > 40_000
    assert {(row["file"], row["records"], row["parsed"], row["quarantined"]) for row in spark_side["sources"]} \
        == set(duckdb_side["sources"])
    for row in spark_side["sources"]:
        assert row["parsed"] + row["quarantined"] == row["records"]
        assert row["pseudonymized"]
    for files, sources in spark_side["runs"]:
        assert [row["file"] for row in sources] == files


def test_same_quarantine_reasons_and_redacted_text(duckdb_side, spark_side):
    assert spark_side["quarantine"].keys() == duckdb_side["quarantine"].keys()
    assert len(spark_side["quarantine"]) >= 12
    for key, want in duckdb_side["quarantine"].items():
        got = spark_side["quarantine"][key]
        assert (got["reason"], got["raw"]) == (want["reason"], want["raw"]), key


def test_same_columns_and_pseudonyms(duckdb_side, spark_side):
    tokens = 0
    for key, want in duckdb_side["requests"].items():
        got = spark_side["requests"][key]
        for column in REQUEST_COLUMNS:
            assert got[column] == want[column], (key, column, got[column], want[column])
        tokens += want["client_ip"] is not None
    assert tokens > 40_000   # the pseudonyms compared are real tokens, not NULLs on both sides


def test_same_request_features(duckdb_side, spark_side):
    for key, want in duckdb_side["requests"].items():
        got = spark_side["requests"][key]
        for feature in REQUEST_FEATURES:
            if feature.dtype == "DOUBLE":
                assert math.isclose(got[feature.name], want[feature.name], rel_tol=0, abs_tol=1e-9), \
                    (key, feature.name, got[feature.name], want[feature.name])
            else:
                assert got[feature.name] == want[feature.name], (key, feature.name, got[feature.name], want[feature.name])


def test_numbering_and_day_partitions(spark_side):
    by_file = {row["file"]: row for row in spark_side["sources"]}
    for files, _ in spark_side["runs"]:
        base = 0
        for path in files:
            assert by_file[path]["first_request_id"] == base + 1
            base += by_file[path]["records"]
    for (file, record), row in spark_side["requests"].items():
        assert row["request_id"] == by_file[file]["first_request_id"] - 1 + record
        assert row["day"] == (row["ts"].date() if row["ts"] is not None else None)
    assert any(row["day"] is None for row in spark_side["requests"].values())   # the raw HTTP dump


def test_no_planted_address_or_secret_in_the_output(spark_side):
    for table in ("requests", "quarantine"):
        for row in spark_side[table].values():
            for value in row.values():
                if isinstance(value, str):
                    assert PLANTED_IP not in value and PLANTED_SECRET not in value, (table, value)
