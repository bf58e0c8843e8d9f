import { useState } from "react";
import { Link } from "react-router";

import { useAudit, type AuditFilter } from "../api/queries";
import type { AuditAction, AuditEntry } from "../api/types";
import { ErrorNotice } from "../components/ErrorNotice";
import { RelativeTime } from "../components/RelativeTime";
import { exactTime } from "../lib/format";
import { useDebounced } from "../lib/useDebounced";
import { usePageTitle } from "../lib/usePageTitle";

/** Every action the backend records (`AuditAction`, generated from its enum): a new one
 * fails the type check until it has a label here, so the filter always lists them all. */
const ACTIONS: Record<AuditAction, string> = {
  node_added: "Added node",
  node_updated: "Edited node",
  node_removed: "Removed node",
  node_checked: "Checked node",
  node_key_rotated: "Rotated node key",
  node_registered: "Node registered itself",
  job_submitted: "Submitted job",
  job_cancelled: "Cancelled job",
  run_submitted: "Started fleet-wide run",
  run_cancelled: "Cancelled fleet-wide run",
  login: "Signed in",
  login_refused: "Sign-in refused",
  login_failed: "Sign-in failed",
  logout: "Signed out",
  token_created: "Created API token",
  token_revoked: "Revoked API token",
  join_token_created: "Created join token",
  join_token_revoked: "Revoked join token",
  leader_elected: "Primary took the lead",
  alert_channel_added: "Added alert channel",
  alert_channel_updated: "Edited alert channel",
  alert_channel_removed: "Removed alert channel",
  alert_channel_tested: "Tested alert channel",
  alert_rule_added: "Added alert rule",
  alert_rule_updated: "Edited alert rule",
  alert_rule_removed: "Removed alert rule",
};

export function actionLabel(action: AuditAction): string {
  return ACTIONS[action] ?? String(action).replace(/_/g, " ");
}

/** Where an entry's target can be seen, if it still exists. */
function targetLink(action: AuditAction, target: string): string | null {
  if (action.endsWith("_removed")) return null;
  if (action.startsWith("node_")) return `/nodes/${target}`;
  if (action.startsWith("job_")) return `/jobs/${target}`;
  if (action.startsWith("run_")) return `/runs/${target}`;
  if (action.startsWith("alert_channel_")) return `/notifications/channels/${target}/edit`;
  if (action.startsWith("alert_rule_")) return `/notifications/rules/${target}/edit`;
  return null;
}

/** The target by the name it had then (a removed node's too), else its ID cut short; the whole ID on hover. */
function Target({ entry }: { entry: AuditEntry }) {
  const { action, target, target_name: name } = entry;
  if (!target) return <>—</>;
  const link = targetLink(action, target);
  const text = name ?? (link ? `${target.slice(0, 8)}…` : target);
  return link ? (
    <Link to={link} title={target}>
      {text}
    </Link>
  ) : (
    <span title={target}>{text}</span>
  );
}

export function AuditPage() {
  usePageTitle("Audit log");
  const [actor, setActor] = useState("");
  const [action, setAction] = useState<AuditAction | "">("");
  const [target, setTarget] = useState("");
  const filter: AuditFilter = { actor: useDebounced(actor, 300), action, target: useDebounced(target, 300) };
  const audit = useAudit(filter);
  const entries = audit.data?.pages.flatMap((p) => p.items) ?? [];

  return (
    <div className="page">
      <header className="page-head">
        <div>
          <h1>Audit log</h1>
          <p className="muted">Who changed what, and when. Newest first.</p>
        </div>
      </header>
      <div className="toolbar" role="search">
        <label className="field field-grow">
          <span className="sr-only">Actor</span>
          <input placeholder="Actor, exactly (e.g. github:octocat)" value={actor} onChange={(e) => setActor(e.target.value)} aria-label="Filter by actor" />
        </label>
        <label className="field">
          <span className="sr-only">Action</span>
          <select value={action} onChange={(e) => setAction(e.target.value as AuditAction | "")} aria-label="Filter by action">
            <option value="">All actions</option>
            {Object.entries(ACTIONS).map(([value, label]) => (
              <option key={value} value={value}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <label className="field">
          <span className="sr-only">Target</span>
          <input placeholder="Target ID" value={target} onChange={(e) => setTarget(e.target.value)} aria-label="Filter by target" className="mono" />
        </label>
      </div>
      {audit.isError && <ErrorNotice error={audit.error} title="Could not load the audit log" onRetry={() => void audit.refetch()} />}
      <div className="card card-flush">
        <table className="data-table">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Who</th>
              <th scope="col">What</th>
              <th scope="col">Target</th>
              <th scope="col" className="hide-narrow">
                From
              </th>
            </tr>
          </thead>
          <tbody data-testid="audit-rows">
            {audit.isPending ? (
              <tr>
                <td colSpan={5} className="muted">
                  Loading…
                </td>
              </tr>
            ) : entries.length === 0 ? (
              <tr>
                <td colSpan={5} className="muted">
                  Nothing recorded{filter.actor || filter.action || filter.target ? " matching these filters" : " yet"}.
                </td>
              </tr>
            ) : (
              entries.map((e) => (
                <tr key={e.id}>
                  <td title={exactTime(e.at)}>
                    <RelativeTime at={e.at} />
                  </td>
                  <td className="mono small">{e.actor}</td>
                  <td>
                    {actionLabel(e.action)}
                    {e.details && <div className="muted small">{e.details}</div>}
                  </td>
                  <td className="small">
                    <Target entry={e} />
                  </td>
                  <td className="mono small hide-narrow">{e.source_ip ?? "—"}</td>
                </tr>
              ))
            )}
          </tbody>
        </table>
      </div>
      {audit.hasNextPage && (
        <button type="button" className="button" onClick={() => void audit.fetchNextPage()} disabled={audit.isFetchingNextPage}>
          {audit.isFetchingNextPage ? "Loading…" : "Show older entries"}
        </button>
      )}
    </div>
  );
}
