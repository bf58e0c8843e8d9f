// Alerts in a real browser against the real binary: add a webhook channel through the form
// (the server's field error shows beside the field first), press Test and see what the
// receiver answered, a stand-in webhook on 127.0.0.1 that checks the HMAC signature; add a
// rule through the form, register a node and watch its message arrive at the stand-in, in
// the deliveries list and on the node's page. Screenshots of the page and the forms.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createServer } from "node:http";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { apiCall, cleanup, eventually, freePort, launchBrowser, newPage, onCleanup, primaryEnv, screenshot, startFleetdeck, tempDir } from "./harness.mjs";

const SECRET = "e2e-signing-secret";

let base;
let browser;
let hook;

const nav = (page, name) => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name });

/** A webhook receiver that keeps every request it gets and answers 200 "ok". */
async function webhookStandIn() {
  const received = [];
  const server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      received.push({ method: req.method, path: req.url, headers: req.headers, body });
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.end("ok");
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  onCleanup(() => new Promise((r) => server.close(r)));
  return { url: `http://127.0.0.1:${server.address().port}`, received };
}

/** Whether `request` carries the signature a receiver checks: sha256=<hex HMAC-SHA256(secret, body)>. */
function signedWith(request, secret) {
  const expected = `sha256=${createHmac("sha256", secret).update(request.body).digest("hex")}`;
  return request.headers["x-fleetdeck-signature"] === expected;
}

before(async () => {
  const port = await freePort();
  const dir = tempDir("alerts");
  base = `http://127.0.0.1:${port}`;
  await startFleetdeck({ name: "primary", cwd: dir, env: primaryEnv(port, join(dir, "data")), url: base });
  browser = await launchBrowser();
  hook = await webhookStandIn();
});

after(cleanup);

test("a webhook channel added in the UI answers Test with a signed POST, and a rule's message reaches it", async () => {
  const { page, problems } = await newPage(browser);
  await page.goto(`${base}/`);
  await page.getByTestId("live-state").filter({ hasText: "Live" }).waitFor();

  // A newcomer is told where to start.
  await nav(page, "Notifications").click();
  await page.getByRole("heading", { name: "Notifications", level: 1 }).waitFor();
  await page.getByTestId("channels-empty").getByText("Add a channel, then a rule.").waitFor();
  await screenshot(page, "notifications-empty");

  // The channel form: the server's error beside the field, then a channel that works.
  await page.getByTestId("channels-empty").getByRole("link", { name: "Add a channel" }).click();
  await page.getByRole("heading", { name: "Add a channel" }).waitFor();
  await page.getByLabel("Name").fill("ops hook");
  await page.getByLabel("URL", { exact: true }).fill("ftp://127.0.0.1/hook");
  await page.getByLabel("Signing secret").fill(SECRET);
  await page.getByRole("button", { name: "Add channel" }).click();
  await page
    .locator("#channel-url-help.field-error")
    .filter({ hasText: /^URL: must be an http:\/\/ or https:\/\/ URL/ })
    .waitFor();
  assert.equal(await page.getByLabel("URL", { exact: true }).getAttribute("aria-invalid"), "true");
  await page.getByLabel("URL", { exact: true }).fill(`${hook.url}/hook`);
  await screenshot(page, "notifications-channel-form");
  await page.getByRole("button", { name: "Add channel" }).click();
  const channelRow = page.getByTestId("channel-rows").locator("tr", { hasText: "ops hook" });
  await channelRow.waitFor();
  assert.match(await channelRow.textContent(), /Webhook/);
  assert.match(await channelRow.textContent(), new RegExp(`${hook.url}/hook`));

  // Test: the receiver's answer in the UI, a signed POST at the receiver.
  await page.getByRole("button", { name: "Test ops hook" }).click();
  const answer = page.getByTestId("test-result");
  await answer.filter({ hasText: "Delivered." }).waitFor();
  assert.match(await answer.textContent(), /The receiver answered 200: ok/);
  await eventually("the test message at the stand-in", () => hook.received.length >= 1);
  const testRequest = hook.received[0];
  assert.equal(testRequest.method, "POST");
  assert.equal(testRequest.path, "/hook");
  assert.ok(testRequest.headers["x-fleetdeck-signature"], "the test message is signed");
  assert.ok(signedWith(testRequest, SECRET), "the signature is the HMAC-SHA256 of the body with the channel's secret");
  assert.equal(JSON.parse(testRequest.body).state, "test");
  await screenshot(page, "notifications-test-result");

  // A rule through the form.
  await page.getByRole("link", { name: "Add rule" }).first().click();
  await page.getByRole("heading", { name: "Add a rule" }).waitFor();
  await page.getByLabel("Name").fill("new nodes");
  await page.getByLabel("Event").selectOption("node_registered");
  await page.getByRole("checkbox", { name: /ops hook/ }).check();
  await screenshot(page, "notifications-rule-form");
  await page.getByRole("button", { name: "Add rule" }).click();
  const ruleRow = page.getByTestId("rule-rows").locator("tr", { hasText: "new nodes" });
  await ruleRow.waitFor();
  assert.match(await ruleRow.textContent(), /Node registered/);
  assert.match(await ruleRow.textContent(), /all nodes/);
  assert.match(await ruleRow.textContent(), /ops hook/);

  // A node registers: the rule's message reaches the stand-in, signed too.
  const added = await apiCall(base, "POST", "/api/nodes", { name: "web-01", api_endpoint: "http://127.0.0.1:9", labels: ["web"] });
  assert.equal(added.status, 201);
  const alert = await eventually("the rule's message at the stand-in", () => hook.received.find((r) => JSON.parse(r.body).event === "node_registered"));
  assert.ok(signedWith(alert, SECRET));
  assert.equal(JSON.parse(alert.body).node.name, "web-01");

  // The deliveries list shows it delivered, linked to the node.
  await page.reload();
  const delivered = page.getByTestId("delivery-rows").locator("tr", { hasText: "web-01" });
  await eventually(
    "the delivery to be listed as delivered",
    async () => {
      await page.reload();
      await page.getByRole("heading", { name: "Recent deliveries" }).waitFor();
      return (await delivered.locator('[data-delivery-status="delivered"]').count()) === 1;
    },
    20_000,
    1000,
  );
  assert.match(await delivered.textContent(), /new nodes/);
  await screenshot(page, "notifications", { fullPage: true });

  // The node's page lists the alert with its delivery.
  await delivered.getByRole("link", { name: "web-01" }).click();
  await page.getByRole("heading", { name: /web-01/ }).waitFor();
  const fired = page.getByTestId("node-alerts").locator("tr").first();
  await fired.waitFor();
  assert.match(await fired.textContent(), /web-01/);
  assert.match(await fired.textContent(), /1 delivered/);

  // The audit log names what was done.
  await nav(page, "Audit log").click();
  await page.getByTestId("audit-rows").getByText("Tested alert channel").waitFor();
  await page.getByTestId("audit-rows").getByText("Added alert rule").waitFor();

  // The first try's 400 is logged by the browser as a failed request.
  assert.deepEqual(problems([/status of 400 \(Bad Request\)/]), [], "no other console errors");
});
