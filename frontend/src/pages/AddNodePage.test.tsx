import { screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";

import { mockFetch, renderAt } from "../test/render";
import { AddNodePage } from "./AddNodePage";

const ENV = "NODE_IS_PRIMARY=false\nNODE_ID=0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f\nNODE_API_KEY=secret-key\n";

const TOKEN = {
  id: "0190f6c2-8f5a-7c1e-9a43-00000000000a",
  name: null,
  labels: ["edge"],
  state: "active",
  created_by: "admin",
  created_at: "2026-12-01T10:00:00.000Z",
  expires_at: "2099-12-01T11:00:00.000Z",
  used_at: null,
  used_by: null,
};
const COMMAND = "curl -fsSL http://fleet.test/install.sh | sh -s -- --join fdj_secret";

describe("AddNodePage", () => {
  it("offers the one-command join first: a join token's command, shown once with a copy button", async () => {
    const calls = mockFetch((call) => {
      if (call.method === "POST" && call.url === "/api/nodes/join-tokens") return { status: 201, body: { ...TOKEN, token: "fdj_secret", command: COMMAND } };
      if (call.url === "/api/nodes/join-tokens") return { body: { items: [TOKEN] } };
      return undefined;
    });
    renderAt(<AddNodePage />);
    const user = userEvent.setup();
    expect(screen.getByRole("button", { name: "One command" })).toHaveAttribute("aria-pressed", "true");
    await user.type(screen.getByLabelText("Labels"), "Edge");
    await user.selectOptions(screen.getByLabelText("Valid for"), "1 day");
    await user.click(screen.getByRole("button", { name: "Create join command" }));

    expect(await screen.findByTestId("join-command")).toHaveTextContent(COMMAND);
    expect(screen.getByText(/shown this once/)).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Copy command" })).toBeInTheDocument();
    const post = calls.find((c) => c.method === "POST")!;
    expect(post.body).toEqual({ labels: ["edge"], expires_in: 86400 });
    // The open token is listed, and can be revoked.
    const rows = await screen.findByTestId("join-token-rows");
    expect(rows).toHaveTextContent("any machine");
    expect(rows).toHaveTextContent(/open, expires/);
    await user.click(screen.getByRole("button", { name: "Revoke" }));
    expect(await screen.findByRole("dialog", { name: "Revoke this join token?" })).toBeInTheDocument();
  });

  it("puts a join token's validation error next to its field", async () => {
    mockFetch((call) =>
      call.method === "POST"
        ? { status: 400, body: { error: { code: "validation_failed", message: "name: must be 1 to 64 characters", field: "name" } } }
        : { body: { items: [] } },
    );
    renderAt(<AddNodePage />);
    const user = userEvent.setup();
    await user.type(screen.getByLabelText("Name"), "bad name");
    await user.click(screen.getByRole("button", { name: "Create join command" }));
    expect(await screen.findByText("Name: must be 1 to 64 characters")).toBeInTheDocument();
    expect(screen.getByLabelText("Name")).toHaveAttribute("aria-invalid", "true");
  });

  it("adds a node and shows its .env once, with a copy button", async () => {
    const calls = mockFetch((call) =>
      call.method === "POST" && call.url === "/api/nodes"
        ? { status: 201, body: { node: { id: "0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f", name: "web-01", status: "pending" }, api_key: "secret-key", env: ENV } }
        : undefined,
    );
    renderAt(<AddNodePage />);
    const user = userEvent.setup();
    await user.click(screen.getByRole("button", { name: "A .env file" }));
    await user.type(screen.getByLabelText("Name"), "web-01");
    await user.type(screen.getByLabelText("Endpoint"), "http://10.0.0.5:8080");
    await user.type(screen.getByLabelText("Labels"), "Linux, gpu");
    await user.click(screen.getByRole("button", { name: "Add node" }));

    expect(await screen.findByTestId("env-block")).toHaveTextContent("NODE_API_KEY=secret-key");
    expect(screen.getByText(/shown this once/)).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Copy .env" })).toBeInTheDocument();
    const post = calls.find((c) => c.method === "POST")!;
    expect(post.body).toEqual({ name: "web-01", api_endpoint: "http://10.0.0.5:8080", labels: ["linux", "gpu"] });
    expect(post.headers["X-Requested-With"]).toBe("fleetdeck");
  });

  it("puts a validation error next to the field it is about", async () => {
    mockFetch(() => ({
      status: 400,
      body: { error: { code: "validation_failed", message: "api_endpoint: must use http:// or https://", field: "api_endpoint" } },
    }));
    renderAt(<AddNodePage />);
    const user = userEvent.setup();
    await user.click(screen.getByRole("button", { name: "A .env file" }));
    await user.type(screen.getByLabelText("Name"), "web-01");
    await user.type(screen.getByLabelText("Endpoint"), "ftp://x");
    await user.click(screen.getByRole("button", { name: "Add node" }));
    expect(await screen.findByText("Endpoint: must use http:// or https://")).toBeInTheDocument();
    expect(screen.getByLabelText("Endpoint")).toHaveAttribute("aria-invalid", "true");
  });

  it("explains self-registration", async () => {
    mockFetch(() => undefined);
    renderAt(<AddNodePage />);
    await userEvent.setup().click(screen.getByRole("button", { name: "A .env file" }));
    expect(screen.getByRole("heading", { name: /register themselves/ })).toBeInTheDocument();
    expect(screen.getAllByText(/REGISTRATION_TOKEN/).length).toBeGreaterThan(0);
  });
});
