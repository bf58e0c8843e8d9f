import { useMemo } from "react";
import { Link } from "react-router";

import { useCluster, useFleetHistory, useFleetStats, useJobList, type JobFilter } from "../api/queries";
import type { NodeStatus } from "../api/types";
import { ErrorNotice } from "../components/ErrorNotice";
import { JobStatusBadge } from "../components/JobStatusBadge";
import { Meter } from "../components/Meter";
import { RelativeTime } from "../components/RelativeTime";
import { StatusBadge } from "../components/StatusBadge";
import { count } from "../lib/format";
import { jobTitle } from "../lib/jobs";
import { countByStatus, needingAttention, STATUSES, usageOf } from "../lib/nodes";
import { usePageTitle } from "../lib/usePageTitle";

const STATUS_HINT: Record<NodeStatus, string> = {
  online: "answering",
  offline: "stopped answering",
  unreachable: "silent for a long while",
  pending: "never reached yet",
};

/** How many jobs the "Recent jobs" panel shows. */
export const RECENT_JOBS = 8;
const ALL_JOBS: JobFilter = { status: "", node: "", label: "", q: "" };

export function DashboardPage() {
  usePageTitle("Dashboard");
  const stats = useFleetStats();
  const history = useFleetHistory(12);
  const items = useMemo(() => stats.data?.items ?? [], [stats.data]);
  const counts = useMemo(() => countByStatus(items), [items]);
  const attention = useMemo(() => needingAttention(items), [items]);
  const names = useMemo(() => new Map(items.map((i) => [i.node_id, i.name])), [items]);
  const fleetLoad = useMemo(() => {
    const usage = items.filter((i) => i.status === "online").map((i) => usageOf(i.stats));
    const avg = (xs: (number | null)[]) => {
      const known = xs.filter((x): x is number => x !== null);
      return known.length ? known.reduce((a, b) => a + b, 0) / known.length : null;
    };
    return { cpu: avg(usage.map((u) => u.cpu)), memory: avg(usage.map((u) => u.memory)), disk: avg(usage.map((u) => u.disk)) };
  }, [items]);

  return (
    <div className="page">
      <header className="page-head">
        <div>
          <h1>Dashboard</h1>
          <p className="muted">{stats.isSuccess ? `${count(items.length)} ${items.length === 1 ? "node" : "nodes"} in the fleet` : "The fleet at a glance"}</p>
        </div>
        <Link className="button button-primary" to="/nodes/new">
          Add node
        </Link>
      </header>

      {stats.isError && <ErrorNotice error={stats.error} title="Could not load the fleet" onRetry={() => void stats.refetch()} />}

      <section className="stat-grid" aria-label="Nodes by status">
        {STATUSES.map((status) => (
          <Link
            key={status}
            to={`/nodes?status=${status}`}
            className={`stat-card stat-${status} ${counts[status] ? "stat-some" : ""}`}
            data-testid={`count-${status}`}
          >
            <span className="stat-label">
              <StatusBadge status={status} />
            </span>
            <span className="stat-value">{stats.isSuccess ? count(counts[status]) : "–"}</span>
            <span className="stat-hint">{STATUS_HINT[status]}</span>
          </Link>
        ))}
      </section>

      <div className="columns">
        <section className="card" aria-labelledby="attention-title">
          <div className="card-head">
            <h2 id="attention-title">Needs attention</h2>
            {attention.length > 0 && <span className="pill">{count(attention.length)}</span>}
          </div>
          {stats.isPending ? (
            <SkeletonRows />
          ) : attention.length === 0 ? (
            <div className="empty">
              <span className="empty-icon" aria-hidden="true">
                ✓
              </span>
              <p>{items.length ? "Every node is online and below 90 % CPU, memory and disk." : "No nodes yet."}</p>
              {!items.length && (
                <Link to="/nodes/new" className="button">
                  Add your first node
                </Link>
              )}
            </div>
          ) : (
            <ul className="list" data-testid="attention-list">
              {attention.slice(0, 8).map(({ stats: node, reasons }) => (
                <li key={node.node_id} className="list-row">
                  <StatusBadge status={node.status} />
                  <Link to={`/nodes/${node.node_id}`} className="list-main strong">
                    {node.name}
                  </Link>
                  <span className="muted small">{reasons.filter((r) => r !== node.status).join(", ")}</span>
                </li>
              ))}
              {attention.length > 8 && (
                <li className="list-more">
                  <Link to="/nodes?sort=status">See all {count(attention.length)} in the nodes table</Link>
                </li>
              )}
            </ul>
          )}
        </section>

        <section className="card" aria-labelledby="changes-title">
          <div className="card-head">
            <h2 id="changes-title">Recent status changes</h2>
          </div>
          {history.isError ? (
            <ErrorNotice error={history.error} />
          ) : history.isPending ? (
            <SkeletonRows />
          ) : history.data.items.length === 0 ? (
            <div className="empty">
              <p>No status changes yet. They appear here the moment a node comes online or stops answering.</p>
            </div>
          ) : (
            <ul className="list" data-testid="recent-changes">
              {history.data.items.map((change) => (
                <li key={change.id} className="list-row list-row-wrap">
                  <Link to={`/nodes/${change.node_id}`} className="list-main strong">
                    {names.get(change.node_id) ?? "removed node"}
                  </Link>
                  {change.from === change.to ? (
                    <span className="pill pill-accent">Leader</span>
                  ) : (
                    <span className="transition">
                      <StatusBadge status={change.from} />
                      <span aria-label="to">→</span>
                      <StatusBadge status={change.to} />
                    </span>
                  )}
                  <span className="muted small list-reason">{change.reason}</span>
                  <span className="muted small list-time">
                    <RelativeTime at={change.at} />
                  </span>
                </li>
              ))}
            </ul>
          )}
        </section>
      </div>

      <Primaries />

      <RecentJobs names={names} />

      <section className="card" aria-labelledby="load-title">
        <div className="card-head">
          <h2 id="load-title">Fleet load</h2>
          <span className="muted small">average over online nodes</span>
        </div>
        <div className="load-grid">
          <div>
            <span className="muted small">CPU</span>
            <Meter value={fleetLoad.cpu} label="CPU" />
          </div>
          <div>
            <span className="muted small">Memory</span>
            <Meter value={fleetLoad.memory} label="Memory" />
          </div>
          <div>
            <span className="muted small">Disk</span>
            <Meter value={fleetLoad.disk} label="Disk" />
          </div>
        </div>
      </section>
    </div>
  );
}

/**
 * The newest jobs. The list query is one of the jobs lists the live events patch and
 * refetch (`job_updated`), so statuses change here as they do on the jobs page.
 */
function RecentJobs({ names }: { names: Map<string, string> }) {
  const jobs = useJobList(ALL_JOBS, RECENT_JOBS);
  const items = jobs.data?.pages[0]?.items.slice(0, RECENT_JOBS) ?? [];
  return (
    <section className="card" aria-labelledby="jobs-title">
      <div className="card-head">
        <h2 id="jobs-title">Recent jobs</h2>
        <Link to="/jobs" className="button button-small">
          All jobs
        </Link>
      </div>
      {jobs.isError ? (
        <ErrorNotice error={jobs.error} onRetry={() => void jobs.refetch()} />
      ) : jobs.isPending ? (
        <SkeletonRows />
      ) : items.length === 0 ? (
        <div className="empty">
          <p>
            No jobs yet — <Link to="/jobs/new">run one</Link>
          </p>
        </div>
      ) : (
        <ul className="list" data-testid="recent-jobs">
          {items.map((job) => {
            const nodeId = job.assigned_node_id ?? job.node_id;
            return (
              <li key={job.id} className="list-row list-row-wrap" data-job-id={job.id}>
                <JobStatusBadge status={job.status} />
                <Link to={`/jobs/${job.id}`} className="list-main strong list-job">
                  {jobTitle(job)}
                </Link>
                <span className="muted small list-time list-job-meta">
                  <span className="list-node">
                    {nodeId ? (
                      <Link to={`/nodes/${nodeId}`}>{names.get(nodeId) ?? `${nodeId.slice(0, 8)}…`}</Link>
                    ) : job.labels.length ? (
                      job.labels.join(", ")
                    ) : (
                      "any node"
                    )}
                  </span>
                  <RelativeTime at={job.created_at} />
                </span>
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}

function SkeletonRows() {
  return (
    <div aria-busy="true" aria-label="Loading">
      {[0, 1, 2].map((i) => (
        <div key={i} className="skeleton-row" />
      ))}
    </div>
  );
}

/**
 * The primaries sharing this database, the leader first: shown once there are several
 * (one primary needs no panel). Leader changes also appear in "Recent status changes".
 */
function Primaries() {
  const cluster = useCluster();
  const primaries = cluster.data?.primaries ?? [];
  if (primaries.length < 2) return null;
  const sorted = [...primaries].sort((a, b) => Number(b.leader) - Number(a.leader));
  return (
    <section className="card" aria-labelledby="primaries-title">
      <div className="card-head">
        <h2 id="primaries-title">Primaries</h2>
        {cluster.data?.leader && (
          <span className="muted small">
            epoch {cluster.data.leader.epoch}, leading since <RelativeTime at={cluster.data.leader.since} />
          </span>
        )}
      </div>
      <ul className="list" data-testid="primaries">
        {sorted.map((p) => (
          <li key={p.id} className="list-row list-row-wrap">
            <Link to={`/nodes/${p.id}`} className="list-main strong">
              {p.name}
            </Link>
            {p.leader ? <span className="pill pill-accent">Leader</span> : <span className="pill">Follower</span>}
            <span className="muted small list-reason">{p.url}</span>
            <span className="muted small list-time">
              seen <RelativeTime at={p.last_seen} />
            </span>
          </li>
        ))}
      </ul>
    </section>
  );
}
