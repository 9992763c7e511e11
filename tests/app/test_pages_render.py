"""Log text shown as text: the Markdown escaping the pages use, checked with a CommonMark parser
(Streamlit's renderer is CommonMark + GFM + directives + math)."""

from __future__ import annotations

import html
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from waflens.app.render import HIGHLIGHT, LINK_BREAK, clip, escape_markdown, highlight, number, plot_text, plural

PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "![x](http://evil.example/x.png)",
    "<a href='javascript:alert(1)'>a</a>",
    ":red[boom] :material/warning: :smile:",
    "$x^2$ and $$y$$",
    "**bold** _it_ `code` ~~del~~ # heading",
    "&lt;script&gt; &amp; &#60;",
    "a\\*b \\ c",
    "line1\nline2\r\n\tend",
    "| a | b |",
    "> quote",
    "1. item",
    "- item",
    "{{7*7}} ${jndi:ldap://x}",
    "http://135.23.158.130/.testing/shellshock.txt?vuln=26",
    "GET /x?u=https://crowdshield.com/.testing/xss.js HTTP/1.1",
    "see www.evil.example and WWW.Evil.example/x or attacker+tag@evil.example, mailto:a@b.co xmpp:c@d.co",
]
# What Streamlit's Markdown (remark-gfm: mdast-util-gfm-autolink-literal) turns into links in the *parsed* text,
# after escapes are gone: bare http(s):// and www. URLs, e-mail addresses, mailto:/xmpp: addresses.
GFM_AUTOLINKS = [re.compile(r"(https?://|www(?=\.))([-.\w]+)([^ \t\r\n]*)", re.IGNORECASE),
                 re.compile(r"([-.\w+]+)@([-\w]+(?:\.[-\w]+)+)"),
                 re.compile(r"(mailto|xmpp):", re.IGNORECASE)]
PARSER = MarkdownIt("commonmark", {"html": True})   # raw HTML on: escaping alone must keep it text


def rendered_text(markdown: str) -> str:
    """What a reader sees: the rendered HTML's text, with no element but the paragraph."""
    out = PARSER.render(markdown).strip()
    assert out.startswith("<p>") and out.endswith("</p>"), out
    body = out[3:-4]
    assert "<" not in body, f"markup in {body!r}"       # no element at all: <a>, <img>, <script>, <em> ...
    text = html.unescape(body)
    linked = [m.group() for pattern in GFM_AUTOLINKS for m in pattern.finditer(text)]
    assert not linked, f"GFM would link {linked} in {text!r}"
    return text.replace(LINK_BREAK, "")                  # invisible: what a reader sees


def visible(text: str) -> str:
    """The one-line form escape_markdown shows: control characters as backslash escapes; word joiners are
    invisible (as in :func:`rendered_text`), also those the text held itself."""
    shown = text.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return re.sub(r"  +", lambda m: " " + "\u00a0" * (len(m.group()) - 1), shown).replace(LINK_BREAK, "")


@pytest.mark.parametrize("payload", PAYLOADS)
def test_escaped_payload_renders_as_the_same_characters(payload):
    assert rendered_text(escape_markdown(payload)) == visible(payload)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60))
def test_any_text_renders_as_itself(text):
    text = "".join(c for c in text if ord(c) >= 32 and ord(c) != 127 or c in "\n\r\t")
    escaped = escape_markdown(text)
    if text.strip():
        assert rendered_text(escaped).strip() == visible(text).strip()
    assert "$" not in escaped.replace("\\$", "")             # no math for Streamlit's KaTeX
    assert not re.search(r"(?<!\\):", escaped)               # no :emoji:, :color[...] or :material/...: directive


def test_highlight_marks_every_needle_and_escapes_inside_and_out():
    line = "GET /a?q=<script>alert(1)</script> | UA: sqlmap/1.8 [x](javascript:y)"
    marked = highlight(line, ["<script>", "sqlmap", "", "alert(1)"])
    assert marked.count(f":{HIGHLIGHT}[") == 2       # "<script>" and "alert(1)" touch: one highlight
    assert f":{HIGHLIGHT}[\\<script\\>alert\\(1\\)]" in marked
    # without the highlight directives, it renders as the line itself
    plain = re.sub(rf":{HIGHLIGHT}\[(.*?)(?<!\\)\]", r"\1", marked)
    assert rendered_text(plain) == line


def test_overlapping_needles_merge():
    assert highlight("abcdef", ["bcd", "cde"]) == f"a:{HIGHLIGHT}[bcde]f"
    assert highlight("aaaa", ["aa"]) == f":{HIGHLIGHT}[aaaa]"
    assert highlight("no match", ["zzz"]) == "no match"


def test_link_breaks_are_only_where_a_link_would_start():
    assert LINK_BREAK not in escape_markdown("plain: text, a.b, wwwx and :// alone")
    assert escape_markdown("http://x").count(LINK_BREAK) == 1 and escape_markdown("a@b").count(LINK_BREAK) == 1


def test_plot_text_shows_tags_as_characters():
    assert plot_text('<a href="http://evil.example">x</a><br>&amp;') == \
        '&lt;a href="http://evil.example"&gt;x&lt;/a&gt;&lt;br&gt;&amp;amp;'
    assert plot_text(None) == ""


def test_numbers_and_plurals_for_people():
    assert number(0.050670445553533415) == "0.05067"
    assert number(12345) == "12,345" and number(3.0) == "3" and number(None) == "—" and number("x") == "x"
    assert number(True) == "True"
    assert plural(1, "event") == "1 event" and plural(2, "event") == "2 events" and plural(0, "change") == "0 changes"


def test_clip():
    assert clip(None) == ""
    assert clip("x" * 10, 5) == "xxxx…"
    assert clip("short") == "short"
