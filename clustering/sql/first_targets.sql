-- The first $max_targets distinct targets (decoded path?query, in order of first request) of each wanted
-- session and of each returning client, in ONE scan of requests: a client's targets are read from its
-- sessions' (the earliest request of a target over the client's sessions is the earliest of its sessions'
-- earliest). Separator: chr(31), the ASCII unit separator (see clustering/matrix.py TARGET_SEPARATOR).
-- Inputs: wanted_sessions(session_id, returning_client) registered by the caller; returning_client: the session's client
-- has more than one wanted session. Output rows: (session_id, NULL, targets) or (NULL, client_key, targets).
WITH targets AS (
    SELECT r.client_key, r.session_id, w.returning_client,
           r.path_decoded || CASE WHEN r.query_decoded <> '' THEN '?' || r.query_decoded ELSE '' END AS target,
           min(r.request_id) AS first_id
    FROM requests r JOIN wanted_sessions w USING (session_id)
    GROUP BY ALL
), session_firsts AS (
    SELECT session_id, target, first_id FROM targets
    QUALIFY row_number() OVER (PARTITION BY session_id ORDER BY first_id) <= $max_targets
), client_targets AS (
    SELECT client_key, target, min(first_id) AS first_id FROM targets WHERE returning_client GROUP BY ALL
), client_firsts AS (
    SELECT * FROM client_targets
    QUALIFY row_number() OVER (PARTITION BY client_key ORDER BY first_id) <= $max_targets
)
SELECT session_id, NULL::VARCHAR AS client_key, string_agg(target, chr(31) ORDER BY first_id) AS targets
FROM session_firsts GROUP BY session_id
UNION ALL
SELECT NULL::BIGINT, client_key, string_agg(target, chr(31) ORDER BY first_id) FROM client_firsts GROUP BY client_key
