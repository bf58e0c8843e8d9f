import { Link } from "react-router";

import { useRunList } from "../api/queries";
import { ErrorNotice } from "../components/ErrorNotice";
import { JobStatusBadge } from "../components/JobStatusBadge";
import { RelativeTime } from "../components/RelativeTime";
import { jobTitle } from "../lib/jobs";
import { targetSummary, totalsSummary } from "../lib/runs";
import { usePageTitle } from "../lib/usePageTitle";

export function RunsPage() {
  usePageTitle("Fleet-wide runs");
  const runs = useRunList();
  const items = runs.data?.pages.flatMap((p) => p.items) ?? [];

  return (
    <div className="page">
      <header className="page-head">
        <div>
          <p className="crumbs">
            <Link to="/jobs">Jobs</Link> /
          </p>
          <h1>Fleet-wide runs</h1>
          <p className="muted">One command on every matching node, one job per node, newest first.</p>
        </div>
        <Link to="/jobs/new?fleet=1" className="button button-primary">
          New run
        </Link>
      </header>
      {runs.error && <ErrorNotice error={runs.error} onRetry={() => void runs.refetch()} />}
      <div className="table" role="table" aria-label="Runs">
        <div className="table-head" role="rowgroup">
          <div className="table-row table-row-head runs-row" role="row">
            {["Status", "Command", "On", "Nodes", "Started"].map((label) => (
              <div key={label} role="columnheader" className="cell">
                {label}
              </div>
            ))}
          </div>
        </div>
        <div role="rowgroup">
          {runs.isPending ? (
            <div className="table-empty" aria-busy="true">
              Loading runs…
            </div>
          ) : items.length === 0 ? (
            <div className="table-empty">
              No runs yet. <Link to="/jobs/new?fleet=1">Run a command on every matching node</Link>.
            </div>
          ) : (
            items.map((run) => (
              <div key={run.id} role="row" className="table-row runs-row" data-run-id={run.id}>
                <div role="cell" className="cell">
                  <JobStatusBadge status={run.status} />
                </div>
                <div role="cell" className="cell">
                  <Link to={`/runs/${run.id}`} className="strong mono">
                    {jobTitle(run)}
                  </Link>
                </div>
                <div role="cell" className="cell muted">
                  {targetSummary(run)}
                </div>
                <div role="cell" className="cell small">
                  {totalsSummary(run)}
                </div>
                <div role="cell" className="cell nowrap">
                  <RelativeTime at={run.created_at} />
                </div>
              </div>
            ))
          )}
        </div>
      </div>
      {runs.hasNextPage && (
        <div className="actions">
          <button type="button" className="button" disabled={runs.isFetchingNextPage} onClick={() => void runs.fetchNextPage()}>
            {runs.isFetchingNextPage ? "Loading…" : "Show older runs"}
          </button>
        </div>
      )}
    </div>
  );
}
