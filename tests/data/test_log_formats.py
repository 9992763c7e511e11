"""Log-format compiler: COMBINED on every shared log, RE2 parity, Apache/nginx specs, errors, fuzzing."""

import gzip
import re

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waflens.data.errors import ConfigError
from waflens.data.log_formats import COMBINED, LineFormat, compile_log_format

PRINTABLE = st.characters(min_codepoint=32, max_codepoint=126)
WORD = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)
SAFE_WORD = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters='"[]'),
                    min_size=1, max_size=20)


def _escape(value: str) -> str:
    """What Apache and nginx write for a quoted value: backslash and quote escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _groups(fmt: LineFormat, line: str) -> tuple[str, ...] | None:
    """Python's groups, with None (a group that took no part) as '' — what RE2 reports for it."""
    match = re.match(fmt.regex, line)
    return None if match is None else tuple(g or "" for g in match.groups())


def _named(fmt: LineFormat, line: str) -> dict[str, str] | None:
    groups = _groups(fmt, line)
    return None if groups is None else dict(zip(fmt.fields, groups))


def _re2_groups(con: duckdb.DuckDBPyConnection, fmt: LineFormat, lines: list[str]) -> list[tuple[str, ...] | None]:
    """The same lines through DuckDB's regexp_extract; names are synthetic, since fields may repeat."""
    names = [f"g{i}" for i in range(len(fmt.fields))]
    rows = con.execute(
        """SELECT regexp_matches(line, $p), regexp_extract(line, $p, $n)
           FROM (SELECT unnest($lines) AS line, generate_subscripts($lines, 1) AS i) ORDER BY i""",
        {"p": fmt.regex, "n": names, "lines": lines},
    ).fetchall()
    return [tuple(m[name] for name in names) if ok else None for ok, m in rows]


def _assert_engines_agree(con, fmt: LineFormat, lines: list[str]) -> None:
    for line, re2 in zip(lines, _re2_groups(con, fmt, lines)):
        assert re2 == _groups(fmt, line), line


def _shared_lines(path) -> list[str]:
    """Lines as the ingest sees them: UTF-8 with \\xHH for bad bytes, no CR, scanner wrapping removed."""
    text = gzip.decompress(path.read_bytes()).decode("utf-8", errors="backslashreplace")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    out = []
    for line in lines:
        line = line.replace("\r", "")
        if len(line) > 1 and line.startswith('"') and line.endswith('"'):
            line = line[1:-1]
        out.append(line)
    return out


@pytest.fixture(scope="module")
def shared_lines(access_logs) -> dict[str, list[str]]:
    return {path.name: _shared_lines(path) for path in access_logs}


@pytest.fixture(scope="module")
def con():
    connection = duckdb.connect()
    yield connection
    connection.close()


# --- COMBINED on the real logs ---

def test_combined_matches_every_shared_log(shared_lines):
    assert len(shared_lines) == 8
    pattern = re.compile(COMBINED.regex)
    for name, lines in shared_lines.items():
        rejected = [i for i, line in enumerate(lines, 1) if not pattern.match(line)]
        assert 1 - len(rejected) / len(lines) >= 0.999, (name, rejected[:10])
        if name == "elastic_apache_logs.log.gz":
            assert rejected == [8899]       # the unterminated User-Agent quote is refused, not half-parsed


SPOT_CHECKS = [
    ("hackers-access.log.gz", 2577, {
        "vhost": "", "client_ip": "2001:41d0:8:f69::1", "ident": "-", "remote_user": "-",
        "time_clf": "29/Oct/2015:06:47:36 +0100", "request_line": "GET / HTTP/1.1", "status": "200",
        "bytes": "20526", "referer": "http://niels.basjes.nl/",
        "user_agent": "Mozilla/5.0 (Windows NT 6.1) AppleWebKit/537.36 (KHTML, like Gecko) Dragon/36.1.1.21 "
                      "Chrome/36.0.1985.97 Safari/537.36",
        "trailing": ""}),
    ("secrepo_2018-12-15.log.gz", 1, {      # every line of this file ends with a space
        "client_ip": "77.75.78.160", "time_clf": "15/Dec/2018:02:18:31 -0800",
        "request_line": "GET /robots.txt HTTP/1.1", "status": "200", "bytes": "334", "referer": "-",
        "user_agent": "Mozilla/5.0 (compatible; SeznamBot/3.2; +http://napoveda.seznam.cz/en/seznambot-intro/)",
        "trailing": ""}),
    ("secrepo_2018-12-15.log.gz", 192, {    # escaped quotes inside the User-Agent
        "client_ip": "188.76.8.81", "bytes": "12469", "referer": "-",
        "user_agent": '\\"Mozilla/5.0 (iPhone; CPU iPhone OS 11_0 like Mac OS X) AppleWebKit/604.1.38 '
                      '(KHTML, like Gecko) Version/11.0 Mobile/15A372 Safari/604.1\\"',
        "trailing": ""}),
    ("scanner_netsparker.log.gz", 1725, {   # CRLF, wrapped in quotes, Shellshock referer with \"
        "client_ip": "192.168.4.164", "time_clf": "22/Dec/2016:15:19:14 +0300", "request_line": "GET /DVWA/ HTTP/1.1",
        "referer": '() { :;}; echo \\"NS:\\" $(/bin/sh -c \\"expr 268409241 - 2\\")',
        "user_agent": "Mozilla/5.0 (Windows NT 6.3; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) "
                      "Chrome/41.0.2272.16 Safari/537.36"}),
    ("scanner_w3af.log.gz", 3934, {         # last wrapped CRLF line
        "client_ip": "192.168.4.25", "request_line": "GET /DVWA/index.php HTTP/1.1", "status": "200",
        "bytes": "2021", "referer": "http://192.168.4.161/DVWA/login.php",
        "user_agent": "Mozilla/5.0 (Windows NT 10.0; WOW64; rv:50.0) Gecko/20100101 Firefox/50.0"}),
    ("scanner_w3af.log.gz", 3935, {         # the unwrapped LF tail
        "vhost": "", "client_ip": "192.168.1.20", "time_clf": "22/Dec/2016:21:45:37 +0300",
        "request_line": "GET /DVWA/ HTTP/1.1", "status": "302", "bytes": "414", "referer": "-",
        "user_agent": "w3af.org", "trailing": ""}),
    ("scanner_w3af.log.gz", 3996, {"client_ip": "192.168.1.20", "bytes": "329", "user_agent": "w3af.org"}),
]


@pytest.mark.parametrize(("name", "line_no", "expected"), SPOT_CHECKS, ids=lambda v: str(v)[:20])
def test_combined_fields_on_real_lines(shared_lines, name, line_no, expected):
    fields = _named(COMBINED, shared_lines[name][line_no - 1])
    assert fields is not None
    assert {key: fields[key] for key in expected} == expected


def test_re2_agrees_with_python_on_real_lines(shared_lines, con):
    sample = []
    for lines in shared_lines.values():
        sample += lines[::25]
        sample += [line for line in lines if "\\" in line or not line.isascii()]
    sample.append(shared_lines["elastic_apache_logs.log.gz"][8898])
    assert len(sample) > 1500
    _assert_engines_agree(con, COMBINED, sample)


# --- COMBINED on the shapes it promises ---

T = "[10/Oct/2000:13:55:36 -0700]"
COMBINED_CASES = [
    (f'127.0.0.1 - frank {T} "GET /apache_pb.gif HTTP/1.0" 200 2326',
     ("", "127.0.0.1", "-", "frank", "10/Oct/2000:13:55:36 -0700", "GET /apache_pb.gif HTTP/1.0", "200", "2326",
      "", "", "")),
    (f'example.com 1.2.3.4 - - {T} "GET / HTTP/1.1" 304 - "-" "curl/8.0"',
     ("example.com", "1.2.3.4", "-", "-", "10/Oct/2000:13:55:36 -0700", "GET / HTTP/1.1", "304", "-", "-",
      "curl/8.0", "")),
    (f'example.com:443 2001:db8::1 - bob {T} "POST /login HTTP/2.0" 302 0 "https://example.com/" "UA 1"\r',
     ("example.com:443", "2001:db8::1", "-", "bob", "10/Oct/2000:13:55:36 -0700", "POST /login HTTP/2.0", "302",
      "0", "https://example.com/", "UA 1", "")),
    (f'10.0.0.1 - - {T} "GET /x HTTP/1.1" 200 12 "-" "curl/8.0" "-" 0.123 upstream=10.0.0.9:80   ',
     ("", "10.0.0.1", "-", "-", "10/Oct/2000:13:55:36 -0700", "GET /x HTTP/1.1", "200", "12", "-", "curl/8.0",
      '"-" 0.123 upstream=10.0.0.9:80')),
    (f'10.0.0.1  -  -  {T}  "-" 408 -  "-"  "-"',  # runs of spaces; no request at all
     ("", "10.0.0.1", "-", "-", "10/Oct/2000:13:55:36 -0700", "-", "408", "-", "-", "-", "")),
    # raw quotes in the request line (old nginx, scanners): the request takes them in
    (f'10.0.0.1 - - {T} "GET /a"b" HTTP/1.1" 404 5 "-" "x"',
     ("", "10.0.0.1", "-", "-", "10/Oct/2000:13:55:36 -0700", 'GET /a"b" HTTP/1.1', "404", "5", "-", "x", "")),
    (f'10.0.0.1 - - {T} "GET /"><script>" 400 5',
     ("", "10.0.0.1", "-", "-", "10/Oct/2000:13:55:36 -0700", 'GET /"><script>', "400", "5", "", "", "")),
    # well-formed, with an escaped '" 200 1 "' inside: the strict reading wins
    (f'10.0.0.1 - - {T} "GET /a\\" 200 1 \\"b HTTP/1.1" 200 7 "r" "u" t',
     ("", "10.0.0.1", "-", "-", "10/Oct/2000:13:55:36 -0700", 'GET /a\\" 200 1 \\"b HTTP/1.1', "200", "7", "r",
      "u", "t")),
    # ... even where the lazy reading would also fit (request 'GET /a\\', referer ' 200 7 ', agent ' ')
    (f'10.0.0.1 - - {T} "GET /a\\" 200 1 " 200 7 " " "ua"',
     ("", "10.0.0.1", "-", "-", "10/Oct/2000:13:55:36 -0700", 'GET /a\\" 200 1 ', "200", "7", " ", "ua", "")),
]


@pytest.mark.parametrize(("line", "expected"), COMBINED_CASES)
def test_combined_shapes(line, expected, con):
    assert COMBINED.fields == ("vhost", "client_ip", "ident", "remote_user", "time_clf", "request_line", "status",
                               "bytes", "referer", "user_agent", "trailing")
    assert _groups(COMBINED, line) == expected
    assert _re2_groups(con, COMBINED, [line]) == [expected]


@pytest.mark.parametrize("line", [
    "",
    "not a log line",
    f'10.0.0.1 - - {T} "GET / HTTP/1.1" 200 12 "-" "Mozilla/5.0 (unterminated',
    f'10.0.0.1 - - {T} "GET / HTTP/1.1" 200 12 junk',
    f'10.0.0.1 - - {T} "GET / HTTP/1.1" OK 12',
    '10.0.0.1 - - "GET / HTTP/1.1" 200 12',
])
def test_combined_rejects_broken_lines(line, con):
    assert _groups(COMBINED, line) is None
    assert _re2_groups(con, COMBINED, [line]) == [None]


@pytest.mark.parametrize("name", ["combined", "common", "vhost_combined", " Combined "])
def test_apache_presets_are_combined(name):
    assert compile_log_format(name) is COMBINED


# --- custom Apache and nginx formats ---

CUSTOM_CASES = [
    ('%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %{JSESSIONID}C %D %T %v',
     '192.0.2.1 - alice [02/Nov/2026:10:00:00 +0100] "GET /a?b=c HTTP/1.1" 200 1043 "https://shop.example/" '
     '"Mozilla/5.0 (X11) \\"q\\"" 3F2504E0 1500 0 shop.example',
     [("client_ip", "192.0.2.1"), ("ident", "-"), ("remote_user", "alice"),
      ("time_clf", "02/Nov/2026:10:00:00 +0100"), ("request_line", "GET /a?b=c HTTP/1.1"), ("status", "200"),
      ("bytes", "1043"), ("referer", "https://shop.example/"), ("user_agent", 'Mozilla/5.0 (X11) \\"q\\"'),
      ("cookie:JSESSIONID", "3F2504E0"), ("duration_us", "1500"), ("duration_s", "0"), ("vhost", "shop.example")]),
    ('%v %h %l %u %t "%r" %>s %b',
     'shop.example:443 2001:db8::7 - - [02/Nov/2026:10:00:01 +0000] "POST /login HTTP/2.0" 302 -',
     [("vhost", "shop.example:443"), ("client_ip", "2001:db8::7"), ("ident", "-"), ("remote_user", "-"),
      ("time_clf", "02/Nov/2026:10:00:01 +0000"), ("request_line", "POST /login HTTP/2.0"), ("status", "302"),
      ("bytes", "-")]),
    ('%a %t "%m %U%q %H" %>s %B %{ms}T',
     '198.51.100.9 [02/Nov/2026:10:00:02 -0500] "GET /search?q=%3Cscript%3E&page=2 HTTP/1.1" 200 5120 12',
     [("client_ip", "198.51.100.9"), ("time_clf", "02/Nov/2026:10:00:02 -0500"), ("method", "GET"),
      ("path", "/search"), ("query", "?q=%3Cscript%3E&page=2"), ("protocol", "HTTP/1.1"), ("status", "200"),
      ("bytes", "5120"), ("duration_ms", "12")]),
    ('%a %t "%m %U%q %H" %>s %B %{ms}T',
     '198.51.100.9 [02/Nov/2026:10:00:02 -0500] "HEAD /index.html HTTP/1.0" 200 0 3',
     [("client_ip", "198.51.100.9"), ("time_clf", "02/Nov/2026:10:00:02 -0500"), ("method", "HEAD"),
      ("path", "/index.html"), ("query", ""), ("protocol", "HTTP/1.0"), ("status", "200"), ("bytes", "0"),
      ("duration_ms", "3")]),
    # modifiers, an unquoted multi-value header, ignored directives, a literal %
    ('%h %{X-Forwarded-For}i "%!200r" %<s %>s "%400,501{user-AGENT}i" %I %O %{us}T %k 100%%',
     '10.0.0.2 203.0.113.9, 10.0.0.1 "GET / HTTP/1.1" 200 304 "-" 512 1024 3000 0 100%',
     [("client_ip", "10.0.0.2"), ("header:x-forwarded-for", "203.0.113.9, 10.0.0.1"),
      ("request_line", "GET / HTTP/1.1"), ("status", "200"), ("status", "304"), ("user_agent", "-"),
      ("ignored", "512"), ("bytes", "1024"), ("duration_us", "3000"), ("ignored", "0")]),
    ('%h "%r %{ms}T"',                # free text sharing its quotes with another field
     '192.0.2.1 "GET /a b HTTP/1.1 12"',
     [("client_ip", "192.0.2.1"), ("request_line", "GET /a b HTTP/1.1"), ("duration_ms", "12")]),
    ('%v:%p %h %{begin:sec}t %{end:msec}t %{remote}p',
     'shop.example:443 2001:db8::1 1793527200 1793527200123 51000',
     [("vhost", "shop.example"), ("server_port", "443"), ("client_ip", "2001:db8::1"),
      ("time_epoch", "1793527200"), ("time_epoch_ms", "1793527200123"), ("ignored", "51000")]),
    ('$remote_addr "$request" $status /100%2F$request_time',   # a literal '%2F' in an nginx spec
     '192.0.2.1 "GET / HTTP/1.1" 200 /100%2F0.5',
     [("client_ip", "192.0.2.1"), ("request_line", "GET / HTTP/1.1"), ("status", "200"), ("duration_s", "0.5")]),
    ('%h %U%q %>s',                   # unquoted path and query side by side
     '192.0.2.1 /a/b.php?id=1&x=/y 200',
     [("client_ip", "192.0.2.1"), ("path", "/a/b.php"), ("query", "?id=1&x=/y"), ("status", "200")]),
    ('%h %{%Y-%m-%d %H:%M:%S}t %{sec}t %{msec}t "%r"',
     '192.0.2.1 2026-11-02 10:00:00 1793527200 1793527200123 "GET / HTTP/1.1"',
     [("client_ip", "192.0.2.1"), ("time_strftime:%Y-%m-%d %H:%M:%S", "2026-11-02 10:00:00"), ("time_epoch", "1793527200"),
      ("time_epoch_ms", "1793527200123"), ("request_line", "GET / HTTP/1.1")]),
    ('%h [%{%F %T}t.%{usec_frac}t] %{usec}t "%r"',    # glibc composites spelled out; the fraction beside it
     '192.0.2.1 [2026-11-02 10:00:00.123456] 1793527200123456 "GET / HTTP/1.1"',
     [("client_ip", "192.0.2.1"), ("time_strftime:%Y-%m-%d %H:%M:%S", "2026-11-02 10:00:00"),
      ("time_frac_us", "123456"), ("time_epoch_us", "1793527200123456"), ("request_line", "GET / HTTP/1.1")]),
    ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" '
     '"$http_user_agent" $request_time $cookie_sessionid',
     '203.0.113.5 - - [02/Nov/2026:10:00:00 +0000] "GET /cart HTTP/1.1" 200 612 "-" "curl/8.0" 0.123 Ab9Z',
     [("client_ip", "203.0.113.5"), ("remote_user", "-"), ("time_clf", "02/Nov/2026:10:00:00 +0000"),
      ("request_line", "GET /cart HTTP/1.1"), ("status", "200"), ("bytes", "612"), ("referer", "-"),
      ("user_agent", "curl/8.0"), ("duration_s", "0.123"), ("cookie:sessionid", "Ab9Z")]),
    ('$time_iso8601 "$request" $status $http_user_agent',     # no client at all; unquoted UA with spaces
     '2026-11-02T10:00:00+00:00 "GET /p HTTP/1.1" 302 Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0 ',
     [("time_iso8601", "2026-11-02T10:00:00+00:00"), ("request_line", "GET /p HTTP/1.1"), ("status", "302"),
      ("user_agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0")]),
    ('$msec $host "$request_method $request_uri $server_protocol" $status',
     '1793527200.123 shop.example "GET /cart?id=3&x=%22 HTTP/1.1" 404',
     [("time_epoch", "1793527200.123"), ("vhost", "shop.example"), ("method", "GET"),
      ("target", "/cart?id=3&x=%22"), ("protocol", "HTTP/1.1"), ("status", "404")]),
    ('${host}:$server_port $upstream_addr $remote_addr "$uri?$args" $time_local',
     'shop.example:8443 10.0.0.5:80 2001:db8::5 "/a/b?c=1&d=2" 02/Nov/2026:10:00:00 +0000',
     [("vhost", "shop.example"), ("server_port", "8443"), ("ignored", "10.0.0.5:80"), ("client_ip", "2001:db8::5"),
      ("path", "/a/b"), ("query", "c=1&d=2"), ("time_clf", "02/Nov/2026:10:00:00 +0000")]),
    ('$remote_addr "$remote_user" "$request" $status $cookie_PHPSESSID',   # raw quotes in the request
     '192.0.2.8 "John Doe" "GET /a"b HTTP/1.1" 200 k3Y',
     [("client_ip", "192.0.2.8"), ("remote_user", "John Doe"), ("request_line", 'GET /a"b HTTP/1.1'),
      ("status", "200"), ("cookie:PHPSESSID", "k3Y")]),
    ('{"ip":"$remote_addr","xff":"$http_x_forwarded_for","ua":"$http_user_agent","t":$request_time}',
     '{"ip":"192.0.2.4","xff":"-","ua":"Mozilla \\"x\\" \\u0022","t":0.004}',
     [("client_ip", "192.0.2.4"), ("header:x-forwarded-for", "-"), ("user_agent", 'Mozilla \\"x\\" \\u0022'),
      ("duration_s", "0.004")]),
    ("nginx",
     '203.0.113.5 - - [02/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 612 "-" "curl/8.0"',
     [("client_ip", "203.0.113.5"), ("remote_user", "-"), ("time_clf", "02/Nov/2026:10:00:00 +0000"),
      ("request_line", "GET / HTTP/1.1"), ("status", "200"), ("bytes", "612"), ("referer", "-"),
      ("user_agent", "curl/8.0")]),
]


@pytest.mark.parametrize(("spec", "line", "expected"), CUSTOM_CASES, ids=lambda v: str(v)[:30])
def test_custom_formats_parse_every_field(spec, line, expected, con):
    fmt = compile_log_format(spec)
    assert fmt.name == ("nginx" if "$" in spec or spec == "nginx" else "apache")
    if spec != "nginx":
        assert fmt.spec == spec
    assert fmt.regex.startswith("^") and fmt.regex.endswith("$")
    assert list(zip(fmt.fields, _groups(fmt, line) or ())) == expected
    assert _re2_groups(con, fmt, [line]) == [tuple(value for _, value in expected)]


def test_custom_formats_reject_what_does_not_fit():
    fmt = compile_log_format('%a %t "%m %U%q %H" %>s %B %{ms}T')
    assert _groups(fmt, '198.51.100.9 [02/Nov/2026:10:00:02 -0500] "GET /a b HTTP/1.1" 200 5 1') is None
    assert _groups(fmt, '198.51.100.9 [02/Nov/2026:10:00:02 -0500] "GET / HTTP/1.1" 2000 5 1') is None
    vhost = compile_log_format('%v %h %l %u %t "%r" %>s %b')
    assert _groups(vhost, 'a b c d e [02/Nov/2026:10:00:01 +0000] "GET / HTTP/1.1" 200 1') is None
    assert _groups(vhost, 'a b c [02/Nov/2026:10:00:01 +0000] "GET / HTTP/1.1" 200 1') is None
    nginx = compile_log_format("nginx")
    assert _groups(nginx, '203.0.113.5 - - [02/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 612') is None


@pytest.mark.parametrize(("spec", "needle"), [
    ("", "empty"),
    ("   ", "empty"),
    ("%h %Z %s", "'%Z'"),
    ("%h %{Foo}Z", "'%{Foo}Z'"),
    ("%h 100% done", "'% '"),
    ("%h %", "'%'"),
    ("%h %{Referer", "'%{'"),
    ("%h %i", "needs a name"),
    ("%{JSESSIONID}C %C", "needs a name"),
    ("%{minutes}T", "unit"),
    ("just literal text", "no field"),
    ('"-" [] $ -', "no field"),
    ("$remote_addr ${host", "unterminated"),
])
def test_bad_specs_raise_config_error(spec, needle):
    with pytest.raises(ConfigError) as error:
        compile_log_format(spec)
    message = str(error.value)
    assert needle in message and "\n" not in message
    assert error.value.exit_code == 5


# --- properties ---

SPEC_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet='%${}<>!,0123456789"[] ahlutrsbBOiCDTvVpqmUHXkZz^_-', max_size=30),
)


@settings(max_examples=300, deadline=None)
@given(spec=SPEC_TEXT)
def test_any_spec_compiles_or_raises_config_error(spec, con):
    try:
        fmt = compile_log_format(spec)
    except ConfigError as error:
        assert str(error) and "\n" not in str(error)
        return
    assert fmt.name in ("combined", "apache", "nginx") and fmt.fields
    assert re.compile(fmt.regex).groups == len(fmt.fields)
    assert fmt.regex.startswith("^") and fmt.regex.endswith("$")
    con.execute("SELECT regexp_matches('x', $p)", {"p": fmt.regex}).fetchall()   # RE2 accepts it too


QUOTED_TEXT = st.text(alphabet=PRINTABLE, max_size=40)


@settings(max_examples=200, deadline=None)
@given(vhost=st.one_of(st.none(), WORD), client=WORD, ident=WORD, user=WORD,
       time=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="[]"), max_size=30),
       request=QUOTED_TEXT, status=st.one_of(st.just("-"), st.integers(100, 999).map(str)),
       size=st.one_of(st.just("-"), st.integers(0, 10**12).map(str)),
       tail=st.one_of(st.none(), st.tuples(QUOTED_TEXT, QUOTED_TEXT, QUOTED_TEXT.map(str.strip))),
       spaces=st.sampled_from(["", " ", "  ", "\r"]))
def test_combined_round_trip(vhost, client, ident, user, time, request, status, size, tail, spaces, con):
    line = (f'{vhost + " " if vhost else ""}{client} {ident} {user} [{time}] "{_escape(request)}" {status} {size}'
            + (f' "{_escape(tail[0])}" "{_escape(tail[1])}"{" " if tail[2] else ""}{tail[2]}' if tail else "")
            + spaces)
    expected = (vhost or "", client, ident, user, time, _escape(request), status, size,
                *((_escape(tail[0]), _escape(tail[1]), tail[2]) if tail else ("", "", "")))
    assert _groups(COMBINED, line) == expected
    assert _re2_groups(con, COMBINED, [line]) == [expected]


# (apache directive, nginx variable, field, value strategy, how the value is written)
CATALOGUE = [
    ("%h", "$remote_addr", "client_ip", SAFE_WORD, "{}"),
    ("%u", "$remote_user", "remote_user", SAFE_WORD, "{}"),
    ("%t", "[$time_local]", "time_clf",
     st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="]"), max_size=30),
     "[{}]"),
    ('"%r"', '"$request"', "request_line", QUOTED_TEXT, "quoted"),
    ("%>s", "$status", "status", st.integers(100, 999).map(str), "{}"),
    ("%b", "$body_bytes_sent", "bytes", st.one_of(st.just("-"), st.integers(0, 10**9).map(str)), "{}"),
    ('"%{Referer}i"', '"$http_referer"', "referer", QUOTED_TEXT, "quoted"),
    ('"%{User-Agent}i"', '"$http_user_agent"', "user_agent", QUOTED_TEXT, "quoted"),
    ("%{sid}C", "$cookie_sid", "cookie:sid", SAFE_WORD, "{}"),
    ("%T", "$request_time", "duration_s", st.floats(0, 1e4).map(lambda f: f"{f:.3f}"), "{}"),
]


@settings(max_examples=200, deadline=None)
@given(flavour=st.sampled_from([0, 1]), order=st.permutations(range(len(CATALOGUE))),
       count=st.integers(1, len(CATALOGUE)), data=st.data())
def test_custom_spec_round_trip(flavour, order, count, data, con):
    entries = [CATALOGUE[i] for i in order[:count]]
    values = [data.draw(entry[3]) for entry in entries]
    spec = " ".join(entry[flavour] for entry in entries)
    line = " ".join(f'"{_escape(v)}"' if e[4] == "quoted" else e[4].format(v) for e, v in zip(entries, values))
    expected = tuple(_escape(v) if e[4] == "quoted" else v for e, v in zip(entries, values))
    fmt = compile_log_format(spec)
    assert fmt.fields == tuple(entry[2] for entry in entries)
    assert _groups(fmt, line) == expected, (spec, line)
    assert _re2_groups(con, fmt, [line]) == [expected]


# Characters where Python's \s, \S and \d (Unicode) and RE2's (ASCII) disagree, in lines that are
# otherwise well-formed: with explicit ASCII classes both engines read them the same way.
ODD = ["\v", "\x1c", "\x85", "\xa0", "\u2003"]
ODD_TOKEN = st.sampled_from(["1.2.3.4", "-", "::1"] + [f"a{c}b" for c in ODD])
ODD_TEXT = st.sampled_from(["GET / HTTP/1.1", "-", "", "curl/8 (x)"] + [f"a{c}" for c in ODD])
ODD_STATUS = st.sampled_from(["200", "404", "-", "\u0663\u0660\u0660", "\uff12\uff10\uff10", "20\u0663"])
ODD_BYTES = st.sampled_from(["12", "-", "0", "\u0663"])


@settings(max_examples=300, deadline=None)
@given(tokens=st.lists(ODD_TOKEN, min_size=3, max_size=3), texts=st.lists(ODD_TEXT, min_size=4, max_size=4),
       status=ODD_STATUS, size=ODD_BYTES, odd_sep=st.tuples(st.integers(0, 30), st.sampled_from(["\t"] + ODD)),
       end=st.sampled_from(["", " ", "\r", *ODD]), custom=st.booleans())
def test_engines_agree_on_odd_whitespace_and_digits(tokens, texts, status, size, odd_sep, end, custom, con):
    seps = [odd_sep[1] if i == odd_sep[0] else " " for i in range(8)]
    fields = [*tokens, "[10/Oct/2000:13:55:36 -0700]", f'"{texts[0]}"', status, size, f'"{texts[1]}"',
              f'"{texts[2]}" {texts[3]}']
    line = "".join(value + sep for value, sep in zip(fields, seps + [""])) + end
    fmt = compile_log_format('%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %{x}i') if custom else COMBINED
    _assert_engines_agree(con, fmt, [line])
