// Rules about nodes the pages share: what needs attention, and how the table sorts.
import type { Node, NodeStats, NodeStatus, SystemStats } from "../api/types";
import { ratio } from "./format";

export const STATUSES: NodeStatus[] = ["online", "offline", "unreachable", "pending"];

/** Worst first. */
const SEVERITY: Record<NodeStatus, number> = { unreachable: 0, offline: 1, pending: 2, online: 3 };

/** A resource this full is worth a look. */
export const HIGH_USAGE = 90;

export interface Usage {
  cpu: number | null;
  memory: number | null;
  disk: number | null;
  /** When the figures were taken. */
  asOf: string | null;
}

export function usageOf(stats: SystemStats | null | undefined): Usage {
  if (!stats) return { cpu: null, memory: null, disk: null, asOf: null };
  const disk = stats.disks[0];
  return {
    cpu: stats.cpu_usage_percent,
    memory: ratio(stats.memory.used_bytes, stats.memory.total_bytes),
    disk: disk ? ratio(disk.used_bytes, disk.total_bytes) : null,
    asOf: stats.collected_at,
  };
}

export interface Attention {
  stats: NodeStats;
  reasons: string[];
  severity: number;
}

/** Nodes that need a look, worst first: not online, or a resource at 90 % or more. */
export function needingAttention(items: NodeStats[]): Attention[] {
  const out: Attention[] = [];
  for (const item of items) {
    const reasons: string[] = [];
    if (item.status !== "online") reasons.push(item.status);
    const usage = usageOf(item.stats);
    if (item.status === "online") {
      if ((usage.cpu ?? 0) >= HIGH_USAGE) reasons.push(`CPU ${Math.round(usage.cpu ?? 0)}%`);
      if ((usage.memory ?? 0) >= HIGH_USAGE) reasons.push(`memory ${Math.round(usage.memory ?? 0)}%`);
      if ((usage.disk ?? 0) >= HIGH_USAGE) reasons.push(`disk ${Math.round(usage.disk ?? 0)}%`);
    }
    if (reasons.length) out.push({ stats: item, reasons, severity: SEVERITY[item.status] });
  }
  return out.sort((a, b) => a.severity - b.severity || a.stats.name.localeCompare(b.stats.name));
}

export function countByStatus(items: { status: NodeStatus }[]): Record<NodeStatus, number> {
  const counts: Record<NodeStatus, number> = { online: 0, offline: 0, unreachable: 0, pending: 0 };
  for (const item of items) counts[item.status] += 1;
  return counts;
}

export type SortKey = "name" | "status" | "last_seen" | "cpu" | "memory" | "disk";
export interface Sort {
  key: SortKey;
  descending: boolean;
}

/** Sorted copy of `nodes` (the API's order is by name). Unknown values sort last. */
export function sortNodes(nodes: Node[], sort: Sort, usage: (id: string) => Usage): Node[] {
  if (sort.key === "name" && !sort.descending) return nodes;
  const direction = sort.descending ? -1 : 1;
  const value = (n: Node): number | string | null => {
    switch (sort.key) {
      case "name":
        return n.name;
      case "status":
        return SEVERITY[n.status];
      case "last_seen":
        return n.last_seen ? Date.parse(n.last_seen) : null;
      default:
        return usage(n.id)[sort.key];
    }
  };
  const keyed = nodes.map((n) => ({ n, v: value(n) }));
  keyed.sort((a, b) => {
    if (a.v === null && b.v === null) return a.n.name < b.n.name ? -1 : 1;
    if (a.v === null) return 1;
    if (b.v === null) return -1;
    if (a.v < b.v) return -direction;
    if (a.v > b.v) return direction;
    return a.n.name < b.n.name ? -1 : 1;
  });
  return keyed.map((k) => k.n);
}

/** Labels are typed as a comma list: `linux, amd64` → ["linux", "amd64"]. */
export function parseLabels(text: string): string[] {
  return text
    .split(",")
    .map((l) => l.trim().toLowerCase())
    .filter(Boolean);
}
