"""Settings: thresholds and retention, stored in the database (data/settings.py); the LLM's provider,
model, endpoint and key shown read-only (they come from the environment or the operator's file)."""

import pandas as pd
import streamlit as st

from waflens.app.jobs import finish, run_cli, show_finished
from waflens.app.render import escape_markdown
from waflens.app.session import analyst, require_workbench
from waflens.app.state import config, read, refuse_traffic_write, settings, write_or_warn
from waflens.data.errors import ConfigError
from waflens.data.settings import SPEC, set_setting, setting_history, validate

require_workbench()
st.title("Settings")
flash = st.session_state.pop("settings_flash", None)
if flash:
    st.success(flash, icon=":material/check_circle:")
current = settings()


def _redact(url: str) -> str:
    """A URL without the user:password some gateways take in it."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.username or parts.password:
        parts = parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2])
    return urlunsplit(parts)


def _help(key: str) -> str:
    spec = SPEC[key]
    return f"{spec.description} (default: {spec.default if spec.default is not None else 'none'})"


st.subheader("Summaries (LLM)")
st.caption("Read-only here: the provider, model, endpoint and key come from the environment of the process that "
           "calls the LLM, or from the operator's file (`$WAFLENS_LLM_CONFIG`, default `<database>.llm.toml`, "
           "mode 0600). The workbench never changes where the key and the evidence go.")
try:
    from waflens.labeling.llm_config import load_llm_config

    llm = load_llm_config(config().db_path)
except ConfigError as error:
    st.error(escape_markdown(error))
else:
    def _where(name: str) -> str:
        return llm.origins.get(name, "default")

    rows = [("provider", llm.provider, _where("provider")), ("model", llm.model, _where("model")),
            ("base URL", _redact(llm.base_url) if llm.base_url else "(the provider's default)", _where("base_url")),
            ("API key", "set" if llm.api_key else "not set", _where("api_key")),
            ("time-out per call (s)", f"{llm.timeout_s:g}", _where("timeout_s")),
            ("deadline for all clusters (s)", f"{llm.deadline_s:g}", _where("deadline_s")),
            ("largest answer (bytes)", f"{llm.max_answer_bytes:,}", _where("max_answer_bytes"))]
    st.dataframe(pd.DataFrame(rows, columns=["setting", "value", "from"]), hide_index=True, width="stretch",
                 key="settings_llm")

with st.form("settings"):
    st.subheader("Thresholds")
    st.caption("A session alerts when it scores at or above the production model's own alert threshold (the start "
               "of its `likely_attack` class, in its manifest; the Models page shows it): one alert rate everywhere, "
               "set by training, not here.")
    membership = st.number_input("Membership threshold", min_value=0.0, max_value=1.0,
                                 value=float(current["membership_threshold"]), step=0.05,
                                 help=_help("membership_threshold"), key="settings_membership")
    min_cluster = st.number_input("Minimum cluster size", min_value=2, max_value=100_000,
                                  value=int(current["min_cluster_size"]), step=1, help=_help("min_cluster_size"),
                                  key="settings_min_cluster")

    st.subheader("Retention")
    retention = st.number_input("Retention (days; empty keeps everything)", min_value=0.0,
                                value=None if current["retention_days"] is None else float(current["retention_days"]),
                                step=1.0, help=_help("retention_days"), key="settings_retention")
    saved = st.form_submit_button("Save settings", type="primary", icon=":material/save:")

if saved:
    wanted = {"membership_threshold": membership, "min_cluster_size": int(min_cluster), "retention_days": retention}
    who = analyst()

    def _save(con) -> list[str]:
        changed = []
        for key, value in wanted.items():
            if validate(key, value) != current[key]:
                set_setting(con, key, value, who)
                changed.append(key)
        return changed

    ok, changed = write_or_warn(_save)
    if ok:
        st.session_state["settings_flash"] = (f"Saved by {who}: {', '.join(changed)}." if changed
                                              else "Nothing changed.")
        st.rerun()

st.subheader("Changed so far")
history = read(setting_history)
if history:
    st.dataframe(pd.DataFrame(history, columns=["setting", "value", "changed by", "changed at"]).astype({"value": str}),
                 hide_index=True, width="stretch")
    if any(key not in SPEC for key, *_ in history):
        st.caption("Rows for settings this version no longer keeps here (`alert_quantile`, `llm_*`, stored by an "
                   "earlier version) are ignored.")
else:
    st.caption("Every setting has its default value.")

show_finished("purge")
if current["retention_days"] is not None:
    st.subheader("Apply retention now")
    st.caption(f"Deletes requests, sessions and quarantined records older than {current['retention_days']:g} days "
               "(`waflens purge`). Cron can run the same command.")
    if st.button(f"Purge traffic older than {current['retention_days']:g} days", icon=":material/delete_sweep:",
                 key="settings_purge") and not refuse_traffic_write("purge"):
        st.session_state["settings_confirm_purge"] = True
    if st.session_state.get("settings_confirm_purge"):
        st.warning("This deletes traffic for good. Continue?")
        yes, no = st.columns(2)
        if yes.button("Yes, purge", type="primary", key="settings_purge_yes"):
            st.session_state["settings_confirm_purge"] = False
            result = run_cli(["purge", "--older-than-days", str(current["retention_days"])], "Purging old traffic")
            if result.ok and result.summary:
                finish("purge", f"Deleted {result.summary.get('requests', 0):,} requests and "
                                f"{result.summary.get('sessions', 0):,} sessions.", result)
        if no.button("Cancel", key="settings_purge_no"):
            st.session_state["settings_confirm_purge"] = False
            st.rerun()
