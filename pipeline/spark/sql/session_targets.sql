-- DuckDB, run by each `waflens spark sessionize` task on its requests after sessionizing: the targets the
-- clustering documents are made of (waflens.clustering.matrix.session_documents), per session: its first
-- $max_targets distinct decoded path?query targets, each with the request that first asked for it. A client's
-- first targets are among its sessions' first ones, so these rows rebuild both parts of a document
-- (`waflens spark cluster` feeds them to clustering/sql/first_targets.sql). Written to DIR/session_targets.
WITH firsts AS (
    SELECT session_id,
           path_decoded || CASE WHEN query_decoded <> '' THEN '?' || query_decoded ELSE '' END AS target,
           min(request_id) AS request_id,
           arg_min(path_decoded, request_id) AS path_decoded,
           arg_min(query_decoded, request_id) AS query_decoded
    FROM requests
    GROUP BY ALL
)
SELECT session_id, request_id, path_decoded, query_decoded FROM firsts
QUALIFY row_number() OVER (PARTITION BY session_id ORDER BY request_id) <= $max_targets
