-- The targets the clustering documents are made of (waflens.clustering.matrix.session_documents), per chosen
-- session: its first :max_targets distinct decoded path?query targets, each with the request that first asked
-- for it. A client's first targets are among its sessions' first ones, so these rows rebuild both the session's
-- and its client's part of a document. Reads the views `requests`, `request_sessions` and `chosen` (session_id).
WITH targets AS (
    SELECT m.session_id, r.request_id, r.client_key, r.path_decoded, r.query_decoded,
           concat(r.path_decoded, CASE WHEN r.query_decoded <> '' THEN concat('?', r.query_decoded) ELSE '' END) AS target
    FROM requests AS r
    JOIN request_sessions AS m ON m.request_id = r.request_id
    JOIN chosen AS c ON c.session_id = m.session_id
), firsts AS (
    SELECT *, row_number() OVER (PARTITION BY session_id, target ORDER BY request_id) AS nth FROM targets
), ranked AS (
    SELECT *, row_number() OVER (PARTITION BY session_id ORDER BY request_id) AS rank FROM firsts WHERE nth = 1
)
SELECT session_id, request_id, client_key, path_decoded, query_decoded FROM ranked WHERE rank <= :max_targets
