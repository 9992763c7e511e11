"""Splitting and parsing a dump of raw HTTP requests (CSIC 2010 style, proxy captures).

Requests are split on the request-line pattern at the start of a line, not on blank
lines: a GET ends with an extra blank line, a POST body sits between blank lines, and a
truncated dump has none at all. Every item keeps its exact slice of the input as
``raw``, so the items' ``raw`` concatenated give back the input (minus leading blank
lines) and nothing is silently dropped.

The input must be decoded as Latin-1: every byte is one character, so Content-Length
counts characters, and no byte sequence can fail to decode. Line breaks are ``\\n``
with an optional ``\\r`` before it; ``str.splitlines`` is never used, because it also
breaks on Latin-1 ``\\x85``, ``\\x1c``-``\\x1e``, ``\\x0b`` and ``\\x0c``.
"""

from __future__ import annotations

import re
from typing import Iterator, NamedTuple

_REQUEST_LINE = r"([A-Z0-9_-]{1,20}) ([^ \t\r\n]+) (HTTP/[0-9]+(?:\.[0-9]+)?)"
# Anchored at a line start and a line end; each part is a simple character run, so a
# 10 MB line costs one linear scan, never backtracking explosion.
_REQUEST_START = re.compile(r"^" + _REQUEST_LINE + r"\r?$", re.MULTILINE)
_REQUEST_LINE_ONLY = re.compile(_REQUEST_LINE)
_ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)(.*)", re.DOTALL)
_BAD_NAME_CHAR = re.compile(r"[\x00-\x20\x7f-\x9f]")  # whitespace, C0 and C1 controls
_DIGITS = re.compile(r"[0-9]{1,18}")  # ASCII only: str.isdigit() accepts Latin-1 '²'
_BLANK = " \t\r\n"
_BLANK_LINE = re.compile(r"\n[ \t\r]*(?:\n|\Z)")  # ends the header block


class RawHttpRequest(NamedTuple):
    record: int  # 1-based index of the item in the file
    raw: str  # exact slice of the input, trailing separators included
    method: str
    target: str  # origin-form: path + optional '?query'
    authority: str  # from an absolute-URI request line, else the Host header, else ''
    protocol: str
    headers: tuple[tuple[str, str], ...]
    body: str


class RawHttpReject(NamedTuple):
    record: int
    raw: str
    reason: str  # one line, never quotes the content


class _MalformedHeader(Exception):
    """Internal: the header block cannot be parsed; the message is the reject reason."""


def iter_raw_http(text: str) -> Iterator[RawHttpRequest | RawHttpReject]:
    """Yield one parsed request or reject per request line, in file order.

    Non-blank text before the first request line becomes one reject, so
    parsed + rejected always equals the number of records.
    """
    record = 0
    previous: re.Match[str] | None = None
    for match in _REQUEST_START.finditer(text):
        if previous is None:
            if text[: match.start()].strip(_BLANK):
                record += 1
                yield RawHttpReject(record, text[: match.start()], "text before the first request line")
        else:
            record += 1
            yield _parse_request(record, text, previous, match.start())
        previous = match
    if previous is not None:
        yield _parse_request(record + 1, text, previous, len(text))
    elif text.strip(_BLANK):
        yield RawHttpReject(1, text, "no HTTP request line found")


def looks_like_raw_http(sample: str) -> bool:
    """True when the first non-blank line is a request line and a header line follows it."""
    lines = (line.removesuffix("\r") for line in sample.split("\n"))
    for line in lines:
        if line.strip(_BLANK):
            break
    else:
        return False
    if not _REQUEST_LINE_ONLY.fullmatch(line):
        return False
    header = next(lines, "")
    name, colon, _ = header.partition(":")
    return bool(colon and name and not _BAD_NAME_CHAR.search(name))


def _parse_request(record: int, text: str, match: re.Match[str], end: int) -> RawHttpRequest | RawHttpReject:
    raw = text[match.start() : end]
    method, target, protocol = match.groups()
    head_start = match.end() - match.start() + 1  # just past the request line's '\n'
    try:
        headers, body_start = _parse_headers(raw, head_start)
    except _MalformedHeader as exc:
        return RawHttpReject(record, raw, str(exc))
    absolute = _ABSOLUTE_URI.match(target)
    if absolute:
        authority = absolute.group(1).rpartition("@")[2]  # drop userinfo; raw keeps it
        target = absolute.group(2)
        if not target.startswith("/"):
            target = "/" + target
    else:
        authority = next((value for name, value in headers if name.lower() == "host"), "")
    return RawHttpRequest(record, raw, method, target, authority, protocol, headers,
                          _body(raw[body_start:], headers))


def _parse_headers(raw: str, start: int) -> tuple[tuple[tuple[str, str], ...], int]:
    """Header fields from ``start`` up to the first blank line, and where the body starts."""
    blank = _BLANK_LINE.search(raw, start - 1)  # start - 1 is the request line's '\n'
    block = raw[start : blank.start()] if blank else raw[start:]
    names: list[str] = []
    values: list[list[str]] = []  # parts of folded values, joined once at the end
    for line in block.split("\n") if block else ():
        line = line.removesuffix("\r")
        if line[0] in " \t":
            if not names:
                raise _MalformedHeader("continuation line before the first header")
            values[-1].append(line.strip(" \t"))
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise _MalformedHeader("header line without ':'")
        if not name:
            raise _MalformedHeader("header line with an empty name")
        if _BAD_NAME_CHAR.search(name):
            raise _MalformedHeader("header name contains whitespace or control characters")
        names.append(name)
        values.append([value.strip(" \t")])
    headers = tuple((name, " ".join(part for part in parts if part)) for name, parts in zip(names, values))
    return headers, blank.end() if blank else len(raw)


def _body(rest: str, headers: tuple[tuple[str, str], ...]) -> str:
    """The body, cut to a valid Content-Length; a short (truncated) body is kept as is.

    Conflicting or non-numeric Content-Length headers are ignored (the raw keeps them).
    """
    declared = {value for name, value in headers if name.lower() == "content-length"}
    if len(declared) == 1:
        (value,) = declared
        if _DIGITS.fullmatch(value) and int(value) <= len(rest):
            return rest[: int(value)]
    return rest.rstrip("\r\n")
