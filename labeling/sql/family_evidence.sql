-- What the offline summarizer judges a cluster's payloads on: up to $max_sessions member sessions
-- (a deterministic sample, by hash) and up to $per_session of each one's distinct requests (also a sample by hash).
WITH members AS (
    SELECT session_id FROM session_clusters
    WHERE cluster_run_id = $run AND cluster_id = $cluster
    ORDER BY hash(session_id), session_id
    LIMIT $max_sessions
), distinct_requests AS (
    SELECT r.session_id, coalesce(r.method, '-') AS method, r.path_decoded, r.query_decoded,
           coalesce(r.body, '') AS body, coalesce(r.user_agent, '') AS user_agent, coalesce(r.referer, '') AS referer,
           any_value(r.status) AS status, max(r.request_id) AS request_id
    FROM members m JOIN requests r USING (session_id)
    GROUP BY ALL
), ranked AS (
    SELECT *, row_number() OVER (PARTITION BY session_id ORDER BY hash(request_id), request_id) AS k
    FROM distinct_requests
)
SELECT session_id, method, path_decoded, query_decoded, body, user_agent, referer, status
FROM ranked WHERE k <= $per_session
ORDER BY session_id, k
