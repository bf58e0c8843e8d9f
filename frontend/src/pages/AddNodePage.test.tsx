import { screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";

import { mockFetch, renderAt } from "../test/render";
import { AddNodePage } from "./AddNodePage";

const ENV = "NODE_IS_PRIMARY=false\nNODE_ID=0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f\nNODE_API_KEY=secret-key\n";

describe("AddNodePage", () => {
  it("adds a node and shows its .env once, with a copy button", async () => {
    const calls = mockFetch((call) =>
      call.method === "POST" && call.url === "/api/nodes"
        ? { status: 201, body: { node: { id: "0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f", name: "web-01", status: "pending" }, api_key: "secret-key", env: ENV } }
        : undefined,
    );
    renderAt(<AddNodePage />);
    const user = userEvent.setup();
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
    await user.type(screen.getByLabelText("Name"), "web-01");
    await user.type(screen.getByLabelText("Endpoint"), "ftp://x");
    await user.click(screen.getByRole("button", { name: "Add node" }));
    expect(await screen.findByText("Endpoint: must use http:// or https://")).toBeInTheDocument();
    expect(screen.getByLabelText("Endpoint")).toHaveAttribute("aria-invalid", "true");
  });

  it("explains self-registration", () => {
    mockFetch(() => undefined);
    renderAt(<AddNodePage />);
    expect(screen.getByRole("heading", { name: /register themselves/ })).toBeInTheDocument();
    expect(screen.getAllByText(/REGISTRATION_TOKEN/).length).toBeGreaterThan(0);
  });
});
