import { screen, within } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import type { AuditEntry } from "../api/types";
import { mockFetch, renderAt } from "../test/render";
import { AuditPage } from "./AuditPage";

const NODE = "0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f";
const JOB = "01a209f2-5f6d-720e-b62d-1fe006b89aca";

function entry(overrides: Partial<AuditEntry>): AuditEntry {
  return {
    id: crypto.randomUUID(),
    at: "2026-12-01T17:00:00Z",
    actor: "github:octocat",
    action: "node_added",
    target: NODE,
    source_ip: "127.0.0.1",
    details: null,
    target_name: null,
    ...overrides,
  };
}

describe("AuditPage", () => {
  it("names each target as it was, a removed node too, and links to the ones that still exist", async () => {
    mockFetch((call) =>
      call.url.startsWith("/api/audit")
        ? {
            body: {
              items: [
                entry({ action: "node_removed", target_name: "db-01" }),
                entry({ action: "job_submitted", target: JOB, target_name: null, details: "make deploy" }),
                entry({ action: "node_added", target_name: "db-01" }),
              ],
              next_cursor: null,
            },
          }
        : undefined,
    );
    renderAt(<AuditPage />, { route: "/audit", path: "/audit" });
    const rows = await screen.findByTestId("audit-rows");
    await within(rows).findByText("Removed node");
    const [removed, job, added] = within(rows).getAllByRole("row");
    expect(within(removed!).getByText("db-01")).not.toHaveAttribute("href");
    expect(within(removed!).getByText("Removed node")).toBeInTheDocument();
    expect(within(job!).getByRole("link", { name: `${JOB.slice(0, 8)}…` })).toHaveAttribute("href", `/jobs/${JOB}`);
    expect(within(added!).getByRole("link", { name: "db-01" })).toHaveAttribute("href", `/nodes/${NODE}`);
  });
});
