// Rules about jobs the pages share: how a status reads, how long a job took.
import type { Job, JobState, SubmitJob } from "../api/types";

export const JOB_STATES: JobState[] = ["queued", "dispatched", "running", "succeeded", "failed", "timed_out", "cancelled", "lost"];

export const JOB_STATE_LABELS: Record<JobState, string> = {
  queued: "Queued",
  dispatched: "Dispatched",
  running: "Running",
  succeeded: "Succeeded",
  failed: "Failed",
  timed_out: "Timed out",
  cancelled: "Cancelled",
  lost: "Lost",
};

/** Milliseconds from start (or dispatch) to finish, or to `now` while it runs; null before it starts. */
export function jobElapsedMs(job: Pick<Job, "started_at" | "dispatched_at" | "finished_at">, now: number = Date.now()): number | null {
  const start = job.started_at ?? job.dispatched_at;
  if (!start) return null;
  const end = job.finished_at ? Date.parse(job.finished_at) : now;
  return Math.max(0, end - Date.parse(start));
}

/** 40 → "<0.1s", 850 → "0.9s", 75_000 → "1m 15s", 7_500_000 → "2h 5m". */
export function shortDuration(ms: number | null): string {
  if (ms === null) return "—";
  if (ms < 100) return "<0.1s";
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  return `${h}h ${m % 60}m`;
}

/** A job's title: its name, or the first line of its command. */
export function jobTitle(job: Pick<Job, "name" | "command">): string {
  return job.name ?? job.command.split("\n")[0]!.trim();
}

/** What a job (or each job of a run) runs, as a request for it again asks for it. */
export function sameCommand(x: Pick<Job, "command" | "env" | "timeout_sec" | "name" | "working_dir">) {
  const body: Pick<SubmitJob, "command" | "env" | "timeout_sec" | "name" | "working_dir"> = { command: x.command, env: x.env, timeout_sec: x.timeout_sec };
  if (x.name) body.name = x.name;
  if (x.working_dir) body.working_dir = x.working_dir;
  return body;
}

/** The request that runs `job` again, asking for the same node or labels. */
export function rerunJob(job: Job): SubmitJob {
  const body: SubmitJob = sameCommand(job);
  if (job.node_id) body.node_id = job.node_id;
  else if (job.labels.length) body.labels = job.labels;
  return body;
}

/** The node a job runs (or ran) on, else the one it asked for; `null` while any node will do. */
export function jobNodeId(job: Pick<Job, "assigned_node_id" | "node_id">): string | null {
  return job.assigned_node_id ?? job.node_id;
}
