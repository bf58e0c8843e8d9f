import { describe, expect, it } from "vitest";

import { ApiError } from "../api/client";
import { describeError } from "./errors";

describe("describeError", () => {
  it("names the field of a validation error in the UI's words", () => {
    const e = new ApiError(400, "validation_failed", "api_endpoint: must use http:// or https://", null, "api_endpoint");
    expect(e.field).toBe("api_endpoint");
    expect(describeError(e)).toBe("Endpoint: must use http:// or https://");
  });

  it("tells what to do for each kind of failure", () => {
    expect(describeError(new ApiError(0, "network", "x"))).toMatch(/Cannot reach the Fleetdeck primary/);
    expect(describeError(new ApiError(401, "unauthorized", "log in first"))).toMatch(/Sign in again/);
    expect(describeError(new ApiError(409, "conflict", "a node named web-01 already exists"))).toBe("A node named web-01 already exists.");
    expect(describeError(new ApiError(429, "rate_limited", "slow down"))).toMatch(/Wait a minute/);
    expect(describeError(new ApiError(500, "internal", "something went wrong", "abc123"))).toMatch(/request abc123.*primary's log/);
  });
});
