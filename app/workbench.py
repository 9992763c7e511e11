"""The waflens workbench (Streamlit). Run with ``waflens app``.

Pages arrive with their back ends (issue F); until then the Overview shows what
the database holds so a newcomer sees the pipeline's result.
"""

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).with_name("pages")

st.set_page_config(page_title="waflens", layout="wide")
navigation = st.navigation([
    st.Page(PAGES / "overview.py", title="Overview", default=True),
    st.Page(PAGES / "data_sources.py", title="Data"),
])
navigation.run()
