"""Sessions: filter (cluster, client, path, size), page through them with the production model's bot score and its
reasons, drill down to a session's requests."""

import streamlit as st

from waflens.app import clusters, scores
from waflens.app.paging import pager
from waflens.app.render import escape_markdown, plural
from waflens.app.session import require_workbench
from waflens.app.state import query, settings, table_exists

require_workbench()
st.title("Sessions")

incoming = st.session_state.pop("sessions_filter", None)  # from Emerging patterns: a cluster's sessions
if incoming:
    st.session_state["sessions_run"] = incoming.get("run")
    st.session_state["sessions_cluster"] = incoming.get("cluster")
    st.session_state["sessions_client"] = incoming.get("client", "")
    st.session_state["sessions_page"] = 1

has_clusters = clusters.has_clusters()
membership = settings()["membership_threshold"]
labels = table_exists("label_events") and table_exists("session_clusters")

filters = st.columns([1, 2, 2, 2, 1])
run = cluster = None
if has_clusters:
    run_ids = clusters.runs().cluster_run_id.tolist()
    if st.session_state.get("sessions_run") not in run_ids:
        st.session_state["sessions_run"] = run_ids[0]
    run = filters[0].selectbox("Cluster run", run_ids, key="sessions_run")
    cluster_ids = [None, -1] + query("""SELECT cluster_id FROM cluster_profiles WHERE cluster_run_id = $r
                                        ORDER BY cluster_id""", {"r": int(run)}).cluster_id.tolist()
    if st.session_state.get("sessions_cluster") not in cluster_ids:
        st.session_state["sessions_cluster"] = None
    cluster = filters[1].selectbox("Cluster", cluster_ids, key="sessions_cluster",
                                   format_func=lambda c: "any session" if c is None else
                                   ("noise (clustered, no cluster)" if c == -1 else f"cluster {c}"))
client = filters[2].text_input("Client key starts with", key="sessions_client", max_chars=200).strip()
path = filters[3].text_input("A request path contains", key="sessions_path", max_chars=500)
min_requests = filters[4].number_input("Min. requests", min_value=1, value=1, step=1, key="sessions_min")

where, params, joins, extra = ["s.n_requests >= $min"], {"min": int(min_requests)}, "", ""
if cluster is not None:
    joins += " JOIN session_clusters c ON c.session_id = s.session_id AND c.cluster_run_id = $run"
    where.append("c.cluster_id = $cluster")
    params.update(run=int(run), cluster=int(cluster))
    extra += ", c.cluster_id, round(c.probability, 3) AS membership"
    if cluster >= 0 and st.checkbox(f"Only members at or above the membership threshold ({membership:g})",
                                    value=True, key="sessions_members"):
        where.append("c.probability >= $membership")
        params["membership"] = float(membership)
if client:
    where.append("starts_with(s.client_key, $client)")
    params["client"] = client
if path:
    where.append("""EXISTS (SELECT 1 FROM requests r WHERE r.session_id = s.session_id
                            AND contains(r.path_decoded, $path))""")
    params["path"] = path
if labels:
    joins += " LEFT JOIN session_labels sl ON sl.session_id = s.session_id"
    extra += (", CASE WHEN sl.source IS NULL THEN NULL"
              " ELSE sl.verdict || ' ' || sl.family || ' (' || sl.source || ')' END AS label")
condition = " AND ".join(where)

total = int(query(f"SELECT count(*) AS n FROM sessions s {joins} WHERE {condition}", params).n.iloc[0])
page = pager("sessions_page", total, noun="sessions")
rows = query(f"""SELECT s.session_id, s.client_key, s.start_ts, s.end_ts, s.n_requests {extra}
                 FROM sessions s {joins} WHERE {condition}
                 ORDER BY s.start_ts DESC NULLS LAST, s.session_id DESC LIMIT $limit OFFSET $offset""",
             params | {"limit": page.limit, "offset": page.offset})
bots = scores.bot_scores(rows.session_id.tolist()) if len(rows) else None
if bots is not None:   # the production model's bot score: 1 automated .. 99 human (as Cloudflare's)
    rows.insert(5, "bot_score", bots[0])
    rows.insert(6, "bot_reasons", bots[1])
st.dataframe(rows, hide_index=True, width="stretch")

if len(rows):
    st.subheader("Drill down")
    ids = rows.session_id.tolist()
    if st.session_state.get("sessions_selected") not in ids:
        st.session_state["sessions_selected"] = ids[0]
    chosen, client_button = st.columns([3, 1], vertical_alignment="bottom")
    session = chosen.selectbox("Session (from this page)", ids, key="sessions_selected")
    details = rows.set_index("session_id").loc[session]
    if client_button.button("All sessions of this client", icon=":material/person_search:", width="stretch"):
        st.session_state["sessions_filter"] = {"run": run, "cluster": None, "client": details.client_key}
        st.rerun()
    st.caption(f"Session {session}: client {escape_markdown(details.client_key)}, "
               f"{plural(int(details.n_requests), 'request')}, "
               f"{details.start_ts} to {details.end_ts} UTC")
    if has_clusters:
        membership_rows = query("""SELECT c.cluster_run_id, c.cluster_id, round(c.probability, 3) AS membership,
                                          round(c.outlier_score, 3) AS outlier_score
                                   FROM session_clusters c WHERE c.session_id = $s ORDER BY c.cluster_run_id DESC""",
                                {"s": int(session)})
        if len(membership_rows):
            st.dataframe(membership_rows, hide_index=True)
    n_requests = int(query("SELECT count(*) AS n FROM requests WHERE session_id = $s", {"s": int(session)}).n.iloc[0])
    request_page = pager(f"session_requests_page_{session}", n_requests, noun="requests")
    requests = query("""SELECT request_id, ts, method, path, query, status, bytes, user_agent, referer, source_id,
                               record, headers, body
                        FROM requests WHERE session_id = $s ORDER BY ts NULLS LAST, request_id
                        LIMIT $limit OFFSET $offset""",
                     {"s": int(session), "limit": request_page.limit, "offset": request_page.offset})
    st.dataframe(requests.drop(columns=["headers", "body"]), hide_index=True, width="stretch")
    if len(requests):
        request_ids = requests.request_id.tolist()
        shown = st.selectbox("Show one request in full", request_ids, key=f"session_request_{session}")
        request = requests.set_index("request_id").loc[shown]
        lines = [f"{request.method or '-'} {request.path}{'?' + request.query if request.query else ''}",
                 f"status: {request.status}   time: {request.ts}   source {request.source_id}, record {request.record}",
                 f"User-Agent: {request.user_agent if request.user_agent is not None else '-'}",
                 f"Referer: {request.referer if request.referer is not None else '-'}"]
        if isinstance(request.headers, str):
            lines.append(f"headers: {request.headers}")
        if isinstance(request.body, str) and request.body:
            lines.append(f"body: {request.body}")
        st.code("\n".join(lines), language=None, wrap_lines=True)  # as logged, shown as text
