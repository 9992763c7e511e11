-- Session features (definitions in waflens/runtime/feature_spec.py) for the sessions in the temporary table
-- touched_sessions, from their requests and request features. Class codes and constants arrive as named
-- parameters (waflens.data.feature_spec.sql_parameters).
-- Distinct counts are the runtime's fixed-size sketch (waflens_distinct_count: exact up to $sketch_slots).
DELETE FROM session_features WHERE session_id IN (SELECT session_id FROM touched_sessions);

INSERT INTO session_features BY NAME
WITH member AS (
    SELECT r.session_id, r.request_id, r.ts, r.method, r.status, r.path_decoded, r.path,
           coalesce(r.user_agent, '') AS user_agent,
           list_transform(list_filter(string_split(r.query, '&') || string_split(coalesce(r.body, ''), '&'),
                                      lambda x: x <> ''),
                          lambda x: split_part(x, '=', 1)) AS param_names,
           -- the path a referer points at ('/' for a bare origin); NULL when it is no URL
           CASE WHEN f.has_referer = 1 AND regexp_matches(r.referer, $referer_url_re)
                THEN coalesce(nullif(regexp_extract(r.referer, $referer_url_re, 1), ''), '/') END AS referer_path,
           (r.method = 'GET' AND list_contains($page_ext_classes, f.ext_class)) AS is_page,
           f.*
    FROM requests AS r
    JOIN request_features AS f USING (request_id)
    WHERE r.session_id IN (SELECT session_id FROM touched_sessions)
), ordered AS (
    SELECT *,
           epoch(ts - lag(ts) OVER w) AS iat,
           row_number() OVER w AS position,
           last_value(CASE WHEN is_page THEN path END IGNORE NULLS)
               OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS previous_page
    FROM member
    WINDOW w AS (PARTITION BY session_id ORDER BY ts NULLS LAST, request_id)
), pages AS (
    SELECT session_id,
           count(*) AS n_pages,
           coalesce(avg(page_gap), 0) AS think_mean,
           coalesce(stddev_pop(page_gap), 0) AS think_std,
           avg(CASE WHEN list_contains(recent, path_decoded) THEN 1 ELSE 0 END) AS revisit_ratio,
           avg(CASE WHEN has_referer = 0 AND path_depth >= 2 THEN 1 ELSE 0 END) AS direct_deep_ratio
    FROM (SELECT *,
                 epoch(ts - lag(ts) OVER p) AS page_gap,
                 list(path_decoded) OVER (p ROWS BETWEEN $recent_pages PRECEDING AND 1 PRECEDING) AS recent
          FROM ordered WHERE is_page
          WINDOW p AS (PARTITION BY session_id ORDER BY ts NULLS LAST, request_id))
    GROUP BY session_id
), gap_bins AS (
    SELECT session_id, sum(n) AS gaps, -sum(n * log2(n)) / sum(n) + log2(sum(n)) AS gap_entropy
    FROM (SELECT session_id, count(*) AS n FROM ordered WHERE iat IS NOT NULL
          GROUP BY session_id, CASE WHEN iat < 1 THEN 0 ELSE least(floor(log2(iat)) + 1, $gap_bins - 1) END)
    GROUP BY session_id
)
SELECT
    session_id,
    count(*) AS n_requests,
    coalesce(epoch(max(ts) - min(ts)), 0) AS duration_s,
    count(*) / greatest(coalesce(epoch(max(ts) - min(ts)), 0), 1) * 60 AS request_rate,
    coalesce(avg(iat), 0) AS iat_mean,
    coalesce(stddev_pop(iat), 0) AS iat_std,
    CASE WHEN coalesce(avg(iat), 0) > 0 THEN coalesce(stddev_pop(iat), 0) / avg(iat) ELSE 0 END AS iat_cv,
    waflens_distinct_count(list(path_decoded), $sketch_slots) / count(*) AS path_diversity,
    avg(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS error_ratio,
    avg(CASE WHEN status = 404 THEN 1 ELSE 0 END) AS notfound_ratio,
    avg(method_is_post) AS post_ratio,
    avg(CASE WHEN method = 'HEAD' THEN 1 ELSE 0 END) AS head_ratio,
    avg(method_is_rare) AS rare_method_ratio,
    avg(CASE WHEN ext_class = $ext_static THEN 1 ELSE 0 END) AS static_ratio,
    avg(CASE WHEN ext_class = $ext_sensitive THEN 1 ELSE 0 END) AS sensitive_ratio,
    avg(CASE WHEN attack_tokens > 0 THEN 1 ELSE 0 END) AS attack_ratio,
    avg(attack_tokens) AS mean_attack_tokens,
    max(payload_len) AS max_payload_len,
    avg(entropy) AS mean_entropy,
    avg(special_ratio) AS mean_special_ratio,
    avg(has_referer) AS referer_ratio,
    waflens_distinct_count(list(user_agent), $sketch_slots) - 1 AS ua_changes,
    arg_min(ua_class, position) AS ua_class,
    waflens_distinct_count(flatten(list(param_names)), $sketch_slots) AS distinct_params,
    avg(CASE WHEN is_page THEN 1 ELSE 0 END) AS page_ratio,
    sum(CASE WHEN is_page THEN 1 ELSE 0 END) / greatest(coalesce(epoch(max(ts) - min(ts)), 0), 1) * 60 AS page_rate,
    any_value(coalesce(p.think_mean, 0)) AS think_time_mean,
    any_value(CASE WHEN coalesce(p.think_mean, 0) > 0 THEN p.think_std / p.think_mean ELSE 0 END) AS think_time_cv,
    count(*) / greatest(any_value(coalesce(p.n_pages, 0)), 1) AS requests_per_page,
    sum(CASE WHEN ext_class = $ext_static THEN 1 ELSE 0 END) / greatest(any_value(coalesce(p.n_pages, 0)), 1) AS assets_per_page,
    any_value(coalesce(g.gap_entropy, 0)) AS iat_entropy,
    coalesce(sum(CASE WHEN iat < 1 THEN 1 ELSE 0 END) / nullif(count(iat), 0), 0) AS burst_ratio,
    coalesce(sum(CASE WHEN referer_path = previous_page THEN 1 ELSE 0 END) / nullif(sum(has_referer), 0), 0)
        AS referer_continuity,
    any_value(coalesce(p.revisit_ratio, 0)) AS revisit_ratio,
    any_value(coalesce(p.direct_deep_ratio, 0)) AS direct_deep_ratio,
    avg(CASE WHEN status BETWEEN 300 AND 399 THEN 1 ELSE 0 END) AS redirect_ratio
FROM ordered
LEFT JOIN pages AS p USING (session_id)
LEFT JOIN gap_bins AS g USING (session_id)
GROUP BY session_id;
