-- Analyst labels (issue D): an append-only history; the current label of a cluster is its latest event, and the
-- label a session carries is the latest analyst decision that reached it, from any cluster run (below).
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
    summary        VARCHAR,                -- JSON of waflens.labeling.summary.Summary
    tokens         BIGINT NOT NULL,
    cost_usd       DOUBLE NOT NULL,
    seconds        DOUBLE NOT NULL,
    created_at     TIMESTAMP NOT NULL
);

-- Analyst decisions (confirmed, edited, rejected) judge the sessions of the cluster they were made on: its
-- members in that run (membership probability >= 0.5, waflens.labeling.labels.DEFAULT_MEMBERSHIP). They stay with those
-- sessions across cluster runs; the latest decision per session wins.
CREATE OR REPLACE VIEW session_decisions AS
SELECT c.session_id, c.probability, e.label_event_id, e.cluster_run_id, e.cluster_id, e.family, e.verdict, e.source,
       e.analyst, e.note, e.created_at
FROM label_events e JOIN session_clusters c USING (cluster_run_id, cluster_id)
WHERE e.source <> 'suggested' AND c.probability >= 0.5 AND c.cluster_id >= 0;

CREATE OR REPLACE VIEW session_latest_decisions AS
SELECT * FROM session_decisions
QUALIFY row_number() OVER (PARTITION BY session_id ORDER BY label_event_id DESC) = 1;

-- The label each session carries: its latest analyst decision, from whichever run it was made on; a session no
-- analyst has decided on carries the suggestion of the latest run in which it is a member of a labelled cluster.
-- Rejections are kept here so that they hide older labels; consumers filter on source.
CREATE OR REPLACE VIEW session_labels AS
SELECT session_id, cluster_run_id, cluster_id, probability, family, verdict, source, analyst, note,
       created_at AS labelled_at, label_event_id
FROM session_latest_decisions
UNION ALL
SELECT c.session_id, c.cluster_run_id, c.cluster_id, c.probability, l.family, l.verdict, l.source, l.analyst, l.note,
       l.created_at AS labelled_at, l.label_event_id
FROM session_clusters c JOIN current_labels l USING (cluster_run_id, cluster_id)
WHERE c.probability >= 0.5 AND c.cluster_id >= 0 AND l.source = 'suggested'
  AND c.session_id NOT IN (SELECT session_id FROM session_decisions)
QUALIFY row_number() OVER (PARTITION BY c.session_id ORDER BY c.cluster_run_id DESC) = 1;

-- Per cluster of every run: how many member sessions it has, how many carry an analyst's decision (made on
-- this cluster or on any cluster of another run that held them) and how many a label, and the most common of
-- those decisions (who made it, when, on which cluster). A cluster whose members are all decided is reviewed.
CREATE OR REPLACE VIEW cluster_decisions AS
WITH grouped AS (    -- per cluster and decision (undecided members: kind NULL), one pass over the members
    SELECT c.cluster_run_id, c.cluster_id, d.family, d.verdict,
           CASE WHEN d.label_event_id IS NULL THEN NULL WHEN d.source = 'rejected' THEN 'rejected'
                ELSE 'labelled' END AS kind,
           count(*) AS n, max(d.label_event_id) AS last_event_id
    FROM session_clusters c LEFT JOIN session_latest_decisions d USING (session_id)
    WHERE c.probability >= 0.5 AND c.cluster_id >= 0
    GROUP BY ALL
), ranked AS (
    SELECT *, sum(n) OVER cluster AS n_members,
           sum(CASE WHEN kind IS NULL THEN 0 ELSE n END) OVER cluster AS n_decided,
           sum(CASE WHEN kind = 'labelled' THEN n ELSE 0 END) OVER cluster AS n_labelled,
           row_number() OVER (PARTITION BY cluster_run_id, cluster_id
                              ORDER BY kind IS NULL, n DESC, last_event_id DESC) AS k
    FROM grouped WINDOW cluster AS (PARTITION BY cluster_run_id, cluster_id)
)
SELECT r.cluster_run_id, r.cluster_id, r.n_members, r.n_decided, r.n_labelled,
       CASE WHEN r.kind IS NULL THEN NULL ELSE r.n END AS n_common,
       e.label_event_id AS decided_event_id, e.family AS decided_family, e.verdict AS decided_verdict,
       e.source AS decided_source, e.analyst AS decided_by, e.note AS decided_note, e.created_at AS decided_at,
       e.cluster_run_id AS decided_run_id, e.cluster_id AS decided_cluster_id
FROM ranked r LEFT JOIN label_events e ON e.label_event_id = r.last_event_id
WHERE r.k = 1;

-- The label a cluster shows: its own decision if it has one; else, when every member session is decided
-- (in earlier runs), the most common of those decisions; else its own latest event (a suggestion), if any.
-- Reviewed: it has its own decision, or every member session is decided.
CREATE OR REPLACE VIEW cluster_labels AS
SELECT cluster_run_id, cluster_id, n_members, n_decided, n_labelled, n_common, reviewed, inherited,
       CASE WHEN inherited THEN decided_event_id ELSE own_event_id END AS label_event_id,
       CASE WHEN inherited THEN decided_family ELSE own_family END AS family,
       CASE WHEN inherited THEN decided_verdict ELSE own_verdict END AS verdict,
       CASE WHEN inherited THEN decided_source ELSE own_source END AS source,
       CASE WHEN inherited THEN decided_by ELSE own_analyst END AS analyst,
       CASE WHEN inherited THEN decided_note ELSE own_note END AS note,
       CASE WHEN inherited THEN decided_at ELSE own_at END AS created_at,
       decided_event_id, decided_family, decided_verdict, decided_source, decided_by, decided_at, decided_run_id,
       decided_cluster_id
FROM (
    SELECT p.cluster_run_id, p.cluster_id, coalesce(d.n_members, 0) AS n_members,
           coalesce(d.n_decided, 0) AS n_decided, coalesce(d.n_labelled, 0) AS n_labelled, d.n_common,
           coalesce(l.source, 'suggested') <> 'suggested'
               OR (coalesce(d.n_members, 0) > 0 AND d.n_decided = d.n_members) AS reviewed,
           coalesce(l.source, 'suggested') = 'suggested' AND coalesce(d.n_members, 0) > 0
               AND d.n_decided = d.n_members AS inherited,
           l.label_event_id AS own_event_id, l.family AS own_family, l.verdict AS own_verdict, l.source AS own_source,
           l.analyst AS own_analyst, l.note AS own_note, l.created_at AS own_at,
           d.decided_event_id, d.decided_family, d.decided_verdict, d.decided_source, d.decided_by, d.decided_note,
           d.decided_at, d.decided_run_id, d.decided_cluster_id
    FROM cluster_profiles p
    LEFT JOIN current_labels l ON l.cluster_run_id = p.cluster_run_id AND l.cluster_id = p.cluster_id
    LEFT JOIN cluster_decisions d ON d.cluster_run_id = p.cluster_run_id AND d.cluster_id = p.cluster_id
);

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
