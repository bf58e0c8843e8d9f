-- Fleet-wide runs: one command on every matching node, one job per node. The nodes are
-- fixed when the run starts, in order; a node gets its job at once, or in its turn when
-- the run rolls (`max_parallel`), or is skipped with the reason.
CREATE TABLE runs (
    id               TEXT PRIMARY KEY NOT NULL,
    name             TEXT,
    command          TEXT NOT NULL,
    env              TEXT NOT NULL DEFAULT '{}',
    working_dir      TEXT,
    timeout_sec      BIGINT NOT NULL,
    -- The target as asked: every node, nodes holding all these labels, or these nodes.
    target_all       BOOLEAN NOT NULL DEFAULT FALSE,
    labels           TEXT NOT NULL DEFAULT '',
    node_ids         TEXT NOT NULL DEFAULT '[]',
    max_parallel     INTEGER,
    stop_on_failure  BOOLEAN NOT NULL DEFAULT FALSE,
    -- Why no more nodes are started (cancelled, or stopped after a failure).
    stopped          TEXT,
    cancelled        BOOLEAN NOT NULL DEFAULT FALSE,
    submitted_by     TEXT NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE INDEX runs_created_at ON runs (created_at);

CREATE TABLE run_nodes (
    run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    node_id    TEXT NOT NULL,
    node_name  TEXT NOT NULL,
    -- Its job once started; why it was not started, if it was skipped; neither: waiting.
    job_id     TEXT,
    skipped    TEXT,
    PRIMARY KEY (run_id, position)
);
CREATE INDEX run_nodes_waiting ON run_nodes (job_id, skipped);

ALTER TABLE jobs ADD COLUMN run_id TEXT;
CREATE INDEX jobs_run ON jobs (run_id);
