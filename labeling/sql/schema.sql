-- Analyst labels (issue D): an append-only history; the current label of a cluster is its latest event.
CREATE SEQUENCE IF NOT EXISTS label_event_id_seq;

CREATE TABLE IF NOT EXISTS label_events (
    label_event_id BIGINT PRIMARY KEY DEFAULT nextval('label_event_id_seq'),
    cluster_run_id BIGINT NOT NULL,
    cluster_id     INTEGER NOT NULL,
    family         VARCHAR NOT NULL,
    verdict        VARCHAR NOT NULL,       -- malicious | suspicious | benign
    source         VARCHAR NOT NULL,       -- suggested | confirmed | edited | rejected
    analyst        VARCHAR NOT NULL,
    note           VARCHAR,
    created_at     TIMESTAMP NOT NULL
);

CREATE OR REPLACE VIEW current_labels AS
SELECT * EXCLUDE (k) FROM (
    SELECT *, row_number() OVER (PARTITION BY cluster_run_id, cluster_id ORDER BY label_event_id DESC) AS k
    FROM label_events
) WHERE k = 1;

CREATE TABLE IF NOT EXISTS cluster_summaries (
    cluster_run_id BIGINT NOT NULL,
    cluster_id     INTEGER NOT NULL,
    provider       VARCHAR NOT NULL,
    model          VARCHAR NOT NULL,
    evidence_hash  VARCHAR NOT NULL,       -- responses are cached by it
    status         VARCHAR NOT NULL,       -- ok | unverified | error: <why>
    summary        VARCHAR,                -- JSON of labeling.summary.Summary
    tokens         BIGINT NOT NULL,
    cost_usd       DOUBLE NOT NULL,
    seconds        DOUBLE NOT NULL,
    created_at     TIMESTAMP NOT NULL
);

-- The label each session carries: that of its latest cluster run in which it is a member (membership
-- probability >= 0.5, labeling.labels.DEFAULT_MEMBERSHIP) of a labelled cluster. Rejected labels are kept
-- here so that a rejection in a newer run hides an older run's label; consumers filter on source.
CREATE OR REPLACE VIEW session_labels AS
SELECT * EXCLUDE (k) FROM (
    SELECT c.session_id, c.cluster_run_id, c.cluster_id, c.probability, l.family, l.verdict, l.source,
           l.analyst, l.note, l.created_at AS labelled_at,
           row_number() OVER (PARTITION BY c.session_id ORDER BY c.cluster_run_id DESC) AS k
    FROM session_clusters c JOIN current_labels l USING (cluster_run_id, cluster_id)
    WHERE c.probability >= 0.5 AND c.cluster_id >= 0
) WHERE k = 1;

-- Known good traffic kept out of alerts (issue D): a client key (exact, as stored: pseudonymized), or an
-- RE2 regular expression searched in the request path or the User-Agent. Rules expire or are revoked,
-- never deleted, so who allowed what and why stays on record.
CREATE SEQUENCE IF NOT EXISTS allow_rule_id_seq;

CREATE TABLE IF NOT EXISTS allowlist (
    rule_id    BIGINT PRIMARY KEY DEFAULT nextval('allow_rule_id_seq'),
    kind       VARCHAR NOT NULL,        -- client_key | path | user_agent
    pattern    VARCHAR NOT NULL,
    reason     VARCHAR NOT NULL,
    author     VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP,               -- NULL: until revoked
    revoked_at TIMESTAMP,
    revoked_by VARCHAR
);

-- Labels reach requests through their session (for training and for the workbench's request views).
CREATE OR REPLACE VIEW request_labels AS
SELECT r.request_id, l.session_id, l.cluster_run_id, l.cluster_id, l.family, l.verdict, l.source
FROM requests r JOIN session_labels l USING (session_id);
