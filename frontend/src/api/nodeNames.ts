// Node names for pages that show node IDs (jobs list, job page).
import { useMemo } from "react";

import { allNodes, useNodeList } from "./queries";
import type { Node } from "./types";

const ALL_NODES = { q: "", status: "", label: "" } as const;

/** Node ID → node, for names and links (the nodes list is usually in the cache already). */
export function useNodeNames(): Map<string, Node> {
  const nodes = useNodeList(ALL_NODES);
  return useMemo(() => new Map(allNodes(nodes.data).map((n) => [n.id, n])), [nodes.data]);
}
