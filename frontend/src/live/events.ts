// Live updates: one WebSocket to /api/events/ws per tab. Events patch the query cache in
// place (a status change shows without a refetch of 10,000 nodes); a dropped socket is
// reopened with backoff, and everything shown is refetched after it comes back, as it is
// when the server says a slow client missed events ("resync"). Keeping the socket open is
// ./socket.ts's; this file says what a message changes in the cache.
import { useQueryClient, type InfiniteData, type QueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";

import { keys } from "../api/queries";
import type { Event, FleetStats, Job, Node, Page } from "../api/types";
import { browserSocket, openReconnectingSocket, type SocketFactory } from "./socket";

export type LiveState = "connecting" | "live" | "reconnecting";
export type ServerMessage = Event;

export function eventsUrl(location: { protocol: string; host: string }): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/api/events/ws`;
}

type NodePages = InfiniteData<Page<Node>>;

function patchNodePages(client: QueryClient, patch: (nodes: Node[]) => Node[]) {
  client.setQueriesData<NodePages>({ queryKey: [...keys.nodes, "list"] }, (data) =>
    data ? { ...data, pages: data.pages.map((page) => ({ ...page, items: patch(page.items) })) } : data,
  );
}

/** Brings the cache up to date with one message from the server. */
export function applyMessage(client: QueryClient, message: ServerMessage): void {
  switch (message.type) {
    case "node_status_changed": {
      const { node_id: id, to } = message;
      const setStatus = (n: Node): Node => (n.id === id ? { ...n, status: to } : n);
      patchNodePages(client, (nodes) => (nodes.some((n) => n.id === id) ? nodes.map(setStatus) : nodes));
      client.setQueryData<Node>(keys.node(id), (n) => (n ? { ...n, status: to } : n));
      client.setQueryData<FleetStats>(keys.fleetStats, (s) =>
        s ? { items: s.items.map((item) => (item.node_id === id ? { ...item, status: to } : item)) } : s,
      );
      void client.invalidateQueries({ queryKey: keys.node(id) });
      void client.invalidateQueries({ queryKey: keys.nodeHistory(id) });
      void client.invalidateQueries({ queryKey: keys.fleetHistory });
      // A primary taking the lead is recorded as a change that keeps its status.
      if (message.from === message.to) void client.invalidateQueries({ queryKey: keys.cluster });
      return;
    }
    case "node_updated":
      void client.invalidateQueries({ queryKey: keys.nodes });
      void client.invalidateQueries({ queryKey: keys.fleetStats });
      return;
    case "node_removed": {
      const id = message.node_id;
      patchNodePages(client, (nodes) => nodes.filter((n) => n.id !== id));
      // Where its jobs show it, it is shown by its ID from now on (the refetch answers 404).
      void client.invalidateQueries({ queryKey: keys.nodeName(id) });
      client.setQueryData<FleetStats>(keys.fleetStats, (s) => (s ? { items: s.items.filter((i) => i.node_id !== id) } : s));
      void client.invalidateQueries({ queryKey: keys.fleetHistory });
      return;
    }
    case "job_updated": {
      // The status shows at once; the rest (timings, exit code, node) comes with a refetch
      // of what is on screen. An in-flight list refetch is not restarted, so a burst of
      // events costs one request per list, not one each. The job's own page is: a request
      // still in flight may have been answered before this change (its page opened just as
      // the job moved on), and nothing would correct it until the job's next change.
      const { job_id: id } = message;
      const status = message.status;
      const setStatus = (j: Job): Job => (j.id === id ? { ...j, status } : j);
      client.setQueriesData<InfiniteData<Page<Job>>>({ queryKey: [...keys.jobs, "list"] }, (data) =>
        data
          ? { ...data, pages: data.pages.map((page) => (page.items.some((j) => j.id === id) ? { ...page, items: page.items.map(setStatus) } : page)) }
          : data,
      );
      client.setQueryData<Job>(keys.job(id), (j) => (j ? { ...j, status } : j));
      void client.invalidateQueries({ queryKey: keys.job(id) });
      void client.invalidateQueries({ queryKey: keys.jobs }, { cancelRefetch: false });
      return;
    }
    case "resync":
      void client.invalidateQueries();
      return;
    default:
      return;
  }
}

export function parseMessage(data: unknown): ServerMessage | null {
  if (typeof data !== "string") return null;
  try {
    const parsed: unknown = JSON.parse(data);
    return parsed && typeof parsed === "object" && "type" in parsed ? (parsed as ServerMessage) : null;
  } catch {
    return null;
  }
}

/**
 * Keeps a live-events socket open while `enabled`, and says how it is doing: "connecting"
 * until the first open, "live" while open, "reconnecting" after a drop (or a failed first
 * attempt) until it is open again.
 */
export function useLiveEvents(enabled: boolean, factory: SocketFactory = browserSocket): LiveState {
  const client = useQueryClient();
  const [state, setState] = useState<LiveState>("connecting");

  useEffect(() => {
    if (!enabled) return;
    const socket = openReconnectingSocket({
      url: () => eventsUrl(window.location),
      factory,
      onOpen: (reconnected) => {
        // Whatever happened while we were away is unknown: refetch what is shown.
        if (reconnected) void client.invalidateQueries();
        setState("live");
      },
      onMessage: (data) => {
        const message = parseMessage(data);
        if (message) applyMessage(client, message);
      },
      onReconnecting: () => setState("reconnecting"),
    });
    return () => socket.close();
  }, [enabled, client, factory]);

  return enabled ? state : "connecting";
}
