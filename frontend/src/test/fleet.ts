// A large fleet for tests that must not assume every node is on the nodes list's first page.
import type { Node } from "../api/types";
import type { Call } from "./render";

/** `n` nodes, `node-1` … `node-n`, with UUID-shaped IDs in the API's (creation) order. */
export function fleetOf(n: number): Node[] {
  return Array.from({ length: n }, (_, i) => {
    const seq = String(i + 1).padStart(12, "0");
    return {
      id: `0190f6c2-8f5a-7c1e-9a43-${seq}`,
      name: `node-${i + 1}`,
      api_endpoint: `http://10.0.${Math.floor((i + 1) / 256)}.${(i + 1) % 256}:8080`,
      is_primary: i === 0,
      status: "online",
      labels: [],
      consecutive_failures: 0,
      last_seen: "2026-11-23T18:00:00Z",
      last_health_check: null,
      last_error: null,
      version: "0.1.0",
      max_jobs: 4,
      created_at: "2026-11-23T00:00:00Z",
      updated_at: "2026-11-23T00:00:00Z",
      connect: "inbound",
    };
  });
}

/**
 * Answers `GET /api/nodes` (keyset pages: `limit`, `cursor`) and `GET /api/nodes/{id}`
 * (404 for an ID not in `nodes`) as the API does; anything else is left to the caller.
 */
export function fleetApi(nodes: Node[]) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  return (call: Call): { status?: number; body?: unknown } | undefined => {
    if (call.method !== "GET") return undefined;
    const url = new URL(call.url, "http://x");
    if (url.pathname === "/api/nodes") {
      const limit = Number(url.searchParams.get("limit") ?? 50);
      const cursor = url.searchParams.get("cursor");
      const start = cursor ? nodes.findIndex((n) => n.id === cursor) + 1 : 0;
      const items = nodes.slice(start, start + limit);
      const more = start + limit < nodes.length;
      return { body: { items, next_cursor: more ? items[items.length - 1]!.id : null } };
    }
    const one = /^\/api\/nodes\/([^/]+)$/.exec(url.pathname);
    if (one) {
      const node = byId.get(decodeURIComponent(one[1]!));
      return node ? { body: node } : { status: 404, body: { error: { code: "not_found", message: `no node with ID ${one[1]}` } } };
    }
    return undefined;
  };
}
