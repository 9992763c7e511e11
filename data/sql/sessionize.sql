-- Incremental sessionization. A session is a run of one client's requests with no gap longer than
-- $gap_seconds. Only clients with unsessionized requests are touched, from the first of their
-- sessions that a new request could join or bridge; untimed requests (raw HTTP dumps) recompute
-- their client entirely, in file order. session_id = the smallest request_id of the session.
CREATE OR REPLACE TEMP TABLE pending_clients AS
SELECT client_key, min(ts) AS min_ts, bool_or(ts IS NULL) AS has_untimed
FROM requests
WHERE session_id IS NULL
GROUP BY client_key;

CREATE OR REPLACE TEMP TABLE recompute_from AS
SELECT p.client_key,
       CASE WHEN p.has_untimed OR p.min_ts IS NULL OR bool_or(s.start_ts IS NULL) THEN NULL
            ELSE least(p.min_ts, coalesce(min(s.start_ts), p.min_ts)) END AS from_ts,
       p.has_untimed OR p.min_ts IS NULL OR bool_or(s.start_ts IS NULL) AS whole_client
FROM pending_clients AS p
LEFT JOIN sessions AS s
       ON s.client_key = p.client_key
      AND (s.end_ts IS NULL OR p.min_ts IS NULL OR s.end_ts >= p.min_ts - to_seconds($gap_seconds))
GROUP BY p.client_key, p.min_ts, p.has_untimed;

CREATE OR REPLACE TEMP TABLE reset_requests AS
SELECT r.request_id, r.client_key, r.ts, r.session_id AS old_session_id
FROM requests AS r
JOIN recompute_from AS c USING (client_key)
WHERE c.whole_client OR r.session_id IS NULL OR r.ts >= c.from_ts;

CREATE OR REPLACE TEMP TABLE dropped_sessions AS
SELECT DISTINCT old_session_id AS session_id FROM reset_requests WHERE old_session_id IS NOT NULL;

DELETE FROM sessions WHERE session_id IN (SELECT session_id FROM dropped_sessions);

DELETE FROM session_features WHERE session_id IN (SELECT session_id FROM dropped_sessions);

CREATE OR REPLACE TEMP TABLE assigned AS
WITH ordered AS (
    SELECT request_id, client_key, ts,
           lag(ts) OVER w AS prev_ts,
           row_number() OVER w AS position
    FROM reset_requests
    WINDOW w AS (PARTITION BY client_key ORDER BY ts NULLS LAST, request_id)
), flagged AS (
    SELECT *,
           CASE WHEN position = 1 THEN 1
                WHEN ts IS NOT NULL AND prev_ts IS NOT NULL AND ts - prev_ts > to_seconds($gap_seconds) THEN 1
                ELSE 0 END AS starts_session
    FROM ordered
), numbered AS (
    SELECT *,
           sum(starts_session) OVER (PARTITION BY client_key ORDER BY ts NULLS LAST, request_id
                                     ROWS UNBOUNDED PRECEDING) AS session_number
    FROM flagged
)
SELECT request_id, client_key, ts,
       min(request_id) OVER (PARTITION BY client_key, session_number) AS session_id
FROM numbered;

UPDATE requests SET session_id = a.session_id
FROM assigned AS a
WHERE requests.request_id = a.request_id;

INSERT INTO sessions
SELECT session_id, any_value(client_key), min(ts), max(ts), count(*), min(request_id), max(request_id)
FROM assigned
GROUP BY session_id;

CREATE OR REPLACE TEMP TABLE touched_sessions AS SELECT DISTINCT session_id FROM assigned;
