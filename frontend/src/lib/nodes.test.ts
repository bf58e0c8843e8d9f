import { describe, expect, it } from "vitest";

import type { Node, NodeStats, SystemStats } from "../api/types";
import { countByStatus, needingAttention, parseLabels, sortNodes, type Usage } from "./nodes";

function node(name: string, status: Node["status"], lastSeen: string | null = null): Node {
  return {
    id: name,
    name,
    api_endpoint: `http://${name}:8080`,
    is_primary: false,
    status,
    labels: [],
    consecutive_failures: 0,
    last_seen: lastSeen,
    last_health_check: null,
    last_error: null,
    version: null,
    max_jobs: 1,
    connect: "inbound",
    created_at: "2026-11-23T00:00:00Z",
    updated_at: "2026-11-23T00:00:00Z",
  };
}

function stats(name: string, status: NodeStats["status"], cpu: number, memUsed = 1, diskUsed = 1): NodeStats {
  const s = {
    cpu_usage_percent: cpu,
    memory: { total_bytes: 100, used_bytes: memUsed, available_bytes: 100 - memUsed },
    disks: [{ path: "/", mount_point: "/", total_bytes: 100, used_bytes: diskUsed }],
  } as SystemStats;
  return { node_id: name, name, status, is_primary: false, stats: s };
}

describe("node rules", () => {
  it("puts the worst problems first: unreachable, offline, pending, then busy online nodes", () => {
    const items = [
      stats("a", "online", 10),
      stats("b", "pending", 0),
      stats("c", "online", 95),
      stats("d", "unreachable", 0),
      stats("e", "offline", 0),
      stats("f", "online", 5, 97),
    ];
    const attention = needingAttention(items);
    expect(attention.map((a) => a.stats.name)).toEqual(["d", "e", "b", "c", "f"]);
    expect(attention.find((a) => a.stats.name === "c")?.reasons).toEqual(["CPU 95%"]);
    expect(attention.find((a) => a.stats.name === "f")?.reasons).toEqual(["memory 97%"]);
  });

  it("counts by status", () => {
    expect(countByStatus([node("a", "online"), node("b", "online"), node("c", "pending")])).toEqual({ online: 2, offline: 0, unreachable: 0, pending: 1 });
  });

  it("sorts by status, last seen and usage, unknown values last", () => {
    const nodes = [node("a", "online", "2026-11-23T10:00:00Z"), node("b", "unreachable"), node("c", "offline", "2026-11-23T12:00:00Z")];
    const usage: Record<string, Usage> = {
      a: { cpu: 50, memory: null, disk: null, asOf: null },
      b: { cpu: null, memory: null, disk: null, asOf: null },
      c: { cpu: 90, memory: null, disk: null, asOf: null },
    };
    const by = (key: Parameters<typeof sortNodes>[1]["key"], descending = false) =>
      sortNodes(nodes, { key, descending }, (id) => usage[id]!).map((n) => n.name);
    expect(by("status")).toEqual(["b", "c", "a"]);
    expect(by("last_seen", true)).toEqual(["c", "a", "b"]);
    expect(by("cpu", true)).toEqual(["c", "a", "b"]);
    expect(by("cpu")).toEqual(["a", "c", "b"]);
    expect(by("name", true)).toEqual(["c", "b", "a"]);
  });

  it("reads labels as a comma list", () => {
    expect(parseLabels(" Linux, amd64,,gpu ")).toEqual(["linux", "amd64", "gpu"]);
  });
});
