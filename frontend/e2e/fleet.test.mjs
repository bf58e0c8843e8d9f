// A day with the fleet, in a real browser against the real binary: add a node through the
// form, start a real secondary from the .env the UI shows and watch it come online without
// a reload; stop it, "Check now" and see the failure; rotate its key; manage API tokens;
// remove the node; lose and regain the live connection. Screenshots of every page.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import {
  apiCall,
  cleanup,
  eventually,
  freePort,
  launchBrowser,
  logOf,
  newPage,
  onCleanup,
  primaryEnv,
  screenshot,
  startFleetdeck,
  stopProcess,
  tempDir,
} from "./harness.mjs";

let primary;
let base;

const nav = (page, name) => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name });
let browser;

before(async () => {
  const port = await freePort();
  const dir = tempDir("primary");
  base = `http://127.0.0.1:${port}`;
  primary = await startFleetdeck({ name: "primary", cwd: dir, env: primaryEnv(port, join(dir, "data")), url: base });
  browser = await launchBrowser();
});

after(cleanup);

/**
 * A few more nodes so the pages look like a fleet. Most of them heartbeat from here with
 * made-up stats (the harness stands in for their agents; nothing answers their probes, so
 * the heartbeats keep them online), two never do and stay pending.
 */
async function addBackdrop() {
  const fleet = [
    ["db-01", ["linux", "amd64", "postgres"], { cpu: 38, mem: 0.71, disk: 0.62 }],
    ["db-02", ["linux", "amd64", "postgres"], { cpu: 96, mem: 0.83, disk: 0.64 }],
    ["gpu-01", ["linux", "amd64", "gpu"], { cpu: 71, mem: 0.58, disk: 0.93 }],
    ["edge-fra-1", ["linux", "arm64", "edge"], { cpu: 12, mem: 0.34, disk: 0.21 }],
    ["edge-iad-1", ["linux", "arm64", "edge"], null],
    ["build-01", ["linux", "amd64", "ci"], null],
  ];
  const alive = [];
  for (const [i, [name, labels, load]] of fleet.entries()) {
    const { status, body } = await apiCall(base, "POST", "/api/nodes", { name, api_endpoint: `http://127.0.0.1:${20000 + i}`, labels });
    assert.equal(status, 201);
    if (load) alive.push({ id: body.node.id, key: body.api_key, name, labels, load });
  }
  const GiB = 1024 ** 3;
  const beat = () =>
    Promise.all(
      alive.map(({ id, key, name, labels, load }) =>
        fetch(`${base}/api/internal/nodes/${id}/heartbeat`, {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-Node-ID": id, "X-Node-API-Key": key },
          body: JSON.stringify({
            version: "0.1.0",
            // One of them dials out (an outbound node behind NAT), the others are reached.
            connect: name === "edge-fra-1" ? "outbound" : "inbound",
            labels,
            max_jobs: 4,
            running_jobs: [],
            uptime_secs: 864_000,
            stats: {
              hostname: name,
              os: "Linux 12 Debian GNU/Linux",
              kernel: "6.1.0-27-amd64",
              version: "0.1.0",
              uptime_secs: 864_000,
              cpu_count: 8,
              cpu_usage_percent: load.cpu + Math.random() * 3,
              load_average: { one: (load.cpu / 100) * 8, five: (load.cpu / 100) * 7, fifteen: (load.cpu / 100) * 6 },
              memory: { total_bytes: 32 * GiB, used_bytes: Math.round(load.mem * 32 * GiB), available_bytes: Math.round((1 - load.mem) * 32 * GiB) },
              disks: [{ path: "/var/lib/fleetdeck", mount_point: "/", total_bytes: 500 * GiB, used_bytes: Math.round(load.disk * 500 * GiB) }],
              running_jobs: [],
              labels,
              max_jobs: 4,
              collected_at: new Date().toISOString(),
            },
          }),
        }),
      ),
    );
  await beat();
  const timer = setInterval(() => void beat().catch(() => {}), 1000);
  onCleanup(() => clearInterval(timer));
  return Object.fromEntries(alive.map((n) => [n.name, n.id]));
}

/**
 * A day of one-a-minute stats samples for `nodeId`, written straight into the primary's
 * SQLite database: what a day of heartbeats would have left, so the node page has charts
 * to draw (Python's sqlite3; skipped where python3 is missing).
 */
function seedStatsHistory(nodeId) {
  const db = join(primary.cwd, "data", "fleetdeck.db");
  const script = `
import math, random, sqlite3, sys, time
db, node = sys.argv[1], sys.argv[2]
now = int(time.time() * 1000)
gib = 1024 ** 3
rows = []
for i in range(24 * 60, 0, -1):
    t = now - i * 60_000
    day = math.sin((i / (24 * 60)) * 2 * math.pi)
    cpu = max(2.0, min(98.0, 35 + 22 * day + random.gauss(0, 6) + (30 if 300 < i < 340 else 0)))
    rows.append((node, t, cpu, cpu / 100 * 8, int((0.62 + 0.08 * day) * 32 * gib), 32 * gib, int((0.55 + 0.07 * (1 - i / 1440)) * 500 * gib), 500 * gib))
conn = sqlite3.connect(db, timeout=10)
conn.executemany("INSERT OR IGNORE INTO node_stats (node_id, at, cpu_percent, load_one, memory_used, memory_total, disk_used, disk_total) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
conn.commit()
`;
  try {
    execFileSync("python3", ["-c", script, db, nodeId]);
    return true;
  } catch (e) {
    console.warn(`no stats history seeded (${e.message.split("\n")[0]})`);
    return false;
  }
}

test("a node added in the UI comes online live, fails its check when stopped, gets a new key and is removed", async () => {
  const { page, problems } = await newPage(browser);
  const backdrop = await addBackdrop();
  const seeded = seedStatsHistory(backdrop["db-01"]);

  await page.goto(`${base}/`);
  await page.getByRole("heading", { name: "Dashboard" }).waitFor();
  await page.getByTestId("live-state").filter({ hasText: "Live" }).waitFor();

  // The first way offered: one command, with a single-use join token.
  await page.getByRole("link", { name: "Add node" }).click();
  await page.getByLabel("Labels").fill("edge");
  await page.getByRole("button", { name: "Create join command" }).click();
  const command = (await page.getByTestId("join-command").textContent()).trim();
  assert.match(command, new RegExp(`^curl -fsSL ${base.replace(/[.]/g, "\\.")}/install\\.sh \\| sh -s -- --join fdj_[A-Za-z0-9_-]{43}$`));
  await page
    .getByTestId("join-token-rows")
    .getByText(/open, expires/)
    .waitFor();
  await screenshot(page, "add-node-command");

  // The .env way: add a node through the form.
  const port = await freePort();
  await page.getByRole("button", { name: "A .env file" }).click();
  await page.getByLabel("Name").fill("web-01");
  await page.getByLabel("Endpoint").fill(`http://127.0.0.1:${port}`);
  await page.getByLabel("Labels").fill("linux, amd64, web");
  await screenshot(page, "add-node-form");
  await page.getByRole("button", { name: "Add node" }).click();
  const env = await page.getByTestId("env-block").textContent();
  assert.match(env, /^NODE_IS_PRIMARY=false$/m);
  assert.match(env, /^NODE_API_KEY=\S{32,}$/m);
  const firstKey = /^NODE_API_KEY=(\S+)$/m.exec(env)[1];
  await screenshot(page, "add-node-env");

  // Paste it into a secondary's .env and start it there.
  const secondaryDir = tempDir("secondary");
  writeFileSync(join(secondaryDir, ".env"), env);
  await page.getByRole("link", { name: "Watch web-01" }).click();
  await page.getByRole("heading", { name: /web-01/ }).waitFor();
  assert.equal(await page.locator("h1 [data-status]").getAttribute("data-status"), "pending");
  await page.evaluate(() => (window.__noReload = true));
  const secondary = await startFleetdeck({
    name: "secondary",
    cwd: secondaryDir,
    env: { ENV_FILE: join(secondaryDir, ".env"), HEARTBEAT_INTERVAL: "1s" },
    url: `http://127.0.0.1:${port}`,
  });

  // It turns online on the open page, without a reload.
  await page.locator('h1 [data-status="online"]').waitFor({ timeout: 20_000 });
  assert.equal(await page.evaluate(() => window.__noReload), true, "the page was not reloaded");
  await page
    .getByTestId("health-history")
    .getByText(/heartbeat received|health check succeeded/)
    .first()
    .waitFor();
  await screenshot(page, "node-online");

  // Stop it, check now: the failure is shown in words.
  await stopProcess(secondary);
  await page.getByRole("button", { name: "Check now" }).click();
  const result = page.getByTestId("check-result");
  await result.waitFor();
  assert.match(await result.textContent(), /^Check failed: .*(connect|refused)/i);
  await screenshot(page, "node-check-failed");

  // Rotate the key: a new one, shown once, different from the first.
  await page.getByRole("button", { name: "Rotate key" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Rotate key" }).click();
  const newKey = (await page.getByTestId("new-key").textContent()).trim();
  assert.ok(newKey.length >= 32);
  assert.notEqual(newKey, firstKey);
  await screenshot(page, "node-rotate-key");
  await page.getByRole("button", { name: "Done" }).click();

  // The other pages, as they look with this fleet.
  await nav(page, "Nodes").click();
  await page.locator('[data-node-name="web-01"]').waitFor();
  await page.locator('[data-node-name="edge-fra-1"]').getByText("outbound").waitFor();
  await screenshot(page, "nodes");
  if (seeded) {
    await page.locator('[data-node-name="db-01"]').getByRole("link", { name: "db-01" }).click();
    await page.getByRole("figure", { name: /^CPU: now/ }).waitFor();
    await page.locator(".chart svg").first().waitFor();
    await screenshot(page, "node-detail");
    await nav(page, "Nodes").click();
  }
  await nav(page, "Dashboard").click();
  await page.getByTestId("recent-changes").waitFor();
  await page.getByText("No jobs yet").waitFor();
  await screenshot(page, "dashboard");
  await nav(page, "Audit log").click();
  await page.getByTestId("audit-rows").getByText("Rotated node key").first().waitFor();
  await screenshot(page, "audit-log");

  // API tokens: create one (its secret shown once), then revoke it.
  await nav(page, "Settings").click();
  await page.getByLabel("Name").fill("deploy script");
  await page.getByRole("button", { name: "Create token" }).click();
  const secret = (await page.getByTestId("token-secret").textContent()).trim();
  assert.match(secret, /^fdt_/);
  const listed = await apiCall(base, "GET", "/api/tokens");
  assert.equal(listed.body.items.length, 1);
  await screenshot(page, "settings-tokens");
  await page.getByRole("button", { name: "I have copied it" }).click();
  await page.getByTestId("token-rows").getByRole("button", { name: "Revoke" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Revoke" }).click();
  await page.getByTestId("token-rows").getByText("revoked").waitFor();

  // Remove the node, after confirming.
  await nav(page, "Nodes").click();
  await page.locator('[data-node-name="web-01"]').getByRole("link", { name: "web-01" }).click();
  await page.getByRole("button", { name: "Remove" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Remove web-01" }).click();
  await page.waitForURL(`${base}/nodes`);
  await page.locator('[data-node-name="db-01"]').waitFor();
  assert.equal(await page.locator('[data-node-name="web-01"]').count(), 0);
  const nodes = await apiCall(base, "GET", "/api/nodes");
  assert.ok(!nodes.body.items.some((n) => n.name === "web-01"));

  assert.deepEqual(problems(), [], "no console errors");
});

test("phone-sized and dark: the pages adapt", async () => {
  const { page, problems } = await newPage(browser, { viewport: { width: 390, height: 844 }, colorScheme: "dark" });
  await page.goto(`${base}/`);
  await page.getByTestId("count-online").waitFor();
  await page.getByTestId("recent-changes").waitFor();
  await page.getByText("No jobs yet").waitFor();
  await screenshot(page, "dashboard-phone-dark");
  await page.getByRole("button", { name: "Menu" }).click();
  await nav(page, "Nodes").click();
  await page.locator('[data-node-name="db-01"]').waitFor();
  await screenshot(page, "nodes-phone-dark");
  // From the keyboard: the first stop skips to the content, the next opens the menu.
  await page.reload();
  await page.locator('[data-node-name="db-01"]').waitFor();
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.textContent?.trim()), "Skip to content");
  await page.keyboard.press("Tab");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute("aria-controls")), "main-nav");
  assert.deepEqual(problems(), []);
});

test("when the primary goes away the UI says it is reconnecting, then catches up", async () => {
  const { page } = await newPage(browser);
  await page.goto(`${base}/nodes`);
  await page.getByTestId("live-state").filter({ hasText: "Live" }).waitFor();

  const { cwd, url } = primary;
  await stopProcess(primary);
  await page.getByRole("status").filter({ hasText: "reconnecting" }).waitFor({ timeout: 20_000 });
  await screenshot(page, "reconnecting");

  // Back on the same port and data directory; a node added meanwhile shows after resync.
  const port = Number(new URL(url).port);
  primary = await startFleetdeck({ name: "primary", cwd, env: primaryEnv(port, join(cwd, "data")), url });
  await apiCall(base, "POST", "/api/nodes", { name: "added-while-away", api_endpoint: "http://127.0.0.1:9" });
  await page.getByTestId("live-state").filter({ hasText: "Live" }).waitFor({ timeout: 30_000 });
  await eventually("the banner to go", async () => (await page.getByRole("status").filter({ hasText: "reconnecting" }).count()) === 0);
  await page.locator('[data-node-name="added-while-away"]').waitFor({ timeout: 20_000 });
  assert.ok(!logOf(primary).includes("panicked"));
});
