"""Fuzzing every parser through ingest: each record parses or is quarantined, nothing raises."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from waflens.data.errors import InputError
from tests.data.helpers import at, combined_line, fresh_db, ingest

good_line = st.builds(lambda i, path: combined_line(f"10.0.0.{i}", at(i), f"GET /{path} HTTP/1.1"),
                      st.integers(0, 255), st.text(max_size=20))
json_line = st.builds(lambda i, path, status: json.dumps({"remote_addr": f"10.1.0.{i}", "time_iso8601": at(i).isoformat(),
                                                           "request": f"GET /{path} HTTP/1.1", "status": status}),
                      st.integers(0, 255), st.text(max_size=20), st.one_of(st.integers(), st.text(max_size=5)))
noise = st.binary(max_size=120).map(lambda b: b.decode("latin-1"))
raw_request = st.builds(lambda path, header: f"GET /{path} HTTP/1.1\r\nHost: x\r\n{header}\r\n\r\n",
                        st.text(alphabet="abc%=&?/", max_size=20), st.text(max_size=30))
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _check(tmp_path_factory, content: bytes, fmt: str, expected_records: int | None):
    tmp = tmp_path_factory.mktemp("fuzz")
    path = tmp / "f.log"
    path.write_bytes(content)
    con = fresh_db(tmp)
    try:
        summary = ingest(con, path, format=fmt)
    except InputError as error:
        # refused when the format is given: only an empty file, or one that starts with gzip's magic bytes but is
        # no gzip (hypothesis found b"\x1f\x8bGET / HTTP/1.1...": read as gzip, said to be corrupt, nothing stored)
        gzip_like = content.startswith(b"\x1f\x8b") and "corrupt gzip" in str(error)
        assert not content.strip() or gzip_like, error
        return
    assert summary.parsed + summary.quarantined == summary.records
    if expected_records is not None:
        assert summary.records == expected_records
    stored = con.execute("SELECT (SELECT count(*) FROM requests) + (SELECT count(*) FROM quarantine)").fetchall()[0][0]
    assert stored == summary.records


def _lines_in(content: bytes) -> int:
    return content.count(b"\n") + (0 if content.endswith(b"\n") else 1)


@SETTINGS
@given(st.lists(st.one_of(good_line, noise), min_size=1, max_size=12))
def test_combined_parser_never_raises(tmp_path_factory, lines):
    content = "\n".join(lines).encode("utf-8", "surrogatepass")
    _check(tmp_path_factory, content, "combined", _lines_in(content))


@SETTINGS
@given(st.lists(st.one_of(json_line, noise), min_size=1, max_size=12))
def test_json_parser_never_raises(tmp_path_factory, lines):
    content = "\n".join(lines).encode("utf-8", "surrogatepass")
    _check(tmp_path_factory, content, "json", _lines_in(content))


@SETTINGS
@given(st.lists(st.one_of(raw_request, noise), min_size=1, max_size=8))
def test_raw_http_parser_never_raises(tmp_path_factory, parts):
    _check(tmp_path_factory, "".join(parts).encode("latin-1", "replace"), "raw-http", None)
