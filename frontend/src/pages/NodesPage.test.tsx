import { screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import type { Node } from "../api/types";
import { mockFetch, renderAt } from "../test/render";
import { NodesPage, parseSort } from "./NodesPage";

function makeNode(i: number): Node {
  const name = `node-${String(i).padStart(5, "0")}`;
  return {
    id: `id-${i}`,
    name,
    api_endpoint: `http://10.0.${Math.floor(i / 250)}.${i % 250}:8080`,
    is_primary: false,
    status: i % 10 === 0 ? "offline" : "online",
    labels: ["linux"],
    consecutive_failures: 0,
    last_seen: "2026-11-23T18:00:00Z",
    last_health_check: null,
    last_error: null,
    version: "0.1.0",
    max_jobs: 4,
    created_at: "2026-11-23T00:00:00Z",
    updated_at: "2026-11-23T00:00:00Z",
    connect: i % 7 === 3 ? "outbound" : "inbound",
  };
}

describe("NodesPage", () => {
  beforeEach(() => {
    // jsdom lays nothing out: give the scroller a size so the virtualizer renders rows.
    vi.spyOn(HTMLElement.prototype, "clientHeight", "get").mockReturnValue(600);
    vi.spyOn(HTMLElement.prototype, "clientWidth", "get").mockReturnValue(1200);
  });
  afterEach(() => vi.restoreAllMocks());

  it("pages through every node, renders only the visible rows, and filters on the server", async () => {
    const all = Array.from({ length: 2500 }, (_, i) => makeNode(i));
    const calls = mockFetch((call) => {
      const url = new URL(call.url, "http://x");
      if (url.pathname === "/api/system/stats") return { body: { items: [] } };
      if (url.pathname !== "/api/nodes") return undefined;
      const status = url.searchParams.get("status");
      const matching = status ? all.filter((n) => n.status === status) : all;
      const after = url.searchParams.get("cursor");
      const start = after ? matching.findIndex((n) => n.name === after) + 1 : 0;
      const limit = Number(url.searchParams.get("limit"));
      const items = matching.slice(start, start + limit);
      const next = start + limit < matching.length ? items[items.length - 1]!.name : null;
      return { body: { items, next_cursor: next } };
    });
    renderAt(<NodesPage />, { route: "/nodes" });

    expect(await screen.findByText("2,500 nodes · 2,250 online", undefined, { timeout: 5000 })).toBeInTheDocument();
    expect(calls.filter((c) => c.url.startsWith("/api/nodes")).length).toBe(4);
    const rows = within(screen.getByTestId("node-rows")).getAllByRole("row");
    expect(rows.length).toBeGreaterThan(5);
    expect(rows.length).toBeLessThan(60);
    expect(rows[0]).toHaveTextContent("node-00000");

    await userEvent.setup().selectOptions(screen.getByLabelText("Filter by status"), "offline");
    expect(await screen.findByText("250 matching nodes · 0 online")).toBeInTheDocument();
    expect(calls.some((c) => c.url.includes("status=offline"))).toBe(true);
  });

  it("reads the sort from the address", () => {
    expect(parseSort("-cpu")).toEqual({ key: "cpu", descending: true });
    expect(parseSort("bogus")).toEqual({ key: "name", descending: false });
  });
});
