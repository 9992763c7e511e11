import streamlit as st

from app.state import query

st.title("Data")
st.subheader("Sources")
st.dataframe(query("""SELECT source_id, name, format, records, parsed, quarantined, pseudonymized, ingested_at
                      FROM sources ORDER BY source_id"""), hide_index=True)
st.subheader("Quarantine")
st.caption("Records that did not parse, with the reason. Shown as text: log content may be hostile.")
st.dataframe(query("""SELECT q.source_id, s.name AS source, q.record, q.reason, q.raw
                      FROM quarantine q JOIN sources s USING (source_id)
                      ORDER BY q.source_id, q.record LIMIT 1000"""), hide_index=True)
