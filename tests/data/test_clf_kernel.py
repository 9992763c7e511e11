"""The numba fast path against the general RE2 parser: same rows on every real line."""

import gzip
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data.clf_kernel import _days_from_civil, parse_clf
from data.db import connect
from data.log_file import line_batches, line_spans
from data.log_formats import COMBINED
from data.parse_lines import STAGE_DDL, stage_clf_batch, stage_line_batch

COLUMNS = "record, reason, client_ip, remote_user, vhost, ts, method, target, protocol, status, bytes, referer, user_agent"


@pytest.fixture(scope="module")
def con():
    """One in-memory database for every example: opening one (schema, functions) cost more than parsing."""
    con = connect(":memory:")
    yield con
    con.close()


def _stage_both(con, content: bytes):
    con.execute(STAGE_DDL)
    starts, ends = line_spans(content)
    stage_clf_batch(con, content, starts, ends, 1, COMBINED)
    fast = con.execute(f"SELECT {COLUMNS} FROM stage ORDER BY record").fetchall()
    con.execute(STAGE_DDL)
    for batch in line_batches(content):
        stage_line_batch(con, batch, COMBINED, unwrap_quotes=True)
    slow = con.execute(f"SELECT {COLUMNS} FROM stage ORDER BY record").fetchall()
    ok = parse_clf(np.frombuffer(content, np.uint8), starts, ends)[0]
    return fast, slow, ok


def test_kernel_agrees_with_re2_on_every_shared_log(con, access_logs):
    for path in access_logs:
        content = gzip.decompress(path.read_bytes())
        fast, slow, ok = _stage_both(con, content)
        assert ok.mean() > 0.9, path.name          # the fast path does take the bulk
        assert fast == slow, path.name


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60), min_size=1, max_size=4),
       st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2090, 1, 1)),
       st.integers(-1400, 1400))
def test_kernel_agrees_with_re2_on_generated_lines(con, fields, when, offset_minutes):
    tz = timezone(timedelta(minutes=offset_minutes))
    stamp = when.replace(tzinfo=tz).strftime("%d/%b/%Y:%H:%M:%S %z")
    quoted = [f.replace("\\", "\\\\").replace('"', '\\"') for f in fields]
    lines = [
        f'1.2.3.4 - {fields[0].replace(" ", "") or "-"} [{stamp}] "GET /{quoted[0]} HTTP/1.1" 200 12 "{quoted[-1]}" "{quoted[0]}"',
        f'vh.example:443 ::1 - - [{stamp}] "{quoted[-1]}" 404 - "-" "-" {fields[0]}',
        f'"10.0.0.1 - - [{stamp}] "POST /{quoted[0]}" 500 1"',
        f'10.0.0.1 - - [{stamp}] "{fields[0]}" 200 1 "{fields[-1]}" "x"',   # raw quotes: often RE2's job
    ]
    fast, slow, _ = _stage_both(con, "\n".join(lines).encode())
    assert fast == slow


def test_days_from_civil_matches_the_calendar():
    day = datetime(1900, 1, 1)
    while day.year < 2200:
        assert _days_from_civil(day.year, day.month, day.day) == (day - datetime(1970, 1, 1)).days
        day += timedelta(days=17)
