-- Analyst labels imported per session from a label file (`waflens labels import`): append-only, like label_events,
-- numbered from the same sequence so that the latest decision on a session wins, whichever way it was made.
CREATE TABLE IF NOT EXISTS session_label_imports (
    label_event_id BIGINT PRIMARY KEY DEFAULT nextval('label_event_id_seq'),
    session_id     BIGINT NOT NULL,
    family         VARCHAR NOT NULL,
    verdict        VARCHAR NOT NULL,       -- malicious | suspicious | benign
    label          VARCHAR NOT NULL,       -- as written in the file
    analyst        VARCHAR NOT NULL,
    note           VARCHAR,
    created_at     TIMESTAMP NOT NULL
);
