// The API reference page in a real browser against the real binary: reached from the menu,
// it renders the primary's own OpenAPI document (every operation listed, one opened with its
// parameters and answers), loads nothing from anywhere but the primary, and breaks no
// Content-Security-Policy rule. A screenshot for the docs.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { cleanup, freePort, launchBrowser, newPage, primaryEnv, screenshot, startFleetdeck, tempDir } from "./harness.mjs";

let base;
let browser;

before(async () => {
  const port = await freePort();
  const dir = tempDir("api-reference");
  base = `http://127.0.0.1:${port}`;
  await startFleetdeck({ name: "primary", cwd: dir, env: primaryEnv(port, join(dir, "data")), url: base });
  browser = await launchBrowser();
});

after(cleanup);

test("the API page shows every operation of the primary's document and loads nothing from elsewhere", async () => {
  const { page, problems } = await newPage(browser);
  const elsewhere = [];
  page.on("request", (r) => {
    const url = r.url();
    if (!url.startsWith(base) && !url.startsWith("data:") && !url.startsWith("blob:")) elsewhere.push(url);
  });
  await page.goto(`${base}/`);
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "API" }).click();
  await page.getByRole("heading", { name: "API reference" }).waitFor();
  await page.locator(".opblock-summary-path", { hasText: "/api/nodes/{id}/rotate-key" }).first().waitFor();

  const document = await (await fetch(`${base}/api/openapi.json`)).json();
  const operations = Object.values(document.paths).reduce((n, item) => n + Object.keys(item).length, 0);
  assert.equal(await page.locator(".opblock").count(), operations, "one block per operation");

  // Opening one shows its parameters and its answers, the error body among them.
  await page.locator(".opblock-summary-path", { hasText: "/api/jobs/{id}/logs" }).first().click();
  await page.getByText("after_seq").first().waitFor();
  await page.getByRole("cell", { name: "default" }).first().waitFor();
  await screenshot(page, "api-reference");

  assert.deepEqual(elsewhere, [], "nothing may be loaded from another origin");
  assert.deepEqual(problems(), [], "no console errors (CSP violations show there)");
});
