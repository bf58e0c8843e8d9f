-- User access: login sessions (revocable), pending OAuth logins, API tokens, the audit log.

CREATE TABLE sessions (
    id          TEXT PRIMARY KEY NOT NULL,
    login       TEXT NOT NULL,
    name        TEXT,
    avatar_url  TEXT,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- One row per login in progress: the state (hashed) and its PKCE verifier. Used once.
CREATE TABLE oauth_logins (
    state_hash     BYTEA PRIMARY KEY NOT NULL,
    pkce_verifier  TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    token_hash    BYTEA NOT NULL UNIQUE,
    created_by    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    last_used_at  BIGINT,
    revoked_at    BIGINT
);

CREATE TABLE audit_log (
    id         TEXT PRIMARY KEY NOT NULL,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT,
    source_ip  TEXT,
    details    TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
