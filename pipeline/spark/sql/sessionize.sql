-- Sessions with window functions: the rules of data/sql/sessionize.sql over every request at once.
-- A session is a run of one client's requests with no gap longer than :gap_micros; requests without a time
-- (raw HTTP dumps) sort last and never start a session; ties in time go by request_id.
-- session_id = the smallest request_id of the session. Reads the view `requests`.
WITH ordered AS (
    SELECT request_id, client_key, ts,
           lag(ts) OVER (PARTITION BY client_key ORDER BY ts ASC NULLS LAST, request_id) AS prev_ts,
           row_number() OVER (PARTITION BY client_key ORDER BY ts ASC NULLS LAST, request_id) AS position
    FROM requests
), flagged AS (
    SELECT *,
           CASE WHEN position = 1 THEN 1
                WHEN ts IS NOT NULL AND prev_ts IS NOT NULL AND unix_micros(ts) - unix_micros(prev_ts) > :gap_micros
                     THEN 1
                ELSE 0 END AS starts_session
    FROM ordered
), numbered AS (
    SELECT *,
           sum(starts_session) OVER (PARTITION BY client_key ORDER BY ts ASC NULLS LAST, request_id
                                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS session_number
    FROM flagged
)
SELECT request_id, client_key, ts,
       min(request_id) OVER (PARTITION BY client_key, session_number) AS session_id
FROM numbered
