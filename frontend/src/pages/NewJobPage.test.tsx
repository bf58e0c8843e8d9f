import { screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";

import { mockFetch, renderAt } from "../test/render";
import { NewJobPage } from "./NewJobPage";

const NODE = { id: "0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f", name: "web-01", status: "online", is_primary: false, labels: [] };

function api(answer: { status: number; body: unknown }) {
  return mockFetch((call) => {
    const path = call.url.split("?")[0];
    if (path === "/api/nodes") return { body: { items: [NODE], next_cursor: null } };
    if (path === "/api/jobs" && call.method === "POST") return answer;
    return undefined;
  });
}

describe("NewJobPage", () => {
  it("submits the command, a chosen node, the timeout and the environment", async () => {
    const calls = api({ status: 201, body: { id: "job-1", status: "queued" } });
    renderAt(<NewJobPage />, { route: "/jobs/new", path: "/jobs/new" });
    const user = userEvent.setup();
    await user.type(screen.getByLabelText("Command"), "echo hi");
    await user.type(screen.getByLabelText("Name"), " greet ");
    await user.click(screen.getByRole("radio", { name: "A node" }));
    await screen.findByRole("option", { name: "web-01" });
    await user.selectOptions(screen.getByLabelText("Node"), NODE.id);
    await user.type(screen.getByLabelText("Timeout (seconds)"), "60");
    await user.click(screen.getByRole("button", { name: "Add variable" }));
    await user.type(screen.getByLabelText("Variable 1 name"), "TZ");
    await user.type(screen.getByLabelText("Variable 1 value"), "UTC");
    await user.click(screen.getByRole("button", { name: "Run job" }));
    expect(await screen.findByTestId("elsewhere")).toBeInTheDocument();
    const post = calls.find((c) => c.method === "POST")!;
    expect(post.body).toEqual({ command: "echo hi", name: "greet", node_id: NODE.id, timeout_sec: 60, env: { TZ: "UTC" } });
  });

  it("runs on all matching nodes as a fleet-wide run, rolling two at a time", async () => {
    const calls = mockFetch((call) => {
      const path = call.url.split("?")[0];
      if (path === "/api/nodes") return { body: { items: [NODE], next_cursor: null } };
      if (path === "/api/runs" && call.method === "POST") return { status: 201, body: { id: "run-1", status: "running" } };
      return undefined;
    });
    renderAt(<NewJobPage />, { route: "/jobs/new", path: "/jobs/new" });
    const user = userEvent.setup();
    await user.type(screen.getByLabelText("Command"), "apt-get -y upgrade");
    await user.click(screen.getByRole("radio", { name: "Nodes with labels" }));
    await user.type(screen.getByLabelText("Labels"), "web");
    await user.click(screen.getByRole("checkbox", { name: "Run on all matching nodes" }));
    expect(screen.getByRole("heading", { name: "New fleet-wide run" })).toBeInTheDocument();
    await user.type(screen.getByLabelText("At a time"), "2");
    await user.click(screen.getByRole("checkbox", { name: "Stop at the first node that fails" }));
    await user.click(screen.getByRole("button", { name: "Run on all matching nodes" }));
    expect(await screen.findByTestId("elsewhere")).toBeInTheDocument();
    const post = calls.find((c) => c.method === "POST")!;
    expect(post.url).toBe("/api/runs");
    expect(post.body).toEqual({ command: "apt-get -y upgrade", labels: ["web"], max_parallel: 2, stop_on_failure: true });
  });

  it("puts the API's validation error next to the field it names", async () => {
    api({
      status: 400,
      body: { error: { code: "validation_failed", message: "timeout_sec: must be from 1 to 86400 (JOB_MAX_TIMEOUT)", field: "timeout_sec" } },
    });
    renderAt(<NewJobPage />);
    const user = userEvent.setup();
    await user.type(screen.getByLabelText("Command"), "sleep 1");
    await user.type(screen.getByLabelText("Timeout (seconds)"), "999999");
    await user.click(screen.getByRole("button", { name: "Run job" }));
    expect(await screen.findByText("Timeout: must be from 1 to 86400 (JOB_MAX_TIMEOUT)")).toBeInTheDocument();
    expect(screen.getByLabelText("Timeout (seconds)")).toHaveAttribute("aria-invalid", "true");
  });

  it("names the field of a 422 too (labels no node has)", async () => {
    api({ status: 422, body: { error: { code: "unprocessable", message: "labels: no node has all of gpu" } } });
    renderAt(<NewJobPage />);
    const user = userEvent.setup();
    await user.type(screen.getByLabelText("Command"), "nvidia-smi");
    await user.click(screen.getByRole("radio", { name: "Nodes with labels" }));
    await user.type(screen.getByLabelText("Labels"), "GPU");
    await user.click(screen.getByRole("button", { name: "Run job" }));
    expect(await screen.findByText("Labels: no node has all of gpu")).toBeInTheDocument();
  });

  it("asks for a command before sending anything", async () => {
    const calls = api({ status: 201, body: {} });
    renderAt(<NewJobPage />);
    await userEvent.setup().click(screen.getByRole("button", { name: "Run job" }));
    expect(screen.getByText(/enter the command to run/)).toBeInTheDocument();
    expect(calls.filter((c) => c.method === "POST")).toHaveLength(0);
  });

  it("moves the target choice with the arrow keys, as a radio group does", async () => {
    api({ status: 201, body: {} });
    renderAt(<NewJobPage />);
    const user = userEvent.setup();
    await user.click(screen.getByRole("radio", { name: "Any node" }));
    await user.keyboard("{ArrowRight}");
    expect(screen.getByRole("radio", { name: "A node" })).toHaveAttribute("aria-checked", "true");
    expect(screen.getByRole("radio", { name: "A node" })).toHaveFocus();
    expect(screen.getByLabelText("Node")).toBeInTheDocument();
    await user.keyboard("{ArrowLeft}{ArrowLeft}");
    expect(screen.getByRole("radio", { name: "Nodes with labels" })).toHaveAttribute("aria-checked", "true");
  });
});
