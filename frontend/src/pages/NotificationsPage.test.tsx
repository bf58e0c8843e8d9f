import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";

import type { Channel, Delivery, Rule } from "../api/types";
import { CHANNEL_ID, NODE_ID, channel, delivery, rule } from "../test/alerts";
import { mockFetch, renderAt, type Call } from "../test/render";
import { NotificationsPage } from "./NotificationsPage";

interface Fixture {
  channels?: Channel[];
  rules?: Rule[];
  /** Deliveries by cursor ("" for the first page). */
  deliveries?: Record<string, { items: Delivery[]; next_cursor: string | null }>;
  other?: (call: Call) => { status?: number; body?: unknown } | undefined;
}

function api({ channels = [], rules = [], deliveries = { "": { items: [], next_cursor: null } }, other }: Fixture) {
  return mockFetch((call) => {
    const url = new URL(call.url, "http://x");
    if (call.method === "GET" && url.pathname === "/api/alerts/channels") return { body: { items: channels } };
    if (call.method === "GET" && url.pathname === "/api/alerts/rules") return { body: { items: rules } };
    if (call.method === "GET" && url.pathname === "/api/alerts/deliveries") {
      const page = deliveries[url.searchParams.get("cursor") ?? ""] ?? { items: [], next_cursor: null };
      const status = url.searchParams.get("status");
      return { body: status ? { items: page.items.filter((d) => d.status === status), next_cursor: null } : page };
    }
    return other?.(call);
  });
}

const render = () => renderAt(<NotificationsPage />, { route: "/notifications", path: "/notifications" });

describe("NotificationsPage", () => {
  it("tells a newcomer to add a channel, then a rule", async () => {
    api({});
    render();
    const empty = await screen.findByTestId("channels-empty");
    expect(empty).toHaveTextContent("Add a channel, then a rule.");
    expect(within(empty).getByRole("link", { name: "Add a channel" })).toHaveAttribute("href", "/notifications/channels/new");
    expect(await screen.findByTestId("rules-empty")).toHaveTextContent("add a channel first, then a rule");
    expect(screen.queryByRole("link", { name: "Add rule" })).toBeNull();
    expect(screen.getByText(/one “down” message and one “back” message per outage/)).toBeInTheDocument();
  });

  it("lists channels with their last delivery, and Test shows what the receiver answered", async () => {
    const calls = api({
      channels: [
        channel({ last_delivery: { status: "failed", at: "2026-11-23T18:00:00Z", error: "HTTP 410: gone" } }),
        channel({ id: "0191a000-0000-7000-8000-000000000009", name: "team chat", kind: "discord", url: "https://discord.com/…", has_secret: false }),
      ],
      other: (call) =>
        call.method === "POST" && call.url === `/api/alerts/channels/${CHANNEL_ID}/test`
          ? { body: { ok: true, status: 204, detail: "queued as 42" } }
          : undefined,
    });
    render();
    const rows = await screen.findByTestId("channel-rows");
    const first = within(rows).getByText("ops hook").closest("tr")!;
    expect(first).toHaveTextContent("Webhook");
    expect(first).toHaveTextContent("https://hooks.example.com/fleetdeck");
    expect(first).toHaveTextContent("set");
    expect(within(first).getByText("Failed")).toBeInTheDocument();
    expect(first).toHaveTextContent("HTTP 410: gone");
    expect(within(rows).getByText("team chat").closest("tr")).toHaveTextContent("https://discord.com/…");

    await userEvent.setup().click(screen.getByRole("button", { name: "Test ops hook" }));
    const answer = await screen.findByTestId("test-result");
    expect(answer).toHaveTextContent("Delivered. The receiver answered 204: queued as 42");
    expect(answer).toHaveClass("notice-ok");
    const post = calls.find((c) => c.method === "POST")!;
    expect(post.headers["X-Requested-With"]).toBe("fleetdeck");
  });

  it("shows a refused test as the receiver put it", async () => {
    api({
      channels: [channel()],
      other: (call) => (call.method === "POST" ? { body: { ok: false, status: 401, detail: "HTTP 401: bad signature" } } : undefined),
    });
    render();
    await userEvent.setup().click(await screen.findByRole("button", { name: "Test ops hook" }));
    const answer = await screen.findByTestId("test-result");
    expect(answer).toHaveTextContent("Not delivered. HTTP 401: bad signature");
    expect(answer).toHaveClass("notice-error");
  });

  it("asks before deleting a channel, naming the rules it leaves without one", async () => {
    const calls = api({
      channels: [channel()],
      rules: [rule()],
      other: (call) => (call.method === "DELETE" ? { status: 204 } : undefined),
    });
    render();
    const user = userEvent.setup();
    await user.click(await screen.findByRole("button", { name: "Delete ops hook" }));
    expect(await screen.findByRole("heading", { name: "Delete channel ops hook?" })).toBeInTheDocument();
    expect(screen.getByText(/web down would send nothing/)).toBeInTheDocument();
    expect(calls.filter((c) => c.method === "DELETE")).toHaveLength(0);
    await user.click(within(screen.getByRole("dialog")).getByRole("button", { name: "Delete ops hook" }));
    await waitFor(() => expect(screen.queryByRole("dialog")).toBeNull());
    expect(calls.filter((c) => c.method === "DELETE").map((c) => c.url)).toEqual([`/api/alerts/channels/${CHANNEL_ID}`]);
  });

  it("lists rules with their scope, condition, channels and mute", async () => {
    api({
      channels: [channel()],
      rules: [
        rule(),
        rule({
          id: "0191a000-0000-7000-8000-000000000003",
          name: "disk full",
          event: "disk_above",
          threshold: 90,
          for: "5m",
          labels: ["db"],
          muted_until: "2999-01-01T00:00:00Z",
        }),
      ],
    });
    render();
    const rows = await screen.findByTestId("rule-rows");
    const down = within(rows).getByText("web down").closest("tr")!;
    expect(down).toHaveTextContent("Node offline");
    expect(down).toHaveTextContent("all nodes");
    expect(down).toHaveTextContent("at once");
    expect(down).toHaveTextContent("ops hook");
    const disk = within(rows).getByText("disk full").closest("tr")!;
    expect(disk).toHaveTextContent("Disk above");
    expect(disk).toHaveTextContent("labels db");
    expect(disk).toHaveTextContent("above 90 % for 5m");
    expect(within(disk).getByText("muted")).toBeInTheDocument();
    expect(within(disk).getByRole("link", { name: "Edit disk full" })).toHaveAttribute(
      "href",
      "/notifications/rules/0191a000-0000-7000-8000-000000000003/edit",
    );
  });

  it("lists deliveries with their last error, filters them by status and loads older ones", async () => {
    const failing = delivery({
      id: "d2",
      status: "pending",
      attempts: 3,
      last_error: "HTTP 503: try later",
      next_try_at: "2999-01-01T00:00:00Z",
      delivered_at: null,
    });
    const calls = api({
      channels: [channel()],
      deliveries: {
        "": { items: [failing], next_cursor: "d2" },
        d2: { items: [delivery({ id: "d1", state: "resolved", text: "web-01 is back online" })], next_cursor: null },
      },
    });
    render();
    const rows = await screen.findByTestId("delivery-rows");
    const row = (await within(rows).findByText("HTTP 503: try later")).closest("tr")!;
    expect(within(row).getByText("Pending")).toBeInTheDocument();
    expect(within(row).getByRole("link", { name: "web-01" })).toHaveAttribute("href", `/nodes/${NODE_ID}`);
    expect(row).toHaveTextContent("web down");
    expect(row).toHaveTextContent("3");

    const user = userEvent.setup();
    await user.click(screen.getByRole("button", { name: "Show older deliveries" }));
    expect(await within(rows).findByText("web-01 is back online")).toBeInTheDocument();
    expect(calls.some((c) => c.url.includes("cursor=d2"))).toBe(true);

    await user.selectOptions(screen.getByLabelText("Filter deliveries by status"), "failed");
    expect(await within(rows).findByText("No delivery matches these filters.")).toBeInTheDocument();
    expect(calls.some((c) => c.url.startsWith("/api/alerts/deliveries?status=failed"))).toBe(true);
  });
});
