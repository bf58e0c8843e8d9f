-- Alerts (SPEC §14): where messages go (channels), when they are sent (rules), what each
-- rule last saw of each node or job (states), and the durable outbox: every message is
-- written here, in the transaction that decided it, before anything is sent.

-- A receiver. `url` is what the API shows (a webhook URL that is itself a secret, such as
-- Slack's or Discord's, shows its host only); the secrets (that URL, tokens, passwords)
-- are in `sealed`, sealed under the master key. `settings`: the kind's other fields (JSON).
CREATE TABLE alert_channels (
    id             TEXT PRIMARY KEY NOT NULL,
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL,
    url            TEXT NOT NULL,
    settings       TEXT NOT NULL,
    sealed         BYTEA NOT NULL,
    summary_over   INTEGER,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX alert_channels_name ON alert_channels (lower(name));

-- When to send. `labels` and `nodes` (JSON arrays) narrow it to some nodes; `threshold`
-- (percent) and `for_secs` belong to the events that take them.
CREATE TABLE alert_rules (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    event         TEXT NOT NULL,
    labels        TEXT NOT NULL,
    nodes         TEXT NOT NULL,
    threshold     DOUBLE PRECISION,
    for_secs      BIGINT NOT NULL,
    muted_until   BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX alert_rules_name ON alert_rules (lower(name));

CREATE TABLE alert_rule_channels (
    rule_id     TEXT NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    channel_id  TEXT NOT NULL REFERENCES alert_channels (id) ON DELETE CASCADE,
    PRIMARY KEY (rule_id, channel_id)
);
CREATE INDEX alert_rule_channels_channel ON alert_rule_channels (channel_id);

-- What a rule last concluded about one node (or job): `phase` pending / firing / resolved /
-- flapping / sent; written by the leader only, so a new leader goes on where it stopped.
CREATE TABLE alert_states (
    rule_id         TEXT NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    subject         TEXT NOT NULL,
    phase           TEXT NOT NULL,
    since           BIGINT NOT NULL,
    flapping_since  BIGINT,
    flips           INTEGER NOT NULL,
    holds           BOOLEAN NOT NULL,
    PRIMARY KEY (rule_id, subject)
);

-- One message a rule sent (to each of its channels): `body` is the webhook JSON, frozen
-- when the message was decided.
CREATE TABLE alert_messages (
    id          TEXT PRIMARY KEY NOT NULL,
    rule_id     TEXT,
    rule_name   TEXT NOT NULL,
    event       TEXT NOT NULL,
    state       TEXT NOT NULL,
    node_id     TEXT,
    node_name   TEXT,
    job_id      TEXT,
    text        TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX alert_messages_node ON alert_messages (node_id, created_at);
CREATE INDEX alert_messages_created ON alert_messages (created_at);

-- The outbox: one row per message and channel, tried until delivered, refused, or given up.
CREATE TABLE alert_deliveries (
    id               TEXT PRIMARY KEY NOT NULL,
    message_id       TEXT NOT NULL REFERENCES alert_messages (id) ON DELETE CASCADE,
    channel_id       TEXT NOT NULL REFERENCES alert_channels (id) ON DELETE CASCADE,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    next_try_at      BIGINT,
    last_attempt_at  BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    delivered_at     BIGINT
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (status, next_try_at);
CREATE INDEX alert_deliveries_channel ON alert_deliveries (channel_id, last_attempt_at);
CREATE INDEX alert_deliveries_message ON alert_deliveries (message_id);
