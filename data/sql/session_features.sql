-- Session features (definitions in data/feature_spec.py) for the sessions in the temporary table
-- touched_sessions, from their requests and request features.
DELETE FROM session_features WHERE session_id IN (SELECT session_id FROM touched_sessions);

INSERT INTO session_features BY NAME
WITH member AS (
    SELECT r.session_id, r.request_id, r.ts, r.method, r.status, r.path_decoded,
           coalesce(r.user_agent, '') AS user_agent,
           list_transform(list_filter(string_split(r.query, '&') || string_split(coalesce(r.body, ''), '&'),
                                      lambda x: x <> ''),
                          lambda x: split_part(x, '=', 1)) AS param_names,
           f.*
    FROM requests AS r
    JOIN request_features AS f USING (request_id)
    WHERE r.session_id IN (SELECT session_id FROM touched_sessions)
), ordered AS (
    SELECT *,
           epoch(ts - lag(ts) OVER w) AS iat,
           row_number() OVER w AS position
    FROM member
    WINDOW w AS (PARTITION BY session_id ORDER BY ts NULLS LAST, request_id)
)
SELECT
    session_id,
    count(*) AS n_requests,
    coalesce(epoch(max(ts) - min(ts)), 0) AS duration_s,
    count(*) / greatest(coalesce(epoch(max(ts) - min(ts)), 0), 1) * 60 AS request_rate,
    coalesce(avg(iat), 0) AS iat_mean,
    coalesce(stddev_pop(iat), 0) AS iat_std,
    CASE WHEN coalesce(avg(iat), 0) > 0 THEN coalesce(stddev_pop(iat), 0) / avg(iat) ELSE 0 END AS iat_cv,
    count(DISTINCT path_decoded) / count(*) AS path_diversity,
    avg(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS error_ratio,
    avg(CASE WHEN status = 404 THEN 1 ELSE 0 END) AS notfound_ratio,
    avg(method_is_post) AS post_ratio,
    avg(CASE WHEN method = 'HEAD' THEN 1 ELSE 0 END) AS head_ratio,
    avg(method_is_rare) AS rare_method_ratio,
    avg(CASE WHEN ext_class = 1 THEN 1 ELSE 0 END) AS static_ratio,
    avg(CASE WHEN ext_class = 3 THEN 1 ELSE 0 END) AS sensitive_ratio,
    avg(CASE WHEN attack_tokens > 0 THEN 1 ELSE 0 END) AS attack_ratio,
    avg(attack_tokens) AS mean_attack_tokens,
    max(payload_len) AS max_payload_len,
    avg(entropy) AS mean_entropy,
    avg(special_ratio) AS mean_special_ratio,
    avg(has_referer) AS referer_ratio,
    count(DISTINCT user_agent) - 1 AS ua_changes,
    arg_min(ua_class, position) AS ua_class,
    len(list_distinct(flatten(list(param_names)))) AS distinct_params
FROM ordered
GROUP BY session_id;
