import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { Meter } from "./Meter";

describe("Meter", () => {
  it("colours a live figure by how full it is", () => {
    const { container } = render(<Meter value={95} label="CPU" />);
    expect(container.querySelector(".meter-high")).not.toBeNull();
    expect(screen.getByTitle("CPU 95%")).toBeInTheDocument();
  });

  it("greys an old figure and says when it was taken", () => {
    const { container } = render(<Meter value={95} label="CPU" asOf="2026-11-23T18:04:03Z" />);
    expect(container.querySelector(".meter-high")).toBeNull();
    expect(container.querySelector(".meter-stale")).not.toBeNull();
    expect(screen.getByTitle(/^CPU 95% as of /)).toBeInTheDocument();
  });
});
