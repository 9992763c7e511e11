"""Label queue: a cluster's proposed label with its evidence; the analyst confirms, edits or rejects it.

Decisions are label events in DuckDB (``waflens.labeling.labels.record_label``, append-only,
with who and when), never only widget state. They judge the cluster's sessions and
stay with them: in a later cluster run, a cluster whose sessions are all decided is
reviewed already (it shows that decision), and only clusters with undecided
sessions wait in the queue. After a decision the next cluster needing review
opens. The allowlist (known good traffic) is edited here too.
"""

from datetime import datetime, timedelta, timezone

import pandas as pd
import streamlit as st

from waflens.app import clusters
from waflens.app.palette import BADGE
from waflens.app.render import escape_markdown, highlight, plural
from waflens.app.session import analyst, require_workbench
from waflens.app.state import read, table_exists, write_or_warn
from waflens.labeling.allowlist import KINDS, add_rule, revoke_rule
from waflens.labeling.evidence import build_evidence
from waflens.labeling.labels import has_relation, label_history, record_label
from waflens.labeling.taxonomy import FAMILIES, VERDICTS

require_workbench()
st.title("Label queue")

for key in st.session_state.pop("queue_reset_keys", []):
    st.session_state.pop(key, None)
flash = st.session_state.pop("queue_flash", None)
if flash:
    st.success(flash, icon=":material/check_circle:")


def _evidence(con, run: int, cluster: int) -> dict | None:
    try:
        return build_evidence(con, run, cluster)
    except LookupError:
        return None


def _rules(con, include_inactive: bool) -> list[dict]:
    """The allowlist's rules (``list_rules`` would create the tables: this connection is read-only)."""
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'allowlist'").fetchall()[0][0]:
        return []
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    rows = con.execute(
        """SELECT *, revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $now) AS active
           FROM allowlist ORDER BY rule_id""", {"now": now}).df()
    return (rows if include_inactive else rows[rows.active]).to_dict("records")


def _decide(run: int, cluster: int, family: str, verdict: str, source: str, note: str, next_cluster,
            keys: list[str]) -> None:
    who = analyst()
    ok, event = write_or_warn(lambda con: record_label(con, run, cluster, family=family, verdict=verdict, source=source,
                                                       analyst=who, note=note.strip() or None))
    if not ok:
        return  # the form keeps what was typed
    word = {"confirmed": "confirmed", "edited": "edited", "rejected": "rejected"}[source]
    st.session_state["queue_flash"] = (f"Cluster {cluster} {word} as {verdict} {family} by {who} "
                                       f"(label event {event}).")
    st.session_state["queue_reset_keys"] = keys
    st.session_state["queue_pending"] = next_cluster
    st.rerun()


def _label_form(run: int, row: pd.Series, summary: dict | None, next_cluster) -> None:
    cluster = int(row.name)
    # a rejected label is no default: the summary proposes something else (the summarizer skips rejected families)
    has_label = isinstance(row.label_source, str) and row.label_source != "rejected"
    default_family = row.family if has_label else (summary or {}).get("family", "other")
    default_verdict = row.verdict if has_label else (summary or {}).get("verdict", "suspicious")
    if row.label_source == "rejected" and default_family == row.family:
        default_family, default_verdict = "other", "suspicious"
    default_family = default_family if default_family in FAMILIES else "other"
    default_verdict = default_verdict if default_verdict in VERDICTS else "suspicious"
    keys = [f"verdict_{run}_{cluster}", f"family_{run}_{cluster}", f"note_{run}_{cluster}"]
    with st.form(f"label_{run}_{cluster}"):
        left, right = st.columns(2)
        verdict = left.selectbox("Verdict", VERDICTS, index=VERDICTS.index(default_verdict), key=keys[0])
        families = list(FAMILIES)
        family = right.selectbox("Family", families, index=families.index(default_family), key=keys[1],
                                 format_func=lambda f: f"{f} — {FAMILIES[f].title}")
        note = st.text_area("Note", key=keys[2], height=80, placeholder="Why (kept with the label; needed to reject)")
        buttons = st.columns(3)
        confirm = buttons[0].form_submit_button("Confirm", type="primary", icon=":material/check:", width="stretch")
        edit = buttons[1].form_submit_button("Save edit", icon=":material/edit:", width="stretch")
        reject = buttons[2].form_submit_button("Reject", icon=":material/close:", width="stretch")
    if confirm or edit or reject:
        if reject and not note.strip():
            st.warning("Say in the note why you reject the proposed label.")
            return
        changed = (verdict, family) != (default_verdict, default_family)
        source = "rejected" if reject else ("edited" if edit or changed else "confirmed")
        _decide(run, cluster, family, verdict, source, note, next_cluster, keys)


def _when(value) -> str:
    return f", {value:%Y-%m-%d %H:%M} UTC" if pd.notna(value) else ""


def _show_decided_sessions(row: pd.Series) -> None:
    """What analysts decided about this cluster's sessions on other runs' clusters."""
    if clusters.flag(row.get("inherited")):
        st.info(f"Decided before: every one of its {int(row.n_members)} sessions carries an analyst's decision, "
                f"mostly {row.decided_source} {row.decided_verdict} {row.decided_family} by "
                f"{escape_markdown(row.decided_by)}{_when(row.decided_at)} on cluster {int(row.decided_cluster_id)} "
                f"of run {int(row.decided_run_id)}.", icon=":material/history:")
    elif pd.notna(row.get("n_decided")) and int(row.n_decided) > 0:
        st.info(f"{int(row.n_decided)} of its {int(row.n_members)} sessions already carry an analyst's decision "
                f"(mostly {row.decided_source} {row.decided_verdict} {row.decided_family} by "
                f"{escape_markdown(row.decided_by)}{_when(row.decided_at)} on cluster {int(row.decided_cluster_id)} "
                f"of run {int(row.decided_run_id)}); {int(row.n_members) - int(row.n_decided)} are undecided. "
                "A decision here applies to all of them.", icon=":material/history:")


def _show_current_label(row: pd.Series) -> None:
    _show_decided_sessions(row)
    if not isinstance(row.label_source, str):
        st.caption("No label yet.")
        return
    who = str(row.label_analyst)
    if row.label_source == "suggested" and who.startswith(clusters.CARRIED_PREFIX):
        st.info(f"Carried over: {escape_markdown(who[len(clusters.CARRIED_PREFIX):])} labelled the predecessor "
                f"cluster {row.verdict} {row.family}; confirm it still holds.", icon=":material/history:")
    when = f", {row.labelled_at:%Y-%m-%d %H:%M} UTC" if pd.notna(row.labelled_at) else ""
    st.caption(f"Current label: {escape_markdown(clusters.label_text(row))}{when}")
    if isinstance(row.label_note, str) and row.label_note:
        st.text(f"Note: {row.label_note}")


def _show_summary(summary: dict | None) -> None:
    if not summary:
        st.info("No proposed summary for this cluster yet: run “Summarize the latest run” on Emerging patterns.")
        return
    st.subheader(escape_markdown(summary.get("title", "")), anchor=False)   # no "#title" link made of LLM text
    verdict, family = str(summary.get("verdict")), str(summary.get("family"))
    verified = summary.get("status") == "ok"
    st.markdown(" ".join([
        f":{BADGE.get(verdict, 'gray')}-badge[{escape_markdown(verdict)}]",
        f":violet-badge[{escape_markdown(family)}]",
        f":gray-badge[confidence {float(summary.get('confidence') or 0):.0%}]",
        ":blue-badge[verified]" if verified else ":gray-badge[unverified]"]))
    if summary.get("prompt_injection_detected"):
        st.error("The traffic holds text addressed to an LLM (prompt injection): judge this cluster from the evidence, "
                 "not from the summary.", icon=":material/warning:")
    if not verified:
        st.warning("Unverified: an indicator was not found in the evidence, or the family is unknown.")
    st.markdown(escape_markdown(summary.get("summary", "")))
    mapping = ", ".join(filter(None, [summary.get("owasp"), ", ".join(f"CAPEC-{c}" for c in summary.get("capec", []))]))
    st.markdown(f"**Recommended action:** {escape_markdown(summary.get('recommended_action', ''))}"
                + (f"  \n**Maps to:** {escape_markdown(mapping)}" if mapping else ""))
    indicators = pd.DataFrame(summary.get("indicators", []), columns=["evidence", "description"])
    if len(indicators):
        st.markdown("**Indicators** (each quotes the evidence; highlighted below)")
        st.dataframe(indicators, hide_index=True, width="stretch")


def _show_evidence(run: int, cluster: int, summary: dict | None) -> None:
    pack = read(_evidence, run, cluster)
    if not pack:
        return
    needles = [i.get("evidence", "") for i in (summary or {}).get("indicators", [])]
    st.markdown(f"**Evidence**: {plural(len(pack['requests']), 'sampled request')} (secrets redacted), "
                "indicators highlighted")
    with st.container(border=True, height=360):
        st.markdown("  \n".join(highlight(line, needles) for line in pack["requests"]) or "no requests")
    with st.expander("The evidence as plain text"):
        st.code("\n".join(pack["requests"]), language=None, wrap_lines=True)


def _label_history(con, run: int, cluster: int) -> pd.DataFrame:
    """This cluster's events and the decisions on earlier runs' clusters that reached its sessions."""
    if not has_relation(con, "session_decisions"):   # a database from before decisions followed sessions
        return con.execute("""SELECT label_event_id, created_at, cluster_run_id, cluster_id, source, verdict, family,
                                     analyst, note FROM label_events
                              WHERE cluster_run_id = $r AND cluster_id = $c ORDER BY label_event_id""",
                           {"r": run, "c": cluster}).df()
    return pd.DataFrame(label_history(con, run, cluster))


def _history(run: int, cluster: int) -> None:
    if not table_exists("label_events"):
        return
    events = read(_label_history, run, cluster)
    if len(events):
        events = events.iloc[::-1]
    with st.expander(f"Label history ({plural(len(events), 'event')}: who said what, when, on which run's cluster)"):
        st.dataframe(events, hide_index=True, width="stretch")


def _allowlist() -> None:
    st.subheader("Allowlist")
    st.caption("Known good traffic (a monitor, a partner's crawler, a health check): left out of clustering and "
               "alerts, treated as benign by retraining. Paths and user agents are RE2 regular expressions searched "
               "in the value (anchor with ^…$); a client key matches exactly, as stored (pseudonymized).")
    include_inactive = st.checkbox("Show expired and revoked rules", key="allow_all")
    rules = pd.DataFrame(read(_rules, include_inactive))
    if len(rules):
        st.dataframe(rules, hide_index=True, width="stretch")
    else:
        st.caption("The allowlist is empty.")
    add, revoke = st.columns(2)
    with add.form("allow_add"):
        kind = st.selectbox("Kind", KINDS, key="allow_kind")
        pattern = st.text_input("Pattern", key="allow_pattern", max_chars=1000)
        reason = st.text_input("Reason", key="allow_reason", placeholder="who this traffic is and why it is good")
        days = st.number_input("Expires after (days, 0 = until revoked)", min_value=0.0, value=0.0, step=1.0,
                               key="allow_days")
        if st.form_submit_button("Add rule", icon=":material/add:"):
            who = analyst()
            expires = datetime.now(timezone.utc) + timedelta(days=days) if days else None
            ok, rule_id = write_or_warn(lambda con: add_rule(con, kind, pattern, reason=reason, author=who,
                                                             expires_at=expires))
            if ok:
                st.session_state["queue_flash"] = f"Allowlist rule {rule_id} added by {who}."
                st.session_state["queue_reset_keys"] = ["allow_pattern", "allow_reason", "allow_days"]
                st.rerun()
    active = rules[rules.active] if len(rules) else rules
    with revoke.form("allow_revoke"):
        rule = st.selectbox("Rule to revoke", active.rule_id.tolist() if len(active) else [], key="allow_revoke_id",
                            format_func=lambda r: f"rule {r}: {active.set_index('rule_id').kind[r]}")
        if st.form_submit_button("Revoke", icon=":material/block:", disabled=not len(active)) and rule is not None:
            who = analyst()
            ok, _ = write_or_warn(lambda con: revoke_rule(con, int(rule), author=who))
            if ok:
                st.session_state["queue_flash"] = f"Allowlist rule {rule} revoked by {who}."
                st.rerun()


run = clusters.latest_run()
if run is None:
    st.info("No cluster run yet: cluster the suspicious sessions on the Emerging patterns page.")
else:
    table = clusters.clusters(run).set_index("cluster_id", drop=False)
    # reviewed: every member session carries an analyst's decision, made on this run or an earlier one
    pending_review = table[clusters.needs_review(table)]
    reviewed = len(table) - len(pending_review)
    st.progress(reviewed / len(table) if len(table) else 1.0,
                text=f"Cluster run {run}: {reviewed} of {len(table)} clusters reviewed; "
                     f"{len(pending_review)} with undecided sessions need review (emerging first)")
    show_all = st.toggle("Show reviewed clusters too", key="queue_show_all")
    candidates = table if show_all else pending_review
    ids = candidates.cluster_id.tolist()
    pending = st.session_state.pop("queue_pending", None)
    if pending in ids:
        st.session_state["queue_cluster"] = pending
    if not ids:
        st.success(f"Every cluster of run {run} is reviewed.", icon=":material/done_all:")
    else:
        if st.session_state.get("queue_cluster") not in ids:
            st.session_state["queue_cluster"] = ids[0]
        chooser, skip = st.columns([5, 1], vertical_alignment="bottom")
        cluster = chooser.selectbox("Cluster", ids, key="queue_cluster",
                                    format_func=lambda c: clusters.cluster_caption(table.loc[c]))
        later = [c for c in pending_review.cluster_id if c != cluster]
        after = [c for c in ids[ids.index(cluster) + 1:] if c in later] + later
        next_cluster = after[0] if after else None
        if skip.button("Next", icon=":material/skip_next:", disabled=len(ids) < 2, width="stretch"):
            position = ids.index(cluster)
            st.session_state["queue_pending"] = ids[(position + 1) % len(ids)]
            st.rerun()
        row = table.loc[cluster]
        summary = clusters.summary(row.to_dict())
        st.caption(f"{int(row.n_sessions):,} sessions from {int(row.n_clients):,} clients, "
                   f"{int(row.n_requests):,} requests, {row.first_ts} to {row.last_ts} UTC; status {row.status}"
                   + (", emerging" if row.emerging else ""))
        proposal, decision = st.columns(2, gap="large")
        with proposal:
            _show_summary(summary)
        with decision:
            st.markdown("#### Decision")
            _show_current_label(row)
            _label_form(int(run), row, summary, next_cluster)
            _history(int(run), int(cluster))
        _show_evidence(int(run), int(cluster), summary)
st.divider()
_allowlist()
