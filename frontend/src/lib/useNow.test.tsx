import { act, render, screen } from "@testing-library/react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { RelativeTime } from "../components/RelativeTime";
import { relativeTime } from "./format";

const T0 = Date.parse("2026-11-23T18:00:00Z");
const at = (ms: number) => new Date(ms).toISOString();

describe("the shared clock", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(T0);
  });
  afterEach(() => vi.useRealTimers());

  it("reads the time afresh when a page shows times again after none did", () => {
    const first = render(<RelativeTime at={at(T0 - 30_000)} />);
    expect(screen.getByText("30 seconds ago")).toBeInTheDocument();
    first.unmount(); // client-side navigation: nothing shows a time for a while
    vi.setSystemTime(T0 + 5 * 60_000);
    render(<RelativeTime at={at(T0 + 4 * 60_000)} />);
    expect(screen.getByText("1 minute ago")).toBeInTheDocument();
  });

  it("ticks while times are shown", () => {
    render(<RelativeTime at={at(T0 - 60_000)} />);
    expect(screen.getByText("1 minute ago")).toBeInTheDocument();
    act(() => vi.advanceTimersByTime(60_000));
    expect(screen.getByText("2 minutes ago")).toBeInTheDocument();
  });

  it("never shows what happened in the future, but shows what is upcoming", () => {
    // The server's clock a little ahead of the browser's.
    expect(relativeTime(at(T0 + 40_000), T0)).toBe("just now");
    expect(relativeTime(at(T0 + 40_000), T0, { happened: false })).toBe("in 40 seconds");
    render(<RelativeTime at={at(T0 + 3_600_000)} upcoming />);
    expect(screen.getByText("in 1 hour")).toBeInTheDocument();
  });
});
