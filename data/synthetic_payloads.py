"""Attack payloads for synthetic traffic: where they are read from and how they are logged.

Two encodings matter. A payload travelling in a query value is percent-encoded the way
an attack tool does it (Burp-style): escapes already in the payload (``%2e``, ``%20``)
are sent as they are, everything that cannot stand in a query value is encoded, so
``unquote_plus(value) == unquote(payload)``. A payload travelling raw in a header
(Referer) is escaped as Apache's ``ap_escape_logitem`` does, so no payload can break the
one-line-per-request format of the log.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from random import Random

from waflens.data.errors import InputError

FAMILIES = ("sqli", "xss", "path_traversal", "lfi", "cmd_injection")
SAMPLES_DIR = Path(__file__).resolve().parent / "payload_samples"
SHARED_PAYLOADS = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "payloads"
ENV_VAR = "WAFLENS_PAYLOAD_DIR"

# Placeholders in the upstream lists and what an attacker would put there.
PLACEHOLDER_FILLS = {
    "{FILE}": ("etc/passwd", "etc/shadow", "etc/hosts", "proc/self/environ", "windows/win.ini", "boot.ini"),
    "{cmd}": ("id", "whoami", "uname -a", "cat /etc/passwd", "sleep 5", "ls -la"),
    "__TIME__": ("5", "10"),
    "<username>": ("admin", "root"),
    "<filepath>": ("/etc/passwd",),
    "<attackerip>": ("198.51.100.23",),
    "<sessid>": ("k2d9q0f7s1m3c5v8b4n6x2z0a1",),
}
# A tab followed by prose ("\tAllows authentication without...") is an upstream note,
# not part of the payload; a tab inside a vector ("jav\tascript:") is kept.
_NOTE = re.compile(r"\t+\s*[A-Za-z(][A-Za-z0-9 ,.()\-]*$")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!*(),:@/")


def resolve_shared_dir(shared_dir: Path | None = None) -> Path:
    """The argument, else ``$WAFLENS_SHARED_DATASETS``, else ``../shared/datasets`` beside the repository."""
    if shared_dir is not None:
        return Path(shared_dir)
    return Path(os.environ.get("WAFLENS_SHARED_DATASETS") or SHARED_PAYLOADS.parent)


def resolve_payload_dir(payload_dir: Path | None = None) -> Path:
    """The argument, else ``$WAFLENS_PAYLOAD_DIR``, else the shared payloads (``$WAFLENS_SHARED_DATASETS``
    or ``../shared/datasets`` beside the repository), else the samples."""
    if payload_dir is not None:
        chosen, origin = Path(payload_dir), "payload_dir"
    elif os.environ.get(ENV_VAR):
        chosen, origin = Path(os.environ[ENV_VAR]), ENV_VAR
    elif (resolve_shared_dir() / "payloads").is_dir():
        return resolve_shared_dir() / "payloads"
    elif SHARED_PAYLOADS.is_dir():    # $WAFLENS_SHARED_DATASETS without payloads: the folder beside the repository
        return SHARED_PAYLOADS
    else:
        return SAMPLES_DIR
    if not chosen.is_dir():
        raise InputError(f"{origin} {chosen} is not a directory; point it at a folder holding sqli.txt, xss.txt, ...")
    return chosen


def clean_payload_lines(text: str) -> list[str]:
    """Payload lines of one file: significant spaces kept, empty lines and note lines dropped."""
    lines = []
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        if _NOTE.search(line):
            continue
        line = line.rstrip("\t")
        if line.strip():
            lines.append(line)
    return lines


def fill_placeholders(line: str, rng: Random) -> str:
    for token, fills in PLACEHOLDER_FILLS.items():
        while token in line:
            line = line.replace(token, rng.choice(fills), 1)
    return line


def read_payload_text(path: Path) -> str:
    """A payload list's text (UTF-8, else Latin-1: some published lists are), or an InputError saying how to fix it."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"payload file {path} cannot be read ({exc.strerror or exc}); "
                         f"add it or use the samples in {SAMPLES_DIR}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def load_payloads(directory: Path, rng: Random) -> dict[str, list[str]]:
    """Payloads per family, placeholders filled, duplicates (after filling) removed, file order kept."""
    families = {}
    for family in FAMILIES:
        path = directory / f"{family}.txt"
        text = read_payload_text(path)
        seen: dict[str, None] = {}
        for line in clean_payload_lines(text):
            seen.setdefault(fill_placeholders(line, rng), None)
        if not seen:
            raise InputError(f"payload file {path} holds no usable payload lines")
        families[family] = list(seen)
    return families


def encode_query_value(value: str, space: str = "%20") -> str:
    """Percent-encode ``value`` for a query string, keeping ``%XX`` escapes already in it."""
    raw = value.encode("utf-8")
    out = []
    i, n = 0, len(raw)
    while i < n:
        b = raw[i]
        if b == 0x25 and i + 2 < n and raw[i + 1] in _HEX and raw[i + 2] in _HEX:
            out.append(raw[i:i + 3].decode("ascii"))
            i += 3
            continue
        if b in _SAFE:
            out.append(chr(b))
        elif b == 0x20:
            out.append(space)
        else:
            out.append(f"%{b:02X}")
        i += 1
    return "".join(out)


def _log_escapes() -> list[str]:
    table = []
    special = {0x08: "\\b", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x0B: "\\v", 0x22: '\\"', 0x5C: "\\\\"}
    for b in range(256):
        if b in special:
            table.append(special[b])
        elif b < 0x20 or b >= 0x7F:
            table.append(f"\\x{b:02x}")
        else:
            table.append(chr(b))
    return table


_LOG_ESCAPES = _log_escapes()


def apache_escape(text: str) -> str:
    """``text`` as Apache writes a quoted log field: ``\\"``, ``\\\\``, ``\\n`` ..., other bytes ``\\xhh``."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return text
    return "".join(_LOG_ESCAPES[b] for b in text.encode("utf-8"))
