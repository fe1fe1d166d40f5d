/**
 * A lost admin token: the start log says so (instead of naming a file that is not there), and
 * `userport token` issues a new IAM_OWNER token into a 0600 file, revoking the others on request.
 * Runs on SQLite, or on PostgreSQL with USERPORT_TEST_DATABASE_URL.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { dropTestDatabase, testDatabaseUrl } from "./helpers/database.js";
import { freePort, type Served, serveProcess } from "./helpers/process.js";

async function storeEnv(dataDir: string): Promise<Record<string, string>> {
  const databaseUrl = await testDatabaseUrl(dataDir);
  return { USERPORT_DATA_DIR: dataDir, ...(databaseUrl ? { USERPORT_DATABASE_URL: databaseUrl } : {}), USERPORT_BCRYPT_COST: "4" };
}

async function tokenCommand(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", "token", ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  const status = await new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { status, output };
}

/** The status of an authenticated read of the caller's own organisation. */
const statusWith = (url: string, token: string) =>
  fetch(`${url}/management/v1/orgs/me`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);

/**
 * Polls until the token is refused. On SQLite the server reuses a token lookup for up to a second
 * (README, "Tokens"); PostgreSQL looks it up on every request.
 */
async function refusedEventually(url: string, token: string): Promise<number> {
  let status = 0;
  for (let attempt = 0; attempt < 50; attempt++) {
    status = await statusWith(url, token);
    if (status === 401) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return status;
}

describe("userport token", () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  async function start(dataDir: string, port: number): Promise<Served> {
    const served = await serveProcess(port, await storeEnv(dataDir));
    cleanup.push(() => served.child.kill("SIGKILL"));
    return served;
  }

  it("after admin.pat is lost: the start says so, the command issues a new token (0600, never printed) and revokes the others", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "userport-token-"));
    cleanup.push(async () => {
      await dropTestDatabase(dataDir);
      rmSync(dataDir, { recursive: true, force: true });
    });
    const env = await storeEnv(dataDir);
    const tokenFile = join(dataDir, "admin.pat");
    const port = await freePort();

    const first = await start(dataDir, port);
    expect(first.output()).toContain(`created the instance`);
    expect(first.output()).toContain(`is in ${tokenFile}`);
    const original = readFileSync(tokenFile, "utf8").trim();
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);

    unlinkSync(tokenFile);
    const second = await start(dataDir, port);
    expect(second.output()).toContain(`reusing the instance`);
    expect(second.output()).toContain(`no administrator token at ${tokenFile}: issue one with \`userport token`);
    expect(second.output()).not.toMatch(/token is in|an administrator token is in/);

    // Issued while the server runs, into the data directory's admin.pat.
    const issued = await tokenCommand([], env);
    expect(issued.status, issued.output).toBe(0);
    expect(issued.output).toContain(`into ${tokenFile} (mode 0600)`);
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    const renewed = readFileSync(tokenFile, "utf8").trim();
    expect(renewed).not.toBe(original);
    expect(issued.output).not.toContain(renewed);
    expect(await statusWith(second.url, renewed)).toBe(200);

    // The file is not replaced without --force.
    const again = await tokenCommand([], env);
    expect(again.status).toBe(2);
    expect(again.output).toMatch(/admin\.pat exists: pass --force to replace it/);
    expect(readFileSync(tokenFile, "utf8").trim()).toBe(renewed);

    // Another file, and every other token of the administrator revoked: the lost one and the renewed one.
    const elsewhere = join(dataDir, "rescue.pat");
    const rescue = await tokenCommand(["--out", elsewhere, "--revoke-others"], env);
    expect(rescue.status, rescue.output).toBe(0);
    expect(rescue.output).toContain("revoked 2 other token(s) of userport-admin");
    const rescued = readFileSync(elsewhere, "utf8").trim();
    expect(rescue.output).not.toContain(rescued);
    expect(await statusWith(second.url, rescued)).toBe(200);
    expect(await refusedEventually(second.url, original)).toBe(401);
    expect(await refusedEventually(second.url, renewed)).toBe(401);
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
    for (const secret of [original, renewed, rescued]) expect(second.output()).not.toContain(secret);

    // The next start finds the token file again.
    const third = await start(dataDir, port);
    expect(third.output()).toContain(`an administrator token is in ${tokenFile}`);
    // Three server starts and three CLI runs, each a Node process loading the sources through tsx.
  }, 120_000);

  it("refuses a data directory without a store, creating nothing", async () => {
    const parent = mkdtempSync(join(tmpdir(), "userport-token-"));
    cleanup.push(() => rmSync(parent, { recursive: true, force: true }));
    const dataDir = join(parent, "empty");
    const result = await tokenCommand(["--data-dir", dataDir], { USERPORT_DATABASE_URL: "" });
    expect(result.status).toBe(2);
    expect(result.output).toMatch(/--data-dir ".*empty" holds no userport store/);
    expect(existsSync(dataDir)).toBe(false);
  });
});
