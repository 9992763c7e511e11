"""Finding 10: reads are bounded. Non-regular files are refused by name, input is capped by
WAFLENS_MAX_INPUT_BYTES on disk and decompressed, and gzip that expands past 100:1 (a bomb) is refused
after the first MBs, before it costs memory. The workbench's upload runs this same `waflens ingest`."""

import gzip
import os
import zlib

import pytest

from waflens.data.errors import ConfigError, InputError
from waflens.data.log_file import read_log_file
from tests.data.cli_process import waflens
from tests.data.helpers import at, combined_line, write_log


def test_a_named_pipe_and_dev_zero_are_refused_at_once_by_name(tmp_path):
    fifo = tmp_path / "access.log"
    os.mkfifo(fifo)
    # main: blocks forever on the pipe (and read /dev/zero until memory ran out)
    result = waflens("--db", str(tmp_path / "w.duckdb"), "ingest", str(fifo), "/dev/zero", timeout=90)
    assert result.returncode == 3, result.stderr
    assert f"{fifo} is not a regular file (a named pipe)" in result.stderr
    assert "/dev/zero is not a regular file (a character device)" in result.stderr


def test_input_larger_than_the_limit_is_refused_on_disk_and_decompressed(tmp_path, monkeypatch):
    lines = [combined_line(f"10.0.{i % 250}.1", at(i), f"GET /page/{i}?x={i * 7919 % 10007} HTTP/1.1")
             for i in range(4000)]
    log = write_log(tmp_path / "a.log", lines)
    packed = tmp_path / "a.log.gz"
    packed.write_bytes(gzip.compress(log.read_bytes()))
    monkeypatch.setenv("WAFLENS_MAX_INPUT_BYTES", str(log.stat().st_size - 1))
    with pytest.raises(InputError, match=r"over the limit of .* \(WAFLENS_MAX_INPUT_BYTES\)"):
        read_log_file(log)
    with pytest.raises(InputError, match=r"decompresses to over .*\(WAFLENS_MAX_INPUT_BYTES\)"):
        read_log_file(packed)  # small on disk, too big once decompressed
    monkeypatch.setenv("WAFLENS_MAX_INPUT_BYTES", str(log.stat().st_size))
    assert read_log_file(packed).content == log.read_bytes()
    monkeypatch.setenv("WAFLENS_MAX_INPUT_BYTES", "lots")
    with pytest.raises(ConfigError, match="WAFLENS_MAX_INPUT_BYTES='lots'"):
        read_log_file(log)


def _bomb(path, megabytes: int) -> None:
    """A gzip of one log line repeated: ~1000:1, a text bomb that the old reader would ingest whole."""
    line = combined_line("10.0.0.1", at(0), "GET / HTTP/1.1").encode() + b"\n"
    block = line * (1024 * 1024 // len(line))
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    path.write_bytes(b"".join(packer.compress(block) for _ in range(megabytes)) + packer.flush())


def test_a_gzip_bomb_is_refused_by_its_ratio(tmp_path):
    bomb = tmp_path / "bomb.log.gz"
    _bomb(bomb, 48)
    assert bomb.stat().st_size < 200_000
    result = waflens("--db", str(tmp_path / "w.duckdb"), "--json", "ingest", str(bomb), timeout=120)
    assert result.returncode == 3, result.stderr   # main: exit 0 after ingesting ~400,000 copies of the line
    assert "expands more than 100 times its compressed size (a gzip bomb?)" in result.stderr
    assert '"files": []' in result.stdout


def test_gzip_members_are_all_read_and_a_truncated_one_is_refused(tmp_path):
    first = "".join(combined_line("10.0.0.1", at(i), f"GET /a/{i} HTTP/1.1") + "\n" for i in range(50))
    second = "".join(combined_line("10.0.0.2", at(i), f"GET /b/{i} HTTP/1.1") + "\n" for i in range(50))
    joined = tmp_path / "rotated.log.gz"
    joined.write_bytes(gzip.compress(first.encode()) + gzip.compress(second.encode()) + b"\0" * 8)
    assert read_log_file(joined).content == (first + second).encode()
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(gzip.compress((first * 20).encode())[:-40])
    with pytest.raises(InputError, match="truncated or corrupt gzip"):
        read_log_file(cut)
