// Node names for what shows node IDs (the jobs table, a job's page) in a fleet of any size.
// The nodes list in the cache holds only its first page (200) unless the nodes page pulled
// the rest, so a name is taken from wherever the node is cached already (a node's page, a
// nodes list, the fleet stats) and otherwise fetched on its own, `GET /api/nodes/{id}`: one
// request per ID, shared by everything on screen that shows it (TanStack Query dedupes by
// key), a few at a time. Only a node that no longer exists (404) is shown by its ID.
import { useQueries, useQueryClient, type InfiniteData, type QueryClient } from "@tanstack/react-query";

import { concurrencyLimit } from "../lib/concurrency";
import { ApiError, api } from "./client";
import { keys } from "./queries";
import type { FleetStats, Node, Page } from "./types";

/** Name requests in flight at once: a page naming fifty unknown nodes does not send fifty together. */
export const NAME_REQUESTS_AT_ONCE = 4;
/** Names seldom change, and `node_updated` events (and edits here) refetch them when they do. */
const NAME_STALE_MS = 5 * 60_000;

const limit = concurrencyLimit(NAME_REQUESTS_AT_ONCE);

async function fetchName(id: string, signal: AbortSignal): Promise<string | null> {
  return limit(async () => {
    try {
      return (await api.get<Node>(`/api/nodes/${encodeURIComponent(id)}`, { signal })).name;
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return null;
      throw e;
    }
  }, signal);
}

interface Seed {
  name: string;
  at: number;
}

// Node lists can hold 10,000 nodes: each page is indexed once, not searched per ID.
const pageIndex = new WeakMap<Page<Node>, Map<string, string>>();

function indexed(page: Page<Node>): Map<string, string> {
  let index = pageIndex.get(page);
  if (!index) {
    index = new Map(page.items.map((n) => [n.id, n.name]));
    pageIndex.set(page, index);
  }
  return index;
}

/** The node's name if anything in the cache has it, and when that was fetched. */
function cachedName(client: QueryClient, id: string): Seed | undefined {
  const cache = client.getQueryCache();
  const one = cache.find<Node>({ queryKey: keys.node(id), exact: true });
  if (one?.state.data) return { name: one.state.data.name, at: one.state.dataUpdatedAt };
  for (const list of cache.findAll({ queryKey: [...keys.nodes, "list"] })) {
    const data = list.state.data as InfiniteData<Page<Node>> | undefined;
    for (const page of data?.pages ?? []) {
      const name = indexed(page).get(id);
      if (name !== undefined) return { name, at: list.state.dataUpdatedAt };
    }
  }
  const stats = cache.find<FleetStats>({ queryKey: keys.fleetStats, exact: true });
  const item = stats?.state.data?.items.find((s) => s.node_id === id);
  if (item && stats) return { name: item.name, at: stats.state.dataUpdatedAt };
  return undefined;
}

/**
 * Node ID → name for `ids` (repeats and empties allowed). An ID is missing from the map
 * while its name is on its way, and for good if the node no longer exists: show the ID then.
 */
export function useNodeNames(ids: readonly (string | null | undefined)[]): ReadonlyMap<string, string> {
  const client = useQueryClient();
  const wanted = [...new Set(ids.filter((id): id is string => Boolean(id)))];
  const results = useQueries({
    queries: wanted.map((id) => ({
      queryKey: keys.nodeName(id),
      queryFn: ({ signal }) => fetchName(id, signal),
      initialData: () => cachedName(client, id)?.name,
      initialDataUpdatedAt: () => cachedName(client, id)?.at,
      staleTime: NAME_STALE_MS,
    })),
  });
  const names = new Map<string, string>();
  wanted.forEach((id, i) => {
    const name = results[i]?.data;
    if (name) names.set(id, name);
  });
  return names;
}
