"""Raw HTTP dumps: the CSIC 2010 file, edge cases, and property-based checks."""

from __future__ import annotations

import gzip
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from waflens.data.raw_http import RawHttpReject, RawHttpRequest, iter_raw_http, looks_like_raw_http

CSIC = "raw_http/csic2010_normalTrafficTraining.txt.gz"
BLANK = " \t\r\n"


def parse(text: str) -> list[RawHttpRequest | RawHttpReject]:
    return list(iter_raw_http(text))


# --- the real CSIC 2010 file ---------------------------------------------------------


@pytest.fixture(scope="module")
def csic_text(shared_datasets) -> str:
    with gzip.open(shared_datasets / CSIC) as f:
        return f.read().decode("latin-1")


@pytest.fixture(scope="module")
def csic(csic_text) -> list[RawHttpRequest | RawHttpReject]:
    return parse(csic_text)


def test_csic_counts(csic):
    assert len(csic) == 36_000
    assert all(isinstance(item, RawHttpRequest) for item in csic)
    assert [item.record for item in csic] == list(range(1, 36_001))
    methods = [item.method for item in csic]
    assert methods.count("GET") == 28_000
    assert methods.count("POST") == 8_000


def test_csic_fields(csic):
    for item in csic:
        assert item.target.startswith("/tienda1/")
        assert item.authority == "localhost:8080"
        assert item.protocol == "HTTP/1.1"
        cookies = [value for name, value in item.headers if name == "Cookie"]
        assert len(cookies) == 1 and cookies[0].startswith("JSESSIONID=")
        if item.method == "POST":
            declared = int(dict(item.headers)["Content-Length"])
            assert item.body and len(item.body) == declared
        else:
            assert item.body == ""


def test_csic_first_request_and_a_post(csic):
    first = csic[0]
    assert first.record == 1
    assert (first.method, first.target, first.authority) == ("GET", "/tienda1/index.jsp", "localhost:8080")
    assert first.raw.startswith("GET http://localhost:8080/tienda1/index.jsp HTTP/1.1\r\n")
    assert first.headers[0] == ("User-Agent", "Mozilla/5.0 (compatible; Konqueror/3.5; Linux) KHTML/3.5.8 (like Gecko)")
    assert first.headers[-1] == ("Connection", "close")
    assert ("Cookie", "JSESSIONID=1F767F17239C9B670A39E9B10C3825F4") in first.headers
    assert csic[1].target.endswith("?id=3&nombre=Vino+Rioja&precio=100&cantidad=55&B1=A%F1adir+al+carrito")
    post = csic[2]
    assert (post.method, post.target) == ("POST", "/tienda1/publico/anadir.jsp")
    assert post.body == "id=3&nombre=Vino+Rioja&precio=100&cantidad=55&B1=A%F1adir+al+carrito"
    assert dict(post.headers)["Content-Type"] == "application/x-www-form-urlencoded"


def test_csic_raw_reproduces_the_file_and_parses_fast(csic_text):
    start = time.perf_counter()
    items = parse(csic_text)
    elapsed = time.perf_counter() - start
    assert "".join(item.raw for item in items) == csic_text
    assert elapsed < 10, f"parsing CSIC took {elapsed:.1f} s"
    assert looks_like_raw_http(csic_text[:4096])


# --- edge cases ------------------------------------------------------------------------

GET = "GET /a?x=1 HTTP/1.1\r\nHost: example.org\r\nAccept: */*\r\n\r\n"
POST = "POST /login HTTP/1.1\r\nHost: example.org\r\nContent-Length: 7\r\n\r\nuser=me\r\n"


def test_empty_and_blank_text():
    assert parse("") == []
    assert parse("\r\n \n\t\n") == []


def test_lf_only():
    text = (GET + POST).replace("\r\n", "\n")
    get, post = parse(text)
    assert (get.method, get.target, get.authority, get.body) == ("GET", "/a?x=1", "example.org", "")
    assert get.headers == (("Host", "example.org"), ("Accept", "*/*"))
    assert (post.method, post.body) == ("POST", "user=me")


def test_mixed_line_endings():
    text = "GET / HTTP/1.1\nHost: a\r\nX-One: 1\n\r\nPOST /p HTTP/1.1\r\nHost: b\n\nbody\r\n"
    get, post = parse(text)
    assert get.headers == (("Host", "a"), ("X-One", "1"))
    assert (post.authority, post.body) == ("b", "body")
    assert get.raw + post.raw == text


def test_garbage_before_first_request():
    items = parse("some banner\r\nmore junk\r\n\r\n" + GET + POST)
    assert [type(item) for item in items] == [RawHttpReject, RawHttpRequest, RawHttpRequest]
    assert [item.record for item in items] == [1, 2, 3]
    assert items[0].raw == "some banner\r\nmore junk\r\n\r\n"
    assert "junk" not in items[0].reason


def test_text_without_any_request_line():
    (reject,) = parse("hello world\n")
    assert isinstance(reject, RawHttpReject) and reject.raw == "hello world\n"


@pytest.mark.parametrize("bad_line, reason_word", [
    ("no colon here", "':'"),
    ("Bad Name: value", "whitespace"),
    ("Bad\x01Name: value", "control"),
    (": empty name", "empty"),
])
def test_malformed_header_is_rejected_and_next_request_parsed(bad_line, reason_word):
    bad = f"GET /x HTTP/1.1\r\nHost: h\r\n{bad_line}\r\n\r\n"
    reject, good = parse(bad + GET)
    assert isinstance(reject, RawHttpReject) and reject.raw == bad
    assert reason_word in reject.reason and "\n" not in reject.reason
    assert bad_line not in reject.reason
    assert isinstance(good, RawHttpRequest) and good.record == 2 and good.target == "/a?x=1"


def test_continuation_before_any_header_is_rejected():
    (reject,) = parse("GET / HTTP/1.1\r\n folded\r\nHost: h\r\n\r\n")
    assert isinstance(reject, RawHttpReject) and "continuation" in reject.reason


def test_folded_header():
    (req,) = parse("GET / HTTP/1.1\r\nX-Long: first\r\n  second\r\n\tthird\r\nHost: h\r\n\r\n")
    assert req.headers == (("X-Long", "first second third"), ("Host", "h"))


def test_missing_body_and_missing_blank_line():
    (req,) = parse("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n")
    assert req.body == "" and req.headers[-1] == ("Content-Length", "10")
    (req,) = parse("GET / HTTP/1.0")
    assert (req.protocol, req.headers, req.body, req.authority) == ("HTTP/1.0", (), "", "")


def test_content_length_longer_than_body_keeps_what_is_there():
    (req,) = parse("POST /p HTTP/1.1\r\nContent-Length: 100\r\n\r\nshort\r\n\r\n")
    assert req.body == "short"


def test_content_length_shorter_than_body_cuts_it():
    (req,) = parse("POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcdef\r\n")
    assert req.body == "abc"
    assert req.raw.endswith("abcdef\r\n")  # the rest stays as evidence


def test_content_length_counts_trailing_newlines_inside_the_body():
    (req,) = parse("POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nab\r\n\r\n\r\n")
    assert req.body == "ab\r\n\r"


@pytest.mark.parametrize("value", ["abc", "-1", "\xb2", "1e3", ""])
def test_invalid_content_length_is_ignored(value):
    (req,) = parse(f"POST /p HTTP/1.1\r\nContent-Length: {value}\r\n\r\nbody\r\n")
    assert req.body == "body"


def test_unusual_methods_and_protocols():
    text = ("PROPFIND /dav HTTP/1.1\r\nHost: h\r\n\r\n"
            "NETSPARKER /x HTTP/1.0\r\nHost: h\r\n\r\n"
            "GET / HTTP/2.0\r\nHost: h\r\n\r\n"
            "M-SEARCH * HTTP/1.1\r\nHost: 239.255.255.250:1900\r\n\r\n")
    items = parse(text)
    assert [(i.method, i.target, i.protocol) for i in items] == [
        ("PROPFIND", "/dav", "HTTP/1.1"), ("NETSPARKER", "/x", "HTTP/1.0"),
        ("GET", "/", "HTTP/2.0"), ("M-SEARCH", "*", "HTTP/1.1")]


@pytest.mark.parametrize("line", ["get / HTTP/1.1", "GET  / HTTP/1.1", "GET / HTTP/1.1 x",
                                  "GET / HTTPS/1.1", "A23456789012345678901 / HTTP/1.1"])
def test_not_request_lines(line):
    (item,) = parse(line + "\r\nHost: h\r\n\r\n")
    assert isinstance(item, RawHttpReject)


@pytest.mark.parametrize("target, authority, origin", [
    ("http://example.org:8080/a/b?q=1", "example.org:8080", "/a/b?q=1"),
    ("https://user:pw@example.org/x", "example.org", "/x"),
    ("http://example.org", "example.org", "/"),
    ("http://example.org?q", "example.org", "/?q"),
])
def test_absolute_uri_is_reduced_to_origin_form(target, authority, origin):
    (req,) = parse(f"GET {target} HTTP/1.1\r\nHost: other\r\n\r\n")
    assert (req.authority, req.target) == (authority, origin)


def test_latin1_bytes_and_nul_never_raise():
    text = "GET /caf\xe9%F1\x00 HTTP/1.1\r\nX-Bin: \x85\xff\x00\x1c\r\n\r\nPOST /p HTTP/1.1\r\n\r\n\x85\x00\xfe\r\n"
    get, post = parse(text)
    assert get.target == "/caf\xe9%F1\x00"
    assert get.headers == (("X-Bin", "\x85\xff\x00\x1c"),)  # \x85 is not a line break here
    assert post.body == "\x85\x00\xfe"


def test_huge_lines_do_not_hang():
    size = 10_000_000
    start = time.perf_counter()
    (req,) = parse("GET /" + "a" * size + " HTTP/1.1\r\nHost: h\r\n\r\n")
    assert len(req.target) == size + 1
    for text in ("GET /" + "a" * size, "A " * (size // 2), "GET / " * (size // 6), "\n" + " " * size + "x",
                 "GET / HTTP/1.1\n" + " " * size + "x\n"):
        assert all(isinstance(item, RawHttpReject) for item in parse(text))
    assert time.perf_counter() - start < 10


def test_looks_like_raw_http():
    assert looks_like_raw_http("\r\n" + GET)
    assert looks_like_raw_http("GET http://h/x HTTP/1.1\nHost: h\n")
    assert not looks_like_raw_http("")
    assert not looks_like_raw_http("GET / HTTP/1.1\r\n\r\n")  # no header line follows
    assert not looks_like_raw_http('127.0.0.1 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 1')
    assert not looks_like_raw_http('{"request": "GET / HTTP/1.1"}\n')
    assert not looks_like_raw_http("GET / HTTP/1.1\r\nnot a header\r\n")


# --- properties ------------------------------------------------------------------------

LATIN1 = st.characters(max_codepoint=0xFF)
FRAGMENTS = st.sampled_from([
    "GET / HTTP/1.1", "POST http://h:1/p?q HTTP/1.0", "X-Y: z", "Content-Length: 3", "Content-Length: 99",
    " folded", "\tfolded", "no colon", "Bad Name: v", "body=1", "\r\n", "\n", "\r", "", " ",
])
ARBITRARY = st.lists(st.one_of(FRAGMENTS, st.text(LATIN1, max_size=12)), max_size=30).map(lambda parts: "".join(
    part if part in ("\r\n", "\n", "\r") else part + "\r\n" for part in parts))
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(st.one_of(ARBITRARY, st.text(LATIN1, max_size=200)))
def test_arbitrary_text_never_raises_and_drops_nothing(text):
    items = parse(text)
    assert all(isinstance(item, (RawHttpRequest, RawHttpReject)) for item in items)
    assert [item.record for item in items] == list(range(1, len(items) + 1))
    joined = "".join(item.raw for item in items)
    # every byte is in exactly one raw, except blank lines before the first request
    assert text.endswith(joined) and not text[: len(text) - len(joined)].strip(BLANK)
    for item in items:
        assert item.raw.strip(BLANK)
        if isinstance(item, RawHttpReject):
            assert item.reason and "\n" not in item.reason


TOKEN = st.text(st.sampled_from("abcXYZ019!#$%&'*+-.^_`|~"), min_size=1, max_size=10)
HOST = st.text(st.sampled_from("abcxyz019.-:[]"), min_size=1, max_size=15)
METHOD = st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"), min_size=1, max_size=20)
PATH = st.text(LATIN1.filter(lambda c: c not in " \t\r\n"), max_size=30).map(lambda s: "/" + s)
VALUE = st.text(LATIN1.filter(lambda c: c not in "\r\n"), max_size=30).map(lambda s: s.strip(" \t"))
BODY = st.text(LATIN1, max_size=60).filter(lambda b: not re.search(r"(?m)^[A-Z0-9_-]{1,20} ", b))
HEADERS = st.lists(st.tuples(TOKEN.filter(lambda n: n.lower() not in ("content-length", "host")), VALUE), max_size=6)


@PROPERTY
@given(st.lists(st.tuples(METHOD, st.one_of(st.none(), HOST), PATH, st.sampled_from(["HTTP/1.0", "HTTP/1.1", "HTTP/2"]),
                          HEADERS, BODY, st.sampled_from(["\r\n", "\n"])), min_size=1, max_size=4))
def test_round_trip(requests):
    text = ""
    for method, host, path, protocol, headers, body, eol in requests:
        target = path if host is None else f"http://{host}{path}"
        fields = list(headers) + [("Host", "fallback.example")] + ([("Content-Length", str(len(body)))] if body else [])
        head = eol.join([f"{method} {target} {protocol}"] + [f"{name}: {value}" for name, value in fields])
        text += head + eol + eol + body + eol
    items = parse(text)
    assert len(items) == len(requests)
    for item, (method, host, path, protocol, headers, body, _) in zip(items, requests):
        assert isinstance(item, RawHttpRequest), item
        assert (item.method, item.target, item.protocol, item.body) == (method, path, protocol, body)
        assert item.authority == (host if host is not None else "fallback.example")
        assert item.headers[: len(headers)] == tuple(headers)
