// Jobs in a real browser against the real binary (the primary runs them itself): submit one
// through the form and watch its output, colours included, arrive live on its page until it
// succeeds; cancel a long one from its page; a queued job says why it waits. Screenshots of
// the jobs list, the form and the detail page with its log.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { apiCall, cleanup, eventually, freePort, launchBrowser, logOf, newPage, primaryEnv, screenshot, startFleetdeck, tempDir } from "./harness.mjs";

let primary;
let base;
let browser;

const nav = (page, name) => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name });
const logLines = (page) => page.getByTestId("job-log").locator(".log-text").allTextContents();

before(async () => {
  const port = await freePort();
  const dir = tempDir("jobs");
  base = `http://127.0.0.1:${port}`;
  primary = await startFleetdeck({ name: "primary", cwd: dir, env: primaryEnv(port, join(dir, "data"), { NODE_MAX_JOBS: "4" }), url: base });
  browser = await launchBrowser();
});

after(cleanup);

/** A little history, so the list looks like a day of use: done, failed, and one waiting for a GPU node. */
async function addBackdrop() {
  const gpu = await apiCall(base, "POST", "/api/nodes", { name: "gpu-01", api_endpoint: "http://127.0.0.1:9", labels: ["linux", "gpu"] });
  assert.equal(gpu.status, 201);
  const jobs = [
    { name: "disk usage", command: "df -h / | tail -n 1" },
    { name: "migrate schema", command: "echo 'applying 0042_add_index'; exit 3" },
    { command: "uname -a" },
    { name: "train model", command: "python3 train.py --epochs 10", labels: ["gpu"] },
  ];
  const ids = [];
  for (const job of jobs) {
    const { status, body } = await apiCall(base, "POST", "/api/jobs", job);
    assert.equal(status, 201, JSON.stringify(body));
    ids.push(body.id);
  }
  await eventually("the backdrop jobs to finish", async () => {
    const { body } = await apiCall(base, "GET", "/api/jobs");
    return body.items.filter((j) => ["succeeded", "failed"].includes(j.status)).length === 3;
  });
  return ids;
}

test("a job submitted in the form streams its output live, in colour, and succeeds", async () => {
  const { page, problems } = await newPage(browser);
  await addBackdrop();

  await page.goto(`${base}/`);
  await page.getByTestId("live-state").filter({ hasText: "Live" }).waitFor();
  await nav(page, "Jobs").click();
  await page.getByRole("heading", { name: "Jobs" }).waitFor();
  await page.getByTestId("job-rows").getByText("migrate schema").waitFor();
  await page.getByTestId("job-rows").locator('[data-job-status="failed"]').waitFor();
  await screenshot(page, "jobs");

  // The form: a bad timeout is refused by the API and shown at its field.
  await page.getByRole("link", { name: "New job" }).click();
  await page.getByRole("heading", { name: "New job" }).waitFor();
  const command = [
    'for i in 1 2 3 4 5 6; do echo "step $i of 6"; sleep 0.5; done',
    "printf '\\033[1;32mall steps passed\\033[0m, \\033[33m2 warnings\\033[0m\\n'",
    "sleep 0.3; echo 'a warning on stderr' >&2",
  ].join("\n");
  await page.getByLabel("Command").fill(command);
  await page.getByLabel("Name", { exact: true }).fill("deploy web");
  await page.getByRole("radio", { name: "A node" }).click();
  await page.getByLabel("Node", { exact: true }).selectOption({ label: "primary (primary)" });
  await page.getByLabel("Timeout (seconds)").fill("999999");
  await page.getByRole("button", { name: "Add variable" }).click();
  await page.getByLabel("Variable 1 name").fill("RELEASE");
  await page.getByLabel("Variable 1 value").fill("2026.11.23");
  await page.getByRole("button", { name: "Run job" }).click();
  await page.getByText(/^Timeout: must be/).waitFor();
  assert.equal(await page.getByLabel("Timeout (seconds)").getAttribute("aria-invalid"), "true");
  await page.getByLabel("Timeout (seconds)").fill("120");
  assert.equal(await page.getByLabel("Timeout (seconds)").getAttribute("aria-invalid"), "false", "editing clears the error");
  await screenshot(page, "new-job");

  // Submit: the job's page, its output arriving while it runs.
  await page.evaluate(() => (window.__noReload = true));
  // Every WebSocket the page opens, so the test can cut the log's connection.
  await page.evaluate(() => {
    const Original = window.WebSocket;
    window.__sockets = [];
    window.WebSocket = class extends Original {
      constructor(...args) {
        super(...args);
        window.__sockets.push(this);
      }
    };
  });
  await page.getByRole("button", { name: "Run job" }).click();
  await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/);
  const jobId = page.url().split("/").pop();
  await page.getByTestId("job-log").getByText("step 1 of 6").waitFor({ timeout: 20_000 });
  const early = await logLines(page);
  assert.ok(!early.includes("step 6 of 6"), `the output arrives while the job runs (saw ${JSON.stringify(early)})`);
  assert.equal(await page.getByTestId("log-end").count(), 0);
  // The status arrives over the events socket, the output over the log's: either may be first.
  await page.locator('h1 [data-job-status="running"]').waitFor({ timeout: 5_000 });

  // Cut the log's connection mid-job: it reconnects from the last seq it has (below: every
  // line exactly once, in order).
  await page.getByTestId("job-log").getByText("step 2 of 6").waitFor();
  const cut = await page.evaluate(() => {
    const open = window.__sockets.filter((s) => s.url.includes("/logs/ws") && s.readyState === WebSocket.OPEN);
    open.forEach((s) => s.close());
    return open.length;
  });
  assert.equal(cut, 1);
  await eventually("the log to reconnect with after_seq", () => page.evaluate(() => window.__sockets.some((s) => /\/logs\/ws\?after_seq=\d+$/.test(s.url))));

  // It ends succeeded, without a reload, with every line once and in order.
  await page.locator('h1 [data-job-status="succeeded"]').waitFor({ timeout: 30_000 });
  await page.getByTestId("log-end").filter({ hasText: "Finished successfully (exit code 0)" }).waitFor();
  assert.deepEqual(await logLines(page), [1, 2, 3, 4, 5, 6].map((i) => `step ${i} of 6`).concat(["all steps passed, 2 warnings", "a warning on stderr"]));
  const green = page.getByTestId("job-log").locator("span.ansi-fg-10", { hasText: "all steps passed" });
  assert.equal(await green.count(), 1, "the ANSI green line is drawn in (bright) green");
  assert.ok((await green.getAttribute("class")).includes("ansi-bold"));
  assert.equal(await page.getByTestId("job-log").locator("span.ansi-fg-3", { hasText: "2 warnings" }).count(), 1);
  assert.equal(await page.getByTestId("job-log").locator('[data-stream="stderr"]').count(), 1, "stderr is marked");
  await page.getByTestId("job-exit-code").filter({ hasText: "0" }).waitFor();
  assert.equal(await page.getByTestId("job-node").textContent(), "primary");
  assert.equal(await page.getByRole("button", { name: "Cancel job" }).count(), 0, "a finished job offers no cancel");
  assert.equal(await page.title(), "Job deploy web · Fleetdeck");
  assert.equal(await page.evaluate(() => window.__noReload), true);
  await screenshot(page, "job-detail");

  // The download is the exact output.
  const href = await page.getByRole("link", { name: "Download log" }).getAttribute("href");
  assert.equal(href, `/api/jobs/${jobId}/logs/raw`);
  const raw = await (await fetch(`${base}${href}`)).text();
  // eslint-disable-next-line no-control-regex
  assert.match(raw, /step 6 of 6\n\x1b\[1;32mall steps passed/);

  // Back on the list, the job shows as succeeded (live events), and on its node's page.
  await nav(page, "Jobs").click();
  await page.locator(`[data-job-id="${jobId}"] [data-job-status="succeeded"]`).waitFor();
  await page.locator(`[data-job-id="${jobId}"]`).getByRole("link", { name: "primary" }).click();
  await page.getByTestId("node-jobs").getByText("deploy web").waitFor();
  await page.evaluate(() => document.getElementById("charts-title")?.scrollIntoView({ block: "start" }));
  await screenshot(page, "node-jobs");

  // The one refused request is the bad timeout above.
  assert.deepEqual(problems([/status of 400 \(Bad Request\)/]), [], "no other console errors");
});

test("a long job is cancelled from its page; a queued one says why it waits", async () => {
  const { page, problems } = await newPage(browser);
  const { body: job } = await apiCall(base, "POST", "/api/jobs", { name: "long backup", command: "echo started; sleep 600" });
  await page.goto(`${base}/jobs/${job.id}`);
  await page.getByTestId("job-log").getByText("started").waitFor({ timeout: 20_000 });
  await page.locator('h1 [data-job-status="running"]').waitFor();
  await page.getByRole("button", { name: "Cancel job" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Cancel job" }).click();
  await page.locator('h1 [data-job-status="cancelled"]').waitFor({ timeout: 30_000 });
  await page.getByTestId("log-end").filter({ hasText: "cancelled" }).waitFor();
  await page.getByRole("button", { name: "Cancel job" }).waitFor({ state: "detached" });
  const { body: after } = await apiCall(base, "GET", `/api/jobs/${job.id}`);
  assert.equal(after.status, "cancelled");
  assert.equal(after.cancel_requested, true);

  // The GPU job waits: its page says why.
  const { body: list } = await apiCall(base, "GET", "/api/jobs?status=queued");
  const queued = list.items.find((j) => j.name === "train model");
  assert.ok(queued, "the GPU job is queued");
  await page.goto(`${base}/jobs/${queued.id}`);
  await page.getByTestId("queue-reason").filter({ hasText: /gpu/ }).waitFor();
  assert.ok(!logOf(primary).includes("panicked"));
  assert.deepEqual(problems(), []);
});

test("a log of 200,000 lines stays smooth: only the visible lines are drawn", async () => {
  const { page, problems } = await newPage(browser);
  const { body: job } = await apiCall(base, "POST", "/api/jobs", { name: "chatty", command: "seq 1 200000" });
  const started = Date.now();
  await page.goto(`${base}/jobs/${job.id}`);
  await page.getByTestId("log-end").waitFor({ timeout: 60_000 });
  const took = Date.now() - started;
  await page.getByTestId("log-count").filter({ hasText: "200,000 lines" }).waitFor();
  // Following: the last line is in view; the DOM holds a screenful, not 200,000 rows.
  await page.getByTestId("job-log").locator(".log-text").getByText("200000", { exact: true }).waitFor();
  const rows = await page.getByTestId("job-log").locator(".log-line").count();
  assert.ok(rows < 120, `${rows} rows in the DOM`);
  await page
    .getByTestId("log-dropped")
    .filter({ hasText: /first 1[45]\d,\d{3} lines/ })
    .waitFor();
  // Scrolling up stops following; the page answers at once.
  await page.getByTestId("job-log").hover();
  await page.mouse.wheel(0, -2000);
  await page.getByRole("button", { name: "Follow", exact: true }).waitFor();
  const frame = await page.evaluate(
    () =>
      new Promise((r) => {
        const t = performance.now();
        requestAnimationFrame(() => r(performance.now() - t));
      }),
  );
  assert.ok(frame < 200, `a frame took ${frame} ms`);
  console.log(`200,000 lines followed to the end in ${took} ms; ${rows} rows drawn`);
  assert.deepEqual(problems(), []);
});

test("phone-sized and dark: a job's page adapts", async () => {
  const { page, problems } = await newPage(browser, { viewport: { width: 390, height: 844 }, colorScheme: "dark" });
  const { body: list } = await apiCall(base, "GET", "/api/jobs?q=deploy");
  await page.goto(`${base}/jobs/${list.items[0].id}`);
  await page.getByTestId("log-end").waitFor();
  await screenshot(page, "job-detail-phone-dark", { fullPage: true });
  await page.getByRole("button", { name: "Menu" }).click();
  await nav(page, "Jobs").click();
  await page.getByTestId("job-rows").getByText("deploy web").waitFor();
  await screenshot(page, "jobs-phone-dark");
  assert.deepEqual(problems(), []);
});
