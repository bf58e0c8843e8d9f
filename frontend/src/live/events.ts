// Live updates: one WebSocket to /api/events/ws per tab. Events patch the query cache in
// place (a status change shows without a refetch of 10,000 nodes); a dropped socket is
// reopened with backoff, and everything shown is refetched after it comes back, as it is
// when the server says a slow client missed events ("resync").
import { useQueryClient, type InfiniteData, type QueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";

import { keys } from "../api/queries";
import type { Control, Event, FleetStats, Job, JobState, Node, Page } from "../api/types";

export type LiveState = "connecting" | "live" | "reconnecting";
export type ServerMessage = Event | Control;

/** The part of a WebSocket this hook uses (tests pass a fake). */
export type SocketLike = Pick<WebSocket, "onopen" | "onclose" | "onerror" | "onmessage" | "close">;

export type SocketFactory = (url: string) => SocketLike;

const defaultFactory: SocketFactory = (url) => new WebSocket(url);

export function eventsUrl(location: { protocol: string; host: string }): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/api/events/ws`;
}

/** Delay before reconnect attempt `n` (0-based): 1 s doubling to 15 s, with jitter. */
export function reconnectDelay(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(15_000, 1000 * 2 ** Math.min(attempt, 4));
  return Math.round(base * (0.5 + random() * 0.5));
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
      return;
    }
    case "node_updated":
      void client.invalidateQueries({ queryKey: keys.nodes });
      void client.invalidateQueries({ queryKey: keys.fleetStats });
      return;
    case "node_removed": {
      const id = message.node_id;
      patchNodePages(client, (nodes) => nodes.filter((n) => n.id !== id));
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
      const status = message.status as JobState;
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
export function useLiveEvents(enabled: boolean, factory: SocketFactory = defaultFactory): LiveState {
  const client = useQueryClient();
  const [state, setState] = useState<LiveState>("connecting");

  useEffect(() => {
    if (!enabled) return;
    let socket: SocketLike | null = null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let attempt = 0;
    let everOpen = false;
    let stopped = false;

    const connect = () => {
      const current = factory(eventsUrl(window.location));
      socket = current;
      current.onopen = () => {
        if (everOpen || attempt > 0) {
          // Whatever happened while we were away is unknown: refetch what is shown.
          void client.invalidateQueries();
        }
        everOpen = true;
        attempt = 0;
        setState("live");
      };
      current.onmessage = (ev) => {
        const message = parseMessage(ev.data);
        if (message) applyMessage(client, message);
      };
      current.onerror = () => {
        // onclose follows and schedules the retry.
      };
      current.onclose = () => {
        if (stopped || socket !== current) return;
        setState("reconnecting");
        timer = setTimeout(connect, reconnectDelay(attempt));
        attempt += 1;
      };
    };
    connect();
    return () => {
      stopped = true;
      clearTimeout(timer);
      socket?.close();
    };
  }, [enabled, client, factory]);

  return enabled ? state : "connecting";
}
