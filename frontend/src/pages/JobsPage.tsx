import { useEffect, useMemo, useState } from "react";
import { Link, useSearchParams } from "react-router";

import { useNodeNames } from "../api/nodeNames";
import { allNodes, useJobList, useNodeList, type JobFilter } from "../api/queries";
import type { JobState } from "../api/types";
import { ErrorNotice } from "../components/ErrorNotice";
import { JobTable } from "../components/JobTable";
import { JOB_STATE_LABELS, JOB_STATES } from "../lib/jobs";
import { useDebounced } from "../lib/useDebounced";
import { usePageTitle } from "../lib/usePageTitle";

const ALL_NODES = { q: "", status: "", label: "" } as const;

/**
 * The node filter's choices: the nodes list as far as it is cached (its first page, or all of
 * it once the nodes page has pulled the rest), and always the node filtered on, by name.
 */
function useNodeOptions(selected: string): { id: string; name: string }[] {
  const list = useNodeList(ALL_NODES);
  const selectedName = useNodeNames([selected]).get(selected);
  return useMemo(() => {
    const options = allNodes(list.data).map((n) => ({ id: n.id, name: n.name }));
    if (selected && !options.some((n) => n.id === selected)) options.push({ id: selected, name: selectedName ?? selected });
    return options.sort((a, b) => a.name.localeCompare(b.name));
  }, [list.data, selected, selectedName]);
}

export function JobsPage() {
  usePageTitle("Jobs");
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
  const nodeOptions = useNodeOptions(node);
  const items = jobs.data?.pages.flatMap((p) => p.items) ?? [];
  const filtered = Boolean(status || node || label || q);

  return (
    <div className="page">
      <header className="page-head">
        <div>
          <h1>Jobs</h1>
          <p className="muted">Commands routed to the fleet, newest first. Statuses change here as they happen.</p>
        </div>
        <div className="actions">
          <Link to="/runs" className="button">
            Fleet-wide runs
          </Link>
          <Link to="/jobs/new" className="button button-primary">
            New job
          </Link>
        </div>
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
            {nodeOptions.map((n) => (
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
