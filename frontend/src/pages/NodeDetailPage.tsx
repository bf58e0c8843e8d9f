import { useMemo, useState, type FormEvent } from "react";
import { Link, useNavigate, useParams } from "react-router";

import {
  STATS_RANGES,
  useCheckNode,
  useDeleteNode,
  useFleetStats,
  useNode,
  useNodeHistory,
  useNodeAlerts,
  useNodeStatsHistory,
  useRotateKey,
  useUpdateNode,
  useJobList,
  type StatsRange,
} from "../api/queries";
import type { FiredAlert, IssuedKeyResponse, Node, UpdateNode } from "../api/types";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { Dialog } from "../components/Dialog";
import { ErrorNotice } from "../components/ErrorNotice";
import { JobTable } from "../components/JobTable";
import { LineChart, type Point } from "../components/LineChart";
import { PageLoader } from "../components/PageLoader";
import { RelativeTime } from "../components/RelativeTime";
import { SecretBlock } from "../components/SecretBlock";
import { StatusBadge } from "../components/StatusBadge";
import { eventLabel, MESSAGE_STATE_LABELS } from "../lib/alerts";
import { bytes, duration, exactTime, percent, perSecond } from "../lib/format";
import { describeError } from "../lib/errors";
import { parseLabels } from "../lib/nodes";
import { usePageTitle } from "../lib/usePageTitle";

export function NodeDetailPage() {
  const { id = "" } = useParams();
  const node = useNode(id);
  usePageTitle(node.data?.name ?? "Node");

  return (
    <PageLoader query={node} noun="node" back={{ to: "/nodes", label: "Nodes" }}>
      {(data) => <NodeDetail node={data} />}
    </PageLoader>
  );
}

function NodeDetail({ node }: { node: Node }) {
  const [dialog, setDialog] = useState<"edit" | "rotate" | "remove" | null>(null);
  const check = useCheckNode(node.id);

  return (
    <div className="page">
      <header className="page-head">
        <div>
          <p className="crumbs">
            <Link to="/nodes">Nodes</Link> /
          </p>
          <h1 className="title-with-badge">
            {node.name}
            <StatusBadge status={node.status} />
            {node.is_primary && <span className="pill pill-accent">primary</span>}
          </h1>
          {node.connect === "outbound" ? (
            <p className="muted" data-testid="node-connect">
              <span className="pill">outbound</span> connects to the primary, which reaches it over that connection
            </p>
          ) : (
            <p className="muted mono">{node.api_endpoint}</p>
          )}
        </div>
        <div className="actions">
          {!node.is_primary && (
            <>
              <button type="button" className="button button-primary" onClick={() => check.mutate()} disabled={check.isPending}>
                {check.isPending ? "Checking…" : "Check now"}
              </button>
              <button type="button" className="button" onClick={() => setDialog("edit")}>
                Edit
              </button>
              <button type="button" className="button" onClick={() => setDialog("rotate")}>
                Rotate key
              </button>
            </>
          )}
          {/* A primary is removed only once taken out of service (the server says 409 while it runs). */}
          {(!node.is_primary || node.status !== "online") && (
            <button type="button" className="button button-danger" onClick={() => setDialog("remove")}>
              Remove
            </button>
          )}
        </div>
      </header>

      {check.isSuccess && (
        <div className={`notice ${check.data.error ? "notice-error" : "notice-ok"}`} role="status" data-testid="check-result">
          {check.data.error
            ? `Check failed: ${check.data.error}. The node is ${check.data.node.status} after ${check.data.node.consecutive_failures} failed ${check.data.node.consecutive_failures === 1 ? "check" : "checks"} in a row.`
            : node.is_primary
              ? "This is the primary: it is always online to itself."
              : `Check succeeded: ${check.data.node.name} answered and is ${check.data.node.status}.`}
        </div>
      )}
      {check.isError && <ErrorNotice error={check.error} title="Check now failed" />}

      <Facts node={node} />
      <Charts node={node} />
      <NodeJobs node={node} />
      <NodeAlerts node={node} />
      <History node={node} />

      {dialog === "edit" && <EditDialog node={node} onClose={() => setDialog(null)} />}
      {dialog === "rotate" && <RotateDialog node={node} onClose={() => setDialog(null)} />}
      {dialog === "remove" && <RemoveDialog node={node} onClose={() => setDialog(null)} />}
    </div>
  );
}

function Facts({ node }: { node: Node }) {
  const fleet = useFleetStats();
  const stats = fleet.data?.items.find((i) => i.node_id === node.id)?.stats ?? null;
  const disk = stats?.disks[0];
  return (
    <section className="facts" aria-label="Node facts">
      <div className="fact">
        <span className="fact-label">Last seen</span>
        <span className="fact-value">
          <RelativeTime at={node.last_seen} />
        </span>
      </div>
      <div className="fact">
        <span className="fact-label">Last health check</span>
        <span className="fact-value">
          <RelativeTime at={node.last_health_check} empty={node.is_primary ? "not probed (primary)" : "never"} />
        </span>
      </div>
      <div className="fact">
        <span className="fact-label">Failed checks in a row</span>
        <span className="fact-value">{node.consecutive_failures}</span>
      </div>
      <div className="fact">
        <span className="fact-label">Version</span>
        <span className="fact-value">{node.version ?? "—"}</span>
      </div>
      <div className="fact">
        <span className="fact-label">Job slots</span>
        <span className="fact-value">{node.max_jobs}</span>
      </div>
      <div className="fact">
        <span className="fact-label">Labels</span>
        <span className="fact-value">
          {node.labels.length ? (
            node.labels.map((l) => (
              <span key={l} className="tag">
                {l}
              </span>
            ))
          ) : (
            <span className="muted">none</span>
          )}
        </span>
      </div>
      {stats && node.status !== "online" && (
        // Its figures below are its last ones, not live: say when they were taken.
        <div className="fact fact-wide" data-testid="stats-as-of">
          <span className="fact-label">Last figures</span>
          <span className="fact-value muted">
            as of <RelativeTime at={stats.collected_at} /> ({exactTime(stats.collected_at)}): the node is {node.status}
          </span>
        </div>
      )}
      {stats && (
        <>
          <div className="fact">
            <span className="fact-label">Host</span>
            <span className="fact-value">{stats.hostname}</span>
          </div>
          <div className="fact">
            <span className="fact-label">System</span>
            <span className="fact-value" title={stats.kernel}>
              {stats.os}
            </span>
          </div>
          <div className="fact">
            <span className="fact-label">Uptime</span>
            <span className="fact-value">{duration(stats.uptime_secs)}</span>
          </div>
          <div className="fact">
            <span className="fact-label">CPU</span>
            <span className="fact-value">
              {percent(stats.cpu_usage_percent)} of {stats.cpu_count} cores · load {stats.load_average.one.toFixed(2)}
            </span>
          </div>
          <div className="fact">
            <span className="fact-label">Memory</span>
            <span className="fact-value">
              {bytes(stats.memory.used_bytes)} of {bytes(stats.memory.total_bytes)}
            </span>
          </div>
          {disk && (
            <div className="fact">
              <span className="fact-label">Disk ({disk.mount_point})</span>
              <span className="fact-value">
                {bytes(disk.used_bytes)} of {bytes(disk.total_bytes)}
              </span>
            </div>
          )}
        </>
      )}
      {node.last_error &&
        (node.status === "pending" ? (
          // Not alarming: a node added here is probed before anyone has started it.
          <div className="fact fact-wide">
            <span className="fact-label">Not reached yet</span>
            <span className="fact-value muted" data-testid="pending-note">
              It turns online once the node is started and sends its first heartbeat (the last probe said: {node.last_error}).
            </span>
          </div>
        ) : (
          <div className="fact fact-wide">
            <span className="fact-label">Last probe error</span>
            <span className="fact-value text-error">{node.last_error}</span>
          </div>
        ))}
    </section>
  );
}

function Charts({ node }: { node: Node }) {
  const [range, setRange] = useState<StatsRange>("24h");
  const history = useNodeStatsHistory(node.id, range);
  const series = useMemo(() => {
    const items = history.data?.items ?? [];
    const at = (iso: string) => Date.parse(iso);
    const pct = (used: number, total: number) => (total ? (used / total) * 100 : 0);
    return {
      cpu: items.map((p): Point => ({ t: at(p.at), v: p.cpu_percent })),
      memory: items.map((p): Point => ({ t: at(p.at), v: pct(p.memory_used, p.memory_total) })),
      disk: items.map((p): Point => ({ t: at(p.at), v: pct(p.disk_used, p.disk_total) })),
      load: items.map((p): Point => ({ t: at(p.at), v: p.load_one })),
      netIn: items.map((p): Point => ({ t: at(p.at), v: p.net_rx })),
      netOut: items.map((p): Point => ({ t: at(p.at), v: p.net_tx })),
      diskRead: items.map((p): Point => ({ t: at(p.at), v: p.disk_read })),
      diskWrite: items.map((p): Point => ({ t: at(p.at), v: p.disk_write })),
      // Only the samples from a node with sensors: none in most VMs, and then no chart.
      temperature: items.flatMap((p): Point[] => (p.temperature === null ? [] : [{ t: at(p.at), v: p.temperature }])),
    };
  }, [history.data]);

  return (
    <section className="card" aria-labelledby="charts-title">
      <div className="card-head">
        <h2 id="charts-title">Resources over time</h2>
        <div className="segmented" role="group" aria-label="Time range">
          {(Object.keys(STATS_RANGES) as StatsRange[]).map((r) => (
            <button key={r} type="button" aria-pressed={range === r} onClick={() => setRange(r)}>
              {r}
            </button>
          ))}
        </div>
      </div>
      {history.isError ? (
        <ErrorNotice error={history.error} />
      ) : (
        <div className="chart-grid">
          <LineChart title="CPU" points={series.cpu} max={100} format={percent} />
          <LineChart title="Memory" points={series.memory} max={100} format={percent} color="var(--violet)" />
          <LineChart title="Disk" points={series.disk} max={100} format={percent} color="var(--amber)" />
          <LineChart title="Load (1 min)" points={series.load} format={(v) => v.toFixed(v < 10 ? 2 : 0)} color="var(--teal)" />
          <LineChart
            title="Network"
            label="in"
            points={series.netIn}
            second={{ label: "out", points: series.netOut, color: "var(--violet)" }}
            format={perSecond}
          />
          <LineChart
            title="Disk I/O"
            label="read"
            points={series.diskRead}
            second={{ label: "write", points: series.diskWrite, color: "var(--amber)" }}
            format={perSecond}
            color="var(--teal)"
          />
          {series.temperature.length > 0 && (
            <LineChart title="Temperature (hottest sensor)" points={series.temperature} format={(v) => `${v.toFixed(0)} °C`} color="var(--red)" />
          )}
        </div>
      )}
    </section>
  );
}

const NODE_JOBS = 10;

function NodeJobs({ node }: { node: Node }) {
  const filter = useMemo(() => ({ status: "" as const, node: node.id, label: "", q: "" }), [node.id]);
  const jobs = useJobList(filter, NODE_JOBS);
  const items = jobs.data?.pages[0]?.items ?? [];
  return (
    <section className="card" aria-labelledby="jobs-title">
      <div className="card-head">
        <h2 id="jobs-title">Jobs</h2>
        <div className="actions">
          <Link to={`/jobs?node=${node.id}`} className="button button-small">
            All jobs on {node.name}
          </Link>
        </div>
      </div>
      {jobs.isError ? (
        <ErrorNotice error={jobs.error} onRetry={() => void jobs.refetch()} />
      ) : (
        <JobTable jobs={items} loading={jobs.isPending} empty="No jobs have run here yet." testId="node-jobs" showNode={false} framed={false} />
      )}
    </section>
  );
}

function NodeAlerts({ node }: { node: Node }) {
  const alerts = useNodeAlerts(node.id);
  const items = alerts.data?.items ?? [];
  return (
    <section className="card" aria-labelledby="alerts-title">
      <div className="card-head">
        <h2 id="alerts-title">Alerts</h2>
        <div className="actions">
          <Link to="/notifications" className="button button-small">
            Notifications
          </Link>
        </div>
      </div>
      {alerts.isError ? (
        <ErrorNotice error={alerts.error} onRetry={() => void alerts.refetch()} />
      ) : alerts.isPending ? (
        <p className="muted">Loading…</p>
      ) : items.length === 0 ? (
        <p className="muted" data-testid="node-alerts-empty">
          No alert has fired for {node.name}. Rules on the <Link to="/notifications">Notifications</Link> page say when one does: the node going offline, a disk
          filling up, a job failing.
        </p>
      ) : (
        <div className="table-scroll">
          <table className="data-table">
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Alert</th>
                <th scope="col" className="hide-narrow">
                  Rule
                </th>
                <th scope="col">Deliveries</th>
              </tr>
            </thead>
            <tbody data-testid="node-alerts">
              {items.map((a) => (
                <tr key={a.id}>
                  <td className="nowrap" title={exactTime(a.at)}>
                    <RelativeTime at={a.at} />
                  </td>
                  <td>
                    <div className="timeline-reason">{a.text}</div>
                    <div className="muted small">
                      {eventLabel(a.event)}
                      {a.state !== "firing" && ` · ${MESSAGE_STATE_LABELS[a.state] ?? a.state}`}
                      {a.job_id && (
                        <>
                          {" · "}
                          <Link to={`/jobs/${a.job_id}`}>the job</Link>
                        </>
                      )}
                    </div>
                  </td>
                  <td className="hide-narrow">{a.rule?.name ?? <span className="muted">removed rule</span>}</td>
                  <td>
                    <DeliveryCounts alert={a} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function DeliveryCounts({ alert }: { alert: FiredAlert }) {
  if (alert.delivered + alert.pending + alert.failed === 0) return <span className="muted small">no channel</span>;
  return (
    <span className="alert-counts small">
      {alert.delivered > 0 && <span className="text-ok">{alert.delivered} delivered</span>}
      {alert.pending > 0 && <span className="muted">{alert.pending} pending</span>}
      {alert.failed > 0 && <span className="text-error">{alert.failed} failed</span>}
    </span>
  );
}

function History({ node }: { node: Node }) {
  const history = useNodeHistory(node.id);
  const items = history.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <section className="card" aria-labelledby="history-title">
      <div className="card-head">
        <h2 id="history-title">Health history</h2>
      </div>
      {history.isError ? (
        <ErrorNotice error={history.error} />
      ) : history.isPending ? (
        <p className="muted">Loading…</p>
      ) : items.length === 0 ? (
        <p className="muted">No status changes yet.</p>
      ) : (
        <ol className="timeline" data-testid="health-history">
          {items.map((change) => (
            <li key={change.id} className="timeline-item">
              <span className={`timeline-dot dot-${change.to}`} aria-hidden="true" />
              <div className="timeline-body">
                <div className="transition">
                  <StatusBadge status={change.from} />
                  <span aria-label="to">→</span>
                  <StatusBadge status={change.to} />
                  <span className="muted small" title={exactTime(change.at)}>
                    <RelativeTime at={change.at} />
                  </span>
                </div>
                <p className="timeline-reason">{change.reason}</p>
              </div>
            </li>
          ))}
        </ol>
      )}
      {history.hasNextPage && (
        <button type="button" className="button" onClick={() => void history.fetchNextPage()} disabled={history.isFetchingNextPage}>
          {history.isFetchingNextPage ? "Loading…" : "Show older changes"}
        </button>
      )}
    </section>
  );
}

function EditDialog({ node, onClose }: { node: Node; onClose: () => void }) {
  const update = useUpdateNode(node.id);
  const [name, setName] = useState(node.name);
  const [endpoint, setEndpoint] = useState(node.api_endpoint);
  const [labels, setLabels] = useState(node.labels.join(", "));
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const body: UpdateNode = {};
    if (name.trim() !== node.name) body.name = name.trim();
    if (endpoint.trim() !== node.api_endpoint) body.api_endpoint = endpoint.trim();
    const nextLabels = parseLabels(labels);
    if (nextLabels.join(",") !== node.labels.join(",")) body.labels = nextLabels;
    if (Object.keys(body).length === 0) return onClose();
    update.mutate(body, { onSuccess: onClose });
  };
  return (
    <Dialog open title={`Edit ${node.name}`} onClose={onClose}>
      <form className="form" onSubmit={submit}>
        <label className="field">
          <span className="field-label">Name</span>
          <input value={name} onChange={(e) => setName(e.target.value)} required />
        </label>
        <label className="field">
          <span className="field-label">Endpoint</span>
          <input value={endpoint} onChange={(e) => setEndpoint(e.target.value)} required />
        </label>
        <label className="field">
          <span className="field-label">Labels</span>
          <input value={labels} onChange={(e) => setLabels(e.target.value)} />
          <span className="field-help">If the node sets NODE_LABELS in its own settings, its next heartbeat replaces what is set here.</span>
        </label>
        {update.isError && (
          <div className="notice notice-error" role="alert">
            {describeError(update.error)}
          </div>
        )}
        <div className="actions">
          <button type="submit" className="button button-primary" disabled={update.isPending}>
            {update.isPending ? "Saving…" : "Save"}
          </button>
          <button type="button" className="button button-ghost" onClick={onClose}>
            Cancel
          </button>
        </div>
      </form>
    </Dialog>
  );
}

function RotateDialog({ node, onClose }: { node: Node; onClose: () => void }) {
  const rotate = useRotateKey(node.id);
  const [issued, setIssued] = useState<IssuedKeyResponse | null>(null);
  return (
    <Dialog open title={issued ? "New key issued" : `Rotate the key of ${node.name}?`} onClose={onClose}>
      {issued ? (
        <div data-testid="rotated">
          <div className="notice notice-warn" role="status">
            <strong>Copy it now: it is shown this once.</strong> The old key keeps working until {exactTime(issued.previous_key_valid_until)}, so update the
            secondary's <code>NODE_API_KEY</code> and restart it before then.
          </div>
          <SecretBlock text={issued.api_key} label="new API key" testId="new-key" />
          <details className="details">
            <summary>The whole .env</summary>
            <SecretBlock text={issued.env} label=".env" />
          </details>
          <div className="actions">
            <button type="button" className="button button-primary" onClick={onClose}>
              Done
            </button>
          </div>
        </div>
      ) : (
        <>
          <p>
            A new key is issued and shown once. The current key keeps working for a grace period (10 minutes by default), so the secondary can be updated
            without downtime.
          </p>
          {rotate.isError && (
            <div className="notice notice-error" role="alert">
              {describeError(rotate.error)}
            </div>
          )}
          <div className="actions">
            <button
              type="button"
              className="button button-primary"
              disabled={rotate.isPending}
              onClick={() => rotate.mutate(undefined, { onSuccess: setIssued })}
            >
              {rotate.isPending ? "Rotating…" : "Rotate key"}
            </button>
            <button type="button" className="button button-ghost" onClick={onClose}>
              Cancel
            </button>
          </div>
        </>
      )}
    </Dialog>
  );
}

function RemoveDialog({ node, onClose }: { node: Node; onClose: () => void }) {
  const remove = useDeleteNode(node.id);
  const navigate = useNavigate();
  return (
    <ConfirmDialog
      title={`Remove ${node.name}?`}
      confirm={`Remove ${node.name}`}
      busy="Removing…"
      action={remove}
      onConfirm={() => remove.mutate(undefined, { onSuccess: () => void navigate("/nodes", { replace: true }) })}
      onClose={onClose}
    >
      <p>
        Its health history and stats go with it, and its heartbeats are refused from now on. Stop Fleetdeck on that machine first: a secondary with a{" "}
        <code>REGISTRATION_TOKEN</code> would register again.
      </p>
    </ConfirmDialog>
  );
}
