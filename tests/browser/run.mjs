// Drives Debian's Chromium against a running Portico gateway: CORS from a
// second origin, the sign-in / app / admin pages, screenshots.
//
// Run by tests/e2e/browser.rs, which starts the gateway and the other origins.
// Environment:
//   PORTICO_URL      the gateway, e.g. http://127.0.0.1:3000
//   SECOND_ORIGIN    a page origin that the `cors` rules allow for /api/ (with credentials)
//   THIRD_ORIGIN     a page origin that no rule allows (default: SECOND_ORIGIN with
//                    127.0.0.1 and localhost swapped)
//   ADMIN_USER, ADMIN_PASSWORD   an admin account
//   SCREENSHOT_DIR   where login.png, app.png and admin.png go
//   BOOLEAN_FLAG     a boolean flag, ENABLED with value true (default: beta)
//   CUSTOM_HEADER    a request header the rules allow (default: x-request-id)
//   CHROMIUM         the browser (default: /usr/bin/chromium)
//   EDGE_PATH        a gateway path an upstream route serves cacheably (the
//                    console's purge check; default /edge/cached)
//   UPSTREAM_ROUTE   that route's name (default: edge)
//
// Prints one line per check and exits 1 at the first failure (2 on a
// setup problem or when the whole run takes longer than RUN_TIMEOUT_MS).

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

function need(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`setup: environment variable ${name} is required`);
    process.exit(2);
  }
  return value;
}

const gateway = need("PORTICO_URL").replace(/\/+$/, "");
const second = new URL(need("SECOND_ORIGIN")).origin;
const third = new URL(
  process.env.THIRD_ORIGIN ||
    (second.includes("127.0.0.1")
      ? second.replace("127.0.0.1", "localhost")
      : second.replace("localhost", "127.0.0.1")),
).origin;
const adminUser = need("ADMIN_USER");
const adminPassword = need("ADMIN_PASSWORD");
const screenshots = need("SCREENSHOT_DIR");
const flagKey = process.env.BOOLEAN_FLAG || "beta";
const customHeader = (process.env.CUSTOM_HEADER || "x-request-id").toLowerCase();
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const runTimeout = Number(process.env.RUN_TIMEOUT_MS || 180_000);

mkdirSync(screenshots, { recursive: true });

let browser;
let passed = 0;

async function finish(code) {
  if (browser) {
    await browser.close().catch(() => {});
  }
  process.exit(code);
}

const watchdog = setTimeout(() => {
  console.log(`FAIL run: took longer than ${runTimeout} ms`);
  finish(2);
}, runTimeout);

class CheckFailed extends Error {}

function expect(condition, message) {
  if (!condition) throw new CheckFailed(message);
}

async function check(name, body) {
  try {
    const note = await body();
    passed += 1;
    console.log(`ok ${passed} - ${name}${note ? ` (${note})` : ""}`);
  } catch (err) {
    console.log(`FAIL - ${name}: ${err instanceof CheckFailed ? err.message : err.stack || err}`);
    console.log(`${passed} passed, 1 failed`);
    await finish(1);
  }
}

// ---------------------------------------------------------------------------
// a. CORS, seen by the browser from other origins.

// A fetch() from inside `page` (so with the page's Origin); never throws:
// a rejected fetch comes back as {rejected, name, message}.
function probe(page, url, init = {}) {
  return page.evaluate(
    async ([url, init]) => {
      try {
        const response = await fetch(url, init);
        const body = await response.text();
        return {
          rejected: false,
          status: response.status,
          body,
          // Only safelisted and exposed headers are visible here.
          headers: Object.fromEntries(response.headers.entries()),
        };
      } catch (err) {
        return { rejected: true, name: err.name, message: err.message };
      }
    },
    [url, init],
  );
}

function describe(result) {
  return result.rejected
    ? `fetch rejected with ${result.name}: ${result.message}`
    : `status ${result.status}, headers ${JSON.stringify(result.headers)}, body ${result.body.slice(0, 300)}`;
}

async function corsChecks() {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${second}/`);
  expect(new URL(page.url()).origin === second, `the second origin page is at ${page.url()}`);

  await check("cors: simple GET /api/config from the second origin is readable", async () => {
    const result = await probe(page, `${gateway}/api/config`);
    expect(!result.rejected, describe(result));
    expect(result.status === 200, describe(result));
    const body = JSON.parse(result.body);
    expect(typeof body.flags === "object" && body.flags !== null, `no flags member: ${result.body}`);
    expect(flagKey in body.flags, `flag ${flagKey} missing: ${result.body}`);
    return `status ${result.status}`;
  });

  await check("cors: a credential-less 401 (GET /api/user) is readable too", async () => {
    const result = await probe(page, `${gateway}/api/user`);
    expect(!result.rejected, describe(result));
    expect(result.status === 401, describe(result));
    expect(JSON.parse(result.body).status === 401, `not a problem: ${result.body}`);
    return `status ${result.status}`;
  });

  await check(`cors: preflighted PUT with ${customHeader} reaches the server, exposed x-request-id readable`, async () => {
    const id = `cors-probe-${Date.now()}`;
    const result = await probe(page, `${gateway}/api/config`, {
      method: "PUT",
      headers: { "content-type": "application/json", [customHeader]: id },
      body: "{}",
    });
    expect(!result.rejected, describe(result));
    // The route exists for GET only: the router's 405 proves the request got there.
    expect(result.status === 405, `expected the router's 405: ${describe(result)}`);
    const seen = result.headers["x-request-id"];
    expect(seen, `x-request-id not exposed: ${describe(result)}`);
    if (customHeader === "x-request-id") {
      expect(seen === id, `the server did not see our ${customHeader}: sent ${id}, got ${seen}`);
    }
    return `status ${result.status}, x-request-id ${seen}`;
  });

  await check("cors: credentialed login and /api/user from the second origin", async () => {
    const login = await probe(page, `${gateway}/api/login`, {
      method: "POST",
      credentials: "include",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: adminUser, password: adminPassword }),
    });
    expect(!login.rejected, `login: ${describe(login)}`);
    expect(login.status === 200, `login: ${describe(login)}`);
    const user = await probe(page, `${gateway}/api/user`, { credentials: "include" });
    expect(!user.rejected, `user: ${describe(user)}`);
    expect(user.status === 200, `user: ${describe(user)}`);
    const profile = JSON.parse(user.body);
    expect(profile.name === adminUser, `profile: ${user.body}`);
    // The same request without credentials carries no cookie.
    const anonymous = await probe(page, `${gateway}/api/user`, { credentials: "omit" });
    expect(!anonymous.rejected && anonymous.status === 401, `omit: ${describe(anonymous)}`);
    const logout = await probe(page, `${gateway}/api/logout`, { method: "POST", credentials: "include" });
    expect(!logout.rejected && logout.status === 204, `logout: ${describe(logout)}`);
    return `signed in as ${profile.name}`;
  });

  await check("cors: a header outside the allowed list fails the preflight", async () => {
    const result = await probe(page, `${gateway}/api/config`, { headers: { "x-not-allowed": "1" } });
    expect(result.rejected && result.name === "TypeError", `expected a TypeError: ${describe(result)}`);
    return result.message;
  });

  await check("cors: a method outside the allowed list fails the preflight", async () => {
    const result = await probe(page, `${gateway}/api/config`, { method: "DELETE" });
    expect(result.rejected && result.name === "TypeError", `expected a TypeError: ${describe(result)}`);
    return result.message;
  });

  await check("cors: a request from a disallowed (third) origin is blocked", async () => {
    const other = await context.newPage();
    await other.goto(`${third}/`);
    expect(new URL(other.url()).origin === third, `the third origin page is at ${other.url()}`);
    // The gateway does answer (a normal 200 without CORS headers, seen on
    // the wire through DevTools); it is the browser that keeps it from the page.
    const devtools = await context.newCDPSession(other);
    const raw = [];
    const urls = new Map();
    devtools.on("Network.requestWillBeSent", (event) => urls.set(event.requestId, event.request.url));
    devtools.on("Network.responseReceivedExtraInfo", (event) => raw.push(event));
    await devtools.send("Network.enable");
    const result = await probe(other, `${gateway}/api/config`);
    expect(result.rejected && result.name === "TypeError", `expected a TypeError: ${describe(result)}`);
    const seen = () => raw.find((event) => urls.get(event.requestId) === `${gateway}/api/config`);
    for (let waited = 0; !seen() && waited < 3000; waited += 100) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const answer = seen();
    expect(answer, `no answer from the gateway on the wire: ${JSON.stringify(raw)}`);
    expect(answer.statusCode === 200, `the gateway answered ${answer.statusCode}`);
    const names = Object.keys(answer.headers).map((name) => name.toLowerCase());
    expect(
      !names.some((name) => name.startsWith("access-control-")),
      `the answer to a disallowed origin has CORS headers: ${JSON.stringify(answer.headers)}`,
    );
    await devtools.detach();
    await other.close();
    return `${third}: ${result.message}; the gateway answered ${answer.statusCode} without CORS headers`;
  });

  await context.close();
}

// ---------------------------------------------------------------------------
// b. The pages, as a person uses them.

async function pageChecks() {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  // Content-Security-Policy violations and script errors on our pages.
  const problems = [];
  page.on("console", (message) => {
    if (message.type() === "error" && /Content Security Policy|Refused to/i.test(message.text())) {
      problems.push(`console: ${message.text()}`);
    }
  });
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));

  const path = () => new URL(page.url()).pathname;
  const query = (name) => new URL(page.url()).searchParams.get(name);
  const flagRow = (selector) => page.locator(`${selector} tbody tr[data-flag="${flagKey}"]`);

  async function openApp() {
    await page.goto(`${gateway}/app/`);
    await page.waitForSelector("body[data-state=ready]");
  }

  await check("pages: /app/ without a session redirects to /login?next=/app/", async () => {
    await page.goto(`${gateway}/app/`);
    expect(path() === "/login", `landed on ${page.url()}`);
    expect(query("next") === "/app/", `next is ${query("next")} in ${page.url()}`);
    expect((await page.locator("#next").inputValue()) === "/app/", "login.js did not copy next into the form");
  });

  await check("pages: the login form is labelled and shows no error at first", async () => {
    for (const [label, id] of [["Username", "username"], ["Password", "password"]]) {
      const field = page.getByLabel(label, { exact: true });
      expect((await field.getAttribute("id")) === id, `label ${label} is not for #${id}`);
    }
    expect(!(await page.locator("#error").isVisible()), "the error is visible without error=invalid");
    await page.screenshot({ path: join(screenshots, "login.png"), fullPage: true });
    return "login.png";
  });

  await check("pages: a wrong password comes back with a role=alert error", async () => {
    await page.getByLabel("Username", { exact: true }).fill(adminUser);
    await page.getByLabel("Password", { exact: true }).fill(`${adminPassword}-wrong`);
    await Promise.all([page.waitForURL(/error=invalid/), page.getByRole("button", { name: "Sign in" }).click()]);
    expect(path() === "/login" && query("next") === "/app/", `landed on ${page.url()}`);
    const alert = page.getByRole("alert");
    expect(await alert.isVisible(), "no visible alert");
    const text = (await alert.textContent()).trim();
    expect(text.length > 0, "the alert is empty");
    return text;
  });

  await check("pages: signing in through the form lands on /app/ with the user shown", async () => {
    await page.getByLabel("Username", { exact: true }).fill(adminUser);
    await page.getByLabel("Password", { exact: true }).fill(adminPassword);
    await Promise.all([page.waitForURL(`${gateway}/app/`), page.getByRole("button", { name: "Sign in" }).click()]);
    await page.waitForSelector("body[data-state=ready]");
    const user = (await page.locator("#user").textContent()).trim();
    expect(user === adminUser, `#user shows ${JSON.stringify(user)}`);
    const variant = (await page.locator("#variant").textContent()).trim();
    expect(variant && variant !== "…" && variant !== "unavailable", `#variant shows ${JSON.stringify(variant)}`);
    const value = (await flagRow("#flags").locator("td.value").textContent()).trim();
    expect(value === "true", `${flagKey} shows ${JSON.stringify(value)} before the toggle`);
    await page.screenshot({ path: join(screenshots, "app.png"), fullPage: true });
    return `user ${user}, new-checkout ${variant}, ${flagKey}=${value}; app.png`;
  });

  await check(`pages: toggling ${flagKey} off in /admin/ flips it on /app/`, async () => {
    await page.goto(`${gateway}/admin/`);
    expect(path() === "/admin/", `landed on ${page.url()}`);
    await page.waitForSelector("body[data-state=ready]");
    const toggle = page.getByRole("switch", { name: flagKey, exact: true });
    expect((await toggle.getAttribute("aria-checked")) === "true", `${flagKey} is not shown enabled`);
    await toggle.click();
    await page.waitForSelector(`#flag-list tr[data-flag="${flagKey}"] [role=switch][aria-checked=false]`);
    await openApp();
    const value = (await flagRow("#flags").locator("td.value").textContent()).trim();
    const reason = (await flagRow("#flags").locator("td.reason").textContent()).trim();
    expect(value !== "true" && reason === "DISABLED", `${flagKey} shows ${value} (${reason}) after the toggle`);
    return `${flagKey} now ${value} (${reason})`;
  });

  await check(`pages: toggling ${flagKey} on again restores it on /app/`, async () => {
    await page.goto(`${gateway}/admin/`);
    await page.waitForSelector("body[data-state=ready]");
    await page.getByRole("switch", { name: flagKey, exact: true }).click();
    await page.waitForSelector(`#flag-list tr[data-flag="${flagKey}"] [role=switch][aria-checked=true]`);
    await openApp();
    const value = (await flagRow("#flags").locator("td.value").textContent()).trim();
    expect(value === "true", `${flagKey} shows ${value}`);
  });

  await check("pages: saving invalid definitions shows the problem detail in an alert", async () => {
    await page.goto(`${gateway}/admin/`);
    await page.waitForSelector("body[data-state=ready]");
    const textarea = page.getByLabel("All definitions (flagd JSON)");
    const document = JSON.parse(await textarea.inputValue());
    expect(document.flags && document.flags[flagKey], `textarea lacks ${flagKey}`);
    document.flags[flagKey].defaultVariant = "no-such-variant";
    await textarea.fill(JSON.stringify(document, null, 2));
    await page.getByRole("button", { name: "Save", exact: true }).click();
    const alert = page.locator("#flags-error");
    await alert.filter({ hasText: /\S/ }).waitFor();
    expect((await alert.getAttribute("role")) === "alert", "#flags-error is not role=alert");
    const text = (await alert.textContent()).trim();
    expect(text.includes("defaultVariant"), `the alert does not name the field: ${text}`);
    // The previous set stays.
    await page.reload();
    await page.waitForSelector("body[data-state=ready]");
    const stored = JSON.parse(await textarea.inputValue());
    expect(stored.flags[flagKey].defaultVariant !== "no-such-variant", "the invalid set was stored");
    return text;
  });

  await check("pages: an asset uploaded in /admin/ is listed, served and deleted", async () => {
    const content = `uploaded from the admin page ${Date.now()}\n`;
    const objectPath = "site/browser-upload.txt";
    await page.getByLabel("File (or drop files here)", { exact: true }).setInputFiles({
      name: "browser-upload.txt",
      mimeType: "text/plain",
      buffer: Buffer.from(content),
    });
    await page.getByLabel("Path", { exact: true }).fill(objectPath);
    await page.getByRole("button", { name: "Upload" }).click();
    const row = page.locator(`#assets tbody tr[data-path="${objectPath}"]`);
    await row.waitFor();
    const type = (await row.locator("td.type").textContent()).trim();
    expect(type.startsWith("text/plain"), `stored as ${type}`);
    const served = await page.request.get(`${gateway}/browser-upload.txt`);
    expect(served.status() === 200 && (await served.text()) === content, `served ${served.status()}`);
    await page.screenshot({ path: join(screenshots, "admin.png"), fullPage: true });
    await page.getByRole("button", { name: `Delete ${objectPath}` }).click();
    await row.waitFor({ state: "detached" });
    const gone = await page.request.get(`${gateway}/browser-upload.txt`);
    expect(gone.status() === 404, `after delete: ${gone.status()}`);
    return "admin.png";
  });

  await check("pages: Log out goes to /login, and /app/ then redirects to /login?next=/app/", async () => {
    await openApp();
    await Promise.all([page.waitForURL(/\/login(\?|$)/), page.getByRole("button", { name: "Log out" }).click()]);
    expect(path() === "/login", `landed on ${page.url()}`);
    const cookies = await context.cookies(gateway);
    expect(!cookies.some((c) => c.name === "session" && c.value), `session cookie kept: ${JSON.stringify(cookies)}`);
    await page.goto(`${gateway}/app/`);
    expect(path() === "/login" && query("next") === "/app/", `landed on ${page.url()}`);
  });

  await check("pages: no CSP violation or script error on the pages", async () => {
    expect(problems.length === 0, problems.join("\n"));
  });

  await context.close();
}

// ---------------------------------------------------------------------------
// c. Stored script: an uploaded SVG or XHTML object with <script> must not
// run in the site's origin when opened. The same bytes served without the
// gateway's policy (a route fulfilled by the browser itself, on the same
// origin) do run, so the check can tell.

const storedScripts = (process.env.STORED_SCRIPTS || "").split(",").filter(Boolean);

async function storedScriptChecks() {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const ran = () =>
    page.evaluate(() => document.documentElement.getAttribute("data-ran") === "yes");
  for (const path of storedScripts) {
    const url = `${gateway}${path}`;
    await check(`stored script in ${path} does not run`, async () => {
      const response = await page.goto(url);
      expect(response.status() === 200, `GET ${path}: status ${response.status()}`);
      const policy = response.headers()["content-security-policy"] || "";
      await page.waitForTimeout(300);
      expect(!(await ran()), `the script in ${path} ran (policy: ${policy || "none"})`);
      return `policy: ${policy}`;
    });
    await check(`the same ${path} without the policy would run`, async () => {
      const served = await (await context.request.get(url)).body();
      const control = `${gateway}/control${path}`;
      await page.route(control, (route) =>
        route.fulfill({ status: 200, contentType: contentTypeOf(path), body: served }),
      );
      await page.goto(control);
      await page.waitForTimeout(300);
      expect(await ran(), `the control copy of ${path} did not run its script`);
    });
  }
  await context.close();
}

function contentTypeOf(path) {
  return path.endsWith(".svg") ? "image/svg+xml" : "application/xhtml+xml";
}

// ---------------------------------------------------------------------------
// d. The landing page and the operator console, as an operator uses them.

const edgePath = process.env.EDGE_PATH || "/edge/cached";
const upstreamRoute = process.env.UPSTREAM_ROUTE || "edge";

// Console errors of any kind and CSP reports. Chromium also logs each 4xx/5xx
// a page's fetch() receives as "Failed to load resource"; those are answers
// the checks provoke on purpose (a refused form), not script errors.
function watch(page) {
  const problems = [];
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    if (/^Failed to load resource: the server responded with a status of 4\d\d/.test(message.text())) return;
    problems.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  return problems;
}

async function landingChecks() {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const problems = watch(page);
  await check("landing: / says the edge is healthy and links the sign-in, app, console and API", async () => {
    const response = await page.goto(`${gateway}/`);
    expect(response.status() === 200, `GET / answered ${response.status()}`);
    await page.locator("#health").filter({ hasText: "ok" }).waitFor();
    for (const href of ["/login", "/app/", "/admin/", "/healthz", "/api/config"]) {
      expect((await page.locator(`main a[href="${href}"]`).count()) > 0, `no link to ${href}`);
    }
    await page.waitForFunction(() => document.getElementById("flags").textContent !== "…");
    const flags = (await page.locator("#flags").textContent()).trim();
    expect(flags.includes(flagKey), `the flags line does not name ${flagKey}: ${flags}`);
    await page.screenshot({ path: join(screenshots, "home.png"), fullPage: true });
    expect(problems.length === 0, problems.join("\n"));
    return `flags: ${flags}; home.png`;
  });
  await context.close();
}

async function consoleChecks() {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const problems = watch(page);
  page.on("dialog", (dialog) => dialog.accept());
  const api = context.request;
  const row = (table, attribute, value) => page.locator(`#${table} tbody tr[data-${attribute}="${value}"]`);
  // Waits until the section's status line says `text`; returns the line.
  const statusSays = async (id, text) => {
    const status = page.locator(`#${id}-status`);
    await status.filter({ hasText: text }).waitFor();
    return (await status.textContent()).trim();
  };
  const ready = async (query = "") => {
    await page.goto(`${gateway}/admin/${query}`);
    await page.waitForSelector("body[data-state=ready]");
  };

  await check("console: signing in lands on the console with every section loaded", async () => {
    await page.goto(`${gateway}/login?next=/admin/%3Frefresh%3D1`);
    await page.getByLabel("Username", { exact: true }).fill(adminUser);
    await page.getByLabel("Password", { exact: true }).fill(adminPassword);
    await Promise.all([page.waitForURL(/\/admin\//), page.getByRole("button", { name: "Sign in" }).click()]);
    await page.waitForSelector("body[data-state=ready]");
    for (const id of ["flag-list", "users", "upstreams", "assets"]) {
      expect((await page.locator(`#${id}`).getAttribute("aria-busy")) === "false", `#${id} still busy`);
    }
    expect((await row("users", "user", adminUser).count()) === 1, `${adminUser} is not listed`);
  });

  await check("console: the overview charts traffic from /admin/metrics", async () => {
    // Traffic of every class the charts show: 2xx, 4xx, an edge-cache miss and hit.
    for (let i = 0; i < 20; i++) {
      await api.get(`${gateway}/api/config`);
      await api.get(`${gateway}/no-such-page-${i}`);
    }
    await api.get(`${gateway}${edgePath}`);
    await api.get(`${gateway}${edgePath}`);
    const deadline = Date.now() + 20_000;
    let charted;
    while (Date.now() < deadline) {
      charted = await page.evaluate(() => {
        const charts = window.porticoConsole.overview.charts;
        const column = (chart, i) => (chart.plot.data[i] || []).filter((v) => v !== null);
        return {
          ok2xx: Math.max(0, ...column(charts.requests, 1)),
          client4xx: Math.max(0, ...column(charts.requests, 3)),
          p50: column(charts.latency, 1).length,
          p99: Math.max(0, ...column(charts.latency, 3)),
          hits: Math.max(0, ...column(charts.cache, 1)),
          misses: Math.max(0, ...column(charts.cache, 3)),
          points: charts.requests.plot.data[0].length,
        };
      });
      if (charted.ok2xx > 0 && charted.client4xx > 0 && charted.p50 > 0 && charted.hits > 0 && charted.misses > 0) break;
      await page.waitForTimeout(500);
    }
    expect(charted.ok2xx > 0, `no 2xx rate charted: ${JSON.stringify(charted)}`);
    expect(charted.client4xx > 0, `no 4xx rate charted: ${JSON.stringify(charted)}`);
    expect(charted.p50 > 0 && charted.p99 > 0, `no latency charted: ${JSON.stringify(charted)}`);
    expect(charted.hits > 0 && charted.misses > 0, `no cache results charted: ${JSON.stringify(charted)}`);
    const summary = (await page.locator("#overview-summary").textContent()).trim();
    expect(/req\/s/.test(summary), `summary: ${summary}`);
    await page.screenshot({ path: join(screenshots, "console-overview.png") });
    return `${JSON.stringify(charted)}; console-overview.png`;
  });

  await check("console: the rate-limit chart counts 429s", async () => {
    // The `strict` policy on /api/ab/rl-* allows 2 a minute per client.
    let limited = 0;
    for (let i = 0; i < 6; i++) {
      if ((await api.get(`${gateway}/api/ab/rl-probe`)).status() === 429) limited += 1;
    }
    expect(limited > 0, "no 429 from the strict policy");
    const deadline = Date.now() + 15_000;
    let most = 0;
    while (Date.now() < deadline && most === 0) {
      most = await page.evaluate(() =>
        Math.max(0, ...window.porticoConsole.overview.charts.rejections.plot.data[1].filter((v) => v !== null)));
      if (most === 0) await page.waitForTimeout(500);
    }
    expect(most > 0, "the rejections chart stayed at zero");
    return `${limited} rejected, charted up to ${most}/s`;
  });

  await check("console: create a user, change the role, end the sessions, delete", async () => {
    await page.getByLabel("Name", { exact: true }).fill("grace");
    await page.getByLabel("Password (at least 12 characters)").fill("grace-password-1");
    await page.getByLabel("Roles (comma-separated)").fill("viewer");
    // The keyboard alone: Enter in the last field submits the form.
    await page.getByLabel("Roles (comma-separated)").press("Enter");
    await statusSays("users", "Created grace");
    await row("users", "user", "grace").waitFor();

    // Grace signs in elsewhere (outside this browser's cookie jar).
    const token = await signIn("grace", "grace-password-1");
    const asGrace = async () => (await withSession(`${gateway}/api/user`, token)).status;
    expect((await asGrace()) === 200, "grace's session is not valid at first");

    const roles = page.getByLabel("Roles of grace", { exact: true });
    await roles.fill("viewer, editor");
    await page.getByRole("button", { name: "Save roles of grace" }).click();
    await statusSays("users", "Roles of grace saved");
    const listed = await (await api.get(`${gateway}/admin/users`)).json();
    const grace = listed.users.find((u) => u.name === "grace");
    expect(JSON.stringify(grace.roles.slice().sort()) === JSON.stringify(["editor", "viewer"]), `roles: ${JSON.stringify(grace)}`);
    expect((await asGrace()) === 401, "a role change left grace's old session valid");

    const second = await signIn("grace", "grace-password-1");
    expect((await withSession(`${gateway}/api/user`, second)).status === 200, "grace's new session is refused");
    await page.getByRole("button", { name: "End sessions of grace" }).click();
    await statusSays("users", "Every session of grace has ended");
    expect((await withSession(`${gateway}/api/user`, second)).status === 401, "End sessions left a session valid");

    await page.getByRole("button", { name: "Delete grace" }).click();
    await row("users", "user", "grace").waitFor({ state: "detached" });
    const after = await (await api.get(`${gateway}/admin/users`)).json();
    expect(!after.users.some((u) => u.name === "grace"), "grace is still stored");
    await page.screenshot({ path: join(screenshots, "console-users.png") });
    return "console-users.png";
  });

  await check("console: a flag made with the form splits 50/50 and the preview matches OFREP", async () => {
    await page.locator("#flag-pick").selectOption({ index: 0 });
    await page.getByLabel("Key", { exact: true }).fill("console-split");
    await page.getByLabel("Variants (JSON object: name to value)").fill(JSON.stringify({ red: "#c00", blue: "#00c" }));
    await page.getByLabel("Default variant").selectOption("red");
    await page.getByLabel("Weight of red").fill("50");
    await page.getByLabel("Weight of blue").fill("50");
    await page.getByRole("button", { name: "Save flag" }).click();
    await statusSays("flags", "Saved console-split");
    await row("flag-list", "flag", "console-split").waitFor();
    const stored = (await (await api.get(`${gateway}/admin/flags`)).json()).flags["console-split"];
    expect(stored && JSON.stringify(stored.targeting) === JSON.stringify({ fractional: [["red", 50], ["blue", 50]] }),
      `stored: ${JSON.stringify(stored)}`);

    const seen = new Set();
    for (const key of ["user-1", "user-2", "user-3", "user-4", "user-5", "user-6", "user-7", "user-8"]) {
      await page.locator("#preview-flag").selectOption("console-split");
      await page.getByLabel("Targeting key").fill(key);
      await page.getByRole("button", { name: "Preview" }).click();
      const out = page.locator("#preview-result");
      await out.filter({ hasText: key }).waitFor();
      const shown = await out.getAttribute("data-variant");
      const ofrep = await (await api.post(`${gateway}/ofrep/v1/evaluate/flags/console-split`, {
        data: { context: { targetingKey: key } },
        headers: { origin: gateway },
      })).json();
      expect(shown === ofrep.variant, `${key}: the preview says ${shown}, OFREP ${ofrep.variant}`);
      seen.add(shown);
    }
    expect(seen.size === 2, `8 keys all got ${[...seen]}`);
    return `variants seen: ${[...seen].join(", ")}`;
  });

  await check("console: the server's validation message is shown for a refused flag", async () => {
    await page.locator("#flag-pick").selectOption("console-split");
    await page.getByLabel("Variants (JSON object: name to value)").fill("{}");
    await page.getByRole("button", { name: "Save flag" }).click();
    const alert = page.locator("#flags-error");
    await alert.filter({ hasText: /\S/ }).waitFor();
    const text = (await alert.textContent()).trim();
    expect(text.includes("console-split"), `the alert does not name the flag: ${text}`);
    const stored = (await (await api.get(`${gateway}/admin/flags`)).json()).flags["console-split"];
    expect(Object.keys(stored.variants).length === 2, "the refused flag was stored");
    return text;
  });

  await check("console: a flag toggle works from the keyboard", async () => {
    await ready();
    const toggle = page.getByRole("switch", { name: "console-split", exact: true });
    const before = await toggle.getAttribute("aria-checked");
    await toggle.focus();
    await page.keyboard.press("Space");
    const expected = before === "true" ? "false" : "true";
    await page.waitForSelector(`#flag-list tr[data-flag="console-split"] [role=switch][aria-checked=${expected}]`);
    const stored = (await (await api.get(`${gateway}/admin/flags`)).json()).flags["console-split"];
    expect(stored.state === (expected === "true" ? "ENABLED" : "DISABLED"), `stored state ${stored.state}`);
  });

  await check("console: a dropped file uploads with progress, sized for people, and deletes", async () => {
    const objectPath = "site/dropped/notes.txt";
    await page.getByLabel("Path", { exact: true }).fill("site/dropped/");
    const transfer = await page.evaluateHandle(() => {
      const data = new DataTransfer();
      data.items.add(new File(["x".repeat(1536)], "notes.txt", { type: "text/plain" }));
      return data;
    });
    await page.dispatchEvent("#drop-zone", "drop", { dataTransfer: transfer });
    const uploaded = row("assets", "path", objectPath);
    await uploaded.waitFor();
    const size = (await uploaded.locator("td.size").textContent()).trim();
    expect(size === "1.5 KiB", `size shown as ${size}`);
    await statusSays("assets", "Uploaded site/dropped/notes.txt");
    const served = await api.get(`${gateway}/dropped/notes.txt`);
    expect(served.status() === 200 && (await served.text()).length === 1536, `served ${served.status()}`);
    await page.getByRole("button", { name: `Delete ${objectPath}` }).click();
    await uploaded.waitFor({ state: "detached" });
    return `size ${size}`;
  });

  await check("console: upstreams show the breaker, and a purge empties the cached entry", async () => {
    await api.get(`${gateway}${edgePath}`);
    const hit = await api.get(`${gateway}${edgePath}`);
    expect(/hit/.test(hit.headers()["cache-status"] || ""), `not cached: ${hit.headers()["cache-status"]}`);
    await page.getByRole("button", { name: "Refresh" }).click();
    const route = row("upstreams", "route", upstreamRoute);
    await route.waitFor();
    const breaker = await route.locator("td.breaker").getAttribute("data-state");
    expect(breaker === "closed", `breaker ${breaker}`);
    await page.getByLabel("URL or prefix").fill(`${gateway}${edgePath}`);
    await page.getByRole("button", { name: "Purge", exact: true }).click();
    const said = await statusSays("purge", /^Purged/);
    expect(said.startsWith("Purged 1 "), `purge said: ${said}`);
    const after = await api.get(`${gateway}${edgePath}`);
    expect(!/;\s*hit/.test(after.headers()["cache-status"] || ""), `still a hit after the purge: ${after.headers()["cache-status"]}`);
    await page.screenshot({ path: join(screenshots, "console-upstreams.png") });
    return `${said}; console-upstreams.png`;
  });

  await check("console: usable on a 360 px wide screen", async () => {
    await page.setViewportSize({ width: 360, height: 780 });
    await ready();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    const widest = await page.evaluate(() =>
      [...document.querySelectorAll("body *")]
        .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest(".scroll"))
        .sort((a, b) => b.getBoundingClientRect().right - a.getBoundingClientRect().right)
        .slice(0, 8)
        .map((e) => `${e.tagName.toLowerCase()}${e.id ? "#" + e.id : ""}.${e.className} (${Math.round(e.getBoundingClientRect().right)} px)`));
    expect(overflow <= 0, `the page is ${overflow} px wider than the screen: ${widest.join(", ")}`);
    const chartWidth = await page.evaluate(() => window.porticoConsole.overview.charts.requests.plot.width);
    expect(chartWidth <= 360, `a chart is ${chartWidth} px wide`);
    await page.screenshot({ path: join(screenshots, "console-narrow.png"), fullPage: true });
    return "console-narrow.png";
  });

  await check("console: no console error or CSP violation on the console", async () => {
    expect(problems.length === 0, problems.join("\n"));
  });
  await context.close();
}

// Node's own fetch, outside the browser's cookie jar: a JSON login that
// returns the session token, and a GET carrying a token as the cookie.
async function signIn(username, password) {
  const response = await fetch(`${gateway}/api/login`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: gateway },
    body: JSON.stringify({ username, password }),
  });
  expect(response.status === 200, `${username}'s login: ${response.status} ${await response.text()}`);
  const cookie = response.headers.getSetCookie().find((c) => c.startsWith("session="));
  expect(cookie, `${username}'s login set no session cookie`);
  return cookie.slice("session=".length).split(";")[0];
}

async function withSession(url, token) {
  const response = await fetch(url, { headers: { cookie: `session=${token}` } });
  return { status: response.status };
}

// ---------------------------------------------------------------------------

try {
  browser = await chromium.launch({
    executablePath,
    headless: true,
    chromiumSandbox: false,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--no-pings",
      "--disable-domain-reliability",
      "--disable-client-side-phishing-detection",
      "--disable-gpu",
    ],
    timeout: 60_000,
  });
} catch (err) {
  console.log(`FAIL launch ${executablePath}: ${err.message}`);
  process.exit(2);
}
console.log(`# chromium ${browser.version()}; gateway ${gateway}; second ${second}; third ${third}`);

await corsChecks();
await storedScriptChecks();
await pageChecks();
await landingChecks();
await consoleChecks();
clearTimeout(watchdog);
console.log(`${passed} passed, 0 failed`);
await finish(0);
