// Signing in and out with GitHub (a local stand-in speaking GitHub's OAuth protocol),
// against the real binary with AUTH_ENABLED=true.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { cleanup, freePort, githubStandIn, launchBrowser, newPage, primaryEnv, screenshot, startFleetdeck, tempDir } from "./harness.mjs";

let base;
let github;
let browser;

before(async () => {
  github = await githubStandIn();
  const port = await freePort();
  const dir = tempDir("auth");
  base = `http://127.0.0.1:${port}`;
  await startFleetdeck({
    name: "primary",
    cwd: dir,
    url: base,
    env: primaryEnv(port, join(dir, "data"), {
      AUTH_ENABLED: "true",
      JWT_SECRET: "an-e2e-jwt-secret-that-is-long-enough-0123456789",
      GITHUB_CLIENT_ID: "e2e-client",
      GITHUB_CLIENT_SECRET: "e2e-secret",
      GITHUB_ALLOWED_USERS: "octocat",
      GITHUB_AUTH_URL: `${github.url}/login/oauth/authorize`,
      GITHUB_TOKEN_URL: `${github.url}/login/oauth/access_token`,
      GITHUB_API_URL: github.url,
    }),
  });
  browser = await launchBrowser();
});

after(cleanup);

// Before signing in, "who am I?" is answered 401, which the browser logs.
const EXPECTED = [/status of 401/];

test("a refused GitHub user is told why; an allowed one signs in and out", async () => {
  const { page, problems } = await newPage(browser);

  await page.goto(`${base}/nodes`);
  await page.waitForURL(`${base}/login`);
  await page.getByRole("link", { name: "Continue with GitHub" }).waitFor();
  await screenshot(page, "login");

  github.state.nextUser = "mallory";
  await page.getByRole("link", { name: "Continue with GitHub" }).click();
  await page.waitForURL(/\/login\?error=not_allowed&login=mallory/);
  const message = page.getByTestId("login-message");
  assert.match(await message.textContent(), /GitHub user mallory is not allowed.*GITHUB_ALLOWED_USERS/);
  await screenshot(page, "login-refused");

  github.state.nextUser = "octocat";
  await page.getByRole("link", { name: "Continue with GitHub" }).click();
  await page.waitForURL(`${base}/`);
  assert.equal(await page.getByTestId("user-login").textContent(), "octocat");
  await page.getByTestId("live-state").filter({ hasText: "Live" }).waitFor();
  await page.getByText("No jobs yet").waitFor();
  await screenshot(page, "dashboard-signed-in");

  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(`${base}/login?signed_out=1`);
  await page.getByText("You have signed out.").waitFor();
  await page.goto(`${base}/`);
  await page.waitForURL(`${base}/login`);

  assert.deepEqual(problems(EXPECTED), [], "no console errors besides the expected 401s");
});
