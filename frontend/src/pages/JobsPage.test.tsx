import { screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";

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
});
