import { act, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { keys } from "../api/queries";
import type { Job } from "../api/types";
import { fleetApi, fleetOf } from "../test/fleet";
import { mockFetch, renderAt } from "../test/render";
import { JobDetailPage } from "./JobDetailPage";

const ID = "01a209f2-5f6d-720e-b62d-1fe006b89aca";
const NODE = "0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f";

function job(overrides: Partial<Job> = {}): Job {
  return {
    id: ID,
    name: "deploy web",
    command: "make deploy",
    env: {},
    working_dir: null,
    timeout_sec: 1800,
    node_id: null,
    labels: [],
    status: "running",
    attempt: 1,
    assigned_node_id: NODE,
    queue_reason: null,
    exit_code: null,
    error: null,
    cancel_requested: false,
    submitted_by: "github:octocat",
    created_at: "2026-11-23T19:00:00Z",
    dispatched_at: "2026-11-23T19:00:00Z",
    started_at: "2026-11-23T19:00:01Z",
    finished_at: null,
    log_bytes: 0,
    run_id: null,
    ...overrides,
  };
}

class QuietSocket {
  static urls: string[] = [];
  static last: QuietSocket | null = null;
  onopen: (() => void) | null = null;
  onclose = null;
  onerror = null;
  onmessage: ((e: { data: string }) => void) | null = null;
  constructor(url: string) {
    QuietSocket.urls.push(url);
    QuietSocket.last = this;
  }
  close() {}
}

function api(initial: Job) {
  let current = initial;
  return mockFetch((call) => {
    const path = call.url.split("?")[0];
    if (path === `/api/jobs/${ID}` && call.method === "GET") return { body: current };
    if (path === `/api/jobs/${ID}/cancel` && call.method === "POST") {
      current = { ...current, cancel_requested: true };
      return { status: 202, body: current };
    }
    if (path === `/api/nodes/${NODE}`) return { body: { id: NODE, name: "web-01", status: "online" } };
    return undefined;
  });
}

describe("JobDetailPage", () => {
  beforeEach(() => {
    QuietSocket.urls = [];
    vi.stubGlobal("WebSocket", QuietSocket);
  });
  afterEach(() => vi.unstubAllGlobals());

  it("shows the job, follows its log, and cancels it after confirming", async () => {
    const calls = api(job());
    renderAt(<JobDetailPage />, { route: `/jobs/${ID}`, path: "/jobs/:id" });
    expect(await screen.findByRole("heading", { name: /deploy web/ })).toBeInTheDocument();
    expect(await screen.findByRole("link", { name: "web-01" })).toHaveAttribute("href", `/nodes/${NODE}`);
    expect(screen.getByRole("link", { name: "Download log" })).toHaveAttribute("href", `/api/jobs/${ID}/logs/raw`);
    expect(QuietSocket.urls[0]).toMatch(new RegExp(`/api/jobs/${ID}/logs/ws$`));

    const user = userEvent.setup();
    await user.click(screen.getByRole("button", { name: "Cancel job" }));
    await user.click(screen.getByRole("dialog").querySelector("button.button-danger")!);
    expect(await screen.findByRole("button", { name: "Cancelling…" })).toBeDisabled();
    const cancel = calls.find((c) => c.method === "POST")!;
    expect(cancel.url).toBe(`/api/jobs/${ID}/cancel`);
    expect(cancel.headers["X-Requested-With"]).toBe("fleetdeck");
  });

  it("counts the output as it streams in, before the job's own figure catches up", async () => {
    api(job({ log_bytes: 0 }));
    renderAt(<JobDetailPage />, { route: `/jobs/${ID}`, path: "/jobs/:id" });
    expect(await screen.findByTestId("job-output-size")).toHaveTextContent("0 B");
    const socket = QuietSocket.last!;
    act(() => {
      socket.onopen?.();
      socket.onmessage?.({ data: JSON.stringify({ type: "chunk", seq: 0, stream: "stdout", text: "héllo\n", at: "2026-11-23T19:00:02Z" }) });
    });
    await waitFor(() => expect(screen.getByTestId("job-output-size")).toHaveTextContent("7 B"));
  });

  it("says why a queued job waits", async () => {
    api(
      job({ status: "queued", assigned_node_id: null, started_at: null, dispatched_at: null, labels: ["gpu"], queue_reason: "no online node has labels gpu" }),
    );
    renderAt(<JobDetailPage />, { route: `/jobs/${ID}`, path: "/jobs/:id" });
    expect(await screen.findByTestId("queue-reason")).toHaveTextContent("Waiting for a node: no online node has labels gpu.");
    expect(screen.getByText("not placed yet")).toBeInTheDocument();
  });

  it("says so when a running job's node stopped answering", async () => {
    mockFetch((call) => {
      const path = call.url.split("?")[0];
      if (path === `/api/jobs/${ID}`) return { body: job() };
      if (path === `/api/nodes/${NODE}`) return { body: { id: NODE, name: "web-01", status: "offline", last_seen: "2026-11-23T19:01:00Z" } };
      return undefined;
    });
    renderAt(<JobDetailPage />, { route: `/jobs/${ID}`, path: "/jobs/:id" });
    expect(await screen.findByTestId("node-down")).toHaveTextContent("Its node web-01 is offline");
    expect(screen.getByTestId("node-down")).toHaveTextContent("marked lost if the node does not come back");
  });

  it("runs a finished job again on the same node", async () => {
    const calls = api(job({ status: "failed", exit_code: 3, node_id: NODE, env: { TZ: "UTC" }, finished_at: "2026-11-23T19:00:05Z" }));
    renderAt(<JobDetailPage />, { route: `/jobs/${ID}`, path: "/jobs/:id" });
    await userEvent.setup().click(await screen.findByRole("button", { name: "Run again" }));
    await waitFor(() => expect(calls.some((c) => c.method === "POST" && c.url === "/api/jobs")).toBe(true));
    const post = calls.find((c) => c.method === "POST" && c.url === "/api/jobs")!;
    expect(post.body).toEqual({ command: "make deploy", env: { TZ: "UTC" }, timeout_sec: 1800, name: "deploy web", node_id: NODE });
  });

  it("offers no cancel for a finished job, and shows its error and exit code", async () => {
    api(job({ status: "failed", exit_code: 3, error: "exited with code 3", finished_at: "2026-11-23T19:00:05Z" }));
    renderAt(<JobDetailPage />, { route: `/jobs/${ID}`, path: "/jobs/:id" });
    expect(await screen.findByTestId("job-exit-code")).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Cancel job" })).toBeNull();
    expect(screen.getByTestId("job-exit-code")).toHaveTextContent("3");
    expect(screen.getByTestId("job-error")).toHaveTextContent("exited with code 3");
    expect(screen.getByText("4.0s")).toBeInTheDocument();
  });

  it("names its node in a fleet of 5,000 where it is the 4,000th, asking for that node alone", async () => {
    const fleet = fleetOf(5000);
    const far = fleet[3999]!;
    const nodes = fleetApi(fleet);
    const calls = mockFetch((call) => (call.url === `/api/jobs/${ID}` ? { body: job({ assigned_node_id: far.id }) } : nodes(call)));
    renderAt(<JobDetailPage />, { route: `/jobs/${ID}`, path: "/jobs/:id" });
    expect(await screen.findByRole("link", { name: "node-4000" })).toHaveAttribute("href", `/nodes/${far.id}`);
    // That node alone (its name, and whether it still answers), never the fleet's pages.
    expect(new Set(calls.filter((c) => c.url.startsWith("/api/nodes")).map((c) => c.url))).toEqual(new Set([`/api/nodes/${far.id}`]));
  });

  it("shows a node that no longer exists by its ID", async () => {
    const gone = "0190f6c2-8f5a-7c1e-9a43-ffffffffffff";
    const nodes = fleetApi(fleetOf(3));
    const calls = mockFetch((call) => (call.url === `/api/jobs/${ID}` ? { body: job({ assigned_node_id: gone, status: "lost" }) } : nodes(call)));
    const { client } = renderAt(<JobDetailPage />, { route: `/jobs/${ID}`, path: "/jobs/:id" });
    await waitFor(() => expect(client.getQueryState(keys.nodeName(gone))?.status).toBe("success"));
    expect(calls.map((c) => c.url)).toContain(`/api/nodes/${gone}`);
    expect(screen.getByTestId("job-node")).toHaveTextContent(gone);
    expect(screen.getByRole("link", { name: gone })).toHaveAttribute("href", `/nodes/${gone}`);
  });

  it("explains a job that does not exist", async () => {
    mockFetch(() => ({ status: 404, body: { error: { code: "not_found", message: `no job with ID ${ID}` } } }));
    renderAt(<JobDetailPage />, { route: `/jobs/${ID}`, path: "/jobs/:id" });
    expect(await screen.findByRole("alert")).toHaveTextContent(`No job with ID ${ID}`);
  });
});
