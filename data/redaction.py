"""One redaction layer for all text read from a log: IPs tokenized, secrets masked.

Every path into the database (line formats, JSON lines, raw HTTP, quarantine) and into
an LLM prompt (labeling/evidence.py) goes through :meth:`Redactor.redact`, so a rule
fixed here is fixed everywhere. What it does to a text:

* **IP addresses** (IPv4 and IPv6, anywhere, also with ``%2E``/``%3A`` escapes) become
  ``ip:<token>``, the same keyed token :mod:`waflens.data.pseudonymize` gives a client IP, so one
  address reads the same in ``client_ip``, in an X-Forwarded-For chain and in a query.
  A candidate counts only when :mod:`ipaddress` accepts the whole word it sits in, so
  ``10:05:03``, ``17/May/2015:10:05`` or a MAC address are left alone. ``N.0.0.0`` is
  never a host address and is what reduced browser versions look like (``Chrome/142.0.0.0``):
  it is kept, and so is ``::`` on its own (``Foo::Bar`` is not an address either).
* **Credentials** are replaced by the fixed marker ``[redacted]``: values of parameters,
  JSON keys and headers whose name says token, secret, password, key, auth, session,
  csrf, otp, pin, cookie, jwt or signature (``access_token=``, ``"client_secret":``,
  ``X-Api-Key:``), ``Bearer``/``Basic``/``Digest`` credentials (the scheme stays) and
  JSON Web Tokens (``eyJ...``) wherever they are.
  A fixed marker, not a keyed hash: a password's hash can be brute-forced by whoever
  holds the key, and grouping by password is not worth that.
* **Cookies** (``Cookie`` / ``Set-Cookie`` headers) keep their names; each value becomes
  its keyed token. Grouping by cookie is useful (it is what ``--session-key cookie``
  sessions are built on), and the token equals ``requests.session_cookie``.

Masking only touches secret-named values and addresses, so an attack payload in any
other parameter reaches the features intact. Secret-named values are masked even when
they hold an attack (a login form's password is the usual place for one): the payload
is lost to detection there, which is the price of never storing a password.

Hostile text must not make this slow: every regex is linear (bounded repeats, runs
anchored by lookbehind). Ingest calls it only for values the RE2 pattern
:data:`SUSPECT_RE2` matches in DuckDB; that pattern matches whatever this module
would change (tested), so values without it skip Python entirely.
"""

from __future__ import annotations

import ipaddress
import os
import re
from functools import lru_cache
from typing import Callable, Iterable

from waflens.data.errors import ConfigError
from waflens.runtime.feature_spec import (CREDENTIAL_SCHEMES, JWT_PREFIX, KEY_EXCEPTIONS, KEY_WORD, MARKER, MAX_NAME,
                                          MIN_CREDENTIAL, MIN_JWT_PART, SECRET_SUBSTRINGS, SECRET_WORDS)

IP_MARKER = "ip:[redacted]"
TRUSTED_PROXIES_ENV = "WAFLENS_TRUSTED_PROXIES"

# Words that make a parameter, JSON key or header name secret: one home, the runtime's, which masks live
# requests the same way (waflens.runtime.redaction). Python checks names with the precise form; SUSPECT_RE2
# uses the bare words (a superset).
_WORDS = tuple(w for w in SECRET_SUBSTRINGS if not w.startswith("authori")) + (KEY_WORD,) + SECRET_WORDS
_KEY_RESTS = "|".join(e[len(KEY_WORD):] for e in KEY_EXCEPTIONS)
_SECRET_NAME = re.compile(
    "(?i)" + "|".join(SECRET_SUBSTRINGS) + f"|{KEY_WORD}(?!(?:{_KEY_RESTS})(?![a-z]))"
    + f"|(?<![a-z])(?:{'|'.join(SECRET_WORDS)})(?![a-z])")
_AUTH_HEADERS = ("authorization", "proxy-authorization")
_COOKIE_HEADERS = ("cookie", "set-cookie")
_SCHEMES = "|".join(CREDENTIAL_SCHEMES)
_KNOWN_SCHEMES = {"basic", "bearer", "digest", "negotiate", "ntlm", "token", "hoba", "mutual", "vapid",
                  "aws4-hmac-sha256", "scram-sha-1", "scram-sha-256", "dpop", "gnap", "privatetoken"}

# One search finds the next place a secret may start; the handler decides and consumes.
_NAME_CHARS = r"A-Za-z0-9_.\-\[\]%"
_SECRET_START = re.compile(
    r"(?P<header>(?m:^)(?P<hname>[A-Za-z0-9-]{1,64})[ \t]*:[ \t]*)"
    r"|(?P<json>(?P<q>\\x22|\\\"|\")(?P<jname>[A-Za-z0-9_.\-\[\]@$ ]{1,64})(?P=q)[ \t]*:[ \t]*)"
    rf"|(?P<cred>(?i:\b(?:{_SCHEMES}))(?:[ \t]|%20|\+){{1,8}})"
    rf"|(?P<pair>(?<![{_NAME_CHARS}])(?P<pname>[{_NAME_CHARS}]{{1,{MAX_NAME}}})=)"
    rf"|(?P<jwt>\b{JWT_PREFIX}[A-Za-z0-9_-]{{{MIN_JWT_PART},}}\.[A-Za-z0-9_-]{{{MIN_JWT_PART},}}\.[A-Za-z0-9_-]*)")
# Every secret needs one of these words (in its name, or as its scheme): text without any is skipped.
_ANY_SECRET_WORD = _WORDS + CREDENTIAL_SCHEMES + (JWT_PREFIX.lower(),)
_LINE_REST = re.compile(r"[^\r\n]*")
_JSON_STRING = {
    '"': re.compile(r'(?:[^"\\]|\\.)*"'),
    '\\"': re.compile(r'.*?\\"'),
    "\\x22": re.compile(r".*?\\x22"),
}
_JSON_SCALAR = re.compile(r'[^,}\]\s"\\]*')
_CREDENTIAL = re.compile(rf"[A-Za-z0-9._~+/=%-]{{{MIN_CREDENTIAL},}}")
# up to & ; space or a quote; \xHH and \\ escapes are part of the value, a backslash before a quote is not
_PAIR_VALUE = re.compile(rf"(?i:(?:{_SCHEMES})(?:[ \t]|%20|\+){{1,8}})?(?:[^&;\s\"\\]|\\x[0-9A-Fa-f]{{2}}|\\\\)*")
_COOKIE_PAIR = re.compile(r"([^=;,\s]+)=([^;]*)")

# IPs: a run of address-ish characters holding something shaped like an address. The
# lookbehind anchors runs at their start and the cores are bounded: linear on any input.
_DOT = r"(?:\.|%2[eE])"
_COLON = r"(?::|%3[aA])"
_RUN_CHARS = r"0-9A-Za-z.:%\\"
_IP_RUN = re.compile(
    rf"(?<![{_RUN_CHARS}])[{_RUN_CHARS}]*?"
    rf"(?:[0-9]{{1,3}}{_DOT}[0-9]{{1,3}}{_DOT}[0-9]{{1,3}}{_DOT}[0-9]{{1,3}}|{_COLON}{_COLON}"
    rf"|(?:[0-9A-Fa-f]{{1,4}}{_COLON}){{6}})[{_RUN_CHARS}]*")
# Escapes that separate words inside a run: %XX (except encoded '.' and ':'), \xHH, backslash.
_RUN_SEPARATOR = re.compile(r"(%(?!2[eE]|3[aA])[0-9A-Fa-f]{2}|\\x[0-9A-Fa-f]{2}|\\)")
_TRAILING_DOTS = re.compile(rf"(.*?)((?:{_DOT}|{_COLON})+)")
_WITH_PORT = re.compile(rf"(.*?)({_COLON}[0-9]{{1,5}}(?:{_DOT})*)")

# The same in RE2 (DuckDB): true for every text redact() may change.
_RE2_OCTET_NOT_ZERO = "(?:[1-9][0-9]{0,2}|0[0-9]{1,2})"
_RE2_IPV4 = (rf"[0-9]{{1,3}}{_DOT}(?:{_RE2_OCTET_NOT_ZERO}{_DOT}[0-9]{{1,3}}{_DOT}[0-9]{{1,3}}"
             rf"|[0-9]{{1,3}}{_DOT}{_RE2_OCTET_NOT_ZERO}{_DOT}[0-9]{{1,3}}"
             rf"|[0-9]{{1,3}}{_DOT}[0-9]{{1,3}}{_DOT}{_RE2_OCTET_NOT_ZERO})")
SUSPECT_RE2 = (
    f"{_RE2_IPV4}|{_COLON}{_COLON}|(?:[0-9A-Fa-f]{{1,4}}{_COLON}){{6}}"
    rf"|(?i:(?:{'|'.join(_WORDS)})[{_NAME_CHARS}@$ \t]{{0,64}}(?:=|:|\\x22|\\\"|\"))"
    rf"|(?i:(?:{_SCHEMES})(?:[ \t]|%20|\+))"
    rf"|{JWT_PREFIX}[A-Za-z0-9_-]{{{MIN_JWT_PART},}}\."
)


class Redactor:
    """Redacts text; ``token`` maps an IP or cookie value to its pseudonym (None: keep values).

    ``ip_marker`` replaces every address by a fixed marker instead (prompts: no key there).
    """

    def __init__(self, token: Callable[[str], str | None] | None = None, *, ip_marker: str | None = None):
        self._token = token
        self._ip_marker = ip_marker
        self._runs: dict[str, str] = {}

    def redact(self, text: str | None) -> str | None:
        if not text:
            return text
        return _IP_RUN.sub(self._run, self.mask_secrets(text))

    def mask_secrets(self, text: str) -> str:
        lowered = text.lower()
        if not any(word in lowered for word in _ANY_SECRET_WORD):
            return text
        out: list[str] = []
        pos = 0
        while (match := _SECRET_START.search(text, pos)) is not None:
            out.append(text[pos:match.start()])
            pos = self._mask_at(text, match, out)
        out.append(text[pos:])
        return "".join(out)

    def _mask_at(self, text: str, match: re.Match, out: list[str]) -> int:
        """Append the (masked) match and what it governs to ``out``; return where to go on."""
        out.append(match.group(0))
        end = match.end()
        if match["header"] is not None:
            name = match["hname"].lower()
            if is_secret_name(name):
                value = _LINE_REST.match(text, end)
                out.append(self._secret_value(name, value.group(0)))
                return value.end()
        elif match["json"] is not None:
            name = match["jname"].lower()
            if is_secret_name(name):
                quote = next((q for q in _JSON_STRING if text.startswith(q, end)), None)
                if quote is None:   # a number, true, null...: a JSON string marker keeps the JSON valid
                    scalar = _JSON_SCALAR.match(text, end)
                    marker = f'"{MARKER}"' if match["q"] == '"' else MARKER
                    out.append(marker if scalar.group(0) else "")
                    return scalar.end()
                closed = _JSON_STRING[quote].match(text, end + len(quote))
                stop = closed.end() if closed else len(text)
                inner = text[end + len(quote):stop - len(quote) if closed else stop]
                out.append(quote + self._secret_value(name, inner) + (quote if closed else ""))
                return stop
        elif match["jwt"] is not None:    # a JSON Web Token, wherever it is: its shape names it
            out[-1] = MARKER
            return end
        elif match["cred"] is not None:
            credential = _CREDENTIAL.match(text, end)
            if credential is not None:
                out.append(MARKER)
                return credential.end()
        elif _SECRET_NAME.search(match["pname"]):
            value = _PAIR_VALUE.match(text, end)
            out.append(MARKER if value.group(0) else "")
            return value.end()
        return end

    def _secret_value(self, name: str, value: str) -> str:
        if name in _COOKIE_HEADERS:
            return _COOKIE_PAIR.sub(lambda m: f"{m[1]}={self._cookie_token(m[2])}", value)
        if name in _AUTH_HEADERS:   # the scheme stays when it is a known one (anything else may be the secret)
            scheme = value.strip(" ").split(" ", 1)[0]
            return f"{scheme} {MARKER}" if scheme.lower() in _KNOWN_SCHEMES else MARKER
        return MARKER if value else value

    def _cookie_token(self, value: str) -> str:
        if self._token is None or not value:
            return value
        return self._token(value) or ""

    def _run(self, match: re.Match) -> str:
        run = match.group(0)
        done = self._runs.get(run)
        if done is None:
            pieces = _RUN_SEPARATOR.split(run)
            done = "".join(p if i % 2 else self._piece(p) for i, p in enumerate(pieces))
            if len(self._runs) > 200_000:
                self._runs.clear()
            self._runs[run] = done
        return done

    def _piece(self, piece: str) -> str:
        """A word between separators: the address in it tokenized (port, trailing dots kept)."""
        address = parse_ip(piece)
        if address is not None:
            return self._ip_text(address, piece)
        for pattern in (_TRAILING_DOTS, _WITH_PORT):
            split = pattern.fullmatch(piece)
            if split is not None:
                address = parse_ip(split[1])
                if address is not None and (pattern is _TRAILING_DOTS or address.version == 4):
                    return self._ip_text(address, split[1]) + split[2]
        return piece

    def _ip_text(self, address, original: str) -> str:
        if self._ip_marker is not None:
            return self._ip_marker
        if self._token is None:
            return original
        return "ip:" + self._token(str(address))


def is_secret_name(name: str) -> bool:
    """True for a parameter, JSON key or header name whose value is masked (or, cookies, tokenized)."""
    lowered = name.lower()
    return lowered in _COOKIE_HEADERS or lowered in _AUTH_HEADERS or _SECRET_NAME.search(lowered) is not None


def parse_ip(text: str):
    """The address a word spells (``%2E``/``%3A`` allowed), or None; see the module docstring."""
    if not 2 <= len(text) <= 60:
        return None
    plain = text.replace("%2E", ".").replace("%2e", ".").replace("%3A", ":").replace("%3a", ":")
    try:
        address = ipaddress.ip_address(plain)
    except ValueError:
        return None
    if address.version == 4:
        return None if plain.endswith(".0.0.0") else address
    return address if plain != "::" and any(c.isdigit() for c in plain) else None


def canonical_ip(text: str | None) -> str | None:
    """An IP written in any valid form, as one spelling (so it gets one token); else the text."""
    if text is None:
        return None
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return text


# --- X-Forwarded-For: which hop is the client ---

def parse_trusted_proxies(values: Iterable[str]) -> tuple:
    """CIDRs (or single addresses) of our own proxies; ConfigError names a bad one."""
    networks = []
    for value in values:
        for part in value.replace(",", " ").split():
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ConfigError(f"trusted proxy {part!r} is not an IP address or CIDR: write e.g. 10.0.0.0/8 "
                                  f"or 2001:db8::/32 (--trusted-proxy or {TRUSTED_PROXIES_ENV})") from None
    return tuple(networks)


def trusted_proxies_from_env() -> tuple:
    return parse_trusted_proxies([os.environ.get(TRUSTED_PROXIES_ENV, "")])


def forwarded_hops(header: str | None) -> list[str]:
    """The hops of an X-Forwarded-For value (or ``Forwarded: for=``), left to right."""
    if not header or header == "-":
        return []
    hops = []
    for part in header.split(","):
        hop = part.strip()
        if hop.lower().startswith("for=") or ";" in hop:   # RFC 7239 Forwarded
            hop = next((p.strip()[4:] for p in hop.split(";") if p.strip().lower().startswith("for=")), "")
        hop = hop.strip('"')
        if hop.startswith("[") and "]" in hop:                 # [v6]:port
            hop = hop[1:hop.index("]")]
        elif hop.count(":") == 1:                              # v4:port
            hop = hop.split(":", 1)[0]
        if hop:
            hops.append(hop)
    return hops


def choose_client(peer: str | None, forwarded_for: str | None, trusted: tuple) -> str | None:
    """The client of a request: walk peer and X-Forwarded-For from the right, skipping our proxies.

    The first hop that is not a trusted proxy is the client (a hop that is not an IP stops
    the walk: nothing to its left can be believed). With no trusted proxies the peer is the
    client, so nobody can choose their own client IP by sending the header.
    """
    chain = forwarded_hops(forwarded_for) + ([peer] if peer else [])
    if not chain:
        return peer
    if not trusted:
        return chain[-1]
    for hop in reversed(chain):
        if not _is_trusted(hop, trusted):
            return hop
    return chain[0]


@lru_cache(maxsize=65536)
def _is_trusted(hop: str, trusted: tuple) -> bool:
    """Proxies repeat on every request, so their verdicts are cached."""
    try:
        address = ipaddress.ip_address(hop)
    except ValueError:
        return False
    return any(address in network for network in trusted if network.version == address.version)
