"""The browser session's side of the workbench: who is working, and pages always inside the workbench."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

import streamlit as st


def default_analyst() -> str:
    """$WAFLENS_ANALYST, else the login name: what the sidebar's "Analyst" field starts with."""
    try:
        return os.environ.get("WAFLENS_ANALYST") or getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return "analyst"


def analyst() -> str:
    """Who is working: the sidebar's "Analyst" field (recorded with every label and change)."""
    return (st.session_state.get("analyst_name") or "").strip() or default_analyst()


def require_workbench() -> None:
    """Run the workbench around a page that Streamlit started on its own.

    With a ``pages/`` folder beside the main script, Streamlit runs a deep link
    (``/label_queue``) of a fresh server, and in AppTest every page run, as a bare
    "pages/" script, without the workbench's navigation, layout and sidebar. Then
    this runs the workbench in its place, in the same script run (so what the user
    clicked or typed is kept), and stops the bare run. Once ``st.navigation`` has
    run, a server no longer does this.
    """
    if st.session_state.pop("_via_workbench", False):
        return
    import runpy

    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False  # what st.navigation itself sets: no more bare page runs
    runpy.run_path(str(Path(__file__).with_name("workbench.py")), run_name="__main__")
    st.stop()
