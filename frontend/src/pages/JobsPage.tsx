import { useEffect, useMemo, useState } from "react";
import { Link, useSearchParams } from "react-router";

import { allNodes, useJobList, useNodeList, type JobFilter } from "../api/queries";
import type { Job, JobState, Node } from "../api/types";
import { ErrorNotice } from "../components/ErrorNotice";
import { JobStatusBadge } from "../components/JobStatusBadge";
import { RelativeTime } from "../components/RelativeTime";
import { JOB_STATE_LABELS, JOB_STATES, jobElapsedMs, jobTitle, shortDuration } from "../lib/jobs";
import { useDebounced } from "../lib/useDebounced";
import { useNow } from "../lib/useNow";

const ALL_NODES = { q: "", status: "", label: "" } as const;

/** Node ID → node, for names and links (the nodes list is usually in the cache already). */
export function useNodeNames(): Map<string, Node> {
  const nodes = useNodeList(ALL_NODES);
  return useMemo(() => new Map(allNodes(nodes.data).map((n) => [n.id, n])), [nodes.data]);
}

export function JobsPage() {
  const [params, setParams] = useSearchParams();
  const [text, setText] = useState(params.get("q") ?? "");
  const [labelText, setLabelText] = useState(params.get("label") ?? "");
  const q = useDebounced(text, 250);
  const label = useDebounced(labelText, 250);
  const status = (JOB_STATES as string[]).includes(params.get("status") ?? "") ? (params.get("status") as JobState) : "";
  const node = params.get("node") ?? "";

  const update = (changes: Record<string, string>) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) {
      if (v) next.set(k, v);
      else next.delete(k);
    }
    setParams(next, { replace: true });
  };

  useEffect(() => {
    if ((params.get("q") ?? "") !== q || (params.get("label") ?? "") !== label) update({ q, label });
    // Only the debounced text drives the URL.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [q, label]);

  const filter: JobFilter = useMemo(() => ({ status, node, label, q }), [status, node, label, q]);
  const jobs = useJobList(filter);
  const nodes = useNodeNames();
  const items = jobs.data?.pages.flatMap((p) => p.items) ?? [];
  const filtered = Boolean(status || node || label || q);

  return (
    <div className="page">
      <header className="page-head">
        <div>
          <h1>Jobs</h1>
          <p className="muted">Commands routed to the fleet, newest first. Statuses change here as they happen.</p>
        </div>
        <Link to="/jobs/new" className="button button-primary">
          New job
        </Link>
      </header>
      <div className="toolbar" role="search">
        <label className="field field-grow">
          <span className="sr-only">Search</span>
          <input
            type="search"
            placeholder="Search name or command"
            value={text}
            onChange={(e) => setText(e.target.value)}
            aria-label="Search jobs by name or command"
          />
        </label>
        <label className="field">
          <span className="sr-only">Status</span>
          <select value={status} onChange={(e) => update({ status: e.target.value })} aria-label="Filter by status">
            <option value="">All statuses</option>
            {JOB_STATES.map((s) => (
              <option key={s} value={s}>
                {JOB_STATE_LABELS[s]}
              </option>
            ))}
          </select>
        </label>
        <label className="field">
          <span className="sr-only">Node</span>
          <select value={node} onChange={(e) => update({ node: e.target.value })} aria-label="Filter by node">
            <option value="">All nodes</option>
            {[...nodes.values()]
              .sort((a, b) => a.name.localeCompare(b.name))
              .map((n) => (
                <option key={n.id} value={n.id}>
                  {n.name}
                </option>
              ))}
          </select>
        </label>
        <label className="field">
          <span className="sr-only">Label</span>
          <input placeholder="Label" value={labelText} onChange={(e) => setLabelText(e.target.value)} aria-label="Filter by label" className="input-short" />
        </label>
      </div>
      {jobs.isError && <ErrorNotice error={jobs.error} title="Could not load jobs" onRetry={() => void jobs.refetch()} />}
      <JobTable
        jobs={items}
        nodes={nodes}
        loading={jobs.isPending}
        empty={filtered ? "No job matches these filters." : "No jobs yet. Submit one to run a command on the fleet."}
        testId="job-rows"
      />
      {jobs.hasNextPage && (
        <button type="button" className="button" onClick={() => void jobs.fetchNextPage()} disabled={jobs.isFetchingNextPage}>
          {jobs.isFetchingNextPage ? "Loading…" : "Show older jobs"}
        </button>
      )}
    </div>
  );
}

/** The jobs table, also on the node page. */
export function JobTable({
  jobs,
  nodes,
  loading,
  empty,
  testId,
  showNode = true,
  framed = true,
}: {
  jobs: Job[];
  nodes: Map<string, Node>;
  loading: boolean;
  empty: string;
  testId?: string;
  showNode?: boolean;
  /** In its own card (the jobs page) or inside one (the node page). */
  framed?: boolean;
}) {
  const now = useNow();
  const columns = showNode ? 6 : 5;
  return (
    <div className={framed ? "card card-flush" : "table-scroll"}>
      <table className="data-table job-table">
        <thead>
          <tr>
            <th scope="col">Status</th>
            <th scope="col">Job</th>
            {showNode && (
              <th scope="col" className="hide-narrow">
                Node
              </th>
            )}
            <th scope="col">Duration</th>
            <th scope="col" className="hide-narrow">
              Submitted by
            </th>
            <th scope="col" className="hide-narrow">
              Created
            </th>
          </tr>
        </thead>
        <tbody data-testid={testId}>
          {loading ? (
            <tr>
              <td colSpan={columns} className="muted">
                Loading…
              </td>
            </tr>
          ) : jobs.length === 0 ? (
            <tr>
              <td colSpan={columns} className="muted">
                {empty}
              </td>
            </tr>
          ) : (
            jobs.map((job) => {
              const nodeId = job.assigned_node_id ?? job.node_id;
              const node = nodeId ? nodes.get(nodeId) : undefined;
              return (
                <tr key={job.id} data-job-id={job.id}>
                  <td>
                    <JobStatusBadge status={job.status} />
                  </td>
                  <td className="job-cell">
                    <Link to={`/jobs/${job.id}`} className="job-title">
                      {jobTitle(job)}
                    </Link>
                    {job.name && <div className="mono small muted job-command">{job.command}</div>}
                    {job.status === "queued" && job.queue_reason && <div className="small muted">{job.queue_reason}</div>}
                  </td>
                  {showNode && (
                    <td className="hide-narrow">
                      {nodeId ? (
                        <Link to={`/nodes/${nodeId}`}>{node?.name ?? `${nodeId.slice(0, 8)}…`}</Link>
                      ) : job.labels.length ? (
                        job.labels.map((l) => (
                          <span key={l} className="tag">
                            {l}
                          </span>
                        ))
                      ) : (
                        <span className="muted">any</span>
                      )}
                    </td>
                  )}
                  <td className="nowrap tabular">{shortDuration(jobElapsedMs(job, now))}</td>
                  <td className="mono small hide-narrow">{job.submitted_by}</td>
                  <td className="hide-narrow nowrap">
                    <RelativeTime at={job.created_at} />
                  </td>
                </tr>
              );
            })
          )}
        </tbody>
      </table>
    </div>
  );
}
