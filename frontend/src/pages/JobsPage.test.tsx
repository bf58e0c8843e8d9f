import { screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";

import { keys } from "../api/queries";
import { fleetApi, fleetOf } from "../test/fleet";
import { mockFetch, renderAt } from "../test/render";
import { JobsPage } from "./JobsPage";

const NODE = "0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f";

function job(id: string, status: string, extra = {}) {
  return {
    id,
    name: null,
    command: `echo ${id}`,
    labels: [],
    status,
    node_id: null,
    assigned_node_id: NODE,
    submitted_by: "anonymous",
    created_at: "2026-11-23T19:00:00Z",
    started_at: "2026-11-23T19:00:00Z",
    dispatched_at: null,
    finished_at: "2026-11-23T19:01:15Z",
    queue_reason: null,
    ...extra,
  };
}

describe("JobsPage", () => {
  it("lists jobs with their node, pages on, and filters on the server", async () => {
    const calls = mockFetch((call) => {
      const url = new URL(call.url, "http://x");
      if (url.pathname === "/api/nodes") return { body: { items: [{ id: NODE, name: "web-01", status: "online" }], next_cursor: null } };
      if (url.pathname === "/api/jobs") {
        if (url.searchParams.get("cursor")) return { body: { items: [job("older", "failed")], next_cursor: null } };
        return {
          body: {
            items: [
              job("a", "succeeded"),
              job("b", "queued", {
                assigned_node_id: null,
                started_at: null,
                finished_at: null,
                labels: ["gpu"],
                queue_reason: "no online node has labels gpu",
              }),
            ],
            next_cursor: "b",
          },
        };
      }
      return undefined;
    });
    renderAt(<JobsPage />, { route: "/jobs", path: "/jobs" });
    expect(await screen.findByRole("link", { name: "echo a" })).toHaveAttribute("href", "/jobs/a");
    expect(await screen.findByRole("link", { name: "web-01" })).toHaveAttribute("href", `/nodes/${NODE}`);
    expect(screen.getByText("1m 15s")).toBeInTheDocument();
    expect(screen.getByText("no online node has labels gpu")).toBeInTheDocument();

    const user = userEvent.setup();
    await user.click(screen.getByRole("button", { name: "Show older jobs" }));
    expect(await screen.findByRole("link", { name: "echo older" })).toBeInTheDocument();

    await user.selectOptions(screen.getByLabelText("Filter by status"), "failed");
    await screen.findByRole("link", { name: "echo a" });
    const last = new URL(calls.filter((c) => c.url.startsWith("/api/jobs")).at(-1)!.url, "http://x");
    expect(last.searchParams.get("status")).toBe("failed");
    expect(last.searchParams.get("limit")).toBe("50");
  });

  it("names every job's node in a fleet of 5,000: one request per node beyond the first page, none for the rest of the fleet", async () => {
    const fleet = fleetOf(5000);
    const far = fleet[3999]!; // node-4000: not on the nodes list's first page (200)
    const near = fleet[9]!; // node-10: on it
    const gone = "0190f6c2-8f5a-7c1e-9a43-ffffffffffff";
    const nodes = fleetApi(fleet);
    const calls = mockFetch((call) => {
      if (new URL(call.url, "http://x").pathname === "/api/jobs") {
        const jobs = [
          job("a", "succeeded", { assigned_node_id: far.id }),
          job("b", "running", { assigned_node_id: far.id }),
          job("c", "failed", { assigned_node_id: near.id }),
        ];
        return { body: { items: [...jobs, job("d", "lost", { assigned_node_id: gone })], next_cursor: null } };
      }
      return nodes(call);
    });
    const { client } = renderAt(<JobsPage />, { route: "/jobs", path: "/jobs" });

    const farLinks = await screen.findAllByRole("link", { name: "node-4000" });
    expect(farLinks.map((l) => l.getAttribute("href"))).toEqual([`/nodes/${far.id}`, `/nodes/${far.id}`]);
    expect(await screen.findByRole("link", { name: "node-10" })).toHaveAttribute("href", `/nodes/${near.id}`);
    // A node that no longer exists keeps its (short) ID.
    await waitFor(() => expect(client.getQueryState(keys.nodeName(gone))?.status).toBe("success"));
    expect(screen.getByRole("link", { name: `${gone.slice(0, 8)}…` })).toHaveAttribute("href", `/nodes/${gone}`);

    const nodeCalls = calls.map((c) => new URL(c.url, "http://x")).filter((u) => u.pathname.startsWith("/api/nodes"));
    expect(nodeCalls.filter((u) => u.pathname === `/api/nodes/${far.id}`)).toHaveLength(1);
    expect(nodeCalls.filter((u) => u.pathname === "/api/nodes" && u.searchParams.has("cursor"))).toHaveLength(0);
  });

  it("offers the node filtered on by name, even beyond the nodes list's first page", async () => {
    const fleet = fleetOf(5000);
    const far = fleet[3999]!;
    const nodes = fleetApi(fleet);
    const calls = mockFetch((call) => (new URL(call.url, "http://x").pathname === "/api/jobs" ? { body: { items: [], next_cursor: null } } : nodes(call)));
    renderAt(<JobsPage />, { route: `/jobs?node=${far.id}`, path: "/jobs" });
    expect(await screen.findByRole("option", { name: "node-4000" })).toHaveProperty("selected", true);
    expect(screen.getByLabelText("Filter by node")).toHaveValue(far.id);
    const jobs = new URL(calls.find((c) => c.url.startsWith("/api/jobs"))!.url, "http://x");
    expect(jobs.searchParams.get("node")).toBe(far.id);
  });
});
