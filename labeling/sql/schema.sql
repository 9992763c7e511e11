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
