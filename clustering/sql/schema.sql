-- Cluster runs over suspicious sessions (issue C). One row per run, per clustered session, per cluster.
CREATE TABLE IF NOT EXISTS cluster_runs (
    cluster_run_id BIGINT PRIMARY KEY,
    created_at     TIMESTAMP NOT NULL,
    window_start   TIMESTAMP,            -- sessions starting at or after (NULL: no lower bound)
    window_end     TIMESTAMP,            -- ... and before (NULL: no upper bound)
    selection      VARCHAR NOT NULL,     -- suspicious | all
    params         VARCHAR NOT NULL,     -- JSON: min_cluster_size, min_samples, svd components, ...
    n_sessions     BIGINT NOT NULL,      -- sessions in the window
    n_selected     BIGINT NOT NULL,      -- sessions clustered
    n_clusters     INTEGER NOT NULL,
    n_noise        BIGINT NOT NULL,
    seconds        VARCHAR NOT NULL,     -- JSON: timings per stage
    message        VARCHAR               -- why a run has no clusters, when it has none
);

CREATE TABLE IF NOT EXISTS session_clusters (
    cluster_run_id BIGINT NOT NULL,
    session_id     BIGINT NOT NULL,
    cluster_id     INTEGER NOT NULL,     -- -1 = noise
    probability    DOUBLE NOT NULL,      -- HDBSCAN membership strength
    outlier_score  DOUBLE NOT NULL,      -- GLOSH
    map_x          DOUBLE NOT NULL,      -- 2-D coordinates for the map
    map_y          DOUBLE NOT NULL
);

CREATE TABLE IF NOT EXISTS cluster_profiles (
    cluster_run_id BIGINT NOT NULL,
    cluster_id     INTEGER NOT NULL,
    n_sessions     BIGINT NOT NULL,
    n_clients      BIGINT NOT NULL,
    n_requests     BIGINT NOT NULL,
    first_ts       TIMESTAMP,
    last_ts        TIMESTAMP,
    status         VARCHAR NOT NULL,     -- new | growing | stable | fading
    predecessor_run_id BIGINT,
    predecessor_id INTEGER,
    growth         DOUBLE,               -- sessions now / earlier sessions placed in it, per hour (NULL: none)
    emerging       BOOLEAN NOT NULL,     -- new or fast-growing: what the labeler shows first
    profile        VARCHAR NOT NULL      -- JSON: top paths, parameters, agents, statuses, features, exemplars
);
