"""Emerging patterns: clusters by emergence, the 2-D map, and one cluster's profile, timeline and exemplars."""

import pandas as pd
import plotly.express as px
import streamlit as st

from waflens.app import clusters
from waflens.app.jobs import finish, run_cli, show_finished
from waflens.app.palette import colour_map
from waflens.app.render import clip, escape_markdown, number, plot_text, plural
from waflens.app.session import require_workbench
from waflens.app.state import database_path, query, settings

MAP_POINTS = 20_000
NUMBER_COLUMNS = {name: st.column_config.NumberColumn(name, format="%.3g") for name in
                  ("cluster_mean", "background_mean", "effect_size", "probability",
                   "membership", "outlier_score")}

require_workbench()
st.title("Emerging patterns")
if not clusters.has_clusters():
    st.info("No cluster run yet. Clustering groups the suspicious sessions of a window; summarizing proposes a "
            "label for each cluster.")
else:
    all_runs = clusters.runs()
    newest = st.session_state.pop("emerging_run_pending", None)
    if newest in all_runs.cluster_run_id.tolist():
        st.session_state["emerging_run"] = newest
    created = all_runs.set_index("cluster_run_id").created_at
    run = st.selectbox("Cluster run", all_runs.cluster_run_id.tolist(), key="emerging_run",
                       format_func=lambda r: f"run {r} (created {created[r]:%Y-%m-%d %H:%M} UTC)")
    meta = all_runs.set_index("cluster_run_id").loc[run]
    st.caption(f"{int(meta.n_selected):,} of {plural(int(meta.n_sessions), 'session')} clustered into "
               f"{plural(int(meta.n_clusters), 'cluster')} ({int(meta.n_noise):,} noise); "
               f"{clusters.window_text(meta.window_start, meta.window_end)}"
               + (f". {meta.message}" if isinstance(meta.message, str) and meta.message else ""))
    table = clusters.clusters(int(run))
    if table.empty:
        st.info("This run has no clusters.")
    else:
        shown = table.assign(label=[clusters.label_text(row) for _, row in table.iterrows()])
        # The map, then the table under it at full width: side by side, the table lost its right-hand columns.
        colour = st.radio("Map of the clustered sessions, coloured by", ["status", "family", "verdict", "cluster"],
                          horizontal=True, key="map_colour")
        points = query(f"""SELECT c.session_id, c.cluster_id, c.map_x, c.map_y, c.probability
                           FROM session_clusters c WHERE c.cluster_run_id = $run
                           ORDER BY hash(c.session_id) LIMIT {MAP_POINTS}""", {"run": int(run)})
        points = points.merge(shown[["cluster_id", "status", "family", "verdict"]], on="cluster_id", how="left")
        points["cluster"] = points.cluster_id.map(lambda c: "noise" if c < 0 else f"cluster {c}")
        for column in ("status", "family", "verdict"):
            points[column] = points[column].fillna("noise" if column == "status" else "unlabelled")
            points.loc[points.cluster_id < 0, column] = "noise"
            points[column] = points[column].map(plot_text)   # labels reach the legend and the hover box
        points["membership"] = points.probability.map(lambda p: number(p, 3))
        colours = colour_map(colour, points[colour])
        figure = px.scatter(points, x="map_x", y="map_y", color=colour,
                            hover_data={"session_id": True, "membership": True, "map_x": False, "map_y": False,
                                        **({} if colour == "cluster" else {"cluster": True})},
                            opacity=0.75, height=380, color_discrete_map=colours,
                            category_orders={colour: list(colours)})
        figure.update_traces(marker=dict(size=7))
        figure.update_layout(margin=dict(l=10, r=10, t=10, b=10), xaxis_title=None, yaxis_title=None,
                             legend_title_text=colour)
        st.plotly_chart(figure, width="stretch")

        st.markdown("**Clusters, most emerging first** (clusters labelled benign last)")
        st.dataframe(shown[["cluster_id", "emerging", "status", "growth", "n_sessions", "n_clients", "n_requests",
                            "first_ts", "last_ts", "label"]], hide_index=True, width="stretch",
                     column_config=clusters.CLUSTER_COLUMNS)

        st.subheader("Cluster")
        ids = table.cluster_id.tolist()
        if st.session_state.get("emerging_cluster") not in ids:
            st.session_state["emerging_cluster"] = ids[0]
        by_id = table.set_index("cluster_id")
        cluster = st.selectbox("Cluster", ids, key="emerging_cluster",
                               format_func=lambda c: clusters.cluster_caption(
                                   by_id.loc[c].to_dict() | {"cluster_id": c}))
        row = by_id.loc[cluster]
        profile = clusters.profile(int(run), int(cluster))
        summary = clusters.summary(row.to_dict())
        metrics = st.columns(5)
        metrics[0].metric("Sessions", f"{int(row.n_sessions):,}")
        metrics[1].metric("Clients", f"{int(row.n_clients):,}")
        metrics[2].metric("Requests", f"{int(row.n_requests):,}")
        metrics[3].metric("Status", str(row.status))
        metrics[4].metric("Growth", "new" if pd.isna(row.growth) else f"×{row.growth:.2f}")
        if summary:
            st.text(f"Proposed: {summary.get('title', '')} — {summary.get('verdict')} {summary.get('family')} "
                    f"(confidence {float(summary.get('confidence') or 0):.0%})")
        actions = st.columns(2)
        if actions[0].button("Review in the label queue", key="to_queue", icon=":material/fact_check:"):
            st.session_state["queue_pending"] = int(cluster)
            st.session_state["queue_show_all"] = True
            st.switch_page("pages/label_queue.py")
        if actions[1].button("Show its sessions", key="to_sessions", icon=":material/list_alt:"):
            st.session_state["sessions_filter"] = {"run": int(run), "cluster": int(cluster)}
            st.switch_page("pages/sessions.py")

        left, right = st.columns(2)
        with left:
            st.markdown("**Top paths** (digits as {n})")
            st.dataframe(pd.DataFrame(profile.get("top_paths", []), columns=["path", "requests"]), hide_index=True,
                         width="stretch")
            st.markdown("**Top parameters**")
            st.dataframe(pd.DataFrame(profile.get("top_params", []), columns=["parameter", "requests"]),
                         hide_index=True, width="stretch")
        with right:
            st.markdown("**Top user agents**")
            st.dataframe(pd.DataFrame(profile.get("top_user_agents", []), columns=["user agent", "requests"]),
                         hide_index=True, width="stretch")
            st.markdown("**Statuses**")
            st.dataframe(pd.DataFrame(profile.get("statuses", []), columns=["status", "requests"]), hide_index=True,
                         width="stretch")
        st.markdown("**What sets it apart** (session features against the window's other sessions; effect = Cohen's d)")
        st.dataframe(pd.DataFrame(profile.get("distinguishing_features", [])), hide_index=True, width="stretch",
                     column_config=NUMBER_COLUMNS)

        st.markdown("**Timeline** (requests per hour of the cluster's sessions)")
        timeline = query("""SELECT date_trunc('hour', r.ts) AS hour, count(*) AS requests
                            FROM session_clusters c JOIN requests r USING (session_id)
                            WHERE c.cluster_run_id = $run AND c.cluster_id = $c AND r.ts IS NOT NULL
                            GROUP BY 1 ORDER BY 1""", {"run": int(run), "c": int(cluster)})
        if len(timeline):
            st.line_chart(timeline, x="hour", y="requests", height=200)
        st.markdown("**Exemplar requests** (most typical sessions first, then boundary ones; shown as text)")
        exemplars = pd.DataFrame(profile.get("exemplar_requests", []))
        if len(exemplars):
            typical = set(profile.get("typical_sessions", []))
            exemplars.insert(0, "kind", exemplars.session_id.map(lambda s: "typical" if s in typical else "boundary"))
            exemplars["user_agent"] = exemplars.user_agent.map(clip)
            st.dataframe(exemplars, hide_index=True, width="stretch")

st.divider()
st.subheader("Run the pipeline")
st.caption("Each step runs as a `waflens` command in its own process (so a cron retrain can still write); "
           "the settings' minimum cluster size and the operator's LLM configuration (see Settings) apply.")
show_finished("emerging")
config = settings()
steps = st.columns(2)
if steps[0].button("Cluster the suspicious sessions", key="run_cluster", icon=":material/hub:"):
    result = run_cli(["cluster", "--min-cluster-size", str(config["min_cluster_size"])], "Clustering")
    if result.ok and result.summary:
        done = result.summary
        st.session_state["emerging_run_pending"] = done.get("cluster_run_id")
        finish("emerging", f"Cluster run {done.get('cluster_run_id')}: {done.get('n_selected', 0):,} sessions in "
                           f"{done.get('n_clusters', 0)} clusters, emerging: {done.get('emerging') or 'none'}"
                           + (f". {done['message']}" if done.get("message") else ""), result)
if steps[1].button("Summarize the latest run", key="run_summarize", icon=":material/summarize:",
                   disabled=not clusters.has_clusters()):
    # the LLM's endpoint and key come from the environment or the operator's file, never from the database
    from waflens.data.errors import ConfigError
    from waflens.labeling.llm_config import load_llm_config

    try:
        llm = load_llm_config(database_path())
    except ConfigError as error:
        st.error(escape_markdown(error))
        st.stop()
    result = run_cli(["summarize", "--provider", llm.provider], f"Summarizing with the {llm.provider} provider",
                     env=llm.environment())
    if result.ok and result.summary:
        proposed = result.summary.get("clusters", [])
        failed = [c for c in proposed if str(c.get("status", "")).startswith("error")]
        finish("emerging", f"Run {result.summary.get('cluster_run_id')}: {len(proposed) - len(failed)} clusters have a "
                           f"proposed label" + (f", {len(failed)} failed" if failed else "")
                           + "; review them in the label queue.", result, kind="warning" if failed else "success")
