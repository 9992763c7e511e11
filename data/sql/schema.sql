-- waflens database schema (version in schema_info). Timestamps are UTC (TIMESTAMP without zone).
-- Client identifiers (client_ip, remote_user, session_cookie) hold keyed HMAC tokens unless the
-- source was ingested with --no-pseudonymize (sources.pseudonymized = false).

CREATE TABLE IF NOT EXISTS schema_info (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS sources (
    source_id     BIGINT PRIMARY KEY,
    path          VARCHAR NOT NULL,
    name          VARCHAR NOT NULL,       -- --source NAME (default: the file name)
    sha256        VARCHAR NOT NULL UNIQUE, -- of the file's bytes as stored on disk
    format        VARCHAR NOT NULL,       -- combined | json | raw-http | apache | nginx
    log_format    VARCHAR,                -- the LogFormat / log_format string, when custom
    records       BIGINT NOT NULL,
    parsed        BIGINT NOT NULL,
    quarantined   BIGINT NOT NULL,
    pseudonymized BOOLEAN NOT NULL,
    ingested_at   TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS requests (
    request_id     BIGINT NOT NULL,        -- global, increasing in ingest order
    source_id      BIGINT NOT NULL,
    record         BIGINT NOT NULL,        -- 1-based record number in its file
    ts             TIMESTAMP,              -- UTC; NULL when the source has none (raw HTTP dumps)
    client_key     VARCHAR NOT NULL,       -- what sessions are keyed by (see data/sessionize.py)
    client_ip      VARCHAR,                -- pseudonymized
    remote_user    VARCHAR,                -- pseudonymized
    session_cookie VARCHAR,                -- pseudonymized
    vhost          VARCHAR,
    method         VARCHAR,
    path           VARCHAR NOT NULL,       -- raw, as logged (evidence)
    query          VARCHAR NOT NULL,       -- raw, without '?'; '' when none
    path_decoded   VARCHAR NOT NULL,       -- URL-decoded (features)
    query_decoded  VARCHAR NOT NULL,       -- URL-decoded, '+' as space
    protocol       VARCHAR,
    status         SMALLINT,
    bytes          BIGINT,
    referer        VARCHAR,
    user_agent     VARCHAR,
    duration_ms    DOUBLE,
    headers        VARCHAR,                -- JSON object of request headers (IPs tokenized, secrets masked): raw HTTP, LogFormat header fields
    body           VARCHAR,
    session_id     BIGINT                  -- sessions.session_id; NULL until sessionized
);

CREATE TABLE IF NOT EXISTS quarantine (
    source_id BIGINT NOT NULL,
    record    BIGINT NOT NULL,
    raw       VARCHAR NOT NULL,            -- the record as read, IPs tokenized and secrets masked
    reason    VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS sessions (
    session_id  BIGINT PRIMARY KEY,        -- = the smallest request_id of the session (stable)
    client_key  VARCHAR NOT NULL,
    start_ts    TIMESTAMP,
    end_ts      TIMESTAMP,
    n_requests  BIGINT NOT NULL,
    first_request_id BIGINT NOT NULL,
    last_request_id  BIGINT NOT NULL
);
