import { screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import type { RunDetail, RunNode } from "../api/types";
import { mockFetch, renderAt } from "../test/render";
import { RunDetailPage } from "./RunDetailPage";

const ID = "01a209f2-5f6d-720e-b62d-1fe006b89acb";

function node(name: string, status: RunNode["status"], exit_code: number | null, reason: string | null = null): RunNode {
  const started = status !== "skipped" && status !== "waiting";
  return {
    node_id: `id-${name}`,
    node_name: name,
    status,
    job_id: started ? `job-${name}` : null,
    exit_code,
    reason,
    started_at: started ? "2026-12-01T17:00:00Z" : null,
    finished_at: started ? "2026-12-01T17:00:02Z" : null,
    log_bytes: started ? 20 : 0,
  };
}

const RUN: RunDetail = {
  id: ID,
  name: "install release",
  command: "make install",
  env: {},
  working_dir: null,
  timeout_sec: 60,
  all: false,
  labels: ["web"],
  node_ids: [],
  max_parallel: null,
  stop_on_failure: false,
  status: "failed",
  stopped: null,
  submitted_by: "anonymous",
  created_at: "2026-12-01T17:00:00Z",
  totals: { nodes: 3, waiting: 0, skipped: 1, active: 0, succeeded: 1, failed: 1, cancelled: 0 },
  nodes: [node("web-01", "succeeded", 0), node("web-02", "failed", 2), node("web-03", "skipped", null, "offline when the run started")],
};

describe("RunDetailPage", () => {
  beforeEach(() => {
    // jsdom lays nothing out: give the scroller a size so the virtualizer renders rows.
    vi.spyOn(HTMLElement.prototype, "clientHeight", "get").mockReturnValue(600);
    vi.spyOn(HTMLElement.prototype, "clientWidth", "get").mockReturnValue(1200);
  });
  afterEach(() => vi.restoreAllMocks());

  it("shows every node's result, filters the failed ones, and re-runs only those", async () => {
    const calls = mockFetch((call) => {
      const path = call.url.split("?")[0];
      if (path === `/api/runs/${ID}` && call.method === "GET") return { body: RUN };
      if (path === "/api/runs" && call.method === "POST") return { status: 201, body: { ...RUN, id: "next" } };
      return undefined;
    });
    renderAt(<RunDetailPage />, { route: `/runs/${ID}`, path: "/runs/:id" });
    expect(await screen.findByRole("heading", { name: /install release/ })).toBeInTheDocument();
    expect(screen.getByTestId("run-summary")).toHaveTextContent("3 nodes: 1 succeeded, 1 failed, 1 skipped");
    const rows = screen.getByTestId("run-rows");
    expect(within(rows).getByText("offline when the run started")).toBeInTheDocument();
    expect(within(rows).getByRole("link", { name: "web-02: failed, open its job" })).toHaveAttribute("href", "/jobs/job-web-02");
    expect(screen.queryByRole("button", { name: "Cancel run" })).not.toBeInTheDocument();

    const user = userEvent.setup();
    await user.click(screen.getByRole("button", { name: /^Failed/ }));
    expect(within(rows).queryByText("web-01")).not.toBeInTheDocument();
    expect(within(rows).getByText("web-02")).toBeInTheDocument();

    await user.click(screen.getByRole("button", { name: "Re-run failed nodes" }));
    const post = calls.find((c) => c.method === "POST" && c.url === "/api/runs");
    expect(post?.body).toEqual({ command: "make install", env: {}, timeout_sec: 60, name: "install release", node_ids: ["id-web-02"] });
  });
});
