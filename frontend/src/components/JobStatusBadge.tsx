import type { JobState } from "../api/types";
import { JOB_STATE_LABELS } from "../lib/jobs";

export function JobStatusBadge({ status }: { status: JobState }) {
  const active = status === "running" || status === "dispatched";
  return (
    <span className={`badge badge-job-${status}`} data-job-status={status}>
      <span className={`badge-dot${active ? " badge-dot-pulse" : ""}`} aria-hidden="true" />
      {JOB_STATE_LABELS[status] ?? status}
    </span>
  );
}
