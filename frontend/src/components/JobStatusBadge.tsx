import type { JobState, RunNode } from "../api/types";
import { JOB_STATE_LABELS } from "../lib/jobs";

const LABELS: Record<RunNode["status"], string> = { ...JOB_STATE_LABELS, waiting: "Waiting", skipped: "Skipped" };

/** A job's state; also a run's (its states are job states) and a run node's (`waiting`, `skipped`). */
export function JobStatusBadge({ status }: { status: JobState | RunNode["status"] }) {
  const active = status === "running" || status === "dispatched";
  return (
    <span className={`badge badge-job-${status}`} data-job-status={status}>
      <span className={`badge-dot${active ? " badge-dot-pulse" : ""}`} aria-hidden="true" />
      {LABELS[status] ?? status}
    </span>
  );
}
