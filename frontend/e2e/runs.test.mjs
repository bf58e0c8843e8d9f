// Fleet-wide runs in a real browser over three real secondaries, one of which fails the
// command: started from the new-job form with "Run on all matching nodes", the run page
// shows the node matrix, each node's exit code, the failed filter and the output grouped;
// "Re-run failed nodes" starts a run on that node alone. Then a secondary killed while its
// job runs: the job's page says its node is offline within the health-check window.
// Screenshots of the run page, its grouped output and the form.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { apiCall, cleanup, eventually, freePort, launchBrowser, newPage, primaryEnv, screenshot, startFleetdeck, tempDir } from "./harness.mjs";

let base;
let browser;
const secondaries = {};

/** A secondary added over the API with label `web`, started from its .env; `extra` goes into its environment. */
async function secondary(name, extra = {}) {
  const port = await freePort();
  const { status, body } = await apiCall(base, "POST", "/api/nodes", { name, api_endpoint: `http://127.0.0.1:${port}`, labels: ["web"] });
  assert.equal(status, 201, JSON.stringify(body));
  const dir = tempDir(name);
  writeFileSync(join(dir, ".env"), body.env);
  const proc = await startFleetdeck({
    name,
    cwd: dir,
    env: { ENV_FILE: join(dir, ".env"), HEARTBEAT_INTERVAL: "1s", ...extra },
    url: `http://127.0.0.1:${port}`,
  });
  return { id: body.node.id, proc };
}

before(async () => {
  const port = await freePort();
  const dir = tempDir("runs");
  base = `http://127.0.0.1:${port}`;
  await startFleetdeck({ name: "primary", cwd: dir, env: primaryEnv(port, join(dir, "data")), url: base });
  for (const [name, extra] of [
    ["web-01", {}],
    ["web-02", { ROLE: "bad" }],
    ["web-03", {}],
  ]) {
    secondaries[name] = await secondary(name, extra);
  }
  await eventually("the three secondaries online", async () => {
    const { body } = await apiCall(base, "GET", "/api/nodes?status=online");
    return body.items.length === 4;
  });
  browser = await launchBrowser();
});

after(cleanup);

const COMMAND = 'echo "release 2026.12 installed"\ntest "${ROLE:-}" != bad || { echo "disk full" >&2; exit 2; }';

test("a run over three secondaries shows each node's result, the failed one, and grouped output", async () => {
  const { page, problems } = await newPage(browser);
  await page.goto(`${base}/jobs/new`);
  await page.getByRole("heading", { name: "New job" }).waitFor();
  await page.getByLabel("Command").fill(COMMAND);
  await page.getByLabel("Name", { exact: true }).fill("install release");
  await page.getByRole("radio", { name: "Nodes with labels" }).click();
  await page.getByLabel("Labels").fill("web");
  await page.getByRole("checkbox", { name: "Run on all matching nodes" }).check();
  await page.getByRole("heading", { name: "New fleet-wide run" }).waitFor();
  await screenshot(page, "run-form");
  await page.getByRole("button", { name: "Run on all matching nodes" }).click();

  // The run page: every node's status, exit code and the totals, as they finish.
  await page.getByRole("heading", { name: /install release/ }).waitFor();
  await page.getByTestId("run-summary").filter({ hasText: "3 nodes: 2 succeeded, 1 failed" }).waitFor({ timeout: 20_000 });
  const rows = page.getByTestId("run-rows");
  assert.equal(await rows.locator('[data-node-name="web-02"] [data-testid="exit-code"]').textContent(), "2");
  assert.equal(await rows.locator('[data-node-name="web-01"] [data-testid="exit-code"]').textContent(), "0");
  assert.equal(await page.getByTestId("run-matrix").locator(".run-cell-failed").count(), 1);
  assert.equal(await page.getByTestId("run-matrix").locator(".run-cell-succeeded").count(), 2);
  await screenshot(page, "run");

  // Only the failed one.
  await page.getByRole("button", { name: /^Failed/ }).click();
  await eventually("only the failed node listed", async () => (await rows.locator("[data-node-name]").count()) === 1);
  assert.equal(await rows.locator("[data-node-name]").getAttribute("data-node-name"), "web-02");

  // Grouped output: the two that printed the same, the one that printed more.
  await page.getByRole("button", { name: "Output", exact: true }).click();
  await page.getByText("2 nodes printed the same 1 line").waitFor();
  await page.getByText("1 node printed 2 lines").waitFor();
  await screenshot(page, "run-output");

  // A row's job is a normal job, linked back to its run.
  await page.getByRole("button", { name: "Nodes", exact: true }).click();
  await page.getByRole("button", { name: /^All/ }).click();
  await page.getByRole("link", { name: "web-02: failed, open its job" }).click();
  await page.getByTestId("job-exit-code").filter({ hasText: "2" }).waitFor();
  await page.getByRole("link", { name: "Fleet-wide run" }).click();

  // Re-run only the failed node: a new run with that node alone.
  await page.getByRole("button", { name: "Re-run failed nodes" }).click();
  await page.getByTestId("run-summary").filter({ hasText: "1 node: 1 failed" }).waitFor({ timeout: 20_000 });
  assert.equal(await page.getByTestId("run-rows").locator("[data-node-name]").getAttribute("data-node-name"), "web-02");
  assert.deepEqual(problems(), []);
});

test("a node killed while its job runs shows on the job's page as offline within the health-check window", async () => {
  const { page, problems } = await newPage(browser);
  const { status, body: job } = await apiCall(base, "POST", "/api/jobs", { command: "echo started; sleep 300", node_id: secondaries["web-03"].id });
  assert.equal(status, 201);
  await page.goto(`${base}/jobs/${job.id}`);
  await page.locator('h1 [data-job-status="running"]').waitFor({ timeout: 20_000 });
  secondaries["web-03"].proc.child.kill("SIGKILL");
  // Probed every second, offline after a few failed checks: well within 20 s.
  await page.getByTestId("node-down").filter({ hasText: "Its node web-03 is offline" }).waitFor({ timeout: 20_000 });
  // Reconnect attempts to the dead node's log are expected noise; nothing else is.
  assert.deepEqual(problems([/WebSocket|ERR_CONNECTION_REFUSED/]), []);
});

test("every form control on every page has a label", async () => {
  const { page } = await newPage(browser);
  const { body: jobs } = await apiCall(base, "GET", "/api/jobs?limit=1");
  const { body: runs } = await apiCall(base, "GET", "/api/runs?limit=1");
  const pages = [
    "/",
    "/nodes",
    "/nodes/new",
    `/nodes/${secondaries["web-01"].id}`,
    "/jobs",
    "/jobs/new",
    `/jobs/${jobs.items[0].id}`,
    "/runs",
    `/runs/${runs.items[0].id}`,
    "/notifications",
    "/notifications/channels/new",
    "/notifications/rules/new",
    "/audit",
    "/settings",
  ];
  const unlabelled = {};
  for (const path of pages) {
    await page.goto(`${base}${path}`);
    await page.getByRole("main").getByRole("heading").first().waitFor();
    const found = await page.evaluate(() =>
      [...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
        .filter((el) => {
          if (el.getAttribute("aria-label") || el.getAttribute("aria-labelledby") || el.closest("label")) return false;
          return !(el.id && document.querySelector(`label[for="${CSS.escape(el.id)}"]`));
        })
        .map((el) => el.outerHTML.slice(0, 160)),
    );
    if (found.length) unlabelled[path] = found;
  }
  assert.deepEqual(unlabelled, {});
});
