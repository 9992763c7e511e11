"""Parsing line-oriented logs (Apache/nginx formats, JSON lines) inside DuckDB.

Each batch of raw lines becomes rows of the temporary ``stage`` table: either a
parsed request (``reason`` NULL) or a record for quarantine (``reason`` says why).
The regex comes from :mod:`waflens.data.log_formats`; it and every JSON path are bound as
query parameters, and the SQL around them is assembled only from the fixed
fragments below, so nothing read from a log or typed by a user becomes SQL.
"""

from __future__ import annotations

import re

import duckdb
import pyarrow as pa

from waflens.data.log_formats import STRFTIME_PREFIX, LineFormat
from waflens.data.redaction import MARKER, is_secret_name

STAGE_DDL = """
CREATE OR REPLACE TEMP TABLE stage (
    record BIGINT, raw VARCHAR, reason VARCHAR,
    client_ip VARCHAR, remote_user VARCHAR, session_cookie VARCHAR, vhost VARCHAR,
    ts TIMESTAMP, method VARCHAR, target VARCHAR, protocol VARCHAR,
    status SMALLINT, bytes BIGINT, referer VARCHAR, user_agent VARCHAR,
    duration_ms DOUBLE, headers VARCHAR, body VARCHAR,
    forwarded_for VARCHAR  -- X-Forwarded-For as logged: picks the client (data/redact_stage.py), never stored
)
"""

# How a raw batch becomes text lines: UTF-8 when valid, else Python's backslashreplace
# (Apache's own \xHH convention); line endings stripped; NUL shown as the text \x00.
_LINES = """
SELECT record,
       replace(rtrim(coalesce(try(decode(raw)), waflens_decode_bytes(raw)), chr(13) || chr(10)),
               chr(0), '\\x00') AS line
FROM batch
"""

_UNESCAPE = "regexp_replace({0}, '\\\\([\"\\\\])', '\\1', 'g')"
_CLF_TIME = "try_strptime({0}, '%d/%b/%Y:%H:%M:%S %z')::TIMESTAMP"
_ISO_TIME = "try_cast({0} AS TIMESTAMPTZ)::TIMESTAMP"
_EPOCH_TIME = "to_timestamp(try_cast({0} AS DOUBLE))::TIMESTAMP"
_EPOCH_MS_TIME = "to_timestamp(try_cast({0} AS DOUBLE) / 1000)::TIMESTAMP"
_EPOCH_US_TIME = "to_timestamp(try_cast({0} AS DOUBLE) / 1000000)::TIMESTAMP"


def _strftime_time(field: str) -> str:
    """An Apache %{format}t time: DuckDB's strptime with the format (checked when the LogFormat was compiled), as
    a literal. Without %z in it the time is taken as UTC: Apache writes the server's local time, so give the
    server's zone in the format (%z) where it is not UTC."""
    strptime = field[len(STRFTIME_PREFIX):]
    return "try_strptime({0}, '" + strptime.replace("'", "''").replace("{", "{{").replace("}", "}}") + "')::TIMESTAMP"


# between the pieces of a time written by several %{format}t ("[%{%F %T}t.%{usec_frac}t %{%z}t]"), in the text
# and in the strptime format alike: a character no conversion reads
_PART_SEPARATOR = "|"


def _strftime_parts(names: list[str]) -> list[str]:
    """The %{format}t fields that together write one time, in the format's order: the first, and each later one
    whose conversions none before it has (a zone ``%{%z}t`` after ``%{%F %T}t``, as netnea's "extended" format
    writes it); a later one repeating a conversion (``%{begin:…}t`` and ``%{end:…}t``) is another time, left out."""
    parts, seen = [], set()
    for name in names:
        conversions = set(re.findall(r"%-?(.)", name[len(STRFTIME_PREFIX):]))
        if not parts or not conversions & seen:
            parts.append(name)
            seen |= conversions
    return parts


_REQUEST_PARTS = "regexp_extract({0}, '^(\\S+)\\s+(.*?)(?:\\s+(HTTP/[0-9.]+))?$', ['method', 'target', 'protocol'])"


def _dash(expr: str) -> str:
    return f"nullif(nullif({expr}, '-'), '')"


def _field_sql(fmt: LineFormat, session_cookie: str | None) -> dict[str, str]:
    """Column expressions of ``stage`` for the fields this format has."""
    index = {}
    for i, name in enumerate(fmt.fields):
        index.setdefault(name, f"m.f{i}")
    cookie_fields = [(name.split(":", 1)[1], col) for name, col in index.items() if name.startswith("cookie:")]
    cols: dict[str, str] = {}
    if "client_ip" in index:
        cols["client_ip"] = _dash(index["client_ip"])
    if "remote_user" in index:
        cols["remote_user"] = _dash(_UNESCAPE.format(index["remote_user"]))
    if "vhost" in index:
        cols["vhost"] = _dash(index["vhost"])
    chosen = [col for name, col in cookie_fields if session_cookie is None or name.lower() == session_cookie.lower()]
    if chosen:
        cols["session_cookie"] = _dash(chosen[0])
    times = [(name, template, index.get(name)) for name, template in (
        ("time_clf", _CLF_TIME), ("time_iso8601", _ISO_TIME), ("time_epoch", _EPOCH_TIME),
        ("time_epoch_ms", _EPOCH_MS_TIME), ("time_epoch_us", _EPOCH_US_TIME))]
    strftime = _strftime_parts([name for name in index if name.startswith(STRFTIME_PREFIX)])
    if strftime:   # one time, read from its pieces joined in the text and in the format alike
        joined = _PART_SEPARATOR.join(part[len(STRFTIME_PREFIX):] for part in strftime)
        times.append((strftime[0], _strftime_time(STRFTIME_PREFIX + joined),
                      f" || '{_PART_SEPARATOR}' || ".join(index[part] for part in strftime)))
    for name, template, text in times:
        if name in index:
            cols["ts"] = template.format(text)
            cols["_time_text"] = index[name]
            fraction = next(((index[f], scale) for f, scale in (("time_frac_us", 1), ("time_frac_ms", 1000))
                             if f in index), None)
            if fraction is not None and (name == "time_clf" or name.startswith(STRFTIME_PREFIX)):
                column, scale = fraction   # [%{%F %T}t.%{usec_frac}t]: the second's fraction beside it
                cols["ts"] = f"({cols['ts']} + to_microseconds(coalesce(try_cast({column} AS BIGINT), 0) * {scale}))"
            break
    if "request_line" in index:
        cols["_request"] = _REQUEST_PARTS.format(_UNESCAPE.format(index["request_line"]))
        cols["method"] = "nullif(_request.method, '')"
        cols["target"] = "CASE WHEN _request.method = '' THEN '' ELSE _request.target END"
        cols["protocol"] = "nullif(_request.protocol, '')"
    else:
        if "method" in index:
            cols["method"] = _dash(index["method"])
        if "protocol" in index:
            cols["protocol"] = _dash(index["protocol"])
        if "target" in index:
            cols["target"] = _UNESCAPE.format(index["target"])
        elif "path" in index:
            query = index.get("query")
            query_sql = f"CASE WHEN {query} IN ('', '-', '?') THEN '' ELSE '?' || ltrim({query}, '?') END" if query else "''"
            cols["target"] = f"{_UNESCAPE.format(index['path'])} || {query_sql}"
    if "status" in index:
        cols["status"] = f"try_cast({index['status']} AS SMALLINT)"
    if "bytes" in index:
        cols["bytes"] = f"try_cast({index['bytes']} AS BIGINT)"
    if "referer" in index:
        cols["referer"] = _dash(_UNESCAPE.format(index["referer"]))
    if "user_agent" in index:
        cols["user_agent"] = "nullif(" + _UNESCAPE.format(index["user_agent"]) + ", '-')"
    for name, factor in (("duration_ms", "1.0"), ("duration_us", "0.001"), ("duration_s", "1000.0")):
        if name in index:
            cols["duration_ms"] = f"try_cast({index[name]} AS DOUBLE) * {factor}"
            break
    # fields a quarantined line must not keep even when nothing names them in the text
    cols["_private"] = [col for name, col in index.items()
                        if name == "remote_user" or name.startswith("cookie:")
                        or (name.startswith("header:") and is_secret_name(name[7:]))]
    if "header:x-forwarded-for" in index:
        cols["forwarded_for"] = _dash(index["header:x-forwarded-for"])
    headers = [(name.split(":", 1)[1], col) for name, col in index.items() if name.startswith("header:")]
    if headers:
        cols["_headers_list"] = "[" + ", ".join(f"{col}" for _, col in headers) + "]"
        cols["_header_names"] = [name for name, _ in headers]  # bound as a parameter, see below
    return cols


def stage_line_batch(con: duckdb.DuckDBPyConnection, batch: pa.Table, fmt: LineFormat, *,
                     unwrap_quotes: bool, session_cookie: str | None = None) -> None:
    """Parse one batch of lines with ``fmt`` into the ``stage`` table."""
    cols = _field_sql(fmt, session_cookie)
    header_names = cols.pop("_header_names", None)
    inner = fmt.regex
    if not (inner.startswith("^") and inner.endswith("$")):
        raise ValueError("log format regexes must be anchored with ^ and $")
    pattern = "^(" + inner[1:-1] + ")$"
    names = ["whole"] + [f"f{i}" for i in range(len(fmt.fields))]
    unwrap = ("CASE WHEN strlen(line) > 1 AND starts_with(line, '\"') AND ends_with(line, '\"') "
              "THEN line[2:-2] ELSE line END") if unwrap_quotes else "line"
    time_ok = f"({cols['ts']}) IS NOT NULL OR {_dash(cols['_time_text'])} IS NULL" if "ts" in cols else "true"
    request = f", {cols.pop('_request')} AS _request" if "_request" in cols else ""
    headers_sql = "NULL"
    if "_headers_list" in cols:
        headers_sql = f"to_json(map_from_entries(list_zip($header_names, {cols.pop('_headers_list')})))::VARCHAR"
    cols.pop("_time_text", None)
    raw = "line"   # a line that matched but is rejected (its time) has its private fields masked
    for col in cols.pop("_private"):
        raw = f"replace({raw}, CASE WHEN {col} IN ('', '-') THEN chr(0) ELSE {col} END, $marker)"
    select = ",\n".join(f"{expr} AS {name}" for name, expr in cols.items())
    sql = f"""
        INSERT INTO stage BY NAME
        WITH lines AS ({_LINES}),
        matched AS (
            SELECT record, line, regexp_extract({unwrap}, $pattern, $names) AS m FROM lines
        ),
        typed AS (SELECT * {request} FROM matched),
        judged AS (
            SELECT *,
                   CASE WHEN line = '' THEN 'empty line'
                        WHEN m.whole = '' THEN 'line does not match the ' || $format_name || ' log format'
                        WHEN NOT ({time_ok}) THEN 'timestamp not understood'
                   END AS reason
            FROM typed
        )
        SELECT record, reason,
               CASE WHEN reason IS NOT NULL THEN {raw} END AS raw,  -- kept only for quarantine
               {select}{',' if select else ''}
               {headers_sql} AS headers
        FROM judged
    """
    params = {"pattern": pattern, "names": names, "format_name": fmt.name}
    if "$marker" in raw:
        params["marker"] = MARKER
    if header_names:
        params["header_names"] = header_names
    con.register("batch", batch)
    try:
        con.execute(sql, params)
    finally:
        con.unregister("batch")


# JSON lines: each output column takes the first present of a list of JSON paths.
DEFAULT_JSON_FIELDS: dict[str, list[str]] = {
    "client_ip": ["$.remote_addr", "$.client_ip", "$.\"client.ip\"", "$.client.ip", "$.\"source.ip\"",
                  "$.source.ip", "$.clientip", "$.ip", "$.remote_ip"],
    "remote_user": ["$.remote_user", "$.\"user.name\"", "$.user.name", "$.user"],
    "time": ["$.time_iso8601", "$.\"@timestamp\"", "$.timestamp", "$.time", "$.time_local", "$.ts", "$.msec"],
    "request_line": ["$.request"],
    "method": ["$.request_method", "$.method", "$.\"http.request.method\"", "$.http.request.method"],
    "target": ["$.request_uri", "$.uri", "$.\"url.original\"", "$.url.original", "$.path", "$.url"],
    "query": ["$.args", "$.query_string", "$.\"url.query\"", "$.url.query"],
    "protocol": ["$.server_protocol", "$.protocol", "$.\"http.version\"", "$.http.version"],
    "status": ["$.status", "$.\"http.response.status_code\"", "$.http.response.status_code", "$.response"],
    "bytes": ["$.body_bytes_sent", "$.bytes_sent", "$.\"http.response.body.bytes\"", "$.http.response.body.bytes",
              "$.bytes", "$.size"],
    "referer": ["$.http_referer", "$.referer", "$.referrer", "$.\"http.request.referrer\"", "$.http.request.referrer"],
    "user_agent": ["$.http_user_agent", "$.user_agent", "$.\"user_agent.original\"", "$.user_agent.original",
                   "$.agent", "$.ua"],
    "vhost": ["$.host", "$.server_name", "$.\"url.domain\"", "$.url.domain", "$.vhost"],
    "session_cookie": ["$.session_cookie", "$.cookie_session"],
    "duration_s": ["$.request_time", "$.duration_s"],
    "body": ["$.request_body", "$.body"],
    "forwarded_for": ["$.http_x_forwarded_for", "$.x_forwarded_for", "$.\"http.request.headers.x-forwarded-for\""],
}


def stage_json_batch(con: duckdb.DuckDBPyConnection, batch: pa.Table,
                     fields: dict[str, list[str]] | None = None) -> None:
    """Parse one batch of JSON lines into ``stage`` (paths bound as parameters)."""
    mapping = {**DEFAULT_JSON_FIELDS, **(fields or {})}
    params: dict[str, object] = {}
    exprs: dict[str, str] = {}
    for column, paths in mapping.items():
        params[f"p_{column}"] = list(paths)
        exprs[column] = (f"list_filter(list_transform($p_{column}, lambda p: json_extract_string(j, p)), "
                         f"lambda v: v IS NOT NULL AND v NOT IN ('', '-'))[1]")
    sql = f"""
        INSERT INTO stage BY NAME
        WITH lines AS ({_LINES}),
        parsed AS (
            SELECT record, line, CASE WHEN json_valid(line) THEN line::JSON END AS j FROM lines
        ),
        picked AS (
            SELECT record, line, j, json_type(j) AS jt,
                   {", ".join(f"{expr} AS {name}" for name, expr in exprs.items())}
            FROM parsed
        ),
        shaped AS (
            SELECT *,
                   regexp_extract(coalesce(request_line, ''), '^(\\S+)\\s+(.*?)(?:\\s+(HTTP/[0-9.]+))?$',
                                  ['method', 'target', 'protocol']) AS _request,
                   coalesce(try_cast(time AS TIMESTAMPTZ)::TIMESTAMP,
                            try_strptime(time, '%d/%b/%Y:%H:%M:%S %z')::TIMESTAMP,
                            to_timestamp(try_cast(time AS DOUBLE))::TIMESTAMP) AS parsed_ts
            FROM picked
        ),
        judged AS (
            SELECT *,
                   CASE WHEN line = '' THEN 'empty line'
                        WHEN j IS NULL THEN 'not valid JSON'
                        WHEN jt <> 'OBJECT' THEN 'JSON value is not an object'
                        WHEN request_line IS NULL AND target IS NULL
                            THEN 'no request field (map one with --json-field target=$.path)'
                        WHEN time IS NOT NULL AND parsed_ts IS NULL THEN 'timestamp not understood'
                   END AS reason
            FROM shaped
        )
        SELECT record, reason, CASE WHEN reason IS NOT NULL THEN line END AS raw,
               client_ip, remote_user, session_cookie, vhost, parsed_ts AS ts,
               coalesce(method, nullif(_request.method, '')) AS method,
               coalesce(target || CASE WHEN query IS NOT NULL AND NOT contains(target, '?')
                                       THEN '?' || ltrim(query, '?') ELSE '' END,
                        _request.target, '') AS target,
               coalesce(protocol, nullif(_request.protocol, '')) AS protocol,
               try_cast(try_cast(status AS DOUBLE) AS SMALLINT) AS status,
               try_cast(try_cast(bytes AS DOUBLE) AS BIGINT) AS bytes,
               referer, user_agent,
               try_cast(duration_s AS DOUBLE) * 1000.0 AS duration_ms,
               NULL AS headers, body, forwarded_for
        FROM judged
    """
    con.register("batch", batch)
    try:
        con.execute(sql, params)
    finally:
        con.unregister("batch")


# --- the fast path for common/combined lines (see data/clf_kernel.py) ---

_FAST_INSERT = """
INSERT INTO stage BY NAME
SELECT record,
       NULL AS reason,
       NULL AS raw,
       nullif(vhost, '') AS vhost,
       nullif(client_ip, '-') AS client_ip,
       nullif(CASE WHEN escaped THEN {unescape_user} ELSE remote_user END, '-') AS remote_user,
       ts,
       nullif(CASE WHEN escaped THEN {unescape_method} ELSE method END, '') AS method,
       CASE WHEN escaped THEN {unescape_target} ELSE target END AS target,
       nullif(CASE WHEN escaped THEN {unescape_protocol} ELSE protocol END, '') AS protocol,
       status,
       bytes,
       nullif(nullif(CASE WHEN escaped THEN {unescape_referer} ELSE referer END, '-'), '') AS referer,
       nullif(CASE WHEN escaped THEN {unescape_agent} ELSE user_agent END, '-') AS user_agent
FROM fast_rows
""".format(unescape_user=_UNESCAPE.format("remote_user"), unescape_method=_UNESCAPE.format("method"),
           unescape_protocol=_UNESCAPE.format("protocol"), unescape_target=_UNESCAPE.format("target"),
           unescape_referer=_UNESCAPE.format("referer"), unescape_agent=_UNESCAPE.format("user_agent"))

_FAST_COLUMNS = ("vhost", "client_ip", "remote_user", "method", "target", "protocol", "referer", "user_agent")


def stage_clf_batch(con: duckdb.DuckDBPyConnection, content: bytes, starts, ends, first_record: int,
                    fmt: LineFormat) -> None:
    """Common/combined lines: the numba kernel parses what it can, RE2 the rest."""
    import numpy as np

    from waflens.data import clf_kernel
    from waflens.data.log_file import binary_lines

    buffer = np.frombuffer(content, dtype=np.uint8)
    ok, spans, status, size, ts_us, escaped = clf_kernel.parse_clf(buffer, starts, ends)
    rows = np.flatnonzero(ok)
    records = np.arange(first_record, first_record + starts.size, dtype=np.int64)
    if rows.size:
        fields = clf_kernel.string_columns(buffer, spans, rows, _FAST_COLUMNS)
        table = pa.table({
            "record": pa.array(records[rows]),
            **fields,
            "ts": pa.array(ts_us[rows], pa.timestamp("us")),
            "status": pa.array(status[rows], mask=status[rows] < 0),
            "bytes": pa.array(size[rows], mask=size[rows] < 0),
            "escaped": pa.array(escaped[rows]),
        })
        con.register("fast_rows", table)
        try:
            con.execute(_FAST_INSERT)
        finally:
            con.unregister("fast_rows")
    slow = np.flatnonzero(~ok)
    if slow.size:
        batch = binary_lines(content, starts[slow], ends[slow], records[slow])
        stage_line_batch(con, batch, fmt, unwrap_quotes=True)
