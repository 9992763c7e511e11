"""Models: registered versions, their metrics, gates, shadow diff and model card; promote and roll back.

A thin view of :class:`waflens.scoring.registry.Registry` (the files beside the database, or
``$WAFLENS_MODELS``). Promotion and rollback change what every WAF worker scores
with, so each asks for a confirmation first and records who did it and why.
"""

import json

import pandas as pd
import streamlit as st

from waflens.app.jobs import finish, run_cli, show_finished
from waflens.app.render import escape_markdown, number, plural
from waflens.app.scores import ALERT_CLASS, alert_threshold
from waflens.app.session import analyst, require_workbench
from waflens.app.state import config, read
from waflens.data.errors import WaflensError
from waflens.scoring.evaluation import held_out_labels
from waflens.scoring.registry import PRODUCTION, Registry, RegistryError

require_workbench()
st.title("Models")
registry = Registry(config().models_root)
st.caption(f"Registry: {escape_markdown(registry.root)} ($WAFLENS_MODELS, else models/ beside the database). "
           "WAF workers load `production/`; a switch is one atomic rename they pick up at their next check.")
flash = st.session_state.pop("models_flash", None)
if flash:
    st.success(flash, icon=":material/check_circle:")


def _gates(gates) -> list[dict]:
    """Gate results as rows: a list of {"name", "passed", ...} (what retrain writes), or a {name: result} dict."""
    if isinstance(gates, list):
        return [g if isinstance(g, dict) else {"name": str(g)} for g in gates]
    if isinstance(gates, dict):
        if "passed" in gates and not isinstance(gates["passed"], dict):
            return [{"name": "gates", **gates}]
        return [{"name": name, **(value if isinstance(value, dict) else {"passed": value})}
                for name, value in gates.items()]
    return []


def _gate_text(gates) -> str:
    rows = _gates(gates)
    if not rows:
        return "-"
    failed = [str(g.get("name")) for g in rows if g.get("passed") is False]
    if failed:
        return "failed: " + ", ".join(failed)
    checked = sum(1 for g in rows if g.get("passed") is True)
    return f"passed ({checked} checks)" if checked > 1 else "passed" if checked else "not run"


def _flat(metrics: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in (metrics or {}).items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _numbers(metrics: dict, limit: int = 3) -> str:
    shown = [f"{k}={number(v)}" for k, v in _flat(metrics).items()
             if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "alert_rate"]
    return " ".join(shown[:limit]) or "-"


def _alert_rate(metrics: dict) -> float | None:
    """The version's alert rate as retrain measured it (held-out latest sessions, the model's own threshold)."""
    value = (metrics or {}).get("alert_rate")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _threshold(info) -> float | None:
    try:
        manifest = json.loads((info.path / "session" / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = alert_threshold(manifest)
    return None if value != value else value


SHADOW_COUNTS = {"sessions": "sessions compared", "both_alert": "alert with both", "new_alerts": "new alerts",
                 "dropped_alerts": "dropped alerts", "candidate_alerts": "this version's alerts"}


def _shadow_tables(shadow: dict) -> None:
    """The shadow diff as tables: its counts, then the sessions that would start or stop alerting."""
    if shadow.get("compared") is False:
        st.caption(f"Not compared: {escape_markdown(shadow.get('reason') or 'no reason recorded')}.")
    counts = {SHADOW_COUNTS.get(key, key.replace("_", " ")): number(value) for key, value in shadow.items()
              if isinstance(value, (int, float)) and not isinstance(value, bool)}
    if counts:
        st.dataframe(pd.DataFrame([counts]), hide_index=True)
    for key, title in (("new_examples", "New alerts (this version alerts, production does not)"),
                       ("dropped_examples", "Dropped alerts (production alerts, this version does not)")):
        examples = shadow.get(key)
        if isinstance(examples, list) and examples:
            st.markdown(f"**{title}**, largest score changes first")
            st.dataframe(pd.DataFrame(examples), hide_index=True, width="stretch", column_config={
                "candidate_score": st.column_config.NumberColumn("this version's score", format="%.3f"),
                "production_score": st.column_config.NumberColumn("production's score", format="%.3f")})


try:
    versions = registry.versions()
    production = registry.alias(PRODUCTION)
    candidate = registry.alias("candidate")
except WaflensError as error:
    st.error(escape_markdown(error))
    st.stop()

if not versions:
    st.info("No model versions yet: `waflens retrain` (a cron job) trains, gates and registers them.")
else:
    metrics = st.columns(3)
    metrics[0].metric("Production", production or "none")
    metrics[1].metric("Candidate", candidate or "none")
    metrics[2].metric("Versions", len(versions))
    table = pd.DataFrame([{"version": v.version, "created_at": str(v.created_at)[:16].replace("T", " "),
                           "aliases": ", ".join(v.aliases), "parent": v.parent or "", "gates": _gate_text(v.gates),
                           "alert_rate": _alert_rate(v.metrics), "metrics": _numbers(v.metrics, limit=2)}
                          for v in reversed(versions)])
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "version": st.column_config.TextColumn("version", width="small"),
        "created_at": st.column_config.TextColumn("created (UTC)", width="small"),
        "parent": st.column_config.TextColumn("parent", width="small"),
        "metrics": st.column_config.TextColumn("metrics (all on the Metrics tab)", width="large"),
        "alert_rate": st.column_config.NumberColumn(
            "alert rate", format="percent",
            help="Share of the held-out latest sessions scoring at or above the version's own alert threshold "
                 f"(the start of its {ALERT_CLASS} class, in its manifest), as `waflens retrain` measured it. "
                 "The Overview counts the same way over the last 24 h.")})

    names = [v.version for v in reversed(versions)]
    # The selection follows production when production changes (a retrain or a promotion, here or in cron);
    # otherwise it stays where the analyst put it.
    if (st.session_state.get("models_version") not in names
            or st.session_state.get("models_version_production") != production):
        st.session_state["models_version"] = production if production in names else names[0]
    st.session_state["models_version_production"] = production
    chosen = st.selectbox("Version", names, key="models_version",
                          format_func=lambda v: v + (" (production)" if v == production else ""))
    info = registry.get(chosen)
    try:
        meta = registry.metadata(chosen)
        card = registry.card(chosen)
    except (WaflensError, OSError, ValueError) as error:
        st.error(escape_markdown(error))
        meta, card = {}, None
    metrics_tab, gates_tab, card_tab, training_tab = st.tabs(["Metrics", "Gates and shadow diff", "Model card",
                                                              "Training"])
    with metrics_tab:
        flat = _flat(info.metrics)
        threshold = _threshold(info)
        if threshold is not None:
            flat = {f"alert threshold (session {ALERT_CLASS} score)": threshold, **flat}
        if flat:
            st.dataframe(pd.DataFrame({"metric": list(flat), "value": [
                f"{v:.2%}" if k == "alert_rate" and isinstance(v, float) else number(v) for k, v in flat.items()]}),
                hide_index=True, width="stretch")
        else:
            st.caption("No metrics recorded for this version.")
    with gates_tab:
        if info.gates:
            st.markdown(f"**Gates**: {escape_markdown(_gate_text(info.gates))}")
            for g in _gates(info.gates):     # why a gate failed, or passed only by the operator's leave
                if g.get("passed") is False:
                    st.error(f"{escape_markdown(g.get('name'))} failed: {escape_markdown(g.get('detail', ''))}")
                elif g.get("warning"):
                    st.warning(f"{escape_markdown(g.get('name'))}: {escape_markdown(g['warning'])}")
            st.dataframe(pd.DataFrame(_gates(info.gates)).map(number), hide_index=True, width="stretch")
        else:
            st.caption("No gate results recorded for this version.")
        shadow = meta.get("shadow")
        if shadow:
            st.markdown("**Shadow diff** (this version scored beside production on the same traffic)")
            _shadow_tables(shadow if isinstance(shadow, dict) else {})
        else:
            st.caption("No shadow comparison recorded for this version.")
    with card_tab:
        if card:
            st.markdown(card)  # written by the retrain from metrics and counts; raw HTML stays off
            with st.expander("As plain text"):
                st.code(card, language="markdown", wrap_lines=True)
        else:
            st.caption("This version has no MODEL_CARD.md.")
    with training_tab:
        about = _flat({"created_at": info.created_at, "parent": info.parent or "—", "levels": ", ".join(info.levels),
                       "training": info.training, "labels": info.labels})
        st.dataframe(pd.DataFrame({"field": list(about), "value": [number(v) for v in about.values()]}),
                     hide_index=True, width="stretch")

    st.subheader("Promote or roll back")
    try:
        rollback_to = registry.rollback_target()
        rollback_note = None
    except RegistryError as error:
        rollback_to, rollback_note = None, str(error)
    actions = st.columns(2)
    if actions[0].button(f"Promote {chosen} to production", icon=":material/upgrade:", disabled=chosen == production,
                         key="models_promote", width="stretch"):
        st.session_state["models_confirm"] = ("promote", chosen, production)
    if actions[1].button(f"Roll back to {rollback_to}" if rollback_to else "Roll back", icon=":material/undo:",
                         disabled=rollback_to is None, key="models_rollback", width="stretch"):
        st.session_state["models_confirm"] = ("rollback", rollback_to, production)
    if rollback_note:
        actions[1].caption(escape_markdown(rollback_note))

    pending = st.session_state.get("models_confirm")
    if pending:
        action, target, current = pending
        with st.container(border=True):
            verb = "Promote" if action == "promote" else "Roll back production to"
            st.warning(f"{verb} {target}? Production is now {current or 'unset'}. Every WAF worker following "
                       f"production switches to {target} at its next check.", icon=":material/warning:")
            reason = st.text_input("Reason (recorded in the registry's history)", key="models_reason", max_chars=500)
            yes, no = st.columns(2)
            if yes.button(f"Yes, {action} to {target}", type="primary", key="models_yes", width="stretch"):
                who = analyst()
                try:
                    if registry.alias(PRODUCTION) != current:
                        raise RegistryError(f"production changed to {registry.alias(PRODUCTION)} meanwhile: "
                                            "look again before switching")
                    if action == "promote":
                        registry.promote(target, actor=who, reason=reason)
                    else:
                        target = registry.rollback(actor=who, reason=reason)
                except WaflensError as error:
                    st.error(escape_markdown(error))
                else:
                    st.session_state["models_flash"] = (f"Production: {current or 'none'} → {target} "
                                                        f"({action} by {who}).")
                    del st.session_state["models_confirm"]
                    st.session_state.pop("models_reason", None)
                    st.rerun()
            if no.button("Cancel", key="models_no", width="stretch"):
                del st.session_state["models_confirm"]
                st.rerun()

    history = registry.history(PRODUCTION)
    with st.expander(f"Production history ({plural(len(history), 'change')})"):
        st.dataframe(pd.DataFrame(list(reversed(history))), hide_index=True, width="stretch")

st.subheader("Retrain")
st.caption("Runs `waflens retrain` now, as cron does: drift check, training on the labels, gates, shadow "
           "comparison, and promotion when the gates pass.")
labelled, held_out, split = read(held_out_labels)
if held_out:
    st.info(f"{plural(held_out, 'labelled session')} of {number(labelled)} {'is' if held_out == 1 else 'are'} in the "
            f"latest quarter of traffic (from {split:%Y-%m-%d %H:%M}), which a retrain holds out to judge the new "
            "model: those labels check it now, and reach training once newer traffic arrives.",
            icon=":material/schedule:")
show_finished("models")
if st.button("Retrain now", icon=":material/model_training:", key="models_retrain"):
    result = run_cli(["retrain"], "Retraining", ok_codes=(0, 10, 11))
    outcome = {0: "production is now " + str((result.summary or {}).get("production_version")),
               10: "nothing new to learn from", 11: "a gate failed: production kept"}.get(result.code)
    if outcome:
        finish("models", f"Retrain finished: {outcome}.", result, kind="info")
