"""The waflens workbench (Streamlit). Run with ``waflens app`` (it sets ``WAFLENS_DB``).

One file per page under ``app/pages/`` (``st.navigation`` + ``st.Page``). Pages read
through :mod:`waflens.app.state` (short read-only connections, cached results), write
through :mod:`waflens.data.writes` (short write connections) and run long work as CLI
subprocesses (:mod:`waflens.app.jobs`), so a cron ``waflens retrain`` can always write.
"""

from pathlib import Path

import streamlit as st

from waflens.app.render import escape_markdown
from waflens.app.session import default_analyst, identity, require_access
from waflens.app.state import begin_page, config

PAGES = Path(__file__).with_name("pages")

# An emoji favicon: with none, each page's :material/…: icon becomes the favicon, fetched from fonts.gstatic.com
# (the workbench must work offline and send nothing out).
st.set_page_config(page_title="waflens", page_icon="🛡️", layout="wide")
require_access()  # before any page, the sidebar or the database path renders
navigation = st.navigation([
    st.Page(PAGES / "overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page(PAGES / "emerging.py", title="Emerging patterns", icon=":material/scatter_plot:"),
    st.Page(PAGES / "label_queue.py", title="Label queue", icon=":material/fact_check:"),
    st.Page(PAGES / "sessions.py", title="Sessions", icon=":material/list_alt:"),
    st.Page(PAGES / "models.py", title="Models", icon=":material/model_training:"),
    st.Page(PAGES / "data_sources.py", title="Data", icon=":material/database:"),
    st.Page(PAGES / "settings.py", title="Settings", icon=":material/settings:"),
])
# The name lives under a plain key too: widget state can be dropped (a page that never rendered the
# widget), a plain key is kept for the whole browser session.
if "analyst_name" not in st.session_state:
    st.session_state["analyst_name"] = default_analyst()
if "analyst" not in st.session_state:
    st.session_state["analyst"] = st.session_state["analyst_name"]


def _keep_analyst() -> None:
    st.session_state["analyst_name"] = st.session_state["analyst"]


with st.sidebar:
    if identity():
        st.session_state["analyst"] = st.session_state["analyst_name"] = identity()
        st.text_input("Analyst", key="analyst", disabled=True,
                      help="Your identity from the reverse proxy: recorded with every label, allowlist rule, "
                           "setting and promotion you make.")
    else:
        st.text_input("Analyst", key="analyst", max_chars=100, on_change=_keep_analyst,
                      help="Recorded with every label, allowlist rule, setting and promotion you make "
                           "(default: $WAFLENS_ANALYST or your login name).")
    st.caption(f"Database: {escape_markdown(config().db_path)}")
begin_page()
st.session_state["_via_workbench"] = True  # the page checks it (waflens.app.state.require_workbench)
navigation.run()
