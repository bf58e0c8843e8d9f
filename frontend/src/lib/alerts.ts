// Rules about alerts the pages share: how kinds, events and statuses read, which events
// take a threshold or a `for`, and how a rule's condition and scope are summed up.
import type { AlertEvent, ChannelKind, DeliveryStatus, EmailTls, MessageState, Rule } from "../api/types";

export const CHANNEL_KINDS: ChannelKind[] = ["webhook", "ntfy", "gotify", "discord", "slack", "telegram", "email"];

export const KIND_LABELS: Record<ChannelKind, string> = {
  webhook: "Webhook",
  ntfy: "ntfy",
  gotify: "Gotify",
  discord: "Discord",
  slack: "Slack",
  telegram: "Telegram",
  email: "Email",
};

export const EMAIL_TLS: [EmailTls, string][] = [
  ["starttls", "STARTTLS (port 587 by default)"],
  ["tls", "TLS from the start (port 465 by default)"],
  ["none", "None: a relay on this machine or a trusted network only (port 25 by default)"],
];

export const ALERT_EVENTS: AlertEvent[] = [
  "node_offline",
  "node_unreachable",
  "node_online",
  "node_registered",
  "job_failed",
  "cpu_above",
  "memory_above",
  "disk_above",
];

export const EVENT_LABELS: Record<AlertEvent, string> = {
  node_offline: "Node offline",
  node_unreachable: "Node unreachable",
  node_online: "Node back online",
  node_registered: "Node registered",
  job_failed: "Job failed",
  cpu_above: "CPU above",
  memory_above: "Memory above",
  disk_above: "Disk above",
};

/** What each event means, for the rule form. */
export const EVENT_HELP: Record<AlertEvent, string> = {
  node_offline: "A node stops answering (offline, or unreachable after more failed checks).",
  node_unreachable: "A node has failed its health checks long enough to be unreachable.",
  node_online: "A node is back online after an offline or unreachable alert fired for it: the “back” message.",
  node_registered: "A node was added to the fleet, by an operator or by registering itself.",
  job_failed: "A job failed, timed out or was lost.",
  cpu_above: "A node's CPU use is above the threshold.",
  memory_above: "A node's memory use is above the threshold.",
  disk_above: "The disk holding a node's data directory is fuller than the threshold.",
};

export function eventLabel(event: string): string {
  return EVENT_LABELS[event as AlertEvent] ?? event.replace(/_/g, " ");
}

/** The events judged on a measured percentage against a threshold. */
export function takesThreshold(event: AlertEvent): boolean {
  return event === "cpu_above" || event === "memory_above" || event === "disk_above";
}

/** The events that are a lasting condition, and so may have to last `for` a while. */
export function takesFor(event: AlertEvent): boolean {
  return takesThreshold(event) || event === "node_offline" || event === "node_unreachable";
}

export const DELIVERY_STATUSES: DeliveryStatus[] = ["pending", "delivered", "failed"];

export const DELIVERY_STATUS_LABELS: Record<DeliveryStatus, string> = {
  pending: "Pending",
  delivered: "Delivered",
  failed: "Failed",
};

export const MESSAGE_STATE_LABELS: Record<MessageState, string> = {
  firing: "firing",
  resolved: "resolved",
  flapping: "flapping",
  test: "test",
};

/** A rule's `for` as the API shows it, or null when the message goes at once ("0s"). */
export function forOf(rule: Pick<Rule, "for">): string | null {
  return rule.for && rule.for !== "0s" ? rule.for : null;
}

/** "above 90 % for 5m", "for 2m", "at once". */
export function conditionText(rule: Pick<Rule, "event" | "threshold" | "for">): string {
  const wait = forOf(rule);
  const parts: string[] = [];
  if (takesThreshold(rule.event) && rule.threshold !== null) parts.push(`above ${rule.threshold} %`);
  if (wait) parts.push(`for ${wait}`);
  return parts.length ? parts.join(" ") : "at once";
}

/** Whether a rule is muted at `now`. */
export function isMuted(rule: Pick<Rule, "muted_until">, now: number = Date.now()): boolean {
  return rule.muted_until !== null && Date.parse(rule.muted_until) > now;
}

/** Recipients, typed separated by commas, spaces or lines. */
export function parseRecipients(text: string): string[] {
  return text
    .split(/[\s,;]+/)
    .map((t) => t.trim())
    .filter(Boolean);
}

/** An ISO time as a `datetime-local` input's value (local time, to the minute). */
export function toLocalInput(iso: string | null): string {
  if (!iso) return "";
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return "";
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())}T${pad(t.getHours())}:${pad(t.getMinutes())}`;
}

/** A `datetime-local` input's value as an ISO time, or null when empty or invalid. */
export function fromLocalInput(value: string): string | null {
  if (!value) return null;
  const t = new Date(value);
  return Number.isNaN(t.getTime()) ? null : t.toISOString();
}
