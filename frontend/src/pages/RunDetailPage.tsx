import { useVirtualizer } from "@tanstack/react-virtual";
import { useMemo, useRef, useState } from "react";
import { Link, useNavigate, useParams } from "react-router";

import { useCancelRun, useRun, useRunOutput, useSubmitRun } from "../api/queries";
import type { RunDetail, RunNode } from "../api/types";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { ErrorNotice } from "../components/ErrorNotice";
import { JobStatusBadge } from "../components/JobStatusBadge";
import { PageLoader } from "../components/PageLoader";
import { RelativeTime } from "../components/RelativeTime";
import { bytes } from "../lib/format";
import { jobElapsedMs, jobTitle, shortDuration } from "../lib/jobs";
import { groupCaption, isFailedStatus, pacingSummary, rerunRequest, targetSummary, totalsSummary } from "../lib/runs";
import { useNow } from "../lib/useNow";
import { usePageTitle } from "../lib/usePageTitle";

export function RunDetailPage() {
  const { id = "" } = useParams();
  const run = useRun(id);
  usePageTitle(run.data ? `Run ${jobTitle(run.data).slice(0, 40)}` : "Run");
  return (
    <PageLoader query={run} noun="run" back={{ to: "/runs", label: "Fleet-wide runs" }}>
      {(data) => <Run key={id} run={data} />}
    </PageLoader>
  );
}

type Filter = "all" | "failed" | "active" | "skipped";
const FILTERS: [Filter, string][] = [
  ["all", "All"],
  ["failed", "Failed"],
  ["active", "Running"],
  ["skipped", "Waiting or skipped"],
];

function matches(filter: Filter, node: RunNode): boolean {
  switch (filter) {
    case "all":
      return true;
    case "failed":
      return isFailedStatus(node.status);
    case "active":
      return node.status === "queued" || node.status === "dispatched" || node.status === "running";
    case "skipped":
      return node.status === "skipped" || node.status === "waiting";
  }
}

function Run({ run }: { run: RunDetail }) {
  const [confirm, setConfirm] = useState(false);
  const [view, setView] = useState<"nodes" | "output">("nodes");
  const cancel = useCancelRun(run.id);
  const rerun = useSubmitRun();
  const navigate = useNavigate();
  const failed = run.nodes.filter((n) => isFailedStatus(n.status)).map((n) => n.node_id);
  const again = (nodeIds?: string[]) => rerun.mutate(rerunRequest(run, nodeIds), { onSuccess: (next) => navigate(`/runs/${next.id}`) });

  return (
    <div className="page">
      <header className="page-head">
        <div className="page-head-main">
          <p className="crumbs">
            <Link to="/jobs">Jobs</Link> / <Link to="/runs">Fleet-wide runs</Link> /
          </p>
          <h1 className="title-with-badge">
            <span className="job-heading">{jobTitle(run)}</span>
            <JobStatusBadge status={run.status} />
          </h1>
          <p className="muted" data-testid="run-summary">
            {totalsSummary(run)}
          </p>
        </div>
        <div className="actions">
          {run.status === "running" ? (
            <button type="button" className="button button-danger" onClick={() => setConfirm(true)}>
              Cancel run
            </button>
          ) : (
            <>
              {failed.length > 0 && (
                <button type="button" className="button" disabled={rerun.isPending} onClick={() => again(failed)}>
                  Re-run failed nodes
                </button>
              )}
              <button type="button" className="button" disabled={rerun.isPending} onClick={() => again()}>
                Run again
              </button>
            </>
          )}
        </div>
      </header>
      {rerun.error && <ErrorNotice error={rerun.error} />}
      {run.stopped && (
        <div className="notice notice-info" role="status" data-testid="run-stopped">
          <span>{run.stopped[0]!.toUpperCase() + run.stopped.slice(1)}.</span>
        </div>
      )}

      <pre className="code job-command-block" aria-label="Command">
        {run.command}
      </pre>
      <section className="facts facts-compact" aria-label="Run facts">
        <div className="fact">
          <span className="fact-label">On</span>
          <span className="fact-value">{targetSummary(run)}</span>
        </div>
        <div className="fact">
          <span className="fact-label">Pace</span>
          <span className="fact-value">{pacingSummary(run)}</span>
        </div>
        <div className="fact">
          <span className="fact-label">Started</span>
          <span className="fact-value">
            <RelativeTime at={run.created_at} /> <span className="muted small">by {run.submitted_by}</span>
          </span>
        </div>
      </section>

      <Matrix nodes={run.nodes} />

      <div className="segmented run-view" role="group" aria-label="Show">
        <button type="button" aria-pressed={view === "nodes"} onClick={() => setView("nodes")}>
          Nodes
        </button>
        <button type="button" aria-pressed={view === "output"} onClick={() => setView("output")}>
          Output
        </button>
      </div>
      {view === "nodes" ? <NodeTable nodes={run.nodes} /> : <GroupedOutput run={run} />}

      {confirm && (
        <ConfirmDialog
          title="Cancel this run?"
          confirm="Cancel run"
          busy="Cancelling…"
          action={cancel}
          onConfirm={() => cancel.mutate(undefined, { onSuccess: () => setConfirm(false) })}
          onClose={() => setConfirm(false)}
        >
          <p>Nodes still waiting their turn will not start, and every unfinished job is cancelled (its node stops the command).</p>
        </ConfirmDialog>
      )}
    </div>
  );
}

/** One square per node, coloured by status: the whole run at a glance (the table below is the way in for keyboards and screen readers). */
function Matrix({ nodes }: { nodes: RunNode[] }) {
  const navigate = useNavigate();
  return (
    <div className="run-matrix" aria-hidden="true" data-testid="run-matrix">
      {nodes.map((n) => (
        <span
          key={n.node_id}
          className={`run-cell run-cell-${n.status}${n.job_id ? " run-cell-link" : ""}`}
          data-node-name={n.node_name}
          title={`${n.node_name}: ${n.status.replace("_", " ")}${n.exit_code !== null ? ` (exit ${n.exit_code})` : ""}`}
          onClick={() => n.job_id && navigate(`/jobs/${n.job_id}`)}
        />
      ))}
    </div>
  );
}

const ROW_HEIGHT = 44;

function NodeTable({ nodes }: { nodes: RunNode[] }) {
  const [filter, setFilter] = useState<Filter>("all");
  const shown = useMemo(() => nodes.filter((n) => matches(filter, n)), [nodes, filter]);
  const scroller = useRef<HTMLDivElement>(null);
  const now = useNow();
  const virtualizer = useVirtualizer({
    count: shown.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 12,
    initialRect: { width: 1200, height: 600 },
  });

  return (
    <section aria-label="Nodes of the run">
      <div className="segmented run-filter" role="group" aria-label="Filter nodes">
        {FILTERS.map(([value, text]) => (
          <button key={value} type="button" aria-pressed={filter === value} onClick={() => setFilter(value)}>
            {text} <span className="muted tabular">{nodes.filter((n) => matches(value, n)).length}</span>
          </button>
        ))}
      </div>
      <div className="table run-table" role="table" aria-label="Nodes" aria-rowcount={shown.length + 1}>
        <div className="table-head" role="rowgroup">
          <div className="table-row table-row-head" role="row" aria-rowindex={1}>
            {["Node", "Status", "Exit code", "Duration", "Output", "Detail"].map((label) => (
              <div key={label} role="columnheader" className="cell">
                {label}
              </div>
            ))}
          </div>
        </div>
        <div
          ref={scroller}
          className="table-body"
          role="rowgroup"
          data-testid="run-rows"
          style={{ height: Math.min(Math.max(shown.length, 2) * ROW_HEIGHT, 560) }}
        >
          {shown.length === 0 ? (
            <div className="table-empty">No node here.</div>
          ) : (
            <div style={{ height: virtualizer.getTotalSize(), position: "relative" }}>
              {virtualizer.getVirtualItems().map((item) => {
                const n = shown[item.index]!;
                return (
                  <div
                    key={n.node_id}
                    role="row"
                    aria-rowindex={item.index + 2}
                    className="table-row"
                    data-node-name={n.node_name}
                    style={{ transform: `translateY(${item.start}px)`, height: ROW_HEIGHT }}
                  >
                    <div role="cell" className="cell">
                      <Link to={`/nodes/${n.node_id}`} className="strong">
                        {n.node_name}
                      </Link>
                    </div>
                    <div role="cell" className="cell">
                      {n.job_id ? (
                        <Link to={`/jobs/${n.job_id}`} aria-label={`${n.node_name}: ${n.status}, open its job`}>
                          <JobStatusBadge status={n.status} />
                        </Link>
                      ) : (
                        <JobStatusBadge status={n.status} />
                      )}
                    </div>
                    <div role="cell" className="cell tabular" data-testid="exit-code">
                      {n.exit_code ?? <span className="muted">—</span>}
                    </div>
                    <div role="cell" className="cell tabular">
                      {shortDuration(jobElapsedMs({ started_at: n.started_at, dispatched_at: null, finished_at: n.finished_at }, now))}
                    </div>
                    <div role="cell" className="cell tabular">
                      {n.job_id ? bytes(n.log_bytes) : <span className="muted">—</span>}
                    </div>
                    <div role="cell" className="cell muted small run-reason" title={n.reason ?? undefined}>
                      {n.reason ?? ""}
                    </div>
                  </div>
                );
              })}
            </div>
          )}
        </div>
      </div>
    </section>
  );
}

function GroupedOutput({ run }: { run: RunDetail }) {
  const output = useRunOutput(run);
  const names = useMemo(() => new Map(run.nodes.map((n) => [n.node_id, n.node_name])), [run.nodes]);
  if (output.isPending) return <p className="muted">Loading output…</p>;
  if (output.error) return <ErrorNotice error={output.error} onRetry={() => void output.refetch()} />;
  if (!output.data.length) return <p className="muted">No node has started yet.</p>;
  return (
    <section className="run-groups" aria-label="Output by group">
      {output.data.map((group) => {
        const who = group.node_ids.map((id) => names.get(id) ?? id);
        return (
          <article key={group.job_ids[0]} className="card run-group">
            <h2 className="run-group-caption">{groupCaption(group)}</h2>
            <p className="muted small">
              {who.slice(0, 20).join(", ")}
              {who.length > 20 ? ` and ${who.length - 20} more` : ""}
            </p>
            {group.text ? <pre className="code run-group-text">{group.text}</pre> : <p className="muted small">(no output)</p>}
            {group.truncated && <p className="muted small">Only the first 64 KiB of each node's output are compared; open a node's job for all of it.</p>}
          </article>
        );
      })}
    </section>
  );
}
