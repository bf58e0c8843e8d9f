import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { Link, useNavigate, useParams } from "react-router";

import { useNodeNames } from "../api/nodeNames";
import { isFinalJobState, keys, useCancelJob, useJob, useNode, useSubmitJob } from "../api/queries";
import type { Job, Node } from "../api/types";
import { Dialog } from "../components/Dialog";
import { ErrorNotice } from "../components/ErrorNotice";
import { JobStatusBadge } from "../components/JobStatusBadge";
import { LogView } from "../components/LogView";
import { PageLoader } from "../components/PageLoader";
import { RelativeTime } from "../components/RelativeTime";
import { bytes, count, exactTime } from "../lib/format";
import { describeError } from "../lib/errors";
import { jobElapsedMs, jobNodeId, jobTitle, rerunJob, shortDuration } from "../lib/jobs";
import { useNow } from "../lib/useNow";
import { useJobLog, type JobLog, type LogState } from "../live/jobLog";
import { usePageTitle } from "../lib/usePageTitle";

export function JobDetailPage() {
  const { id = "" } = useParams();
  const job = useJob(id);
  usePageTitle(job.data ? `Job ${job.data.name ?? job.data.command.slice(0, 40)}` : "Job");

  return (
    <PageLoader query={job} noun="job" back={{ to: "/jobs", label: "Jobs" }}>
      {(data) => <JobDetail key={id} job={data} />}
    </PageLoader>
  );
}

/** The node of a dispatched or running job, if it stopped answering. */
function useDownNode(job: Job): Node | null {
  const active = job.status === "dispatched" || job.status === "running";
  const node = useNode(jobNodeId(job) ?? "", { enabled: active });
  const down = node.data && (node.data.status === "offline" || node.data.status === "unreachable");
  return active && down ? node.data! : null;
}

function JobDetail({ job }: { job: Job }) {
  const [confirm, setConfirm] = useState(false);
  const rerun = useSubmitJob();
  const navigate = useNavigate();
  const log = useJobLog(job.id);
  const downNode = useDownNode(job);
  const final = isFinalJobState(job.status);
  const cancelling = job.cancel_requested && !final;

  return (
    <div className="page">
      <header className="page-head">
        <div className="page-head-main">
          <p className="crumbs">
            <Link to="/jobs">Jobs</Link> /{" "}
            {job.run_id && (
              <>
                <Link to={`/runs/${job.run_id}`}>Fleet-wide run</Link> /
              </>
            )}
          </p>
          <h1 className="title-with-badge">
            <span className="job-heading">{jobTitle(job)}</span>
            <JobStatusBadge status={job.status} />
          </h1>
          <p className="muted mono small">{job.id}</p>
        </div>
        <div className="actions">
          <a className="button" href={`/api/jobs/${encodeURIComponent(job.id)}/logs/raw`} download={`job-${job.id}.log`}>
            Download log
          </a>
          {final && (
            <button
              type="button"
              className="button"
              disabled={rerun.isPending}
              onClick={() => rerun.mutate(rerunJob(job), { onSuccess: (next) => navigate(`/jobs/${next.id}`) })}
            >
              Run again
            </button>
          )}
          {!final && (
            <button type="button" className="button button-danger" disabled={cancelling} onClick={() => setConfirm(true)}>
              {cancelling ? "Cancelling…" : "Cancel job"}
            </button>
          )}
        </div>
      </header>
      {rerun.error && <ErrorNotice error={rerun.error} title="Could not run it again" />}

      {job.status === "queued" && job.queue_reason && (
        <div className="notice notice-info" role="status" data-testid="queue-reason">
          <span>
            <strong>Waiting for a node: </strong>
            {job.queue_reason}.
          </span>
        </div>
      )}
      <NodeDown node={downNode} />
      {cancelling && (
        <div className="notice notice-info" role="status">
          <span>Cancel requested: the node is stopping the job (SIGTERM, then SIGKILL after a grace period).</span>
        </div>
      )}
      {job.error && (
        <div className="notice notice-error" role="status" data-testid="job-error">
          <span>{job.error}</span>
        </div>
      )}

      <pre className="code job-command-block" aria-label="Command">
        {job.command}
      </pre>
      <Facts job={job} log={log} />
      <Output job={job} log={log} nodeDown={downNode !== null} />
      {confirm && <CancelDialog job={job} onClose={() => setConfirm(false)} />}
    </div>
  );
}

function Facts({ job, log }: { job: Job; log: JobLog }) {
  const now = useNow();
  const nodeId = jobNodeId(job);
  const nodeName = useNodeNames([nodeId]).get(nodeId ?? "");
  const env = Object.entries(job.env);
  return (
    <section className="facts facts-compact" aria-label="Job facts">
      <div className="fact">
        <span className="fact-label">Node</span>
        <span className="fact-value" data-testid="job-node">
          {nodeId ? <Link to={`/nodes/${nodeId}`}>{nodeName ?? nodeId}</Link> : <span className="muted">not placed yet</span>}
        </span>
      </div>
      <div className="fact">
        <span className="fact-label">Asked for</span>
        <span className="fact-value">
          {job.node_id ? (
            "that node"
          ) : job.labels.length ? (
            job.labels.map((l) => (
              <span key={l} className="tag">
                {l}
              </span>
            ))
          ) : (
            <span className="muted">any node</span>
          )}
        </span>
      </div>
      <div className="fact">
        <span className="fact-label">Exit code</span>
        <span className="fact-value" data-testid="job-exit-code">
          {job.exit_code ?? <span className="muted">—</span>}
        </span>
      </div>
      <div className="fact">
        <span className="fact-label">Duration</span>
        <span className="fact-value">{shortDuration(jobElapsedMs(job, now))}</span>
      </div>
      <div className="fact">
        <span className="fact-label">Submitted</span>
        <span className="fact-value">
          <RelativeTime at={job.created_at} /> <span className="muted small">by {job.submitted_by}</span>
        </span>
      </div>
      <div className="fact">
        <span className="fact-label">Started</span>
        <span className="fact-value" title={exactTime(job.started_at)}>
          <RelativeTime at={job.started_at} empty="not yet" />
        </span>
      </div>
      <div className="fact">
        <span className="fact-label">Finished</span>
        <span className="fact-value">
          <RelativeTime at={job.finished_at} empty="not yet" />
        </span>
      </div>
      <div className="fact">
        <span className="fact-label">Timeout</span>
        <span className="fact-value">{shortDuration(job.timeout_sec * 1000)}</span>
      </div>
      <div className="fact">
        <span className="fact-label">Output</span>
        {/* While it runs, what has streamed in counts at once (the job's own figure catches up
            at its next change); once it is over, the stored figure, exact to the byte. */}
        <span className="fact-value" data-testid="job-output-size">
          {bytes(isFinalJobState(job.status) ? job.log_bytes : Math.max(job.log_bytes, log.lines.bytes))}
        </span>
      </div>
      <div className="fact">
        <span className="fact-label">Attempt</span>
        <span className="fact-value">{job.attempt}</span>
      </div>
      {job.working_dir && (
        <div className="fact">
          <span className="fact-label">Working directory</span>
          <span className="fact-value mono">{job.working_dir}</span>
        </div>
      )}
      {env.length > 0 && (
        <div className="fact fact-wide">
          <span className="fact-label">Environment</span>
          <span className="fact-value mono">
            {env.map(([k, v]) => (
              <span key={k} className="tag">
                {k}={v}
              </span>
            ))}
          </span>
        </div>
      )}
    </section>
  );
}

/**
 * A job still running on a node that stopped answering says so: its output may never come,
 * and it becomes lost if the node does not come back (`JOB_LOST_AFTER`).
 */
function NodeDown({ node }: { node: Node | null }) {
  if (!node) return null;
  return (
    <div className="notice notice-warn" role="status" data-testid="node-down">
      <span>
        <strong>
          Its node {node.name} is {node.status}
        </strong>{" "}
        (last heard from <RelativeTime at={node.last_seen} />
        ): the job is marked lost if the node does not come back within JOB_LOST_AFTER (5 minutes unless set otherwise).
      </span>
    </div>
  );
}

const LOG_STATE_TEXT: Record<LogState, string> = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  ended: "Complete",
};

function Output({ job, log, nodeDown }: { job: Job; log: JobLog; nodeDown: boolean }) {
  const client = useQueryClient();
  const [follow, setFollow] = useState(true);
  const ended = log.end !== null;

  // The socket's last word is the final status: bring the facts (exit code, times) along.
  useEffect(() => {
    if (ended) void client.invalidateQueries({ queryKey: keys.job(job.id) });
  }, [ended, client, job.id]);

  // Connected to the primary, but nothing will come while the job's node is away.
  const waiting = nodeDown && log.state === "live";
  const liveClass = waiting ? "live-reconnecting" : log.state === "live" ? "live-live" : log.state === "reconnecting" ? "live-reconnecting" : "";
  return (
    <section className="card card-log" aria-labelledby="output-title">
      <div className="card-head">
        <h2 id="output-title">Output</h2>
        <div className="actions">
          <span className={`live ${liveClass}`} data-testid="log-state" data-state={log.state}>
            <span className="live-dot" aria-hidden="true" />
            {waiting ? "Waiting for its node" : LOG_STATE_TEXT[log.state]}
          </span>
          <span className="muted small tabular" data-testid="log-count">
            {count(log.lines.dropped + log.lines.count)} lines
          </span>
          <button type="button" className="button button-small" aria-pressed={follow} onClick={() => setFollow((f) => !f)}>
            {follow ? "Following" : "Follow"}
          </button>
        </div>
      </div>
      {log.lines.dropped > 0 && (
        <p className="muted small" data-testid="log-dropped">
          The first {count(log.lines.dropped)} lines are not shown here to keep the page fast;{" "}
          <a href={`/api/jobs/${encodeURIComponent(job.id)}/logs/raw`} download={`job-${job.id}.log`}>
            download the log
          </a>{" "}
          for all of it.
        </p>
      )}
      <LogView
        lines={log.lines}
        version={log.version}
        follow={follow}
        onFollowChange={setFollow}
        empty={
          ended || isFinalJobState(job.status)
            ? "No output."
            : job.status === "queued"
              ? "Output appears here once a node runs the job."
              : "Waiting for output…"
        }
      />
      {log.end && (
        <p className={`log-end ${log.end.status === "succeeded" ? "text-ok" : "text-error"}`} data-testid="log-end">
          {log.end.status === "succeeded" ? "Finished successfully" : `Ended: ${log.end.status.replace("_", " ")}`}
          {log.end.exitCode !== null ? ` (exit code ${log.end.exitCode})` : ""}.
        </p>
      )}
    </section>
  );
}

function CancelDialog({ job, onClose }: { job: Job; onClose: () => void }) {
  const cancel = useCancelJob(job.id);
  return (
    <Dialog open title="Cancel this job?" onClose={onClose}>
      <p>
        {job.status === "queued"
          ? "It has not started yet: it is taken out of the queue at once."
          : "Its node stops the command and everything it started (SIGTERM, then SIGKILL after a grace period). Output so far is kept."}
      </p>
      {cancel.isError && <p className="field-error">{describeError(cancel.error)}</p>}
      <div className="actions">
        <button type="button" className="button button-danger" disabled={cancel.isPending} onClick={() => cancel.mutate(undefined, { onSuccess: onClose })}>
          {cancel.isPending ? "Cancelling…" : "Cancel job"}
        </button>
        <button type="button" className="button button-ghost" onClick={onClose}>
          Keep it running
        </button>
      </div>
    </Dialog>
  );
}
