import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { LineChart, niceMax } from "./LineChart";

describe("LineChart", () => {
  it("picks a round top for its scale", () => {
    expect(niceMax(0.7)).toBe(1);
    expect(niceMax(3.2)).toBe(5);
    expect(niceMax(12)).toBe(20);
    expect(niceMax(0)).toBe(1);
  });

  it("draws the series and sums it up for screen readers", () => {
    const points = [0, 1, 2].map((i) => ({ t: Date.parse("2026-11-23T18:00:00Z") + i * 60_000, v: [10, 40, 25][i]! }));
    const { container } = render(<LineChart title="CPU" points={points} max={100} format={(v) => `${v}%`} />);
    expect(screen.getByRole("figure")).toHaveAccessibleName("CPU: now 25%, peak 40% over 3 points");
    expect(container.querySelectorAll("path")).toHaveLength(2);
  });

  it("draws a second line on the same scale and reads both", () => {
    const at = (i: number) => Date.parse("2026-11-23T18:00:00Z") + i * 60_000;
    const rx = [0, 1].map((i) => ({ t: at(i), v: [100, 200][i]! }));
    const tx = [0, 1].map((i) => ({ t: at(i), v: [50, 800][i]! }));
    const { container } = render(
      <LineChart title="Network" label="in" points={rx} second={{ label: "out", points: tx, color: "red" }} format={(v) => `${v} B/s`} />,
    );
    expect(screen.getByRole("figure")).toHaveAccessibleName("Network: now in 200 B/s · out 800 B/s, peak in 200 B/s · out 800 B/s over 2 points");
    expect(container.querySelectorAll("path")).toHaveLength(3);
    // The scale fits the larger line: its top is 1000.
    expect(screen.getByText("1000 B/s")).toBeInTheDocument();
  });

  it("says when there is nothing to draw yet", () => {
    render(<LineChart title="Disk" points={[]} format={String} />);
    expect(screen.getByText(/No samples in this period yet/)).toBeInTheDocument();
  });
});
