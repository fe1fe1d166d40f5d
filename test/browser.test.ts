/**
 * userport called from a real browser: headless Chromium (Debian's /usr/bin/chromium, driven by
 * playwright-core) opens a page served from another origin, whose script calls
 * ManagementService/ImportHumanUser over gRPC-Web with @connectrpc/connect-web. This proves the
 * CORS configuration as browsers enforce it, not as a test client imagines it.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Agent, createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Client, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { build } from "esbuild";
import { type Browser, type ConsoleMessage, chromium, type Page } from "playwright-core";
import { afterAll, describe, expect, it } from "vitest";
import { ManagementService } from "../gen/zitadel/management_pb.js";
import type { ImportOutcome, PageApi } from "./browser/page.js";
import { startTestServer, type TestServer } from "./helpers/server.js";

const CHROMIUM = "/usr/bin/chromium";
/**
 * `.ci/run` sets USERPORT_REQUIRE_BROWSER=1 (after installing Chromium): there a missing browser
 * fails these tests. Elsewhere they are skipped, with a line saying how to run them.
 */
const BROWSER_REQUIRED = process.env.USERPORT_REQUIRE_BROWSER === "1";
const SKIP_BROWSER = !existsSync(CHROMIUM) && !BROWSER_REQUIRED;
if (SKIP_BROWSER) {
  process.stderr.write(
    `\n!!! SKIPPED test/browser.test.ts: ${CHROMIUM} is missing. Install it with \`apt-get install -y chromium\` to run the browser tests ` +
      "(.ci/run installs it and sets USERPORT_REQUIRE_BROWSER=1, which makes a missing browser fail). !!!\n\n",
  );
}
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const here = dirname(fileURLToPath(import.meta.url));

/** A tiny web site: an HTML page and its bundled script, on its own origin. */
interface Site {
  origin: string;
  server: Server;
}

async function serveSite(script: string): Promise<Site> {
  const html =
    '<!doctype html><html><head><meta charset="utf-8"><title>userport browser test</title>' +
    '<script type="module" src="/app.js"></script></head><body></body></html>';
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(html);
    } else if (path === "/app.js") {
      res.writeHead(200, { "content-type": "text/javascript; charset=utf-8" }).end(script);
    } else if (path === "/favicon.ico") {
      res.writeHead(204).end(); // keeps the console free of a 404
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return { origin: `http://127.0.0.1:${port}`, server };
}

interface Env {
  browser: Browser;
  userport: TestServer;
  /** The origin userport allows (USERPORT_CORS_ORIGINS). */
  allowed: Site;
  /** Another origin, not in USERPORT_CORS_ORIGINS. */
  other: Site;
  /** A Node client of the same server, to check what the browser did. */
  management: Client<typeof ManagementService>;
}

const cleanups: Array<() => Promise<unknown>> = [];
let envPromise: Promise<Env> | undefined;

/**
 * Sets everything up once, on first use: inside the tests rather than in beforeAll, so that a
 * missing Chromium fails every test loudly instead of leaving them skipped.
 */
function env(): Promise<Env> {
  envPromise ??= (async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `${CHROMIUM} is missing and USERPORT_REQUIRE_BROWSER=1 requires it: the browser test needs Debian's Chromium. ` +
          "Install it with `apt-get install -y chromium` (.ci/run does so on CI).",
      );
    }
    const outDir = mkdtempSync(join(tmpdir(), "userport-browser-"));
    cleanups.push(async () => rmSync(outDir, { recursive: true, force: true }));
    await build({
      entryPoints: [join(here, "browser", "page.ts")],
      outfile: join(outDir, "app.js"),
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      logLevel: "silent",
    });
    const script = readFileSync(join(outDir, "app.js"), "utf8");

    const allowed = await serveSite(script);
    cleanups.push(() => new Promise((resolve) => allowed.server.close(resolve)));
    const other = await serveSite(script);
    cleanups.push(() => new Promise((resolve) => other.server.close(resolve)));

    const userport = await startTestServer({ corsOrigins: [allowed.origin] });
    cleanups.push(() => userport.dispose());

    // Without keep-alive: an idle kept-alive connection would hold up userport's close.
    const management = createClient(
      ManagementService,
      createConnectTransport({ baseUrl: userport.url, httpVersion: "1.1", nodeOptions: { agent: new Agent({ keepAlive: false }) } }),
    );

    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    cleanups.push(() => browser.close());
    return { browser, userport, allowed, other, management };
  })();
  return envPromise;
}

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** Opens the site's page in a fresh browser context, the console collected. */
async function openPage(browser: Browser, site: Site): Promise<{ page: Page; console: string[] }> {
  const context = await browser.newContext();
  cleanups.push(() => context.close());
  const page = await context.newPage();
  const console: string[] = [];
  page.on("console", (msg: ConsoleMessage) => console.push(`${msg.type()}: ${msg.text()}`));
  page.on("pageerror", (err) => console.push(`pageerror: ${err.message}`));
  await page.goto(`${site.origin}/`);
  await page.waitForFunction(() => (globalThis as { userport?: PageApi }).userport !== undefined);
  return { page, console };
}

/** Runs the page's ImportHumanUser call against userport, in the browser. */
function importInBrowser(page: Page, baseUrl: string, token: string, userName: string): Promise<ImportOutcome> {
  return page.evaluate(([url, bearer, name]) => (globalThis as unknown as { userport: PageApi }).userport.importHuman(url, bearer, name), [
    baseUrl,
    token,
    userName,
  ] as const);
}

describe.skipIf(SKIP_BROWSER)("from a browser on another origin over gRPC-Web", () => {
  it("imports a user from an allowed origin and reads ZITADEL's error details", async () => {
    const { browser, userport, allowed, management } = await env();
    const { page, console } = await openPage(browser, allowed);

    const created = await importInBrowser(page, userport.url, userport.token, "browser-alice");
    expect(created, console.join("\n")).toMatchObject({ ok: true });
    if (!created.ok) return;
    expect(created.userId).toMatch(/^\d+$/);
    expect(created.sequence).toMatch(/^[1-9]\d*$/);

    // The browser's user is really there. It is INITIAL (no password): the import's last event is
    // the init code, which ZITADEL's users projection does not date users by, so the read shows
    // the sequence of the user's creation, one before the one the browser was told.
    const { user } = await management.getUserByID({ id: created.userId }, { headers: { authorization: `Bearer ${userport.token}` } });
    expect(user?.userName).toBe("browser-alice");
    expect(created.sequence).toBe("2");
    expect(String(user?.details?.sequence)).toBe("1");

    // The error path, read in the browser: status, message and zitadel.v1.ErrorDetail. Connect's
    // gRPC-Web handler sends the status in the body's trailer frame (never "trailers-only" response
    // headers), so this does not depend on Access-Control-Expose-Headers: cors.test.ts checks those.
    const duplicate = await importInBrowser(page, userport.url, userport.token, "browser-alice");
    expect(duplicate).toMatchObject({
      ok: false,
      code: "AlreadyExists",
      message: "User already exists (V3-DKcYh)",
      detailIds: ["V3-DKcYh"],
      fetchFailed: false,
    });
    if (duplicate.ok) return;
    expect(duplicate.statusDetailsBin).toBeTruthy();
  });

  it("is refused by the browser from an origin not in USERPORT_CORS_ORIGINS", async () => {
    const { browser, userport, other, management } = await env();
    const { page, console } = await openPage(browser, other);

    const refused = await importInBrowser(page, userport.url, userport.token, "browser-mallory");
    expect(refused).toMatchObject({ ok: false, fetchFailed: true });
    // Chromium says why on the console.
    await expect.poll(() => console.join("\n")).toMatch(/blocked by CORS policy/);

    // The call never reached ImportHumanUser: the name is still free.
    const res = await management.importHumanUser(
      {
        userName: "browser-mallory",
        profile: { firstName: "Node", lastName: "User" },
        email: { email: "mallory@example.com" },
      },
      { headers: { authorization: `Bearer ${userport.token}` } },
    );
    expect(res.userId).toMatch(/^\d+$/);
  });
});
