"""Paging large tables: count the rows, show one page (LIMIT/OFFSET in SQL), and a page number input."""

from __future__ import annotations

import math
from typing import NamedTuple

import streamlit as st

PAGE_SIZE = 50


class Page(NamedTuple):
    limit: int
    offset: int
    number: int
    pages: int


def pager(key: str, total: int, *, page_size: int = PAGE_SIZE, noun: str = "rows") -> Page:
    """A page number input under a count; returns the LIMIT and OFFSET of the chosen page."""
    pages = max(1, math.ceil(total / page_size))
    if st.session_state.get(key, 1) > pages:  # the filter shrank the result: go to its last page
        st.session_state[key] = pages
    left, right = st.columns([4, 1], vertical_alignment="center")
    number = right.number_input("Page", min_value=1, max_value=pages, step=1, key=key, label_visibility="collapsed",
                                help="Page number")
    first = (number - 1) * page_size
    named = noun[:-1] if total == 1 and noun.endswith("s") else noun   # "1 session", "2 sessions"
    left.caption(f"{total:,} {named}" + (f"; showing {first + 1:,} to {min(total, first + page_size):,} "
                                         f"(page {int(number):,} of {pages:,})" if total else ""))
    return Page(page_size, first, int(number), pages)
