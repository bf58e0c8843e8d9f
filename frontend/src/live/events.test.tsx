import { QueryClientProvider, type InfiniteData } from "@tanstack/react-query";
import { act, renderHook } from "@testing-library/react";
import type { ReactNode } from "react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { keys } from "../api/queries";
import type { FleetStats, Job, Node, Page } from "../api/types";
import { FakeSocket } from "../test/fakeSocket";
import { testClient } from "../test/render";
import { applyMessage, eventsUrl, useLiveEvents } from "./events";
import { reconnectDelay } from "./socket";

const factory = FakeSocket.factory;

function node(id: string, status: Node["status"]): Node {
  return { id, name: id, status } as Node;
}

describe("live events", () => {
  beforeEach(() => {
    FakeSocket.all = [];
    vi.useFakeTimers();
  });
  afterEach(() => vi.useRealTimers());

  it("connects to the events socket of this origin", () => {
    expect(eventsUrl({ protocol: "https:", host: "fleet.example:8443" })).toBe("wss://fleet.example:8443/api/events/ws");
    expect(eventsUrl({ protocol: "http:", host: "127.0.0.1:8080" })).toBe("ws://127.0.0.1:8080/api/events/ws");
  });

  it("backs off from 1 s to at most 15 s", () => {
    expect(reconnectDelay(0, () => 1)).toBe(1000);
    expect(reconnectDelay(2, () => 1)).toBe(4000);
    expect(reconnectDelay(9, () => 1)).toBe(15000);
    expect(reconnectDelay(9, () => 0)).toBe(7500);
  });

  it("reports reconnecting when the socket drops, reconnects, and refetches everything after", async () => {
    const client = testClient();
    const invalidate = vi.spyOn(client, "invalidateQueries");
    const wrapper = ({ children }: { children: ReactNode }) => <QueryClientProvider client={client}>{children}</QueryClientProvider>;
    const { result, unmount } = renderHook(() => useLiveEvents(true, factory), { wrapper });

    expect(result.current).toBe("connecting");
    act(() => FakeSocket.all[0]!.open());
    expect(result.current).toBe("live");
    expect(invalidate).not.toHaveBeenCalled();

    act(() => FakeSocket.all[0]!.drop());
    expect(result.current).toBe("reconnecting");
    expect(FakeSocket.all).toHaveLength(1);

    await act(async () => vi.advanceTimersByTime(1000));
    expect(FakeSocket.all).toHaveLength(2);
    act(() => FakeSocket.all[1]!.open());
    expect(result.current).toBe("live");
    expect(invalidate).toHaveBeenCalledWith();

    unmount();
    expect(FakeSocket.all[1]!.closed).toBe(true);
  });

  it("shows a status change in the cached lists without refetching them", () => {
    const client = testClient();
    const filter = { q: "", status: "" as const, label: "" };
    client.setQueryData<InfiniteData<Page<Node>>>(keys.nodeList(filter), {
      pages: [{ items: [node("a", "pending"), node("b", "online")], next_cursor: null }],
      pageParams: [null],
    });
    client.setQueryData<FleetStats>(keys.fleetStats, { items: [{ node_id: "a", name: "a", status: "pending", is_primary: false, stats: null }] });

    applyMessage(client, {
      type: "node_status_changed",
      node_id: "a",
      name: "a",
      from: "pending",
      to: "online",
      reason: "heartbeat received",
      at: "2026-11-23T18:00:00Z",
    });

    const list = client.getQueryData<InfiniteData<Page<Node>>>(keys.nodeList(filter))!;
    expect(list.pages[0]!.items.map((n) => n.status)).toEqual(["online", "online"]);
    expect(client.getQueryData<FleetStats>(keys.fleetStats)!.items[0]!.status).toBe("online");

    applyMessage(client, { type: "node_removed", node_id: "b" });
    expect(client.getQueryData<InfiniteData<Page<Node>>>(keys.nodeList(filter))!.pages[0]!.items.map((n) => n.id)).toEqual(["a"]);
  });

  it("asks again for a removed node's name, so its jobs show its ID", () => {
    const client = testClient();
    const invalidate = vi.spyOn(client, "invalidateQueries");
    applyMessage(client, { type: "node_removed", node_id: "b" });
    expect(invalidate).toHaveBeenCalledWith({ queryKey: keys.nodeName("b") });
  });

  it("refetches everything when told it missed events", () => {
    const client = testClient();
    const invalidate = vi.spyOn(client, "invalidateQueries");
    applyMessage(client, { type: "resync" });
    expect(invalidate).toHaveBeenCalledWith();
  });

  it("shows a job's new status in the cached lists and its page, then refetches them", () => {
    const client = testClient();
    const invalidate = vi.spyOn(client, "invalidateQueries");
    const filter = { status: "" as const, node: "", label: "", q: "" };
    const job = (id: string, status: Job["status"]) => ({ id, status }) as Job;
    client.setQueryData<InfiniteData<Page<Job>>>([...keys.jobList(filter), 50], {
      pages: [{ items: [job("a", "running"), job("b", "queued")], next_cursor: null }],
      pageParams: [null],
    });
    client.setQueryData(keys.job("a"), job("a", "running"));
    applyMessage(client, { type: "job_updated", job_id: "a", status: "succeeded" });
    const list = client.getQueryData<InfiniteData<Page<Job>>>([...keys.jobList(filter), 50])!;
    expect(list.pages[0]!.items.map((j) => j.status)).toEqual(["succeeded", "queued"]);
    expect(client.getQueryData<Job>(keys.job("a"))!.status).toBe("succeeded");
    expect(invalidate).toHaveBeenCalledWith({ queryKey: keys.jobs }, { cancelRefetch: false });
  });

  it("restarts a job page's request in flight when its job changes: its answer may predate the change", () => {
    const client = testClient();
    const invalidate = vi.spyOn(client, "invalidateQueries");
    applyMessage(client, { type: "job_updated", job_id: "a", status: "running" });
    // Default options: a request in flight is cancelled and sent again.
    expect(invalidate).toHaveBeenCalledWith({ queryKey: keys.job("a") });
  });
});
