// First render of the nodes page with 10,000 nodes (issue 4: under 1 s on this machine).
//
//   node e2e/bench/nodes-page.mjs            (npm run bench:nodes)
//
// Starts a primary (target/debug/fleetdeck; FLEETDECK_BIN=target/release/fleetdeck for the
// release build), adds 10,000 nodes through the API, then opens /nodes in Debian's Chromium
// several times and reports, from navigation start: the first rows on screen, and every
// node loaded (ten pages of 1,000 behind the first). Everything runs on 127.0.0.1 and stops
// by itself.
import { join } from "node:path";

import { apiCall, BINARY, cleanup, freePort, launchBrowser, newPage, primaryEnv, startFleetdeck, tempDir } from "../harness.mjs";

const NODES = Number(process.env.BENCH_NODES ?? 10_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

try {
  const port = await freePort();
  const dir = tempDir("bench");
  const base = `http://127.0.0.1:${port}`;
  // Health checks would probe 10,000 closed ports meanwhile: keep them out of the measurement.
  await startFleetdeck({ name: "primary", cwd: dir, url: base, env: primaryEnv(port, join(dir, "data"), { HEALTH_CHECK_INTERVAL: "1h" }) });

  const started = Date.now();
  let next = 0;
  const labels = ["linux", "amd64", "arm64", "gpu", "edge", "db", "web", "ci"];
  const worker = async () => {
    while (next < NODES) {
      const i = next++;
      const body = {
        name: `node-${String(i).padStart(5, "0")}`,
        api_endpoint: `http://10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:8080`,
        labels: [labels[0], labels[1 + (i % 2)], labels[3 + (i % 5)]],
      };
      const { status } = await apiCall(base, "POST", "/api/nodes", body);
      if (status !== 201) throw new Error(`adding node ${i}: ${status}`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  const addSeconds = (Date.now() - started) / 1000;

  const browser = await launchBrowser();
  const firstRows = [];
  const allLoaded = [];
  for (let run = 0; run < RUNS; run++) {
    const { page } = await newPage(browser);
    await page.addInitScript((total) => {
      const marks = (window.__marks = {});
      new MutationObserver(() => {
        if (!marks.firstRow && document.querySelector("[data-node-name]")) marks.firstRow = performance.now();
        const countText = document.querySelector('[data-testid="node-count"]')?.textContent ?? "";
        if (!marks.all && countText.startsWith(`${total.toLocaleString("en")} nodes ·`)) marks.all = performance.now();
      }).observe(document, { childList: true, subtree: true, characterData: true });
    }, NODES + 1);
    await page.goto(`${base}/nodes`);
    await page.waitForFunction(() => window.__marks.firstRow && window.__marks.all, null, { timeout: 60_000 });
    const marks = await page.evaluate(() => window.__marks);
    firstRows.push(marks.firstRow);
    allLoaded.push(marks.all);
    await page.context().close();
  }
  const fmt = (xs) => xs.map((x) => Math.round(x)).join(", ");
  console.log(`binary: ${BINARY}`);
  console.log(`nodes: ${NODES + 1} (added through the API in ${addSeconds.toFixed(1)} s, 8 at a time)`);
  console.log(`first rows on screen: median ${Math.round(median(firstRows))} ms (runs: ${fmt(firstRows)})`);
  console.log(`all ${NODES + 1} nodes loaded: median ${Math.round(median(allLoaded))} ms (runs: ${fmt(allLoaded)})`);
} finally {
  await cleanup();
}
