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
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from data.errors import InputError

FORMATS = ("auto", "combined", "common", "json", "raw-http")
CHUNK_BYTES = 64 * 1024 * 1024
_SNIFF_BYTES = 64 * 1024
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


def read_log_file(path: str | os.PathLike) -> LogFile:
    """Read and (if gzip) decompress a file, with one-line errors for what cannot be read."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path} is a directory: pass the log files inside it (e.g. {path}/*.log)")
    try:
        stored = path.read_bytes()
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror})") from error
    digest = _HASHER.submit(_sha256, stored)
    compressed = stored[:2] == b"\x1f\x8b"
    content = stored
    if compressed:
        try:
            content = gzip.decompress(stored)
        except (EOFError, OSError, zlib.error) as error:
            raise InputError(f"{path}: truncated or corrupt gzip ({error}); nothing was ingested") from error
    if not content.strip():
        raise InputError(f"{path} is empty: nothing to ingest")
    return LogFile(path, content, digest, compressed)


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
    from data.clf_kernel import line_spans as kernel  # numba: one pass, no temporaries

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
