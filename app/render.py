"""Showing text that came from a log (or from an LLM that read one) as text, never as markup.

Paths, queries and user agents are written by attackers. The workbench shows raw
strings with ``st.code``, ``st.text`` or ``st.dataframe``; where it needs Markdown
(to highlight an indicator inside a request) every character Markdown or HTML
could act on is backslash-escaped first, so ``<script>``, ``<img onerror=…>``,
``[click](javascript:…)``, ``:red[…]`` or ``$…$`` show as the characters they are.

Escaping is not enough against links: Streamlit's Markdown (remark-gfm) turns bare
``http://…``, ``www.…`` and ``name@host.tld`` in the *parsed* text into links, after
the backslashes are gone. So a word joiner (U+2060, invisible, not a space) is put
where those patterns need two characters to touch: before ``://``, between ``www``
and ``.``, after ``@``. Plotly reads ``<a href>``, ``<b>``, ``<br>`` in any text it
draws (hover labels, legends), so text bound for a chart goes through :func:`plot_text`.
"""

from __future__ import annotations

import numbers
import re
import string

LINK_BREAK = "\u2060"  # WORD JOINER: zero width, no line break, not whitespace
_LINK_PATTERNS = re.compile(r"(?<=[A-Za-z0-9])(?=://)|(?<=www)(?=\.)|(?<=@)|(?<=mailto)(?=:)|(?<=xmpp)(?=:)",
                            re.IGNORECASE)
_PUNCTUATION = frozenset(string.punctuation)  # CommonMark lets a backslash escape every one of these
_CONTROL = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
HIGHLIGHT = "orange-background"


def escape_markdown(text: object) -> str:
    """``text`` as a Markdown fragment that displays exactly these characters, on one line.

    Line breaks and tabs show as ``\\n``, ``\\r`` and ``\\t``; other control characters
    as ``\\xHH``; runs of spaces are kept (non-breaking), so nothing is hidden. URLs and
    e-mail addresses stay text (:data:`LINK_BREAK`).
    """
    out = []
    for char in unlink(str(text)):
        if char in _PUNCTUATION:
            out.append("\\" + char)
        elif char in _CONTROL:
            out.append("\\\\" + _CONTROL[char][1])
        elif ord(char) < 32 or ord(char) == 127:
            out.append(f"\\\\x{ord(char):02x}")
        else:
            out.append(char)
    return re.sub(r"(?<= ) ", "\u00a0", "".join(out))


def highlight(text: str, needles: list[str] | tuple[str, ...]) -> str:
    """Markdown of ``text`` (escaped) with every occurrence of a needle highlighted.

    Overlapping matches merge; the longest needle wins where two start at one place.
    """
    spans: list[tuple[int, int]] = []
    for needle in sorted({n for n in needles if n}, key=len, reverse=True):
        start = text.find(needle)
        while start >= 0:
            spans.append((start, start + len(needle)))
            start = text.find(needle, start + 1)
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    parts, position = [], 0
    for start, end in merged:
        parts.append(escape_markdown(text[position:start]))
        parts.append(f":{HIGHLIGHT}[{escape_markdown(text[start:end])}]")
        position = end
    parts.append(escape_markdown(text[position:]))
    return "".join(parts)


def clip(text: object, limit: int = 200) -> str:
    """A cell-sized prefix of a string (dataframes show text; this keeps rows short)."""
    value = "" if text is None else str(text)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def unlink(text: str) -> str:
    """``text`` with a :data:`LINK_BREAK` where a Markdown renderer would start an automatic link."""
    return _LINK_PATTERNS.sub(LINK_BREAK, text)


def plot_text(text: object) -> str:
    """Text for a plotly label, hover or legend: its tags (``<a href>``, ``<br>``) shown, not followed."""
    return "" if text is None else str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def number(value: object, digits: int = 4) -> str:
    """A metric as people read it: ``0.0507`` not ``0.050670445553533415``; integers with separators."""
    if value is None or isinstance(value, bool) or not isinstance(value, numbers.Real):
        return "—" if value is None else str(value)
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.{digits}g}"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 event``, ``2 events``, ``1,200 sessions``."""
    return f"{count:,} {noun if count == 1 else (nouns or noun + 's')}"
