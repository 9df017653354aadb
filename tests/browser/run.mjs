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
    await page.getByRole("button", { name: "Save" }).click();
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
    await page.getByLabel("File", { exact: true }).setInputFiles({
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
clearTimeout(watchdog);
console.log(`${passed} passed, 0 failed`);
await finish(0);
