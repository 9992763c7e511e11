"""URL decoding as waflens defines it, shared by ingest, features and the runtime.

``%XX`` escapes become bytes; the bytes are read as UTF-8 and, when that fails,
as Latin-1 (old Java shops such as CSIC 2010 encode ``ñ`` as ``%F1``). Malformed
escapes (``%zz``, a trailing ``%``) stay as they are. In queries and form bodies
``+`` means space. DuckDB's ``url_decode`` does the same for valid UTF-8; this
function is the fallback for the rest and the reference for tests.
"""

from urllib.parse import unquote_to_bytes


def url_decode(text: str | None, plus_as_space: bool = False) -> str:
    if not text:
        return ""
    if plus_as_space:
        text = text.replace("+", " ")
    if "%" not in text:
        return text
    raw = unquote_to_bytes(text)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
