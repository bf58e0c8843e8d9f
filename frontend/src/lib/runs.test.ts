import { describe, expect, it } from "vitest";

import type { Run } from "../api/types";
import { groupCaption, pacingSummary, rerunRequest, targetSummary, totalsSummary } from "./runs";

const totals = { nodes: 4, waiting: 0, skipped: 1, active: 0, succeeded: 2, failed: 1, cancelled: 0 };

function run(overrides: Partial<Run> = {}): Run {
  return {
    id: "r",
    name: null,
    command: "uptime",
    env: { TZ: "UTC" },
    working_dir: null,
    timeout_sec: 60,
    all: false,
    labels: ["web"],
    node_ids: [],
    max_parallel: 2,
    stop_on_failure: true,
    status: "failed",
    stopped: null,
    submitted_by: "anonymous",
    created_at: "2026-12-01T17:00:00Z",
    totals,
    ...overrides,
  };
}

describe("runs", () => {
  it("sums a run up in words, leaving out what is zero", () => {
    expect(totalsSummary(run())).toBe("4 nodes: 2 succeeded, 1 failed, 1 skipped");
    expect(totalsSummary(run({ totals: { ...totals, nodes: 1, skipped: 0, succeeded: 0, failed: 0, active: 1 } }))).toBe("1 node: 1 running");
  });

  it("says where and how fast it runs", () => {
    expect(targetSummary(run())).toBe("nodes with web");
    expect(targetSummary(run({ all: true, labels: [] }))).toBe("every node");
    expect(targetSummary(run({ labels: [], node_ids: ["a", "b"] }))).toBe("2 chosen nodes");
    expect(pacingSummary(run())).toBe("2 at a time, stopping at the first failure");
    expect(pacingSummary(run({ max_parallel: null, stop_on_failure: false }))).toBe("all at once");
  });

  it("captions a group of identical output", () => {
    expect(groupCaption({ text: "a\nb\n", node_ids: ["1", "2", "3"], truncated: false })).toBe("3 nodes printed the same 2 lines");
    expect(groupCaption({ text: "a\n", node_ids: ["1"], truncated: false })).toBe("1 node printed 1 line");
    expect(groupCaption({ text: "", node_ids: ["1", "2"], truncated: false })).toBe("2 nodes printed nothing");
    expect(groupCaption({ text: "a\nb", node_ids: ["1", "2"], truncated: true })).toBe("2 nodes printed the same at first 2 lines");
  });

  it("runs again on the same target, or on the failed nodes only", () => {
    expect(rerunRequest(run())).toEqual({ command: "uptime", env: { TZ: "UTC" }, timeout_sec: 60, max_parallel: 2, stop_on_failure: true, labels: ["web"] });
    expect(rerunRequest(run({ all: true, labels: [] }), ["n1"])).toMatchObject({ node_ids: ["n1"] });
    expect(rerunRequest(run({ all: true, labels: [] }))).toMatchObject({ all: true });
  });
});
