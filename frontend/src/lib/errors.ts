// API errors in words a user can act on.
import { ApiError } from "../api/client";

const FIELD_NAMES: Record<string, string> = {
  name: "Name",
  api_endpoint: "Endpoint",
  labels: "Labels",
  id: "Node ID",
  api_key: "API key",
  expires_in_days: "Expiry",
  since: "Time range",
  limit: "Page size",
  command: "Command",
  env: "Environment",
  working_dir: "Working directory",
  timeout_sec: "Timeout",
  node_id: "Node",
  status: "Status",
  // Alert channels and rules.
  kind: "Kind",
  url: "URL",
  secret: "Secret",
  chat_id: "Chat ID",
  from: "From",
  to: "To",
  username: "User name",
  tls: "TLS",
  summary_over: "Summarise above",
  event: "Event",
  channels: "Channels",
  nodes: "Nodes",
  threshold: "Threshold",
  for: "For",
  muted_until: "Muted until",
};

function fieldLabel(field: string): string {
  const base = field.replace(/\[\d+\]$/, "");
  return FIELD_NAMES[base] ?? base;
}

/** What to tell the user about `error`. */
export function describeError(error: unknown): string {
  if (!(error instanceof ApiError)) {
    return error instanceof Error ? error.message : "Something unexpected went wrong. Reload the page and try again.";
  }
  const message = capitalize(error.message);
  switch (error.status) {
    case 0:
      return "Cannot reach the Fleetdeck primary. Check that it is running and that this network can reach it, then try again.";
    case 400: {
      const field = error.field;
      if (field) return `${fieldLabel(field)}: ${error.message.slice(field.length + 2)}`;
      return message;
    }
    case 401:
      return "Your session has ended or you are not signed in. Sign in again to continue.";
    case 403:
      return `Not allowed: ${error.message}.`;
    case 404:
      return `${message}. It may have been removed; go back and reload the list.`;
    case 409:
      return `${message}.`;
    case 422: {
      // "node_id: there is no node …": the field first, as validation errors name it.
      const field = /^([a-z_]+): /.exec(error.message)?.[1];
      return field ? `${fieldLabel(field)}: ${error.message.slice(field.length + 2)}` : message;
    }
    case 413:
      return "That is too large for the server to accept. Shorten it and try again.";
    case 429:
      return "Too many attempts from this address. Wait a minute, then try again.";
    case 503:
      return `${message}. The primary is up but cannot serve this right now; try again in a moment.`;
    default:
      if (error.status >= 500) {
        const id = error.requestId ? ` (request ${error.requestId})` : "";
        return `The server failed to do this${id}. Try again; if it keeps failing, the details are in the primary's log.`;
      }
      return message;
  }
}

function capitalize(text: string): string {
  return text ? text[0]!.toUpperCase() + text.slice(1) : text;
}

/**
 * The field an API error is about: `validation_failed` and `unprocessable` messages start
 * with it (`timeout_sec: must be from 1 to 86400`); a too-large body names it the same way.
 */
export function errorField(error: unknown): string | null {
  if (!(error instanceof ApiError)) return null;
  if (error.field) return error.field.replace(/\[\d+\]$/, "");
  if (error.status === 422 || error.status === 413) return /^([a-z_]+): /.exec(error.message)?.[1] ?? null;
  return null;
}

export function isUnauthorized(error: unknown): boolean {
  return error instanceof ApiError && error.status === 401;
}
