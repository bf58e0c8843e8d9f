import { useVirtualizer } from "@tanstack/react-virtual";
import { useEffect, useMemo, useRef, useState } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";

import { allNodes, useFleetStats, useNodeList, type NodeFilter } from "../api/queries";
import type { Node, NodeStatus } from "../api/types";
import { ErrorNotice } from "../components/ErrorNotice";
import { Meter } from "../components/Meter";
import { RelativeTime } from "../components/RelativeTime";
import { StatusBadge } from "../components/StatusBadge";
import { count } from "../lib/format";
import { countByStatus, sortNodes, STATUSES, usageOf, type Sort, type SortKey, type Usage } from "../lib/nodes";
import { useDebounced } from "../lib/useDebounced";
import { usePageTitle } from "../lib/usePageTitle";

const ROW_HEIGHT = 56;
const NO_USAGE: Usage = { cpu: null, memory: null, disk: null, asOf: null };

const COLUMNS: { key: SortKey | null; label: string; className: string }[] = [
  { key: "status", label: "Status", className: "col-status" },
  { key: "name", label: "Name", className: "col-name" },
  { key: null, label: "Role", className: "col-role" },
  { key: null, label: "Endpoint", className: "col-endpoint" },
  { key: null, label: "Labels", className: "col-labels" },
  { key: "last_seen", label: "Last seen", className: "col-seen" },
  { key: "cpu", label: "CPU", className: "col-cpu" },
  { key: "memory", label: "Memory", className: "col-mem" },
  { key: "disk", label: "Disk", className: "col-disk" },
];

export function parseSort(raw: string | null): Sort {
  const descending = raw?.startsWith("-") ?? false;
  const key = (raw ?? "name").replace(/^-/, "");
  const valid: SortKey[] = ["name", "status", "last_seen", "cpu", "memory", "disk"];
  return valid.includes(key as SortKey) ? { key: key as SortKey, descending } : { key: "name", descending: false };
}

function summary(total: number, online: number, filtered: boolean, loadingMore: boolean): string {
  const noun = total === 1 ? "node" : "nodes";
  const head = [`${count(total)}${loadingMore ? "+" : ""}`, filtered ? "matching" : null, noun].filter(Boolean).join(" ");
  return `${head}${loadingMore ? " (loading more…)" : ""} · ${count(online)} online`;
}

export function NodesPage() {
  usePageTitle("Nodes");
  const [params, setParams] = useSearchParams();
  const [text, setText] = useState(params.get("q") ?? "");
  const q = useDebounced(text, 250);
  const status = (STATUSES as string[]).includes(params.get("status") ?? "") ? (params.get("status") as NodeStatus) : "";
  const label = params.get("label") ?? "";
  const sort = parseSort(params.get("sort"));

  const update = (changes: Record<string, string>) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) {
      if (v) next.set(k, v);
      else next.delete(k);
    }
    setParams(next, { replace: true });
  };

  useEffect(() => {
    if ((params.get("q") ?? "") !== q) update({ q });
    // Only the debounced text drives the URL.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [q]);

  const filter: NodeFilter = useMemo(() => ({ q, status, label }), [q, status, label]);
  const list = useNodeList(filter);
  const stats = useFleetStats();

  // Keep fetching until every page is in: the first one is already on screen.
  // (The page count is a dependency too: a fast answer can start and finish a fetch
  // between two renders.)
  const { hasNextPage, isFetchingNextPage, fetchNextPage, isError } = list;
  const pageCount = list.data?.pages.length ?? 0;
  useEffect(() => {
    if (hasNextPage && !isFetchingNextPage && !isError) void fetchNextPage();
  }, [hasNextPage, isFetchingNextPage, isError, fetchNextPage, pageCount]);

  const nodes = useMemo(() => allNodes(list.data), [list.data]);
  const usage = useMemo(() => {
    const map = new Map<string, Usage>();
    for (const item of stats.data?.items ?? []) map.set(item.node_id, usageOf(item.stats));
    return map;
  }, [stats.data]);
  const sorted = useMemo(() => sortNodes(nodes, sort, (id) => usage.get(id) ?? NO_USAGE), [nodes, sort, usage]);
  const fleetLabels = useMemo(() => {
    const all = new Set<string>();
    for (const n of nodes) for (const l of n.labels) all.add(l);
    return [...all].sort();
  }, [nodes]);
  const counts = useMemo(() => countByStatus(nodes), [nodes]);

  const toggleSort = (key: SortKey) => {
    const next =
      sort.key === key ? (sort.descending ? key : `-${key}`) : key === "cpu" || key === "memory" || key === "disk" || key === "last_seen" ? `-${key}` : key;
    update({ sort: next === "name" ? "" : next });
  };

  const filtered = Boolean(q || status || label);
  const loading = list.isPending;
  const still = list.hasNextPage || list.isFetchingNextPage;

  return (
    <div className="page page-wide">
      <header className="page-head">
        <div>
          <h1>Nodes</h1>
          <p className="muted" data-testid="node-count" aria-live="polite">
            {loading ? "Loading nodes…" : summary(nodes.length, counts.online, filtered, still)}
          </p>
        </div>
        <Link className="button button-primary" to="/nodes/new">
          Add node
        </Link>
      </header>

      <div className="toolbar" role="search">
        <label className="field field-grow">
          <span className="sr-only">Search nodes</span>
          <input type="search" placeholder="Search by name or endpoint" value={text} onChange={(e) => setText(e.target.value)} />
        </label>
        <label className="field">
          <span className="sr-only">Status</span>
          <select value={status} onChange={(e) => update({ status: e.target.value })} aria-label="Filter by status">
            <option value="">All statuses</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s[0]!.toUpperCase() + s.slice(1)}
              </option>
            ))}
          </select>
        </label>
        <label className="field">
          <span className="sr-only">Label</span>
          <input
            list="fleet-labels"
            placeholder="Label"
            value={label}
            onChange={(e) => update({ label: e.target.value.trim().toLowerCase() })}
            aria-label="Filter by label"
          />
          <datalist id="fleet-labels">
            {fleetLabels.map((l) => (
              <option key={l} value={l} />
            ))}
          </datalist>
        </label>
        {filtered && (
          <button
            type="button"
            className="button button-ghost"
            onClick={() => {
              setText("");
              setParams(new URLSearchParams(params.get("sort") ? { sort: params.get("sort")! } : {}), { replace: true });
            }}
          >
            Clear filters
          </button>
        )}
      </div>

      {list.isError && <ErrorNotice error={list.error} title="Could not load the nodes" onRetry={() => void list.refetch()} />}

      <NodeTable nodes={sorted} usage={usage} sort={sort} onSort={toggleSort} loading={loading} filtered={filtered} />
    </div>
  );
}

function NodeTable({
  nodes,
  usage,
  sort,
  onSort,
  loading,
  filtered,
}: {
  nodes: Node[];
  usage: Map<string, Usage>;
  sort: Sort;
  onSort: (key: SortKey) => void;
  loading: boolean;
  filtered: boolean;
}) {
  const scroller = useRef<HTMLDivElement>(null);
  const navigate = useNavigate();
  const virtualizer = useVirtualizer({
    count: nodes.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 12,
    initialRect: { width: 1200, height: 800 },
  });

  return (
    <div className="table" role="table" aria-label="Nodes" aria-rowcount={nodes.length + 1}>
      <div className="table-head" role="rowgroup">
        <div className="table-row table-row-head" role="row" aria-rowindex={1}>
          {COLUMNS.map((col) => (
            <div
              key={col.label}
              role="columnheader"
              className={`cell ${col.className}`}
              aria-sort={col.key && sort.key === col.key ? (sort.descending ? "descending" : "ascending") : undefined}
            >
              {col.key ? (
                <button type="button" className="sort-button" onClick={() => onSort(col.key!)}>
                  {col.label}
                  <span className="sort-mark" aria-hidden="true">
                    {sort.key === col.key ? (sort.descending ? "▼" : "▲") : ""}
                  </span>
                </button>
              ) : (
                col.label
              )}
            </div>
          ))}
        </div>
      </div>
      <div ref={scroller} className="table-body" role="rowgroup" data-testid="node-rows">
        {loading ? (
          <div className="table-empty" aria-busy="true">
            Loading nodes…
          </div>
        ) : nodes.length === 0 ? (
          <div className="table-empty">
            {filtered ? (
              "No node matches these filters."
            ) : (
              <>
                No nodes yet. <Link to="/nodes/new">Add the first one</Link>.
              </>
            )}
          </div>
        ) : (
          <div style={{ height: virtualizer.getTotalSize(), position: "relative" }}>
            {virtualizer.getVirtualItems().map((item) => {
              const node = nodes[item.index]!;
              const u = usage.get(node.id) ?? NO_USAGE;
              // A node that is not online shows its last figures greyed, with their time.
              const stale = node.status === "online" ? undefined : u.asOf;
              return (
                <div
                  key={node.id}
                  role="row"
                  aria-rowindex={item.index + 2}
                  className="table-row"
                  data-node-name={node.name}
                  style={{ transform: `translateY(${item.start}px)`, height: ROW_HEIGHT }}
                  onClick={(e) => {
                    if ((e.target as HTMLElement).closest("a")) return;
                    void navigate(`/nodes/${node.id}`);
                  }}
                >
                  <div role="cell" className="cell col-status">
                    <StatusBadge status={node.status} />
                  </div>
                  <div role="cell" className="cell col-name">
                    <Link to={`/nodes/${node.id}`} className="strong">
                      {node.name}
                    </Link>
                  </div>
                  <div role="cell" className="cell col-role">
                    {node.is_primary ? <span className="pill pill-accent">primary</span> : <span className="muted">secondary</span>}
                  </div>
                  {node.connect === "outbound" ? (
                    <div role="cell" className="cell col-endpoint" title="This node connects to the primary; nothing connects to it">
                      <span className="pill">outbound</span>
                    </div>
                  ) : (
                    <div role="cell" className="cell col-endpoint mono" title={node.api_endpoint}>
                      {node.api_endpoint}
                    </div>
                  )}
                  <div role="cell" className="cell col-labels" title={node.labels.length > 3 ? node.labels.join(", ") : undefined}>
                    {node.labels.slice(0, 3).map((l) => (
                      <span key={l} className="tag">
                        {l}
                      </span>
                    ))}
                    {node.labels.length > 3 && <span className="muted small">+{node.labels.length - 3}</span>}
                  </div>
                  <div role="cell" className="cell col-seen">
                    <RelativeTime at={node.last_seen} />
                  </div>
                  <div role="cell" className="cell col-cpu">
                    <Meter value={u.cpu} label="CPU" asOf={stale} />
                  </div>
                  <div role="cell" className="cell col-mem">
                    <Meter value={u.memory} label="Memory" asOf={stale} />
                  </div>
                  <div role="cell" className="cell col-disk">
                    <Meter value={u.disk} label="Disk" asOf={stale} />
                  </div>
                </div>
              );
            })}
          </div>
        )}
      </div>
    </div>
  );
}
