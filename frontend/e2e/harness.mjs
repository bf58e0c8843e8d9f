// The end-to-end harness: real `fleetdeck` processes on 127.0.0.1, Debian's Chromium driven
// by playwright-core (never a downloaded browser), a local GitHub stand-in, screenshots.
// Everything it starts is stopped by `cleanup()`, and every wait has a deadline.
import { spawn } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { copyFileSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, "../..");
export const outputDir = resolve(here, "../test-results");
const screenshotDir = join(outputDir, "screenshots");
const docsScreenshots = join(repoRoot, "docs/screenshots");

export const BINARY = resolve(process.env.FLEETDECK_BIN ?? join(repoRoot, "target/debug/fleetdeck"));
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

const cleanups = [];

/** Registers `fn` to run at cleanup (last registered, first run). */
export function onCleanup(fn) {
  cleanups.push(fn);
}

export async function cleanup() {
  while (cleanups.length) {
    const fn = cleanups.pop();
    try {
      await fn();
    } catch (e) {
      console.error("cleanup:", e);
    }
  }
}

export function tempDir(prefix) {
  return mkdtempSync(join(tmpdir(), `fleetdeck-e2e-${prefix}-`));
}

/** A TCP port free right now on 127.0.0.1. */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createNetServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value; fails after `timeout` ms. */
export async function eventually(what, fn, timeout = 20_000, every = 100) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (e) {
      last = e;
    }
    await sleep(every);
  }
  throw new Error(`timed out after ${timeout} ms waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

/**
 * Starts `fleetdeck serve` with `env` in `cwd`, logging to `cwd/fleetdeck.log`; resolves
 * once it answers /api/health at `url`.
 */
export async function startFleetdeck({ name, cwd, env, url }) {
  if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: build it with cargo build -p fleetdeck`);
  const log = createWriteStream(join(cwd, "fleetdeck.log"), { flags: "a" });
  const child = spawn(BINARY, ["serve"], {
    cwd,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_JSON: "false", RUST_LOG: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  const proc = { name, child, cwd, url, exited: false };
  child.once("exit", () => (proc.exited = true));
  onCleanup(() => stopProcess(proc));
  await eventually(
    `${name} to answer at ${url}`,
    async () => {
      if (proc.exited) throw new Error(`${name} exited; see ${join(cwd, "fleetdeck.log")}`);
      const r = await fetch(`${url}/api/health`);
      return r.ok;
    },
    30_000,
  );
  return proc;
}

/** SIGTERM, then SIGKILL if it has not exited within `grace` ms. */
export async function stopProcess(proc, grace = 10_000) {
  if (proc.exited) return;
  const exited = new Promise((r) => proc.child.once("exit", r));
  proc.child.kill("SIGTERM");
  const timer = setTimeout(() => proc.child.kill("SIGKILL"), grace);
  await exited;
  clearTimeout(timer);
}

export function logOf(proc) {
  try {
    return readFileSync(join(proc.cwd, "fleetdeck.log"), "utf8");
  } catch {
    return "";
  }
}

/** Settings that make a primary quick to observe in tests. */
export function primaryEnv(port, dataDir, extra = {}) {
  return {
    SERVER_ADDRESS: `127.0.0.1:${port}`,
    NODE_NAME: "primary",
    DATA_DIR: dataDir,
    HEALTH_CHECK_INTERVAL: "1s",
    HEALTH_CHECK_TIMEOUT: "1s",
    ...extra,
  };
}

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-sync",
  "--disable-quic",
];

export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); scripts/test.sh does`);
  }
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
  onCleanup(() => browser.close());
  return browser;
}

/**
 * A page that records console errors and uncaught exceptions; `problems()` returns them,
 * less those an `allow` pattern matches (the browser logs every refused request, e.g. the
 * 401 of "who am I?" on the sign-in page, as a console error).
 */
export async function newPage(browser, { viewport = { width: 1440, height: 900 }, colorScheme = "light" } = {}) {
  const context = await browser.newContext({ viewport, colorScheme, permissions: ["clipboard-read", "clipboard-write"] });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const seen = [];
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") seen.push(`${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => seen.push(`pageerror: ${e.message}`));
  return {
    page,
    context,
    problems: (allow = []) => seen.filter((p) => !allow.some((re) => re.test(p))),
    clear: () => (seen.length = 0),
  };
}

/** Saves a screenshot into the test output; with E2E_UPDATE_SCREENSHOTS=1 also into docs/screenshots. */
export async function screenshot(page, name, { fullPage = false } = {}) {
  mkdirSync(screenshotDir, { recursive: true });
  const file = join(screenshotDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage, animations: "disabled" });
  if (process.env.E2E_UPDATE_SCREENSHOTS === "1") {
    mkdirSync(docsScreenshots, { recursive: true });
    copyFileSync(file, join(docsScreenshots, `${name}.png`));
  }
  return file;
}

/** JSON over the API as a script would call it (auth off). */
export async function apiCall(base, method, path, body) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { "Content-Type": "application/json", "X-Requested-With": "fleetdeck" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/**
 * GitHub as an OAuth app sees it: /login/oauth/authorize (signs in `nextUser` and sends the
 * browser back with a code), /login/oauth/access_token (checks the PKCE verifier, issues
 * a token) and /user. The same protocol as backend/tests/api/stand_ins.rs.
 */
export async function githubStandIn() {
  const state = { nextUser: "octocat", codes: new Map(), tokens: new Map() };
  const server = createServer((req, res) => {
    const url = new URL(req.url, "http://stand-in");
    const json = (status, body) => {
      res.writeHead(status, { "Content-Type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (req.method === "GET" && url.pathname === "/login/oauth/authorize") {
      const redirect = url.searchParams.get("redirect_uri");
      const challenge = url.searchParams.get("code_challenge");
      if (!redirect || !challenge || url.searchParams.get("code_challenge_method") !== "S256") return json(400, { error: "bad_request" });
      const code = randomUUID();
      state.codes.set(code, { challenge, login: state.nextUser, used: false });
      const to = new URL(redirect);
      to.searchParams.set("code", code);
      to.searchParams.set("state", url.searchParams.get("state") ?? "");
      res.writeHead(302, { Location: to.toString() });
      return res.end();
    }
    if (req.method === "POST" && url.pathname === "/login/oauth/access_token") {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        const form = new URLSearchParams(body);
        const entry = state.codes.get(form.get("code") ?? "");
        const verifier = form.get("code_verifier") ?? "";
        const challenge = createHash("sha256").update(verifier).digest("base64url");
        if (!entry || entry.used || entry.challenge !== challenge) return json(400, { error: "bad_verification_code" });
        entry.used = true;
        const token = `gho_${randomUUID().replaceAll("-", "")}`;
        state.tokens.set(token, entry.login);
        json(200, { access_token: token, token_type: "bearer", scope: "read:user" });
      });
      return;
    }
    if (req.method === "GET" && url.pathname === "/user") {
      const token = (req.headers.authorization ?? "").replace(/^Bearer /, "");
      const login = state.tokens.get(token);
      if (!login) return json(401, { message: "Bad credentials" });
      return json(200, { login, name: `${login} the tester`, avatar_url: null });
    }
    json(404, { message: "Not Found" });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${server.address().port}`;
  onCleanup(() => new Promise((r) => server.close(r)));
  return { url, state };
}
