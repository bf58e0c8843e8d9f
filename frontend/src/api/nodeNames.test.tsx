import { QueryClientProvider, type InfiniteData } from "@tanstack/react-query";
import { renderHook, waitFor } from "@testing-library/react";
import type { ReactNode } from "react";
import { afterEach, describe, expect, it, vi } from "vitest";

import { fleetOf } from "../test/fleet";
import { testClient } from "../test/render";
import { NAME_REQUESTS_AT_ONCE, useNodeNames } from "./nodeNames";
import { keys } from "./queries";
import type { Node, Page } from "./types";

const fleet = fleetOf(5000);

/** `GET /api/nodes/{id}` answered only when the test says so, counting requests in flight. */
function heldFetch() {
  const held: { id: string; answer: () => void }[] = [];
  const requested: string[] = [];
  let inFlight = 0;
  let most = 0;
  vi.stubGlobal("fetch", (url: string) => {
    const id = decodeURIComponent(url.replace("/api/nodes/", ""));
    requested.push(id);
    inFlight += 1;
    most = Math.max(most, inFlight);
    return new Promise<Response>((resolve) => {
      held.push({
        id,
        answer: () => {
          inFlight -= 1;
          const node = fleet.find((n) => n.id === id);
          resolve(new Response(JSON.stringify(node ?? { error: { code: "not_found", message: "no such node" } }), { status: node ? 200 : 404 }));
        },
      });
    });
  });
  return { held, requested, most: () => most, inFlight: () => inFlight };
}

function wrapperFor(client = testClient()) {
  return ({ children }: { children: ReactNode }) => <QueryClientProvider client={client}>{children}</QueryClientProvider>;
}

describe("useNodeNames", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("fetches the names it does not know a few at a time, once per node however often it is shown", async () => {
    const net = heldFetch();
    const ids = fleet.slice(4000, 4012).map((n) => n.id);
    const { result } = renderHook(() => useNodeNames([...ids, ...ids, null, undefined]), { wrapper: wrapperFor() });

    // Always as many in flight as allowed, until fewer are left.
    for (let answered = 0; answered < ids.length; answered++) {
      await waitFor(() => expect(net.inFlight()).toBe(Math.min(NAME_REQUESTS_AT_ONCE, ids.length - answered)));
      net.held.shift()!.answer();
    }
    await waitFor(() => expect(result.current.size).toBe(12));
    expect(net.most()).toBe(NAME_REQUESTS_AT_ONCE);
    expect([...net.requested].sort()).toEqual([...ids].sort());
    expect(result.current.get(ids[0]!)).toBe("node-4001");
  });

  it("takes what the cache already has and fetches only the rest", async () => {
    const net = heldFetch();
    const client = testClient();
    const firstPage = fleet.slice(0, 200);
    client.setQueryData<InfiniteData<Page<Node>>>(keys.nodeList({ q: "", status: "", label: "" }), {
      pages: [{ items: firstPage, next_cursor: firstPage[199]!.id }],
      pageParams: [null],
    });
    const near = fleet[9]!;
    const far = fleet[3999]!;
    const { result } = renderHook(() => useNodeNames([near.id, far.id]), { wrapper: wrapperFor(client) });

    expect(result.current.get(near.id)).toBe("node-10");
    expect(result.current.has(far.id)).toBe(false);
    await waitFor(() => expect(net.held).toHaveLength(1));
    net.held[0]!.answer();
    await waitFor(() => expect(result.current.get(far.id)).toBe("node-4000"));
    expect(net.requested).toEqual([far.id]);
  });

  it("leaves out a node that no longer exists, so it is shown by its ID", async () => {
    const net = heldFetch();
    const client = testClient();
    const gone = "0190f6c2-8f5a-7c1e-9a43-ffffffffffff";
    const { result } = renderHook(() => useNodeNames([gone, fleet[4999]!.id]), { wrapper: wrapperFor(client) });
    await waitFor(() => expect(net.held).toHaveLength(2));
    net.held.forEach((h) => h.answer());
    await waitFor(() => expect(result.current.get(fleet[4999]!.id)).toBe("node-5000"));
    await waitFor(() => expect(client.getQueryState(keys.nodeName(gone))?.status).toBe("success"));
    expect(result.current.has(gone)).toBe(false);
  });
});
