-- Request features for requests with request_id > $after_request_id (definitions in
-- waflens/runtime/feature_spec.py). Every list, class code and pattern of the spec arrives as a named
-- parameter (waflens.data.feature_spec.sql_parameters), never as a copy here: token lists each with a *_re
-- alternation of its tokens (one RE2 pass skips the exact per-token counting for the many requests without
-- any). Uses only what is known when the request arrives: never status or bytes of its own response.
-- waflens_url_decode(text, plus_as_space) is registered by data/db_functions.py.
INSERT INTO request_features BY NAME
WITH base AS (
    SELECT
        request_id,
        method,
        path,
        query,
        coalesce(body, '') AS body,
        coalesce(user_agent, '') AS user_agent,
        referer,
        path_decoded,
        query_decoded,
        waflens_url_decode(coalesce(body, ''), true) AS body_decoded
    FROM requests
    WHERE request_id > $after_request_id
), texts AS (
    SELECT
        *,
        path_decoded || chr(10) || query_decoded || chr(10) || body_decoded AS p,
        waflens_ascii_lower(path_decoded || chr(10) || query_decoded || chr(10) || body_decoded) AS lp,
        waflens_ascii_lower(path || chr(10) || query) AS lraw,
        path || chr(10) || query || chr(10) || body AS raw_all,
        waflens_ascii_lower(query_decoded || chr(10) || body_decoded) AS largs,
        list_filter(string_split(query, '&') || string_split(body, '&'), lambda x: x <> '') AS pieces,
        regexp_extract(path_decoded, '([^/]*)$', 1) AS last_segment,
        waflens_ascii_lower(trim(user_agent, ' ')) AS lua
    FROM base
), counted AS (
    SELECT
        *,
        strlen(p) AS n_bytes,
        CASE WHEN regexp_matches(lp, $sql_tokens_re) THEN CAST(list_sum(list_transform($sql_tokens, lambda t: (strlen(lp) - strlen(replace(lp, t, ''))) // strlen(t))) AS INTEGER) ELSE 0 END AS sql_tokens,
        CASE WHEN regexp_matches(lp, $traversal_tokens_re) OR regexp_matches(lraw, $traversal_tokens_re)
             THEN CAST(list_sum(list_transform($traversal_tokens, lambda t: (strlen(lp) - strlen(replace(lp, t, ''))) // strlen(t)
                                                          + (strlen(lraw) - strlen(replace(lraw, t, ''))) // strlen(t))) AS INTEGER)
             ELSE 0 END AS traversal_tokens,
        CASE WHEN regexp_matches(lp, $xss_tokens_re) THEN CAST(list_sum(list_transform($xss_tokens, lambda t: (strlen(lp) - strlen(replace(lp, t, ''))) // strlen(t))) AS INTEGER) ELSE 0 END AS xss_tokens,
        CASE WHEN regexp_matches(lp, $shell_tokens_re) THEN CAST(list_sum(list_transform($shell_tokens, lambda t: (strlen(lp) - strlen(replace(lp, t, ''))) // strlen(t))) AS INTEGER) ELSE 0 END AS shell_tokens,
        CASE WHEN regexp_matches(p, $template_tokens_re) THEN CAST(list_sum(list_transform($template_tokens, lambda t: (strlen(p) - strlen(replace(p, t, ''))) // strlen(t))) AS INTEGER) ELSE 0 END AS template_tokens,
        CASE WHEN regexp_matches(largs, $scheme_tokens_re) THEN CAST(list_sum(list_transform($scheme_tokens, lambda t: (strlen(largs) - strlen(replace(largs, t, ''))) // strlen(t))) AS INTEGER) ELSE 0 END AS scheme_tokens,
        CASE
            WHEN NOT contains(last_segment, '.') THEN $ext_none
            WHEN list_contains($static_ext, lower_ext) THEN $ext_static
            WHEN list_contains($script_ext, lower_ext) THEN $ext_script
            WHEN list_contains($sensitive_ext, lower_ext) THEN $ext_sensitive
            ELSE $ext_other
        END AS ext_class
    FROM (
        SELECT *, waflens_ascii_lower(regexp_extract(last_segment, '\.([^.]*)$', 1)) AS lower_ext
        FROM texts
    )
)
SELECT
    request_id,
    CAST(coalesce(method = 'POST', false) AS TINYINT) AS method_is_post,
    CAST(coalesce(NOT list_contains($common_methods, method), true) AS TINYINT) AS method_is_rare,
    strlen(path) AS path_len,
    strlen(query) AS query_len,
    strlen(body) AS body_len,
    length(path_decoded) - length(replace(path_decoded, '/', '')) AS path_depth,
    len(pieces) AS n_params,
    coalesce(list_max(list_transform(pieces, lambda x: strlen(CASE WHEN contains(x, '=') THEN x[strpos(x, '=') + 1:] ELSE x END))), 0) AS max_value_len,
    n_bytes AS payload_len,
    -- counts as "bytes removed by deleting runs of the class": far faster than deleting the complement
    (n_bytes - strlen(regexp_replace(p, '[0-9]+', '', 'g'))) / greatest(n_bytes, 1) AS digit_ratio,
    (n_bytes - strlen(regexp_replace(p, '[A-Za-z]+', '', 'g'))) / greatest(n_bytes, 1) AS alpha_ratio,
    (n_bytes - strlen(regexp_replace(p, '[A-Z]+', '', 'g'))) / greatest(n_bytes, 1) AS upper_ratio,
    (n_bytes - strlen(regexp_replace(p, $special_re, '', 'g'))) / greatest(n_bytes, 1) AS special_ratio,
    (n_bytes - strlen(regexp_replace(p, '[^\x00-\x7F]+', '', 'g'))) / greatest(n_bytes, 1) AS nonascii_ratio,
    waflens_entropy(p) AS entropy,
    len(regexp_extract_all(raw_all, '%[0-9a-fA-F]{2}')) AS pct_encoded,
    len(regexp_extract_all(waflens_ascii_lower(raw_all), '%25[0-9a-f]{2}')) AS double_encoded,
    (strlen(p) - strlen(replace(replace(p, '''', ''), '"', ''))) AS quote_count,
    sql_tokens,
    traversal_tokens,
    xss_tokens,
    shell_tokens,
    template_tokens,
    scheme_tokens,
    strlen(p) - strlen(replace(p, chr(0), '')) AS null_bytes,
    sql_tokens + traversal_tokens + xss_tokens + shell_tokens + template_tokens AS attack_tokens,
    ext_class,
    CASE
        WHEN lua IN ('', '-') THEN $ua_empty
        WHEN regexp_matches(lua, $tool_ua_re) THEN $ua_tool
        WHEN regexp_matches(lua, $bot_ua_re) THEN $ua_bot
        WHEN regexp_matches(lua, $browser_ua_re) THEN $ua_browser
        ELSE $ua_other
    END AS ua_class,
    strlen(user_agent) AS ua_len,
    CAST(coalesce(referer NOT IN ('', '-'), false) AS TINYINT) AS has_referer
FROM counted;
