import { screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";

import { mockFetch, renderAt } from "../test/render";
import { LoginPage, loginMessage } from "./LoginPage";

describe("LoginPage", () => {
  it("explains a refused GitHub user and how to get in", async () => {
    mockFetch(() => ({ status: 401, body: { error: { code: "unauthorized", message: "log in first" } } }));
    renderAt(<LoginPage />, { route: "/login?error=not_allowed&login=mallory" });
    expect(await screen.findByRole("link", { name: /continue with github/i })).toHaveAttribute("href", "/auth/github/login");
    expect(screen.getByRole("alert")).toHaveTextContent("GitHub user mallory is not allowed");
    expect(screen.getByRole("alert")).toHaveTextContent("GITHUB_ALLOWED_USERS");
  });

  it("says when GitHub denied the sign-in", () => {
    expect(loginMessage(new URLSearchParams("error=denied"))?.text).toMatch(/cancelled or GitHub refused/);
    expect(loginMessage(new URLSearchParams(""))).toBeNull();
  });

  it("shows that sign-in is handled upstream instead of a login button when auth is off", async () => {
    mockFetch(() => ({ body: { auth: "off", user: null } }));
    renderAt(<LoginPage />, { route: "/login" });
    expect(await screen.findByTestId("auth-upstream")).toHaveTextContent("Sign-in is off on this primary");
    expect(screen.queryByRole("link", { name: /continue with github/i })).toBeNull();
  });

  it("names the Cloudflare Access user", async () => {
    mockFetch(() => ({ body: { auth: "cloudflare", user: { kind: "user", login: "ops@example.com", name: null, avatar_url: null, provider: "cloudflare" } } }));
    renderAt(<LoginPage />, { route: "/login" });
    expect(await screen.findByTestId("auth-upstream")).toHaveTextContent("as ops@example.com");
  });
});
