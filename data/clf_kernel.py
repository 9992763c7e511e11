"""numba kernels: the fast path for Apache/nginx common and combined lines.

One pass over the file's bytes finds each field's byte range, the status, the size
and the timestamp (as UTC microseconds). A line the kernel is not sure about —
any byte outside printable ASCII, an odd shape, a timestamp it cannot read — is
left to the general RE2 parser (``waflens.data.parse_lines``), which is slower but handles
everything and quarantines what it cannot parse. The two are tested to agree.

Layout of a line: ``[vhost ]host ident user [time] "request" status bytes
["referer" "user-agent"][ trailing]``, optionally wrapped in one pair of double
quotes (the scanner logs in ../shared/datasets).
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
import pyarrow as pa

from waflens.runtime.kernels.threads import in_threads, threads

# field indexes in the (n, N_FIELDS, 2) span array
VHOST, HOST, IDENT, USER, REQUEST, REFERER, AGENT, TRAILING, METHOD, TARGET, PROTOCOL = range(11)
N_FIELDS = 11
SPAN_NAMES = ("vhost", "client_ip", "ident", "remote_user", "request_line", "referer", "user_agent",
              "trailing", "method", "target", "protocol")

_MONTHS = np.array([ord(c) for c in "JanFebMarAprMayJunJulAugSepOctNovDec"], dtype=np.uint8)


class ClfBatch(NamedTuple):
    ok: np.ndarray          # bool per line: parsed by the fast path
    spans: np.ndarray       # int64 (n, N_FIELDS, 2): [start, end) byte offsets into the buffer
    status: np.ndarray      # int16, -1 when '-'
    size: np.ndarray        # int64, -1 when '-'
    ts_us: np.ndarray       # int64 microseconds since the epoch, UTC
    escaped: np.ndarray     # bool per line: a quoted field holds a backslash escape


# The parser reads a read-only view of the file's bytes (np.frombuffer); a writable array converts to it.
_BUFFER = numba.types.Array(numba.types.uint8, 1, "C", readonly=True)


# one explicit signature: called with literal counts (2, 3, 4) it was compiled once per literal
@numba.njit(numba.int64(_BUFFER, numba.int64, numba.int64), cache=True, nogil=True)
def _digits(buf, start, count):
    value = 0
    for i in range(start, start + count):
        c = buf[i]
        if c < 48 or c > 57:
            return -1
        value = value * 10 + (c - 48)
    return value


@numba.njit(cache=True, nogil=True)
def _days_from_civil(year, month, day):
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y = year - 1 if month <= 2 else year
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month - 3 if month > 2 else month + 9) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


@numba.njit(cache=True, nogil=True)
def _clf_time(buf, start, end):
    """'10/Oct/2000:13:55:36 -0700' -> UTC microseconds, or -1 << 62 when not that shape."""
    bad = -(1 << 62)
    if end - start != 26 or buf[start + 2] != 47 or buf[start + 6] != 47 or buf[start + 11] != 58 \
            or buf[start + 14] != 58 or buf[start + 17] != 58 or buf[start + 20] != 32:
        return bad
    day = _digits(buf, start, 2)
    year = _digits(buf, start + 7, 4)
    hour = _digits(buf, start + 12, 2)
    minute = _digits(buf, start + 15, 2)
    second = _digits(buf, start + 18, 2)
    offset = _digits(buf, start + 22, 4)
    sign = buf[start + 21]
    if day < 1 or day > 31 or year < 0 or hour < 0 or hour > 23 or minute < 0 or minute > 59 \
            or second < 0 or second > 59 or offset < 0 or offset % 100 > 59 or offset > 2359 \
            or (sign != 43 and sign != 45):
        return bad
    month = 0
    for m in range(12):
        if buf[start + 3] == _MONTHS[3 * m] and buf[start + 4] == _MONTHS[3 * m + 1] \
                and buf[start + 5] == _MONTHS[3 * m + 2]:
            month = m + 1
            break
    if month == 0:
        return bad
    if day > 28:  # reject dates that do not exist, as strptime does
        lengths = (31, 29 if ((year % 4 == 0 and year % 100 != 0) or year % 400 == 0) else 28,
                   31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
        if day > lengths[month - 1]:
            return bad
    offset_seconds = (offset // 100) * 3600 + (offset % 100) * 60
    if sign == 43:
        offset_seconds = -offset_seconds
    seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second + offset_seconds
    return seconds * 1_000_000


@numba.njit(cache=True, nogil=True)
def _quoted(buf, i, end):
    """Parse '"...."' starting at i; returns (value_end, next_index, escaped) or (-1, -1, False)."""
    if i >= end or buf[i] != 34:
        return -1, -1, False
    j = i + 1
    escaped = False
    while j < end:
        c = buf[j]
        if c == 92:  # backslash: the next byte is literal
            escaped = True
            j += 2
            continue
        if c == 34:
            return j, j + 1, escaped
        j += 1
    return -1, -1, False


@numba.njit(cache=True, nogil=True)
def _is_protocol(buf, start, end):
    """'HTTP/' followed by at least one digit or dot, as the RE2 path's HTTP/[0-9.]+."""
    if end - start < 6 or buf[start] != 72 or buf[start + 1] != 84 or buf[start + 2] != 84 \
            or buf[start + 3] != 80 or buf[start + 4] != 47:
        return False
    for i in range(start + 5, end):
        if not (48 <= buf[i] <= 57 or buf[i] == 46):
            return False
    return True


_MIN_LINES_PER_BLOCK = 4096


def parse_clf(buf, starts, ends):
    """Parse every line; blocks of lines run on all cores.

    Threads, not numba's ``parallel=True``: a parallel kernel cost ~6 CPU-s more to compile on a cold
    cache (a third of a first ingest), while lines are independent, so plain threads over a ``nogil``
    kernel parse as fast. Several blocks a thread keep every core busy on a loaded machine."""
    n = starts.size
    ok = np.zeros(n, dtype=np.bool_)
    spans = np.zeros((n, N_FIELDS, 2), dtype=np.int64)
    status = np.full(n, -1, dtype=np.int16)
    size = np.full(n, -1, dtype=np.int64)
    ts_us = np.zeros(n, dtype=np.int64)
    escaped = np.zeros(n, dtype=np.bool_)
    starts = np.ascontiguousarray(starts, dtype=np.int64)  # one type set: one compiled kernel
    ends = np.ascontiguousarray(ends, dtype=np.int64)
    blocks = max(1, min(8 * threads(), n // _MIN_LINES_PER_BLOCK))
    per_block = (n + blocks - 1) // blocks

    def parse(block):
        _parse_block(buf, starts, ends, block * per_block, min(n, (block + 1) * per_block),
                     ok, spans, status, size, ts_us, escaped)

    in_threads(parse, blocks)
    return ok, spans, status, size, ts_us, escaped


@numba.njit(cache=True, nogil=True)
def _parse_block(buf, starts, ends, first, last, ok, spans, status, size, ts_us, escaped):
    tokens = np.zeros((5, 2), dtype=np.int64)
    for k in range(first, last):
        s = starts[k]
        e = ends[k]
        while e > s and (buf[e - 1] == 10 or buf[e - 1] == 13):
            e -= 1
        plain = True
        for i in range(s, e):
            if buf[i] < 32 or buf[i] > 126:
                plain = False
                break
        if not plain or e - s < 10:
            continue
        if buf[s] == 34 and buf[e - 1] == 34:  # wrapped in one pair of quotes
            s += 1
            e -= 1
        # space-separated tokens up to the '[' of the time
        count = 0
        i = s
        while i < e and buf[i] != 91 and count < 5:
            j = i
            while j < e and buf[j] != 32:
                j += 1
            if j >= e or j == i:
                break
            tokens[count, 0] = i
            tokens[count, 1] = j
            count += 1
            i = j + 1
        if i >= e or buf[i] != 91 or count < 3 or count > 4:
            continue
        first = count - 3
        if first == 1:
            spans[k, VHOST, 0] = tokens[0, 0]
            spans[k, VHOST, 1] = tokens[0, 1]
        for f in range(3):
            spans[k, HOST + f, 0] = tokens[first + f, 0]
            spans[k, HOST + f, 1] = tokens[first + f, 1]
        close = i + 1
        while close < e and buf[close] != 93:
            close += 1
        if close >= e:
            continue
        t = _clf_time(buf, i + 1, close)
        if t == -(1 << 62):
            continue
        ts_us[k] = t
        i = close + 1
        if i + 1 >= e or buf[i] != 32:
            continue
        value_end, after, esc = _quoted(buf, i + 1, e)
        if value_end < 0:
            continue
        spans[k, REQUEST, 0] = i + 2
        spans[k, REQUEST, 1] = value_end
        i = after
        line_escaped = esc
        # status
        if i >= e or buf[i] != 32:
            continue
        i += 1
        j = i
        while j < e and buf[j] != 32:
            j += 1
        if j - i == 3:
            code = _digits(buf, i, 3)
            if code < 0:
                continue
            status[k] = code
        elif not (j - i == 1 and buf[i] == 45):
            continue
        # size
        i = j + 1
        if i >= e:
            continue
        j = i
        while j < e and buf[j] != 32:
            j += 1
        if j - i == 1 and buf[i] == 45:
            pass
        elif 0 < j - i <= 18:
            value = _digits(buf, i, j - i)
            if value < 0:
                continue
            size[k] = value
        else:
            continue
        i = j
        # optional "referer" "user-agent"
        if i + 1 < e and buf[i] == 32 and buf[i + 1] == 34:
            ref_end, after, esc = _quoted(buf, i + 1, e)
            if ref_end < 0 or after >= e or buf[after] != 32:
                continue
            spans[k, REFERER, 0] = i + 2
            spans[k, REFERER, 1] = ref_end
            line_escaped = line_escaped or esc
            agent_end, after2, esc = _quoted(buf, after + 1, e)
            if agent_end < 0:
                continue
            spans[k, AGENT, 0] = after + 2
            spans[k, AGENT, 1] = agent_end
            line_escaped = line_escaped or esc
            i = after2
            # trailing fields after the user agent
            while i < e and buf[i] == 32:
                i += 1
            spans[k, TRAILING, 0] = i
            spans[k, TRAILING, 1] = e
        else:
            # common format: nothing but spaces may follow the size
            while i < e and buf[i] == 32:
                i += 1
            if i != e:
                continue
        # request line: METHOD SP target [SP HTTP/x]
        rs = spans[k, REQUEST, 0]
        re_ = spans[k, REQUEST, 1]
        m = rs
        while m < re_ and buf[m] != 32:
            m += 1
        if m < re_ and m > rs:
            spans[k, METHOD, 0] = rs
            spans[k, METHOD, 1] = m
            target_start = m + 1
            while target_start < re_ and buf[target_start] == 32:
                target_start += 1
            target_end = re_
            last = re_ - 1
            while last > target_start and buf[last] != 32:
                last -= 1
            if last > target_start and _is_protocol(buf, last + 1, re_):
                spans[k, PROTOCOL, 0] = last + 1
                spans[k, PROTOCOL, 1] = re_
                target_end = last
                while target_end > target_start and buf[target_end - 1] == 32:
                    target_end -= 1
            spans[k, TARGET, 0] = target_start
            spans[k, TARGET, 1] = target_end
        escaped[k] = line_escaped
        ok[k] = True


@numba.njit(cache=True, nogil=True)
def line_spans(buf):
    """Start and end (exclusive, newline included) of every line; see waflens.data.log_file.line_spans."""
    n = 0
    for i in range(buf.size):
        if buf[i] == 10:
            n += 1
    if buf.size and buf[buf.size - 1] != 10:
        n += 1
    starts = np.empty(n, dtype=np.int64)
    ends = np.empty(n, dtype=np.int64)
    k = 0
    start = 0
    for i in range(buf.size):
        if buf[i] == 10:
            starts[k] = start
            ends[k] = i + 1
            start = i + 1
            k += 1
    if k < n:
        starts[k] = start
        ends[k] = buf.size
    return starts, ends


@numba.njit(cache=True, nogil=True)
def _field_sizes(spans, rows, fields):
    """Total bytes of each chosen field over the rows."""
    sizes = np.zeros(fields.size, dtype=np.int64)
    for f in range(fields.size):
        field = fields[f]
        total = 0
        for r in rows:
            total += spans[r, field, 1] - spans[r, field, 0]
        sizes[f] = total
    return sizes


@numba.njit(cache=True, nogil=True)
def _copy_field(buf, spans, rows, field, data, pos, offsets):
    """One field of the rows, back to back into data[pos:], with its Arrow offsets (from 0)."""
    start = pos
    offsets[0] = 0
    for idx in range(rows.size):
        r = rows[idx]
        a = spans[r, field, 0]
        b = spans[r, field, 1]
        for i in range(a, b):  # a loop, not a slice assignment: that compiles its shape-mismatch error too
            data[pos] = buf[i]
            pos += 1
        offsets[idx + 1] = pos - start


def _gather_fields(buf, spans, rows, fields):
    """All chosen fields at once: one data buffer, per-field offsets, fields copied in threads."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    sizes = _field_sizes(spans, rows, fields)
    starts = np.zeros(fields.size + 1, dtype=np.int64)
    np.cumsum(sizes, out=starts[1:])
    data = np.empty(int(starts[-1]), dtype=np.uint8)
    offsets = np.empty((fields.size, rows.size + 1), dtype=np.int64)

    def copy(f):
        _copy_field(buf, spans, rows, int(fields[f]), data, int(starts[f]), offsets[f])

    in_threads(copy, fields.size)
    return data, starts, offsets


def string_columns(buf: np.ndarray, spans: np.ndarray, rows: np.ndarray, names: tuple[str, ...]) -> dict[str, pa.Array]:
    """Several fields of the given rows as Arrow string arrays sharing one buffer (ASCII, so valid UTF-8)."""
    fields = np.array([SPAN_NAMES.index(name) for name in names], dtype=np.int64)
    data, starts, offsets = _gather_fields(buf, spans, rows, fields)
    shared = pa.py_buffer(data)
    columns = {}
    for f, name in enumerate(names):
        piece = shared.slice(int(starts[f]), int(starts[f + 1] - starts[f]))
        columns[name] = pa.LargeStringArray.from_buffers(rows.size, pa.py_buffer(offsets[f]), piece)
    return columns
