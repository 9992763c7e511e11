"""The numba fast path against the general RE2 parser: same rows on every real line."""

import gzip
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waflens.data.clf_kernel import _days_from_civil, parse_clf
from waflens.data.db import connect
from waflens.data.log_file import line_batches, line_spans
from waflens.data.log_formats import COMBINED
from waflens.data.parse_lines import STAGE_DDL, stage_clf_batch, stage_line_batch

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


def test_blocks_parsed_on_threads_match_lines_parsed_alone(tmp_path):
    """parse_clf splits a batch into blocks run on a pool of threads: block edges must not change a line's parse."""
    from waflens.data import clf_kernel
    from waflens.data.synthetic import generate_traffic

    generate_traffic(tmp_path / "t.log", 3000, seed=5)
    hostile = b'1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /\\"x HTTP/1.1" 200 1 "-" "\xff"\n\n"bad\n'
    content = (tmp_path / "t.log").read_bytes() * 5 + hostile
    buf = np.frombuffer(content, np.uint8)
    starts, ends = line_spans(content)
    assert starts.size > 3 * clf_kernel._MIN_LINES_PER_BLOCK  # several blocks, hence several threads
    whole = parse_clf(buf, starts, ends)
    assert whole[0][:-3].all() and not whole[0][-3:].any()
    for k in range(0, starts.size, 997):  # a line at a time: one block, no thread
        alone = parse_clf(buf, starts[k:k + 1], ends[k:k + 1])
        for column, single in zip(whole, alone):
            assert np.array_equal(column[k:k + 1], single)
    rows = np.flatnonzero(whole[0])
    names = clf_kernel.SPAN_NAMES
    columns = clf_kernel.string_columns(buf, whole[1], rows, names)
    for f, name in enumerate(names):
        expected = [content[a:b].decode() for a, b in whole[1][rows, f].tolist()]
        assert columns[name].to_pylist() == expected, name


def test_parser_kernels_compile_once_and_serially():
    """Cold compile is the first ingest's cost: no kernel is compiled once per literal argument, and none is
    parallel=True (a parallel kernel cost ~6 CPU-s more to compile than threads over a serial one)."""
    import numba

    from waflens.data import clf_kernel

    content = b'h1 1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 12 "-" "ua"\n'
    parse_clf(np.frombuffer(content, np.uint8), *line_spans(content))
    kernels = {name: kernel for name, kernel in vars(clf_kernel).items()
               if isinstance(kernel, numba.core.registry.CPUDispatcher)}
    assert len(clf_kernel._digits.signatures) == 1, clf_kernel._digits.signatures
    assert not [name for name, kernel in kernels.items() if kernel.targetoptions.get("parallel")]
