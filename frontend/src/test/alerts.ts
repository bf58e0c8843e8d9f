// Alert channels, rules and deliveries as the API shows them, for the alerts pages' tests.
import type { Channel, Delivery, FiredAlert, Rule } from "../api/types";

export const CHANNEL_ID = "0191a000-0000-7000-8000-000000000001";
export const RULE_ID = "0191a000-0000-7000-8000-000000000002";
export const NODE_ID = "0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f";

export function channel(overrides: Partial<Channel> = {}): Channel {
  return {
    id: CHANNEL_ID,
    name: "ops hook",
    kind: "webhook",
    url: "https://hooks.example.com/fleetdeck",
    has_secret: true,
    summary_over: null,
    created_at: "2026-11-23T00:00:00Z",
    updated_at: "2026-11-23T00:00:00Z",
    last_delivery: null,
    to: [],
    ...overrides,
  };
}

export function rule(overrides: Partial<Rule> = {}): Rule {
  return {
    id: RULE_ID,
    name: "web down",
    event: "node_offline",
    channels: [CHANNEL_ID],
    labels: [],
    nodes: [],
    threshold: null,
    for: "0s",
    muted_until: null,
    created_at: "2026-11-23T00:00:00Z",
    updated_at: "2026-11-23T00:00:00Z",
    ...overrides,
  };
}

export function delivery(overrides: Partial<Delivery> = {}): Delivery {
  return {
    id: "0191a000-0000-7000-8000-0000000000d1",
    channel: { id: CHANNEL_ID, name: "ops hook", kind: "webhook" },
    message_id: "0191a000-0000-7000-8000-0000000000e1",
    rule: { id: RULE_ID, name: "web down" },
    event: "node_offline",
    state: "firing",
    node: { id: NODE_ID, name: "web-01" },
    job_id: null,
    text: "web-01 is offline",
    status: "delivered",
    attempts: 1,
    last_error: null,
    last_attempt_at: "2026-11-23T18:00:00Z",
    next_try_at: null,
    created_at: "2026-11-23T18:00:00Z",
    delivered_at: "2026-11-23T18:00:01Z",
    ...overrides,
  };
}

export function firedAlert(overrides: Partial<FiredAlert> = {}): FiredAlert {
  return {
    id: "0191a000-0000-7000-8000-0000000000e1",
    rule: { id: RULE_ID, name: "web down" },
    event: "node_offline",
    state: "firing",
    job_id: null,
    text: "web-01 is offline",
    at: "2026-11-23T18:00:00Z",
    delivered: 1,
    pending: 0,
    failed: 0,
    ...overrides,
  };
}
