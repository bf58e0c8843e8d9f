import { act, screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { applyMessage } from "../live/events";
import { mockFetch, renderAt } from "../test/render";
import { DashboardPage } from "./DashboardPage";

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
    started_at: null,
    dispatched_at: null,
    finished_at: null,
    queue_reason: null,
    ...extra,
  };
}

function fleet(jobs: ReturnType<typeof job>[]) {
  return mockFetch((call) => {
    const url = new URL(call.url, "http://x");
    if (url.pathname === "/api/system/stats") return { body: { items: [{ node_id: NODE, name: "web-01", status: "online", stats: null }] } };
    if (url.pathname === "/api/history") return { body: { items: [], next_cursor: null } };
    if (url.pathname === "/api/jobs") return { body: { items: [...jobs], next_cursor: null } };
    return undefined;
  });
}

describe("DashboardPage recent jobs", () => {
  it("lists the 8 newest jobs with status, title, node and age, and follows job_updated", async () => {
    const jobs = [job("a", "running", { name: "deploy" }), job("b", "queued", { assigned_node_id: null, labels: ["gpu"] })];
    const calls = fleet(jobs);
    const { client } = renderAt(<DashboardPage />);
    const list = await screen.findByTestId("recent-jobs");
    expect(within(list).getByRole("link", { name: "deploy" })).toHaveAttribute("href", "/jobs/a");
    expect(within(list).getByRole("link", { name: "echo b" })).toHaveAttribute("href", "/jobs/b");
    expect(within(list).getByRole("link", { name: "web-01" })).toHaveAttribute("href", `/nodes/${NODE}`);
    expect(within(list).getByText("gpu")).toBeInTheDocument();
    expect(list.querySelectorAll("time")).toHaveLength(2);
    expect(screen.getByRole("link", { name: "All jobs" })).toHaveAttribute("href", "/jobs");

    const request = new URL(calls.find((c) => c.url.startsWith("/api/jobs"))!.url, "http://x");
    expect(request.searchParams.get("limit")).toBe("8");
    expect([...request.searchParams.keys()].sort()).toEqual(["limit"]);

    expect(list.querySelector('[data-job-id="a"] [data-job-status]')).toHaveAttribute("data-job-status", "running");
    // The job finishes on the server; the event patches the list and refetches it.
    jobs[0] = job("a", "succeeded", { name: "deploy", finished_at: "2026-11-23T19:01:00Z" });
    const before = calls.length;
    act(() => applyMessage(client, { type: "job_updated", job_id: "a", status: "succeeded" }));
    await waitFor(() =>
      expect(screen.getByTestId("recent-jobs").querySelector('[data-job-id="a"] [data-job-status]')).toHaveAttribute("data-job-status", "succeeded"),
    );
    await waitFor(() => expect(calls.slice(before).some((c) => c.url.startsWith("/api/jobs"))).toBe(true));
  });

  it("says when there are no jobs and links to running one", async () => {
    fleet([]);
    renderAt(<DashboardPage />);
    expect(await screen.findByText(/No jobs yet/)).toBeInTheDocument();
    expect(screen.getByRole("link", { name: "run one" })).toHaveAttribute("href", "/jobs/new");
  });
});

describe("DashboardPage primaries", () => {
  const ALPHA = "0190f6c2-8f5a-7c1e-9a43-000000000001";
  const BRAVO = "0190f6c2-8f5a-7c1e-9a43-000000000002";
  const primary = (id: string, name: string, leader: boolean) => ({
    id,
    name,
    url: `http://${name}:8080`,
    leader,
    started_at: "2026-11-23T19:00:00Z",
    last_seen: "2026-11-23T19:00:00Z",
  });

  function cluster(primaries: ReturnType<typeof primary>[], history: unknown[] = []) {
    return mockFetch((call) => {
      const url = new URL(call.url, "http://x");
      if (url.pathname === "/api/system/stats") return { body: { items: [{ node_id: BRAVO, name: "bravo", status: "online", stats: null }] } };
      if (url.pathname === "/api/history") return { body: { items: history, next_cursor: null } };
      if (url.pathname === "/api/jobs") return { body: { items: [], next_cursor: null } };
      if (url.pathname === "/api/cluster") {
        const leader = primaries.find((p) => p.leader);
        return { body: { leader: leader ? { id: leader.id, name: leader.name, epoch: 3, since: "2026-11-23T19:00:00Z" } : null, primaries } };
      }
      return undefined;
    });
  }

  it("lists the primaries, the leader first, and shows a leader change in the history", async () => {
    const change = { id: "c1", node_id: BRAVO, from: "online", to: "online", reason: "took the lead of the primaries (epoch 3)", at: "2026-11-23T19:00:00Z" };
    cluster([primary(ALPHA, "alpha", false), primary(BRAVO, "bravo", true)], [change]);
    renderAt(<DashboardPage />);
    const list = await screen.findByTestId("primaries");
    const rows = within(list).getAllByRole("listitem");
    expect(within(rows[0]!).getByRole("link", { name: "bravo" })).toHaveAttribute("href", `/nodes/${BRAVO}`);
    expect(within(rows[0]!).getByText("Leader")).toBeInTheDocument();
    expect(within(rows[1]!).getByText("Follower")).toBeInTheDocument();
    expect(screen.getByText(/epoch 3, leading since/)).toBeInTheDocument();
    const changes = await screen.findByTestId("recent-changes");
    expect(within(changes).getByText("Leader")).toBeInTheDocument();
    expect(within(changes).getByText(/took the lead/)).toBeInTheDocument();
  });

  it("shows no primaries panel for a single primary", async () => {
    const calls = cluster([primary(ALPHA, "alpha", true)]);
    renderAt(<DashboardPage />);
    await screen.findByText(/No status changes yet/);
    await waitFor(() => expect(calls.some((c) => c.url === "/api/cluster")).toBe(true));
    expect(screen.queryByTestId("primaries")).not.toBeInTheDocument();
  });
});
