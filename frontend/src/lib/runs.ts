// Rules about fleet-wide runs the pages share: how a run's totals, target and output read.
import type { OutputGroup, Run, RunNode, SubmitRun } from "../api/types";
import { plural } from "./format";
import { sameCommand } from "./jobs";

/** A run node's status: its job's state, or `waiting` / `skipped`. */
export type RunNodeStatus = RunNode["status"];

const FAILED: RunNodeStatus[] = ["failed", "timed_out", "lost"];

export function isFailedStatus(status: RunNodeStatus): boolean {
  return FAILED.includes(status);
}

/** "3 nodes: 2 succeeded, 1 failed, 1 skipped" (zero counts left out). */
export function totalsSummary(run: Pick<Run, "totals">): string {
  const t = run.totals;
  const parts = [
    [t.active, "running"],
    [t.waiting, "waiting"],
    [t.succeeded, "succeeded"],
    [t.failed, "failed"],
    [t.cancelled, "cancelled"],
    [t.skipped, "skipped"],
  ]
    .filter(([n]) => Number(n) > 0)
    .map(([n, word]) => `${n} ${word}`);
  const nodes = plural(t.nodes, "node");
  return parts.length ? `${nodes}: ${parts.join(", ")}` : nodes;
}

/** "every node", "nodes with linux, gpu", "3 chosen nodes". */
export function targetSummary(run: Pick<Run, "all" | "labels" | "node_ids">): string {
  if (run.all) return "every node";
  if (run.labels.length) return `nodes with ${run.labels.join(", ")}`;
  return plural(run.node_ids.length, "chosen node");
}

/** How the run rolls: "all at once", "2 at a time, stopping at the first failure". */
export function pacingSummary(run: Pick<Run, "max_parallel" | "stop_on_failure">): string {
  if (!run.max_parallel) return "all at once";
  return `${run.max_parallel} at a time${run.stop_on_failure ? ", stopping at the first failure" : ""}`;
}

/** "37 nodes printed the same 2 lines", "1 node printed nothing". */
export function groupCaption(group: Pick<OutputGroup, "text" | "node_ids" | "truncated">): string {
  const n = group.node_ids.length;
  const who = plural(n, "node");
  if (!group.text) return `${who} printed nothing`;
  const lines = group.text.replace(/\n$/, "").split("\n").length;
  const what = `${group.truncated ? "at first " : ""}${plural(lines, "line")}`;
  return n === 1 ? `${who} printed ${what}` : `${who} printed the same ${what}`;
}

/** The request that runs `run` again: on the same target, or only on `nodeIds`. */
export function rerunRequest(run: Run, nodeIds?: string[]): SubmitRun {
  const body: SubmitRun = sameCommand(run);
  if (run.max_parallel) body.max_parallel = run.max_parallel;
  if (run.max_parallel && run.stop_on_failure) body.stop_on_failure = true;
  if (nodeIds) body.node_ids = nodeIds;
  else if (run.all) body.all = true;
  else if (run.labels.length) body.labels = run.labels;
  else body.node_ids = run.node_ids;
  return body;
}
