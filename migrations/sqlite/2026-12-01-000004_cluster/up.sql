-- Several primaries on one database (SPEC §12).

-- What every primary of this database shares: the ID nodes know the primaries by (the
-- first primary's node ID) and a value sealed under the master key, so that a primary
-- started with another key refuses to start (filled in at the first start).
CREATE TABLE cluster (
    id               INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    primary_node_id  TEXT NOT NULL,
    key_check        BLOB,
    created_at       BIGINT NOT NULL
);
-- An installation from before several primaries: its one primary's ID is the one its
-- nodes already know.
INSERT INTO cluster (id, primary_node_id, created_at)
    SELECT 1, id, created_at FROM nodes WHERE is_primary ORDER BY created_at LIMIT 1;

-- Each primary's own row, written at start and every lease round (times: the database's).
CREATE TABLE primaries (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    url         TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL
);

-- The leader's lease: one row. `epoch` grows at every change of leader; every write only
-- the leader may make checks it (fencing). Times are the database's, in Unix ms.
CREATE TABLE leader_lease (
    id          INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    holder      TEXT,
    epoch       BIGINT NOT NULL,
    since       BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
INSERT INTO leader_lease (id, holder, epoch, since, expires_at) VALUES (1, NULL, 0, 0, 0);

-- What changed in the rows primaries keep in memory (a node: `kind` 'node', `subject` its
-- ID), for the other primaries to reload; NOTIFY wakes them, this log catches them up.
CREATE TABLE change_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    kind     TEXT NOT NULL,
    subject  TEXT NOT NULL,
    origin   TEXT NOT NULL,
    at       BIGINT NOT NULL
);
CREATE INDEX change_log_at ON change_log (at);
