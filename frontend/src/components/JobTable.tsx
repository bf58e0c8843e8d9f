// The jobs table: the jobs page lists the fleet's, the node page a node's latest.
import { Link } from "react-router";

import { useNodeNames } from "../api/nodeNames";
import type { Job } from "../api/types";
import { jobElapsedMs, jobNodeId, jobTitle, shortDuration } from "../lib/jobs";
import { useNow } from "../lib/useNow";
import { JobStatusBadge } from "./JobStatusBadge";
import { RelativeTime } from "./RelativeTime";

export function JobTable({
  jobs,
  loading,
  empty,
  testId,
  showNode = true,
  framed = true,
}: {
  jobs: Job[];
  loading: boolean;
  empty: string;
  testId?: string;
  showNode?: boolean;
  /** In its own card (the jobs page) or inside one (the node page). */
  framed?: boolean;
}) {
  const now = useNow();
  const columns = showNode ? 6 : 5;
  // Every node named on screen, however large the fleet (none when the column is hidden).
  const names = useNodeNames(showNode ? jobs.map(jobNodeId) : []);
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
              const nodeId = jobNodeId(job);
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
                        <Link to={`/nodes/${nodeId}`}>{names.get(nodeId) ?? `${nodeId.slice(0, 8)}…`}</Link>
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
