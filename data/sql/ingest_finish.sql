-- Move the parsed rows of the temporary `stage` table into `requests`. Client identifiers are
-- replaced by their tokens from the temporary `pseudonyms` table (built in Python with the key).
INSERT INTO requests BY NAME
WITH parsed AS (
    SELECT *,
           CASE WHEN starts_with(target, '/') THEN target
                ELSE regexp_replace(coalesce(target, ''), '^[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*', '') END AS origin_target
    FROM stage
    WHERE reason IS NULL
), split AS (
    SELECT *,
           CASE WHEN strpos(origin_target, '?') > 0 THEN origin_target[1:strpos(origin_target, '?') - 1]
                ELSE origin_target END AS path,
           CASE WHEN strpos(origin_target, '?') > 0 THEN origin_target[strpos(origin_target, '?') + 1:]
                ELSE '' END AS query
    FROM parsed
)
SELECT
    $base_request_id + s.record AS request_id,   -- increasing in file order; gaps where records were quarantined
    $source_id AS source_id,
    s.record,
    s.ts,
    waflens_client_key(ip.token, s.user_agent, cookie.token, $session_key) AS client_key,
    ip.token AS client_ip,
    usr.token AS remote_user,
    cookie.token AS session_cookie,
    s.vhost,
    s.method,
    s.path,
    s.query,
    waflens_url_decode(s.path, false) AS path_decoded,
    waflens_url_decode(s.query, true) AS query_decoded,
    s.protocol,
    s.status,
    s.bytes,
    s.referer,
    s.user_agent,
    s.duration_ms,
    s.headers,
    s.body,
    NULL AS session_id
FROM split AS s
LEFT JOIN pseudonyms AS ip ON ip.value = s.client_ip
LEFT JOIN pseudonyms AS usr ON usr.value = s.remote_user
LEFT JOIN pseudonyms AS cookie ON cookie.value = s.session_cookie;
