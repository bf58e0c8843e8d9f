import { describe, expect, it } from "vitest";

import { bytes, duration, percent, ratio, relativeTime } from "./format";

describe("format", () => {
  const now = Date.parse("2026-11-23T18:00:00Z");

  it("says how long ago, in the largest fitting unit", () => {
    expect(relativeTime("2026-11-23T17:59:55Z", now)).toBe("just now");
    expect(relativeTime("2026-11-23T17:55:00Z", now)).toBe("5 minutes ago");
    expect(relativeTime("2026-11-23T15:00:00Z", now)).toBe("3 hours ago");
    expect(relativeTime("2026-11-21T18:00:00Z", now)).toBe("2 days ago");
    expect(relativeTime(null, now)).toBe("never");
    expect(relativeTime("garbage", now)).toBe("unknown");
  });

  it("formats sizes, percentages and durations", () => {
    expect(bytes(512)).toBe("512 B");
    expect(bytes(1536)).toBe("1.5 KiB");
    expect(bytes(8 * 1024 ** 3)).toBe("8.0 GiB");
    expect(bytes(null)).toBe("—");
    expect(percent(4.25)).toBe("4.3%");
    expect(percent(87.6)).toBe("88%");
    expect(ratio(25, 100)).toBe(25);
    expect(ratio(5, 0)).toBeNull();
    expect(duration(93784)).toBe("1d 2h");
    expect(duration(3720)).toBe("1h 2m");
  });
});
