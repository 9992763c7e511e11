"""Data: sources, ingest history, the quarantine browser, and uploading a log file to ingest."""

from pathlib import Path

import streamlit as st

from waflens.app.jobs import finish, run_cli, show_finished
from waflens.app.paging import pager
from waflens.app.uploads import store_upload
from waflens.app.session import require_workbench
from waflens.app.render import escape_markdown
from waflens.app.state import config, query, refuse_traffic_write, spark_output
from waflens.data.errors import EXIT_NOTHING_PARSED

FORMATS = ["auto", "combined", "common", "json", "raw-http"]

require_workbench()
st.title("Data")
spark_directory = spark_output()
if spark_directory:
    st.info(f"This database reads the Spark output in {escape_markdown(spark_directory)} (`waflens spark attach`): "
            "its sources, requests and quarantine are that directory's Parquet, and cannot be changed here. Run the "
            "Spark steps on new logs (`waflens spark ingest|features|sessionize`), then `waflens spark attach` again.",
            icon=":material/info:")

st.subheader("Sources")
st.caption("One row per source name (as given with --source, else the file name).")
st.dataframe(query("""SELECT name AS source, count(*) AS files, sum(records) AS records, sum(parsed) AS parsed,
                             sum(quarantined) AS quarantined, min(ingested_at) AS first_ingest,
                             max(ingested_at) AS last_ingest
                      FROM sources GROUP BY name ORDER BY max(ingested_at) DESC"""),
             hide_index=True, width="stretch")

st.subheader("Ingest history")
history = query("""SELECT source_id, name, path, format, records, parsed, quarantined, pseudonymized, ingested_at,
                          sha256
                   FROM sources ORDER BY source_id DESC""")
st.dataframe(history.drop(columns=["path", "sha256"]), hide_index=True, width="stretch")

with st.expander("Forget a source (e.g. a file ingested with the wrong format)"):
    st.caption("Removes the file's requests, the sessions built from them (their cluster memberships too), its "
               "quarantine rows and its ingest record, in one transaction; the file can then be ingested again.")
    choices = [int(r.source_id) for r in history.itertuples()]
    names = {int(r.source_id): f"{r.source_id}: {r.name} ({r.parsed:,} parsed + {r.quarantined:,} quarantined)"
             for r in history.itertuples()}
    chosen = st.selectbox("Source", choices, key="forget_source", format_func=lambda s: names[s])
    sure = st.checkbox("Yes, forget it", key="forget_confirm")
    if st.button("Forget source", key="forget_button", disabled=not (choices and sure)) \
            and not refuse_traffic_write("sources forget"):
        result = run_cli(["sources", "forget", str(chosen), "--yes"], f"Forgetting source {chosen}")
        if result.code == 0 and result.summary:
            finish("forget", f"Forgot source {chosen}: {result.summary['requests']:,} requests, "
                             f"{result.summary['quarantined']:,} quarantined records, "
                             f"{result.summary['sessions']:,} sessions.", result)
show_finished("forget")

st.subheader("Quarantine")
st.caption("Records that did not parse, with the reason. Shown as text: log content may be hostile.")
source_names = {int(r.source_id): f"{r.source_id}: {r.name}" for r in history.itertuples()}
left, right = st.columns(2)
source = left.selectbox("Source", [None, *source_names], key="quarantine_source",
                        format_func=lambda s: "all sources" if s is None else source_names[s])
reason = right.text_input("Reason contains", key="quarantine_reason", max_chars=200)
where, params = ["true"], {}
if source is not None:
    where.append("q.source_id = $source")
    params["source"] = int(source)
if reason:
    where.append("contains(lower(q.reason), lower($reason))")
    params["reason"] = reason
condition = " AND ".join(where)
total = int(query(f"SELECT count(*) AS n FROM quarantine q WHERE {condition}", params).n.iloc[0])
page = pager("quarantine_page", total, noun="quarantined records")
rows = query(f"""SELECT q.source_id, s.name AS source, q.record, q.reason, q.raw
                 FROM quarantine q JOIN sources s USING (source_id) WHERE {condition}
                 ORDER BY q.source_id, q.record LIMIT $limit OFFSET $offset""",
             params | {"limit": page.limit, "offset": page.offset})
st.dataframe(rows, hide_index=True, width="stretch")
if len(rows):
    keys = [f"{r.source_id}:{r.record}" for r in rows.itertuples()]
    shown = st.selectbox("Show one record in full", keys, key="quarantine_record")
    record = rows.iloc[keys.index(shown)]
    st.code(record.raw, language=None, wrap_lines=True)

st.subheader("Upload a log file")
st.caption("Access logs (Apache/nginx), JSON lines or raw HTTP dumps, optionally gzip-compressed. The file is saved "
           "beside the database (uploads/, readable by its owner only) and ingested by `waflens ingest` in its own "
           "process, with the same bounds (WAFLENS_MAX_INPUT_BYTES, gzip ratio); a file ingested before adds "
           "nothing, unless nothing of it parsed then.")
with st.form("upload", clear_on_submit=False):
    upload = st.file_uploader("Log file", key="upload_file")
    columns = st.columns(2)
    fmt = columns[0].selectbox("Format", FORMATS, key="upload_format")
    name = columns[1].text_input("Source name (default: the file name)", key="upload_source", max_chars=200)
    submitted = st.form_submit_button("Ingest", icon=":material/upload:", type="primary")
if submitted:
    if upload is None:
        st.warning("Choose a file first.")
    elif not refuse_traffic_write("ingest"):
        target = store_upload(config().uploads_dir, upload.name, upload.getvalue())
        safe = target.name
        source_name = name.strip() or Path(upload.name).name   # what the field promises: the file's own name
        arguments = ["ingest", str(target), "--format", fmt, "--source", source_name]
        result = run_cli(arguments, f"Ingesting {safe}", ok_codes=(0, EXIT_NOTHING_PARSED))
        for file in (result.summary or {}).get("files", []):
            if file["status"] in ("ingested", "re-ingested"):
                finish("upload", f"{safe}: {file['records']:,} records = {file['parsed']:,} parsed + "
                                 f"{file['quarantined']:,} quarantined ({file['format']}); "
                                 f"{result.summary.get('sessions') or 0:,} sessions in total."
                                 + (f" {file.get('hint')}." if file["status"] == "re-ingested" else ""), result)
            elif file["status"] == "nothing parsed":  # exit 7: every record quarantined
                finish("upload", f"{safe}: none of its {file['records']:,} records parsed as {file['format']}: "
                                 f"{file.get('hint')}. Upload it again with another format: that replaces "
                                 "this attempt.", result, kind="warning")
            else:
                finish("upload", f"{safe} was ingested before (same content): nothing added.", result, kind="info")
show_finished("upload")
