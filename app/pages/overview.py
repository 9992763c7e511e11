import streamlit as st

from app.state import database_path, query

st.title("Overview")
totals = query("""SELECT (SELECT count(*) FROM requests) AS requests,
                         (SELECT count(*) FROM sessions) AS sessions,
                         (SELECT count(*) FROM quarantine) AS quarantined,
                         (SELECT count(*) FROM sources) AS sources,
                         (SELECT min(ts) FROM requests) AS first_ts,
                         (SELECT max(ts) FROM requests) AS last_ts""").iloc[0]

st.caption(f"Database: {database_path()}")
columns = st.columns(4)
columns[0].metric("Requests", f"{int(totals.requests):,}")
columns[1].metric("Sessions", f"{int(totals.sessions):,}")
columns[2].metric("Quarantined", f"{int(totals.quarantined):,}")
columns[3].metric("Sources", f"{int(totals.sources):,}")
if totals.requests:
    st.caption(f"Traffic from {totals.first_ts} to {totals.last_ts} (UTC)")
    hourly = query("""SELECT date_trunc('hour', ts) AS hour, count(*) AS requests
                      FROM requests WHERE ts IS NOT NULL GROUP BY 1 ORDER BY 1""")
    st.subheader("Requests per hour")
    st.bar_chart(hourly, x="hour", y="requests")
st.info("Clusters, labels and models arrive with the next milestones (see the README's roadmap).")
