"""Settings: LLM provider and model, thresholds, retention — stored in the database (data/settings.py)."""

import os

import pandas as pd
import streamlit as st

from app.jobs import finish, run_cli, show_finished
from app.session import analyst, require_workbench
from app.state import read, settings, write_or_warn
from data.settings import SPEC, set_setting, setting_history, validate

require_workbench()
st.title("Settings")
flash = st.session_state.pop("settings_flash", None)
if flash:
    st.success(flash, icon=":material/check_circle:")
current = settings()


def _help(key: str) -> str:
    spec = SPEC[key]
    return f"{spec.description} (default: {spec.default if spec.default is not None else 'none'})"


with st.form("settings"):
    st.subheader("Summaries (LLM)")
    providers = list(SPEC["llm_provider"].choices)
    provider = st.selectbox("Provider", providers, index=providers.index(current["llm_provider"]),
                            help=_help("llm_provider"), key="settings_provider")
    model = st.text_input("Model", value=current["llm_model"], help=_help("llm_model"), max_chars=200,
                          key="settings_model")
    base_url = st.text_input("Base URL", value=current["llm_base_url"] or "", help=_help("llm_base_url"),
                             max_chars=500, placeholder="e.g. http://localhost:11434/v1 for Ollama",
                             key="settings_base_url")
    key_present = bool(os.environ.get("OPENAI_API_KEY"))
    st.caption("The API key is never stored here: secrets stay in the environment of the process that calls the "
               "provider (OPENAI_API_KEY), currently " + ("set" if key_present else "not set") + " for the workbench.")

    st.subheader("Thresholds")
    alert = st.number_input("Alert quantile", min_value=0.5, max_value=0.9999, value=float(current["alert_quantile"]),
                            step=0.001, format="%.4f", help=_help("alert_quantile"), key="settings_alert")
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
    wanted = {"llm_provider": provider, "llm_model": model, "llm_base_url": base_url, "alert_quantile": alert,
              "membership_threshold": membership, "min_cluster_size": int(min_cluster), "retention_days": retention}
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
else:
    st.caption("Every setting has its default value.")

show_finished("purge")
if current["retention_days"] is not None:
    st.subheader("Apply retention now")
    st.caption(f"Deletes requests, sessions and quarantined records older than {current['retention_days']:g} days "
               "(`waflens purge`). Cron can run the same command.")
    if st.button(f"Purge traffic older than {current['retention_days']:g} days", icon=":material/delete_sweep:",
                 key="settings_purge"):
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
