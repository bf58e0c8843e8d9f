import { screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";

import type { FiredAlert, Node } from "../api/types";
import { firedAlert } from "../test/alerts";
import { mockFetch, renderAt } from "../test/render";
import { NodeDetailPage } from "./NodeDetailPage";

const ID = "0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f";

function node(overrides: Partial<Node> = {}): Node {
  return {
    id: ID,
    name: "web-01",
    api_endpoint: "http://10.0.0.5:8080",
    is_primary: false,
    status: "online",
    labels: ["linux"],
    consecutive_failures: 0,
    last_seen: "2026-11-23T18:00:00Z",
    last_health_check: "2026-11-23T18:00:00Z",
    last_error: null,
    version: "0.1.0",
    max_jobs: 4,
    created_at: "2026-11-23T00:00:00Z",
    updated_at: "2026-11-23T00:00:00Z",
    connect: "inbound",
    ...overrides,
  };
}

function api(current: Node, alerts: FiredAlert[] = []) {
  return mockFetch((call) => {
    const path = call.url.split("?")[0];
    if (path === `/api/nodes/${ID}/alerts`) return { body: { items: alerts } };
    if (path === `/api/nodes/${ID}` && call.method === "GET") return { body: current };
    if (path === `/api/nodes/${ID}/history`) return { body: { items: [], next_cursor: null } };
    if (path === `/api/nodes/${ID}/stats`) return { body: { node_id: ID, since: "2026-11-22T18:00:00Z", items: [] } };
    if (path === "/api/system/stats") return { body: { items: [] } };
    if (path === `/api/nodes/${ID}/check`) {
      const after = node({ status: "online", consecutive_failures: 1, last_error: "cannot connect: Connection refused" });
      return { body: { node: after, error: "cannot connect: Connection refused" } };
    }
    return undefined;
  });
}

describe("NodeDetailPage", () => {
  it("shows how the primary reaches the node: its endpoint, or its outbound connection", async () => {
    api(node({ connect: "outbound", api_endpoint: "http://127.0.0.1:1" }));
    renderAt(<NodeDetailPage />, { route: `/nodes/${ID}`, path: "/nodes/:id" });
    expect(await screen.findByTestId("node-connect")).toHaveTextContent("outbound connects to the primary");
    expect(document.title).toBe("web-01 · Fleetdeck");
    expect(screen.queryByText("http://127.0.0.1:1")).not.toBeInTheDocument();
  });

  it("checks now and says why the check failed", async () => {
    const calls = api(node());
    renderAt(<NodeDetailPage />, { route: `/nodes/${ID}`, path: "/nodes/:id" });
    await userEvent.setup().click(await screen.findByRole("button", { name: "Check now" }));
    expect(await screen.findByTestId("check-result")).toHaveTextContent(
      "Check failed: cannot connect: Connection refused. The node is online after 1 failed check in a row.",
    );
    const post = calls.find((c) => c.method === "POST")!;
    expect(post.headers["X-Requested-With"]).toBe("fleetdeck");
  });

  it("says an offline node's figures are its last ones, and from when", async () => {
    const stats = {
      hostname: "web-01",
      os: "Debian",
      kernel: "6.1",
      version: "0.1.0",
      uptime_secs: 60,
      cpu_count: 2,
      cpu_usage_percent: 12,
      load_average: { one: 0.1, five: 0.1, fifteen: 0.1 },
      memory: { total_bytes: 100, used_bytes: 50, available_bytes: 50 },
      disks: [],
      network: { rx_bytes_per_sec: 0, tx_bytes_per_sec: 0 },
      disk_io: { read_bytes_per_sec: 0, write_bytes_per_sec: 0 },
      temperatures: [],
      running_jobs: [],
      labels: [],
      max_jobs: 4,
      collected_at: "2026-11-23T17:55:00Z",
    };
    mockFetch((call) => {
      const path = call.url.split("?")[0];
      if (path === `/api/nodes/${ID}`) return { body: node({ status: "offline" }) };
      if (path === "/api/system/stats") return { body: { items: [{ node_id: ID, name: "web-01", status: "offline", is_primary: false, stats }] } };
      if (path === `/api/nodes/${ID}/history`) return { body: { items: [], next_cursor: null } };
      if (path === `/api/nodes/${ID}/stats`) return { body: { node_id: ID, since: "2026-11-22T18:00:00Z", items: [] } };
      if (path === `/api/nodes/${ID}/alerts`) return { body: { items: [] } };
      return undefined;
    });
    renderAt(<NodeDetailPage />, { route: `/nodes/${ID}`, path: "/nodes/:id" });
    expect(await screen.findByTestId("stats-as-of")).toHaveTextContent("the node is offline");
  });

  it("says calmly that a pending node was not reached yet", async () => {
    api(node({ status: "pending", last_seen: null, last_error: "cannot connect: Connection refused" }));
    renderAt(<NodeDetailPage />, { route: `/nodes/${ID}`, path: "/nodes/:id" });
    expect(await screen.findByTestId("pending-note")).toHaveTextContent("It turns online once the node is started");
    expect(screen.queryByText("Last probe error")).toBeNull();
  });

  it("offers no check, edit, key rotation or removal for the primary", async () => {
    api(node({ is_primary: true, name: "primary" }));
    renderAt(<NodeDetailPage />, { route: `/nodes/${ID}`, path: "/nodes/:id" });
    expect(await screen.findByRole("heading", { name: /primary/ })).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Check now" })).toBeNull();
    expect(screen.queryByRole("button", { name: "Remove" })).toBeNull();
    expect(screen.queryByRole("button", { name: "Rotate key" })).toBeNull();
  });

  it("offers removal of a primary taken out of service", async () => {
    api(node({ is_primary: true, name: "old-primary", status: "offline" }));
    renderAt(<NodeDetailPage />, { route: `/nodes/${ID}`, path: "/nodes/:id" });
    expect(await screen.findByRole("button", { name: "Remove" })).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Edit" })).toBeNull();
  });

  it("asks before removing a node", async () => {
    api(node());
    renderAt(<NodeDetailPage />, { route: `/nodes/${ID}`, path: "/nodes/:id" });
    await userEvent.setup().click(await screen.findByRole("button", { name: "Remove" }));
    expect(await screen.findByRole("heading", { name: "Remove web-01?" })).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Remove web-01" })).toBeInTheDocument();
  });

  it("lists the alerts that fired for the node, with how their deliveries went", async () => {
    api(node(), [
      firedAlert({ id: "a2", state: "resolved", event: "node_online", text: "web-01 is back online", delivered: 1, pending: 1, failed: 1 }),
      firedAlert({ id: "a1" }),
    ]);
    renderAt(<NodeDetailPage />, { route: `/nodes/${ID}`, path: "/nodes/:id" });
    const rows = await screen.findByTestId("node-alerts");
    const back = within(rows).getByText("web-01 is back online").closest("tr")!;
    expect(back).toHaveTextContent("Node back online · resolved");
    expect(back).toHaveTextContent("web down");
    expect(back).toHaveTextContent("1 delivered1 pending1 failed");
    expect(within(rows).getByText("web-01 is offline").closest("tr")).toHaveTextContent("1 delivered");
    const section = screen.getByRole("region", { name: "Alerts" });
    expect(within(section).getByRole("link", { name: "Notifications" })).toHaveAttribute("href", "/notifications");
  });

  it("says when no alert has fired, and where rules are set", async () => {
    api(node());
    renderAt(<NodeDetailPage />, { route: `/nodes/${ID}`, path: "/nodes/:id" });
    const empty = await screen.findByTestId("node-alerts-empty");
    expect(empty).toHaveTextContent("No alert has fired for web-01.");
    expect(within(empty).getByRole("link", { name: "Notifications" })).toHaveAttribute("href", "/notifications");
  });
});
