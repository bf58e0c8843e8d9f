import { describe, expect, it } from "vitest";

import { conditionText, fromLocalInput, isMuted, parseRecipients, takesFor, takesThreshold, toLocalInput } from "./alerts";

describe("alerts", () => {
  it("sums up a rule's condition", () => {
    expect(conditionText({ event: "cpu_above", threshold: 90, for: "5m" })).toBe("above 90 % for 5m");
    expect(conditionText({ event: "node_offline", threshold: null, for: "2m" })).toBe("for 2m");
    expect(conditionText({ event: "job_failed", threshold: null, for: "0s" })).toBe("at once");
  });

  it("knows which events take a threshold or a for", () => {
    expect(takesThreshold("memory_above")).toBe(true);
    expect(takesThreshold("node_offline")).toBe(false);
    expect(takesFor("node_unreachable")).toBe(true);
    expect(takesFor("node_online")).toBe(false);
    expect(takesFor("job_failed")).toBe(false);
  });

  it("reads recipients separated by commas, spaces or lines", () => {
    expect(parseRecipients(" a@x.org,b@x.org\nc@x.org ;d@x.org ")).toEqual(["a@x.org", "b@x.org", "c@x.org", "d@x.org"]);
    expect(parseRecipients("")).toEqual([]);
  });

  it("turns a local date input into an ISO time and back, to the minute", () => {
    const iso = fromLocalInput("2030-05-06T07:08")!;
    expect(toLocalInput(iso)).toBe("2030-05-06T07:08");
    expect(fromLocalInput("")).toBeNull();
    expect(toLocalInput(null)).toBe("");
  });

  it("says whether a rule is muted now", () => {
    const now = Date.parse("2026-11-23T18:00:00Z");
    expect(isMuted({ muted_until: "2026-11-23T19:00:00Z" }, now)).toBe(true);
    expect(isMuted({ muted_until: "2026-11-23T17:00:00Z" }, now)).toBe(false);
    expect(isMuted({ muted_until: null }, now)).toBe(false);
  });
});
