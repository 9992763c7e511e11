-- Session features (definitions in waflens/runtime/feature_spec.py): data/sql/session_features.sql in Spark SQL,
-- over every session at once. Reads the views `requests` (with session_id) and `request_features`. Class
-- codes and constants arrive as named parameters (waflens.data.feature_spec.sql_parameters, as for DuckDB).
-- Seconds between timestamps are microseconds / 1e6 (DuckDB's epoch of an interval).
WITH member AS (
    SELECT r.session_id, r.request_id, r.ts, r.method, r.status, r.path_decoded, r.path,
           coalesce(r.user_agent, '') AS user_agent,
           transform(filter(concat(split(r.query, '&'), split(coalesce(r.body, ''), '&')), x -> x <> ''),
                     x -> split_part(x, '=', 1)) AS param_names,
           -- the path a referer points at ('/' for a bare origin); NULL when it is no URL
           CASE WHEN f.has_referer = 1 AND r.referer RLIKE :referer_url_re
                THEN coalesce(nullif(regexp_extract(r.referer, :referer_url_re, 1), ''), '/') END AS referer_path,
           (r.method = 'GET' AND array_contains(:page_ext_classes, CAST(f.ext_class AS INT))) AS is_page,
           f.method_is_post, f.method_is_rare, f.ext_class, f.attack_tokens, f.payload_len, f.entropy,
           f.special_ratio, f.has_referer, f.ua_class, f.path_depth
    FROM requests AS r
    JOIN request_features AS f ON f.request_id = r.request_id
), ordered AS (
    SELECT *,
           (unix_micros(ts) - unix_micros(lag(ts) OVER (PARTITION BY session_id ORDER BY ts ASC NULLS LAST, request_id)))
               / 1e6 AS iat,
           row_number() OVER (PARTITION BY session_id ORDER BY ts ASC NULLS LAST, request_id) AS position,
           last_value(CASE WHEN is_page THEN path END, true)
               OVER (PARTITION BY session_id ORDER BY ts ASC NULLS LAST, request_id
                     ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS previous_page
    FROM member
), pages AS (
    SELECT session_id,
           count(*) AS n_pages,
           coalesce(avg(page_gap), 0) AS think_mean,
           coalesce(stddev_pop(page_gap), 0) AS think_std,
           avg(CASE WHEN array_contains(recent, path_decoded) THEN 1 ELSE 0 END) AS revisit_ratio,
           avg(CASE WHEN has_referer = 0 AND path_depth >= 2 THEN 1 ELSE 0 END) AS direct_deep_ratio
    FROM (SELECT *,
                 (unix_micros(ts) - unix_micros(lag(ts) OVER (PARTITION BY session_id
                                                              ORDER BY ts ASC NULLS LAST, request_id))) / 1e6 AS page_gap,
                 collect_list(path_decoded) OVER (PARTITION BY session_id ORDER BY ts ASC NULLS LAST, request_id
                                                  ROWS BETWEEN :recent_pages PRECEDING AND 1 PRECEDING) AS recent
          FROM ordered WHERE is_page)
    GROUP BY session_id
), gap_bins AS (
    SELECT session_id, sum(n) AS gaps, -sum(n * log2(n)) / sum(n) + log2(sum(n)) AS gap_entropy
    FROM (SELECT session_id, count(*) AS n FROM ordered WHERE iat IS NOT NULL
          GROUP BY session_id, CASE WHEN iat < 1 THEN 0 ELSE least(floor(log2(iat)) + 1, :gap_bins - 1) END)
    GROUP BY session_id
), duration AS (
    SELECT o.*, (unix_micros(max(ts) OVER (PARTITION BY session_id)) - unix_micros(min(ts) OVER (PARTITION BY session_id)))
                / 1e6 AS span
    FROM ordered AS o
)
SELECT
    session_id,
    count(*) AS n_requests,
    coalesce(max(span), 0) AS duration_s,
    count(*) / greatest(coalesce(max(span), 0), 1) * 60 AS request_rate,
    coalesce(avg(iat), 0) AS iat_mean,
    coalesce(stddev_pop(iat), 0) AS iat_std,
    CASE WHEN coalesce(avg(iat), 0) > 0 THEN coalesce(stddev_pop(iat), 0) / avg(iat) ELSE 0 END AS iat_cv,
    waflens_distinct_count(collect_list(path_decoded), :sketch_slots) / count(*) AS path_diversity,
    avg(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS error_ratio,
    avg(CASE WHEN status = 404 THEN 1 ELSE 0 END) AS notfound_ratio,
    avg(method_is_post) AS post_ratio,
    avg(CASE WHEN method = 'HEAD' THEN 1 ELSE 0 END) AS head_ratio,
    avg(method_is_rare) AS rare_method_ratio,
    avg(CASE WHEN ext_class = :ext_static THEN 1 ELSE 0 END) AS static_ratio,
    avg(CASE WHEN ext_class = :ext_sensitive THEN 1 ELSE 0 END) AS sensitive_ratio,
    avg(CASE WHEN attack_tokens > 0 THEN 1 ELSE 0 END) AS attack_ratio,
    avg(attack_tokens) AS mean_attack_tokens,
    max(payload_len) AS max_payload_len,
    avg(entropy) AS mean_entropy,
    avg(special_ratio) AS mean_special_ratio,
    avg(has_referer) AS referer_ratio,
    waflens_distinct_count(collect_list(user_agent), :sketch_slots) - 1 AS ua_changes,
    min_by(ua_class, position) AS ua_class,
    waflens_distinct_count(flatten(collect_list(param_names)), :sketch_slots) AS distinct_params,
    avg(CASE WHEN is_page THEN 1 ELSE 0 END) AS page_ratio,
    sum(CASE WHEN is_page THEN 1 ELSE 0 END) / greatest(coalesce(max(span), 0), 1) * 60 AS page_rate,
    max(coalesce(p.think_mean, 0)) AS think_time_mean,
    max(CASE WHEN coalesce(p.think_mean, 0) > 0 THEN p.think_std / p.think_mean ELSE 0 END) AS think_time_cv,
    count(*) / greatest(max(coalesce(p.n_pages, 0)), 1) AS requests_per_page,
    sum(CASE WHEN ext_class = :ext_static THEN 1 ELSE 0 END) / greatest(max(coalesce(p.n_pages, 0)), 1) AS assets_per_page,
    max(coalesce(g.gap_entropy, 0)) AS iat_entropy,
    coalesce(sum(CASE WHEN iat < 1 THEN 1 ELSE 0 END) / nullif(count(iat), 0), 0) AS burst_ratio,
    coalesce(sum(CASE WHEN referer_path = previous_page THEN 1 ELSE 0 END) / nullif(sum(has_referer), 0), 0)
        AS referer_continuity,
    max(coalesce(p.revisit_ratio, 0)) AS revisit_ratio,
    max(coalesce(p.direct_deep_ratio, 0)) AS direct_deep_ratio,
    avg(CASE WHEN status BETWEEN 300 AND 399 THEN 1 ELSE 0 END) AS redirect_ratio
FROM duration
LEFT JOIN pages AS p USING (session_id)
LEFT JOIN gap_bins AS g USING (session_id)
GROUP BY session_id
