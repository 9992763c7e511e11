"""Overview: traffic volume, alert rate and score distribution, emerging clusters, drift, production model."""

import plotly.graph_objects as go
import streamlit as st

from waflens.app import clusters, palette
from waflens.app.render import escape_markdown, plural
from waflens.app.scores import WINDOW_HOURS, alert_rate, latest_run_report, production_scores
from waflens.app.session import require_workbench
from waflens.app.state import query

require_workbench()
st.title("Overview")
totals = query("""SELECT (SELECT count(*) FROM requests) AS requests,
                         (SELECT count(*) FROM sessions) AS sessions,
                         (SELECT count(*) FROM quarantine) AS quarantined,
                         (SELECT count(*) FROM sources) AS sources,
                         (SELECT min(ts) FROM requests) AS first_ts,
                         (SELECT max(ts) FROM requests) AS last_ts""").iloc[0]

columns = st.columns(4)
columns[0].metric("Requests", f"{int(totals.requests):,}")
columns[1].metric("Sessions", f"{int(totals.sessions):,}")
columns[2].metric("Quarantined", f"{int(totals.quarantined):,}")
columns[3].metric("Sources", f"{int(totals.sources):,}")
if not totals.requests:
    st.info("No traffic yet: ingest a log on the Data page (or run `waflens demo`).")
    st.stop()

st.subheader("Traffic volume")
st.caption(f"Requests per hour, {totals.first_ts} to {totals.last_ts} (UTC)")
hourly = query("""SELECT date_trunc('hour', ts) AS hour, count(*) AS requests
                  FROM requests WHERE ts IS NOT NULL GROUP BY 1 ORDER BY 1""")
st.bar_chart(hourly, x="hour", y="requests", height=220)

st.subheader("Production model and alerts")
scored = production_scores()
model_column, alert_column, drift_column = st.columns(3)
if scored is None:
    model_column.metric("Production model", "none")
    st.info("No production model yet: the alert rate and score distribution appear once a model version is "
            "promoted (Models page, or `waflens models promote`).")
else:
    model_column.metric("Production model", scored.version)
    alert_column.metric(f"Alert rate (last {WINDOW_HOURS} h)", f"{alert_rate(scored.scores, scored.threshold):.1%}",
                        help=f"Share of the last {WINDOW_HOURS} h's sessions scoring at or above the production "
                             f"model's alert threshold ({scored.threshold:.3f}, the start of its likely_attack class, "
                             "from its manifest): what `waflens retrain` and the Models page count too.")
    sampled = len(scored.scores)
    st.caption(f"Session scores of the last {WINDOW_HOURS} h of traffic ({scored.window_start} to "
               f"{scored.window_end} UTC): {plural(sampled, 'session')} scored"
               + (f" (a sample of {scored.sessions_in_window:,})" if sampled < scored.sessions_in_window else ""))
    figure = go.Figure(go.Histogram(x=scored.scores, nbinsx=50, marker_color=palette.SCORES, name="sessions"))
    figure.add_vline(x=scored.threshold, line_dash="dash", line_color=palette.ALERT_LINE,
                     annotation_text=f"alert threshold ({scored.threshold:.3f})")
    figure.update_layout(height=260, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="score (higher = more anomalous)",
                         yaxis_title="sessions", showlegend=False)
    st.plotly_chart(figure, width="stretch")

report = latest_run_report()
drift = (report or {}).get("drift") or {}
if drift.get("status"):
    drift_column.metric("Drift", str(drift["status"]), help=f"From the latest retrain run report ({report['_file']}).")
    counts = drift.get("counts") or {}
    features = [f for f in drift.get("features") or [] if isinstance(f, dict)]
    if not counts and features:
        for feature in features:
            counts[str(feature.get("status"))] = counts.get(str(feature.get("status")), 0) + 1
    if counts:
        drift_column.caption("features: " + ", ".join(f"{n} {name}" for name, n in counts.items() if n))
    drifting = [str(f.get("name")) for f in features if f.get("status") == "drift"]
    if drifting:
        drift_column.caption("drifting: " + escape_markdown(", ".join(drifting[:8])))
else:
    drift_column.metric("Drift", "—", help="Computed by `waflens retrain` (a cron job) and read from its latest "
                                          "run report.")
    drift_column.caption("not computed yet")

st.subheader("Top emerging clusters")
run = clusters.latest_run()
if run is None:
    st.info("No cluster run yet: run clustering on the Emerging patterns page (or `waflens cluster`).")
else:
    table = clusters.clusters(run)
    emerging = table[table.emerging]
    st.caption(f"Cluster run {run}: {plural(len(table), 'cluster')}, {len(emerging)} emerging "
               f"({int(clusters.needs_review(table).sum())} to review)")
    shown = (emerging if len(emerging) else table).head(10)
    st.dataframe(
        shown.assign(label=[clusters.label_text(row) for _, row in shown.iterrows()])[
            ["cluster_id", "status", "growth", "n_sessions", "n_clients", "n_requests", "first_ts", "last_ts",
             "label"]],
        hide_index=True, width="stretch", column_config={
            key: value for key, value in clusters.CLUSTER_COLUMNS.items() if key != "emerging"})
    links = st.columns(2)
    links[0].page_link("pages/emerging.py", label="Explore emerging patterns", icon=":material/scatter_plot:")
    links[1].page_link("pages/label_queue.py", label="Open the label queue", icon=":material/fact_check:")
