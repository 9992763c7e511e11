"""Reading a log file: checks, gzip, hashing, format sniffing and splitting into records.

Lines are handed to DuckDB without Python touching each one: numpy finds the
newlines and pyarrow wraps the file's bytes as a binary column (zero copy), so a
million lines cost a few tens of milliseconds before the SQL parser starts.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import stat
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from waflens.data.errors import ConfigError, InputError

FORMATS = ("auto", "combined", "common", "json", "raw-http")
CHUNK_BYTES = 64 * 1024 * 1024
_SNIFF_BYTES = 64 * 1024
_READ_CHUNK = 8 * 1024 * 1024
MAX_INPUT_ENV = "WAFLENS_MAX_INPUT_BYTES"
DEFAULT_MAX_INPUT_BYTES = 4 * 1024 ** 3     # per file, on disk and decompressed; ingest needs about twice that in RAM
MAX_RATIO_ENV = "WAFLENS_MAX_GZIP_RATIO"
DEFAULT_MAX_GZIP_RATIO = 100.0              # access logs compress 5-30 times; deflate bombs ~1000 times
_RATIO_GRACE_BYTES = 16 * 1024 * 1024       # small files may be very repetitive: judge the ratio after this much
_COMBINED_HINT = re.compile(r'^"?\S+ (?:\S+ )?\S+ \S+ \[[^\]]+\] "')
_REQUEST_LINE = re.compile(r"^[A-Z][A-Z0-9_-]{0,19} \S+ HTTP/\d")


class LogFile(NamedTuple):
    path: Path
    content: bytes  # decompressed
    digest: Future  # sha256 hex of the bytes on disk, computed in a thread while parsing starts
    compressed: bool

    @property
    def sha256(self) -> str:
        return self.digest.result()


_HASHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="waflens-sha256")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()  # hashlib releases the GIL on large buffers


def max_input_bytes() -> int:
    """The most bytes one file may take, on disk and decompressed (``WAFLENS_MAX_INPUT_BYTES``)."""
    value = os.environ.get(MAX_INPUT_ENV)
    if value is None or not value.strip():
        return DEFAULT_MAX_INPUT_BYTES
    try:
        limit = int(value.strip().replace("_", ""))
    except ValueError:
        limit = 0
    if limit <= 0:
        raise ConfigError(f"{MAX_INPUT_ENV}={value!r} is not a positive number of bytes "
                          f"(default {DEFAULT_MAX_INPUT_BYTES}, i.e. 4 GiB)")
    return limit


def max_gzip_ratio() -> float:
    """How many times its compressed size a gzip file may expand to (``WAFLENS_MAX_GZIP_RATIO``)."""
    value = os.environ.get(MAX_RATIO_ENV)
    if value is None or not value.strip():
        return DEFAULT_MAX_GZIP_RATIO
    try:
        ratio = float(value)
    except ValueError:
        ratio = 0.0
    if not ratio >= 1:
        raise ConfigError(f"{MAX_RATIO_ENV}={value!r} is not a ratio of at least 1 (default {DEFAULT_MAX_GZIP_RATIO:g})")
    return ratio


def read_log_file(path: str | os.PathLike) -> LogFile:
    """Read and (if gzip) decompress a file, with one-line errors for what cannot be read.

    Reads are bounded: only regular files (a FIFO would block, ``/dev/zero`` never ends), at most
    :func:`max_input_bytes` on disk and decompressed, and gzip that expands more than
    :func:`max_gzip_ratio` times is refused once past the first MBs (a gzip bomb)."""
    path = Path(path)
    limit = max_input_bytes()
    try:
        info = path.stat()  # stat, not open: opening a FIFO blocks until a writer comes
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror})") from error
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{path} is a directory: pass the log files inside it (e.g. {path}/*.log)")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{path} is not a regular file ({_file_kind(info.st_mode)}): waflens reads log files, "
                         "not devices, pipes or sockets; save the data to a file first")
    if info.st_size > limit:
        raise InputError(f"{path} is {info.st_size:,} bytes, over the limit of {limit:,} "
                         f"({MAX_INPUT_ENV}): split the file, or raise the limit if this machine has the memory")
    stored = _read_regular(path, info.st_size, limit)
    digest = _HASHER.submit(_sha256, stored)
    compressed = stored[:2] == b"\x1f\x8b"
    content = _gunzip(path, stored, limit, max_gzip_ratio()) if compressed else stored
    if not content.strip():
        raise InputError(f"{path} is empty: nothing to ingest")
    return LogFile(path, content, digest, compressed)


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a file"


def _read_regular(path: Path, size: int, limit: int) -> bytes:
    """The file's bytes, refusing it if it turned into something else or grew past ``limit`` meanwhile."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # never blocks, even if swapped for a FIFO since stat
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror})") from error
    with os.fdopen(fd, "rb", buffering=0) as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(f"{path} is not a regular file: waflens reads log files, not devices or pipes")
        try:
            head = handle.read(size) if size else b""
            more = []
            total = len(head)
            while chunk := handle.read(_READ_CHUNK):  # the file grew since stat (a live log)
                total += len(chunk)
                if total > limit:
                    raise InputError(f"{path} grew past the limit of {limit:,} bytes ({MAX_INPUT_ENV}) while "
                                     "being read: ingest a rotated copy")
                more.append(chunk)
        except OSError as error:
            raise InputError(f"{path}: cannot read ({error.strerror})") from error
    return head + b"".join(more) if more else head


def _gunzip(path: Path, stored: bytes, limit: int, ratio: float) -> bytes:
    """Decompress every gzip member, stopping at ``limit`` bytes out or past ``ratio`` : 1."""
    pieces: list[bytes] = []
    produced = 0
    position = 0
    view = memoryview(stored)
    while position < len(stored):
        member = zlib.decompressobj(wbits=31)
        pending = view[position:]
        try:
            while True:
                piece = member.decompress(pending, _READ_CHUNK)
                produced += len(piece)
                pieces.append(piece)
                consumed = len(stored) - len(member.unconsumed_tail) - len(member.unused_data)
                if produced > limit:
                    raise InputError(f"{path} decompresses to over {limit:,} bytes, the limit ({MAX_INPUT_ENV}): "
                                     "split the log before compressing it, or raise the limit; nothing was ingested")
                if produced > _RATIO_GRACE_BYTES and produced > ratio * consumed:
                    raise InputError(f"{path} expands more than {ratio:g} times its compressed size (a gzip bomb?); "
                                     f"refused, nothing was ingested ({MAX_RATIO_ENV} raises the ratio)")
                if member.eof:
                    break
                pending = member.unconsumed_tail
                if not pending and not piece:
                    raise EOFError("compressed file ended before the end-of-stream marker was reached")
        except (EOFError, zlib.error) as error:
            raise InputError(f"{path}: truncated or corrupt gzip ({error}); nothing was ingested") from error
        rest = member.unused_data
        position = len(stored) - len(rest)
        if rest and not rest.startswith(b"\x1f\x8b"):
            if rest.strip(b"\x00"):
                raise InputError(f"{path}: corrupt gzip (data after the end of the stream); nothing was ingested")
            break  # zero padding after the last member, as gzip(1) accepts
    return b"".join(pieces)


def looks_binary(content: bytes) -> bool:
    """True for content that is not text: many NULs or control bytes at the start."""
    sample = content[:_SNIFF_BYTES]
    controls = sum(sample.count(bytes([b])) for b in range(32) if b not in (9, 10, 13, 27))
    return controls > 0.1 * len(sample)


def sniff_format(content: bytes) -> str:
    """Guess combined / json / raw-http from the first lines; InputError when unsure."""
    if looks_binary(content):
        raise InputError("looks like a binary file, not a log: pass a text log (or --format to force a parser)")
    head = content[:_SNIFF_BYTES].decode("utf-8", "replace")
    lines = [line.strip("\r") for line in head.split("\n")[:-1] or [head] if line.strip()][:50]
    if not lines:
        raise InputError("cannot tell the log format: no lines in the first 64 KB; pass --format")
    if _REQUEST_LINE.match(lines[0]) and len(lines) > 1 and ":" in lines[1]:
        return "raw-http"
    if sum(line.lstrip().startswith("{") for line in lines) >= max(1, len(lines) // 2):
        return "json"
    if sum(bool(_COMBINED_HINT.match(line)) for line in lines) >= max(1, len(lines) // 2):
        return "combined"
    raise InputError("cannot tell the log format from the first lines: pass --format or --log-format")


def line_spans(content: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive, newline included) byte offsets of every line.

    A last line without a newline is a record; a final newline does not start another.
    """
    from waflens.data.clf_kernel import line_spans as kernel  # numba: one pass, no temporaries

    return kernel(np.frombuffer(content, dtype=np.uint8))


def span_chunks(starts: np.ndarray, chunk_bytes: int = CHUNK_BYTES):
    """Index ranges [lo, hi) of consecutive lines holding about ``chunk_bytes`` each."""
    lo = 0
    while lo < starts.size:
        hi = int(np.searchsorted(starts, starts[lo] + chunk_bytes, side="left"))
        hi = min(max(hi, lo + 1), starts.size)
        yield lo, hi
        lo = hi


def binary_lines(content: bytes, starts: np.ndarray, ends: np.ndarray, records: np.ndarray) -> pa.Table:
    """Arrow table (record, raw) of the given lines; ``raw`` keeps the line ending, SQL strips it."""
    lengths = (ends - starts).astype(np.int64)
    if records.size and np.all(starts[1:] == ends[:-1]):  # contiguous lines: zero copy
        offsets = np.concatenate(([0], np.cumsum(lengths)))
        data = pa.py_buffer(memoryview(content)[int(starts[0]):int(ends[-1])])
    else:
        data = pa.py_buffer(b"".join(content[a:b] for a, b in zip(starts.tolist(), ends.tolist())))
        offsets = np.concatenate(([0], np.cumsum(lengths)))
    raw = pa.LargeBinaryArray.from_buffers(pa.large_binary(), records.size, [None, pa.py_buffer(offsets), data])
    return pa.table({"record": pa.array(records.astype(np.int64)), "raw": raw})


def line_batches(content: bytes, chunk_bytes: int = CHUNK_BYTES):
    """Yield arrow tables (record, raw) of about ``chunk_bytes`` each, split at newlines."""
    starts, ends = line_spans(content)
    for lo, hi in span_chunks(starts, chunk_bytes):
        yield binary_lines(content, starts[lo:hi], ends[lo:hi], np.arange(lo + 1, hi + 1, dtype=np.int64))
