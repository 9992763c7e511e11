"""The browser session's side of the workbench: who is working, whether they may, and pages always
inside the workbench."""

from __future__ import annotations

import getpass
import os
import time
from pathlib import Path

import streamlit as st

from waflens.app.access import AUTH_HEADER_ENV, TOKEN_ENV, token_matches

_FAILED_LOGIN_DELAY_S = 1.0  # slows guessing; the token is long anyway


def default_analyst() -> str:
    """$WAFLENS_ANALYST, else the login name: what the sidebar's "Analyst" field starts with."""
    try:
        return os.environ.get("WAFLENS_ANALYST") or getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return "analyst"


def identity() -> str | None:
    """Who the reverse proxy says is working (``--auth-header``), for this browser session; else None."""
    return st.session_state.get("_identity")


def analyst() -> str:
    """Who is working: the proxy's identity where there is one, else the sidebar's "Analyst" field
    (recorded with every label and change)."""
    return identity() or (st.session_state.get("analyst_name") or "").strip() or default_analyst()


def require_access() -> None:
    """Stop the run before anything of the database renders unless the visitor may see it.

    With ``$WAFLENS_APP_AUTH_HEADER`` (``waflens app --auth-header``) the header carries the
    analyst's identity, set by the reverse proxy on the websocket's request; a request without it
    is refused. With ``$WAFLENS_APP_TOKEN`` the visitor types the token once per browser session.
    """
    header = os.environ.get(AUTH_HEADER_ENV)
    if header:
        user = (st.context.headers.get(header) or "").strip()
        if not user:
            st.error(f"Not authenticated: the reverse proxy must set the {header} header. Open the workbench "
                     "through the proxy.")
            st.stop()
        st.session_state["_identity"] = user[:100]
    token = os.environ.get(TOKEN_ENV)
    if not token or st.session_state.get("_token_ok"):
        return
    st.title("waflens workbench")
    with st.form("access_token"):
        given = st.text_input("Access token", type="password", key="_access_token",
                              help=f"The workbench's token (the operator set {TOKEN_ENV}).")
        entered = st.form_submit_button("Open the workbench")
    if entered:
        if token_matches(given, token):
            st.session_state["_token_ok"] = True
            st.session_state.pop("_access_token", None)
            st.rerun()
        time.sleep(_FAILED_LOGIN_DELAY_S)
        st.error("Wrong token.")
    st.stop()


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
