-- Join tokens (SPEC §15): single-use and expiring, kept as a SHA-256 hash. A token's row
-- stays after use (who joined with it, when) until a week after it expired; revoking one
-- removes it.
CREATE TABLE join_tokens (
    id          TEXT PRIMARY KEY NOT NULL,
    token_hash  BYTEA NOT NULL UNIQUE,
    -- What the joining node is given: a name (else its own) and labels (a comma list).
    name        TEXT,
    labels      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    used_by     TEXT
);
CREATE INDEX join_tokens_expires_at ON join_tokens (expires_at);
