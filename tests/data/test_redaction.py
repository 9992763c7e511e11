"""data/redaction.py and where ingest applies it: findings 2, 3 and 4 of issue [R], one by one."""

import base64
import json
import string
import time

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waflens.data.errors import ConfigError
from waflens.data.pseudonymize import Pseudonymizer
from waflens.data.redaction import SUSPECT_RE2, Redactor, choose_client, parse_trusted_proxies
from waflens.labeling.evidence import redact as redact_for_prompt
from tests.data.helpers import TEST_KEY, at, combined_line, fresh_db, ingest, write_log

PSEUDONYMS = Pseudonymizer(TEST_KEY)
REDACTOR = PSEUDONYMS.redactor()
NGINX_MAIN = ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" '
              '"$http_user_agent" "$http_x_forwarded_for"')


def _ip(value: str) -> str:
    return "ip:" + PSEUDONYMS.token(value)


def _nginx_main_line(peer: str, forwarded: str, second: int, path: str = "/") -> str:
    return (f'{peer} - - [01/Nov/2026:12:00:{second:02d} +0000] "GET {path} HTTP/1.1" 200 5 "-" '
            f'"Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0" "{forwarded}"')


# --- finding 2: header fields named in --log-format ---

def test_nginx_main_forwarded_for_is_tokenized_hop_by_hop(tmp_path):
    log = write_log(tmp_path / "main.log", [_nginx_main_line("10.0.0.9", "192.0.2.10, 10.0.0.9", 1)])
    con = fresh_db(tmp_path)
    ingest(con, log, log_format=NGINX_MAIN)
    (headers,) = con.execute("SELECT headers FROM requests").fetchone()
    assert json.loads(headers) == {"x-forwarded-for": f"{_ip('192.0.2.10')}, {_ip('10.0.0.9')}"}
    assert "192.0.2.10" not in headers


def test_clients_behind_a_trusted_load_balancer_get_their_own_sessions(tmp_path):
    lines = [_nginx_main_line("10.0.0.9", f"198.51.100.{i % 3 + 1}", i) for i in range(9)]
    lines.append(_nginx_main_line("10.0.0.9", "203.0.113.5, 10.0.0.7", 10))       # two of our proxies
    lines.append(_nginx_main_line("198.51.100.77", "192.0.2.66", 11))              # spoofed: peer is not ours
    log = write_log(tmp_path / "lb.log", lines)
    con = fresh_db(tmp_path)
    ingest(con, log, log_format=NGINX_MAIN)
    assert con.execute("SELECT count(DISTINCT client_ip) FROM requests").fetchone() == (2,)   # default: the peer
    (tmp_path / "trusted").mkdir()
    con2 = fresh_db(tmp_path / "trusted")
    ingest(con2, log, log_format=NGINX_MAIN, trusted_proxies=parse_trusted_proxies(["10.0.0.0/8"]))
    clients = [c for (c,) in con2.execute("SELECT client_ip FROM requests ORDER BY record").fetchall()]
    assert clients[:3] == [PSEUDONYMS.token(f"198.51.100.{i}") for i in (1, 2, 3)]
    assert clients[9] == PSEUDONYMS.token("203.0.113.5")
    assert clients[10] == PSEUDONYMS.token("198.51.100.77")                        # the header was not believed
    assert len(set(clients)) == 5 and len(set(c for (c,) in con2.execute("SELECT client_key FROM requests").fetchall())) == 5


def test_json_lines_and_raw_http_take_the_client_from_forwarded_for(tmp_path):
    lines = [json.dumps({"remote_addr": "10.0.0.9", "http_x_forwarded_for": "192.0.2.66, 203.0.113.5",
                         "time_iso8601": "2026-11-01T12:00:00+00:00", "request": "GET / HTTP/1.1", "status": 200})]
    dump = tmp_path / "dump.txt"
    dump.write_bytes(b"GET / HTTP/1.1\r\nHost: shop\r\nX-Forwarded-For: 192.0.2.66, 203.0.113.5, 10.0.0.7\r\n\r\n")
    con = fresh_db(tmp_path)
    ours = parse_trusted_proxies(["10.0.0.0/8"])
    ingest(con, write_log(tmp_path / "a.json", lines), format="json", trusted_proxies=ours)
    ingest(con, dump, format="raw-http", trusted_proxies=ours)
    assert con.execute("SELECT client_ip FROM requests ORDER BY request_id").fetchall() == \
        [(PSEUDONYMS.token("203.0.113.5"),)] * 2


def test_apache_cookie_and_authorization_fields_are_not_stored(tmp_path):
    spec = '%h %l %u %t "%r" %>s %b "%{Cookie}i" "%{Authorization}i"'
    basic = base64.b64encode(b"user:PASSWORDSECRET").decode()
    line = (f'192.0.2.4 - - [01/Nov/2026:12:00:00 +0000] "GET /account HTTP/1.1" 200 7 '
            f'"JSESSIONID=SESSIONSECRET42; theme=dark" "Basic {basic}"')
    con = fresh_db(tmp_path)
    ingest(con, write_log(tmp_path / "a.log", [line]), log_format=spec)
    (headers,) = con.execute("SELECT headers FROM requests").fetchone()
    assert "SESSIONSECRET42" not in headers and basic not in headers
    assert json.loads(headers) == {"cookie": f"JSESSIONID={PSEUDONYMS.token('SESSIONSECRET42')}; "
                                             f"theme={PSEUDONYMS.token('dark')}",
                                   "authorization": "Basic [redacted]"}


# --- finding 3: secrets in prompts ---

def test_every_secret_of_the_finding_is_masked_for_prompts():
    text = ("GET /api/login?access_token=AT1&client_secret=CS1&refresh_token=RT1&user_password=UP1"
            "&auth=Bearer BEARERSECRET0123")
    redacted = redact_for_prompt(text)
    for secret in ("AT1", "CS1", "RT1", "UP1", "BEARERSECRET0123"):
        assert secret not in redacted
    assert redacted.startswith("GET /api/login?access_token=[redacted]&client_secret=[redacted]")


@pytest.mark.parametrize("text, secret", [
    ('{"user": "ana", "password": "hunter2!", "n": 1}', "hunter2!"),
    ('{\\x22api_key\\x22:\\x22K-123456\\x22}', "K-123456"),
    ("X-Api-Key: K-123456\r\nAccept: */*", "K-123456"),
    ("Authorization: Digest username=\"bob\", response=\"6629fae49393a05397450978507c4ef1\"", "6629fae4939"),
    ("sessionid=abc123; csrftoken=def456", "def456"),
    ("/reset?pwd=p4ss&otp=424242&pin=1234", "424242"),
    ("/login?Password=Hunter2&next=/", "Hunter2"),
    ("curl/8 token=Zz9Zz9 (compatible)", "Zz9Zz9"),
    ("Proxy-Authorization: Basic dXNlcjpQQVNTV09SRFNFQ1JFVA==", "dXNlcjpQQVNTV09SRFNFQ1JFVA"),
    ("/reset/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJlX3NlY3JldA/confirm", "c2lnbmF0dXJlX3NlY3JldA"),
    ("/api?jwt=abc.def.ghi123", "ghi123"),
])
def test_secret_named_values_are_masked(text, secret):
    assert secret not in REDACTOR.redact(text)
    assert secret not in redact_for_prompt(text)


_JSON_KEYS = st.sampled_from(["password", "api_key", "cookie", "Authorization", "ua", "x-forwarded-for", "note", "q"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_JSON_KEYS, st.text(max_size=40) | st.integers() | st.booleans() | st.none(), max_size=6),
       st.sampled_from([True, False]))
def test_masked_json_is_still_json_with_no_secret_left(document, ascii_only):
    text = json.dumps(document, ensure_ascii=ascii_only)
    loaded = json.loads(REDACTOR.redact(text))
    assert set(loaded) == set(document)
    for key in ("password", "api_key"):
        if document.get(key) not in (None, ""):
            assert loaded[key] == "[redacted]"
    if isinstance(document.get("Authorization"), str) and document["Authorization"].strip(" "):
        assert loaded["Authorization"].endswith("[redacted]")


def test_attack_payloads_outside_secret_names_are_kept():
    text = "/search?keyword=1%27%20UNION%20SELECT%20password%20FROM%20users--&author=bob&sort=<script>"
    assert REDACTOR.redact(text) == text


# --- finding 4: quarantine scrubbing, both ways ---

def test_quarantine_keeps_times_and_tokenizes_short_ipv6(tmp_path):
    line = "[17/May/2015:10:05:03 +0200] broken from 2a01::5 via fe80::1 and ::1 (192.0.2.7:8080) at 10:05"
    log = write_log(tmp_path / "q.log", [combined_line("10.0.0.1", at(0), "GET / HTTP/1.1"), line])
    con = fresh_db(tmp_path)
    assert ingest(con, log).quarantined == 1
    (raw,) = con.execute("SELECT raw FROM quarantine").fetchone()
    assert raw == (f"[17/May/2015:10:05:03 +0200] broken from {_ip('2a01::5')} via {_ip('fe80::1')} and {_ip('::1')} "
                   f"({_ip('192.0.2.7')}:8080) at 10:05")


@pytest.mark.parametrize("text", [
    "17/May/2015:10:05:03", "2015:10:05:03", "10:05:03.123", "00:1a:2b:3c:4d:5e", "Foo::Bar std::vector",
    "Chrome/142.0.0.0 Safari/537.36", "Chrome/142.0.7444.59", "v1.2.3.4.5", "0.0.0.0", "3f2a:9c0d",
    "1.3.6.1.4.1.311", "9999.1.1.1", "256.1.1.1", "ip:3f2a9c0d1e2b4a5c",
])
def test_things_that_are_not_addresses_are_kept(text):
    assert REDACTOR.redact(text) == text


@pytest.mark.parametrize("text, address", [
    ("http%3A%2F%2F169.254.169.254%2Flatest", "169.254.169.254"),
    ("u=10%2E1%2E2%2E3", "10.1.2.3"),
    ("\\x22203.0.113.9\\x22", "203.0.113.9"),
    ("[2001:db8::1]:443", "2001:db8::1"),
    ("for=\"[2001:DB8::7]\"", "2001:db8::7"),
    ("at 198.51.100.23.", "198.51.100.23"),
    ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
])
def test_addresses_in_escaped_or_punctuated_text_are_tokenized(text, address):
    out = REDACTOR.redact(text)
    assert address.lower() not in out.lower() and _ip(address) in out


def test_one_address_one_token_whatever_its_spelling():
    assert REDACTOR.redact("2001:DB8:0:0::1") == REDACTOR.redact("2001:db8::1") == _ip("2001:db8::1")
    assert PSEUDONYMS.token("2001:DB8:0::1") == PSEUDONYMS.token("2001:db8::1")


# --- the RE2 prefilter lets through everything Python would change ---

_FRAGMENTS = st.sampled_from([
    "token", "Secret", "passwd", "key", "keyword", "auth", "author", "session", "sid", "pin", "Cookie", "sig",
    "=", ":", "::", ".", "%2E", "%3A", "\\x22", '"', " ", "&", ";", "\r\n", "Bearer ", "basic%20", "1", "10", "255",
    "0", "a", "f", "ff", "db8", "/", "[", "]", "-", "_", "{", "}", "abcdefgh12", "eyJ", "jwt", "eyJhbGciOi.",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(_FRAGMENTS | st.text(alphabet=string.printable, max_size=4), max_size=30).map("".join))
def test_the_duckdb_prefilter_matches_whatever_redaction_changes(text):
    if REDACTOR.redact(text) != text:
        assert duckdb.execute("SELECT regexp_matches($t, $re)", {"t": text, "re": SUSPECT_RE2}).fetchone()[0], text


# --- hostile text stays linear ---

@pytest.mark.parametrize("text", [
    "token" * 20_000, "a=" * 50_000, "1.1.1.1." * 12_500, "f:" * 50_000, "::" * 50_000, "%2E1" * 25_000,
    '"password":"' + "x" * 100_000, "Authorization: " + "Basic " * 15_000, "a" * 100_000 + "1.2.3.4",
    "\\x22" * 25_000, "key" * 30_000 + "=", "eyJ" * 30_000,
])
def test_hostile_text_is_redacted_in_linear_time(text):
    """100 KB of one pattern: a quadratic step would take minutes here, a linear one well under a second."""
    started = time.perf_counter()
    REDACTOR.redact(text)
    assert time.perf_counter() - started < 2.0


# --- trusted proxies ---

def test_choose_client_walks_from_the_right():
    ours = parse_trusted_proxies(["10.0.0.0/8", "2001:db8::/32"])
    assert choose_client("10.0.0.9", "203.0.113.5, 10.0.0.7", ours) == "203.0.113.5"
    assert choose_client("10.0.0.9", "192.0.2.66, 203.0.113.5", ours) == "203.0.113.5"   # the left hop is forged
    assert choose_client("203.0.113.1", "192.0.2.66", ours) == "203.0.113.1"
    assert choose_client("10.0.0.9", "unknown, 10.0.0.8", ours) == "unknown"
    assert choose_client("10.0.0.9", "10.0.0.3, 10.0.0.8", ours) == "10.0.0.3"              # all ours: the first
    assert choose_client("2001:db8::2", 'for="[2001:db9::1]:4711"', ours) == "2001:db9::1"
    assert choose_client("10.0.0.9", "192.0.2.66", ()) == "10.0.0.9"                          # none trusted: the peer
    assert choose_client(None, "192.0.2.66, 198.51.100.1", ()) == "198.51.100.1"              # raw HTTP: no peer


def test_a_bad_trusted_proxy_is_a_configuration_error(tmp_path, monkeypatch, capsys):
    with pytest.raises(ConfigError, match="10.0.0.0/33"):
        parse_trusted_proxies(["10.0.0.0/33"])
    from waflens.app.cli import main

    log = write_log(tmp_path / "a.log", [combined_line("10.0.0.1", at(0), "GET / HTTP/1.1")])
    monkeypatch.setenv("WAFLENS_PSEUDONYM_KEY", "0123456789abcdef0123")
    assert main(["--db", str(tmp_path / "x.duckdb"), "ingest", str(log), "--trusted-proxy", "lb-1"]) == 5
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "'lb-1'" in error and "CIDR" in error
    monkeypatch.setenv("WAFLENS_TRUSTED_PROXIES", "10.0.0.0/8, nonsense")
    assert main(["--db", str(tmp_path / "x.duckdb"), "ingest", str(log)]) == 5
    assert "WAFLENS_TRUSTED_PROXIES" in capsys.readouterr().err
    monkeypatch.setenv("WAFLENS_TRUSTED_PROXIES", "10.0.0.0/8 192.0.2.1")
    assert main(["--db", str(tmp_path / "x.duckdb"), "ingest", str(log)]) == 0
