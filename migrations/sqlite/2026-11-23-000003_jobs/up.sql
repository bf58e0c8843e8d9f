-- Routed jobs and their output. A job's `attempt` grows with every dispatch; every state
-- change is conditional on (status, attempt), so a late or repeated report never moves a
-- job backwards or runs it twice.
CREATE TABLE jobs (
    id                TEXT PRIMARY KEY NOT NULL,
    name              TEXT,
    command           TEXT NOT NULL,
    env               TEXT NOT NULL DEFAULT '{}',
    working_dir       TEXT,
    timeout_sec       BIGINT NOT NULL,
    node_id           TEXT,
    labels            TEXT NOT NULL DEFAULT '',
    status            TEXT NOT NULL,
    attempt           INTEGER NOT NULL DEFAULT 0,
    assigned_node_id  TEXT,
    queue_reason      TEXT,
    exit_code         INTEGER,
    error             TEXT,
    cancel_requested  BOOLEAN NOT NULL DEFAULT FALSE,
    submitted_by      TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    dispatched_at     BIGINT,
    started_at        BIGINT,
    finished_at       BIGINT,
    log_bytes         BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX jobs_status ON jobs (status, created_at);
CREATE INDEX jobs_assigned_node ON jobs (assigned_node_id, status);
CREATE INDEX jobs_finished_at ON jobs (finished_at);

CREATE TABLE job_logs (
    job_id  TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq     BIGINT NOT NULL,
    stream  TEXT NOT NULL,
    data    BLOB NOT NULL,
    at      BIGINT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
