/**
 * `userport import` end to end: the command runs as a child process (`node --import tsx
 * src/cli.ts import …`, as `npx userport import` does) against `userport serve` in a process of
 * its own, over real sockets. Every format's fixture export (test/fixtures/import/, made by the
 * real tools where Debian ships them) is imported and every imported user then signs in through
 * CreateSession with its original password; the --report file's lines match the outcomes; a
 * dry run writes nothing; SIGINT stops after the batches in flight and prints the --resume
 * command; kill -9 of the server mid-import, restart and --resume store each record once; the exit
 * statuses are 0, 1 and 2. On SQLite, and on PostgreSQL when USERPORT_TEST_DATABASE_URL is set.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JsonObject } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Caller, createCallers, SESSIONS, V1, V2 } from "./helpers/clients.js";
import { dropTestDatabase, testDatabaseUrl } from "./helpers/database.js";
import { expectOk } from "./helpers/expectations.js";
import { bcryptHash, GOOD_PASSWORD } from "./helpers/fixtures.js";
import { freePort, type Served, serveProcess } from "./helpers/process.js";

interface Expected {
  format?: string;
  file: string;
  passwords?: string;
  idps?: Record<string, string>;
  populations?: Record<string, string>;
  org?: string;
  firebase?: { signerKey: string; saltSeparator: string; rounds: number; memCost: number };
  users: Array<{ key: string; password: string }>;
  linked?: Array<{ key: string; externalUserId: string }>;
  machines?: Array<{ key: string }>;
  failed: Array<{ key?: string; line: number; error: string }>;
}
interface ReportLine {
  line: number;
  index?: number;
  key?: string;
  outcome: string;
  userId?: string;
  error?: { code: number; id: string; message: string };
  replayed?: boolean;
}

const fixtures = new URL("./fixtures/import/", import.meta.url);
const fixturePath = (name: string) => new URL(name, fixtures).pathname;
const expected = JSON.parse(readFileSync(new URL("expected.json", fixtures), "utf8")) as Record<string, Expected>;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Starts `userport import <args>`; `done` resolves when it exits. */
function startCli(args: string[], env: Record<string, string> = {}): { child: ChildProcess; done: Promise<Run>; output: () => string } {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", "import", ...args], {
    env: { ...process.env, USERPORT_TOKEN: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk) => (stdout += chunk));
  child.stderr!.on("data", (chunk) => (stderr += chunk));
  const done = new Promise<Run>((resolve) => child.once("exit", (code) => resolve({ code, stdout, stderr })));
  return { child, done, output: () => stdout + stderr };
}
const cli = (args: string[], env: Record<string, string> = {}) => startCli(args, env).done;

const readReport = (path: string): ReportLine[] =>
  readFileSync(path, "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as ReportLine);

async function until(what: string, check: () => boolean, output: () => string): Promise<void> {
  for (let i = 0; i < 1200; i++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}:\n${output()}`);
}

/** A native NDJSON export of `count` users with one real bcrypt hash; usernames `<prefix><i>`. */
function nativeExport(path: string, prefix: string, count: number, password = GOOD_PASSWORD): void {
  const hash = bcryptHash(password, 4);
  const lines: string[] = [];
  for (let i = 0; i < count; i++)
    lines.push(
      JSON.stringify({
        key: `${prefix}key-${i}`,
        human: {
          username: `${prefix}${i}`,
          profile: { givenName: "Cli", familyName: `User ${i}` },
          email: { email: `${prefix}${i}@example.com`, isVerified: true },
          hashedPassword: { hash },
        },
      }),
    );
  writeFileSync(path, `${lines.join("\n")}\n`);
}

class Instance {
  served!: Served;
  token = "";
  callers = new Map<string, Caller>();
  constructor(
    readonly dataDir: string,
    readonly port: number,
  ) {}
  async start() {
    const databaseUrl = await testDatabaseUrl(this.dataDir);
    this.served = await serveProcess(this.port, {
      USERPORT_DATA_DIR: this.dataDir,
      ...(databaseUrl ? { USERPORT_DATABASE_URL: databaseUrl } : {}),
      USERPORT_PASSWORD_VERIFIERS: "all",
      USERPORT_BCRYPT_COST: "4",
      USERPORT_LOG_LEVEL: "warn",
    });
    this.token = readFileSync(join(this.dataDir, "admin.pat"), "utf8").trim();
    for (const caller of this.callers.values()) caller.close();
    this.callers = createCallers(this.served.url, this.token);
  }
  get url() {
    return this.served.url;
  }
  get rest() {
    return this.callers.get("rest")!;
  }
  /** How many users have a username starting with `prefix`. */
  async countUsers(prefix: string): Promise<number> {
    const found = expectOk(
      await this.rest.call(V2.listUsers, { query: { limit: 1 }, queries: [{ userNameQuery: { userName: prefix, method: "TEXT_QUERY_METHOD_STARTS_WITH" } }] }),
    );
    return Number((found.details as JsonObject).totalResult ?? 0);
  }
  async stop() {
    for (const caller of this.callers.values()) caller.close();
    this.served?.child.kill("SIGKILL");
    await this.served?.exited;
  }
}

const work = mkdtempSync(join(tmpdir(), "userport-cli-"));
const main = new Instance(join(work, "main"), 0);
let defaultOrgId = "";
let idp = "";

beforeAll(async () => {
  (main as { port: number }).port = await freePort();
  await main.start();
  const me = expectOk(await main.rest.call(V1.getMyOrg, {}));
  defaultOrgId = String((me.org as JsonObject).id);
  const added = await main.rest.call(V1.addGenericOIDCProvider, {
    name: "Imported links",
    issuer: "https://accounts.example.com",
    clientId: "client-1",
    clientSecret: "not-a-real-secret",
    scopes: ["openid"],
    providerOptions: { isLinkingAllowed: true, isCreationAllowed: true, isAutoCreation: true, isAutoUpdate: false },
  });
  idp = String(expectOk(added).id);
});
afterAll(async () => {
  await main.stop();
  await dropTestDatabase(main.dataDir);
  rmSync(work, { recursive: true, force: true });
});

/** The command-line arguments that import a fixture into the main server. */
function fixtureArgs(name: string): string[] {
  const e = expected[name]!;
  const fill = (value: string) => value.replace("$IDP", idp).replace("$ORG", defaultOrgId);
  const args = [fixturePath(e.file), "--format", e.format ?? name, "--url", main.url, "--token-file", join(main.dataDir, "admin.pat")];
  for (const [source, target] of Object.entries(e.idps ?? {})) args.push("--idp", `${source}=${fill(target)}`);
  for (const [population, org] of Object.entries(e.populations ?? {})) args.push("--population", `${population}=${fill(org)}`);
  if (e.org) args.push("--org", fill(e.org));
  if (e.passwords) args.push("--passwords", fixturePath(e.passwords));
  if (e.firebase)
    args.push(
      "--hash-key",
      e.firebase.signerKey,
      "--salt-separator",
      e.firebase.saltSeparator,
      "--rounds",
      String(e.firebase.rounds),
      "--mem-cost",
      String(e.firebase.memCost),
    );
  return args;
}

describe("every format's fixture through the command, then CreateSession with the original password", () => {
  // firebase-csv holds the users of firebase's JSON fixture: imported after it with --on-conflict update.
  it.each(Object.keys(expected))("%s", async (name) => {
    const e = expected[name]!;
    const report = join(work, `${name}.report.ndjson`);
    const update = name === "firebase-csv";
    const run = await cli([...fixtureArgs(name), "--report", report, ...(update ? ["--on-conflict", "update"] : [])]);
    // Every fixture holds a malformed record: exit status 1, the failed count on stderr.
    expect(run.code, run.stdout + run.stderr).toBe(1);
    expect(run.stderr).toContain(`${e.failed.length} of`);
    expect(run.stderr).toContain(`see ${report}`);
    const lines = readReport(report);
    const failed = lines.filter((l) => l.outcome === "failed");
    expect(failed.map((f) => ({ line: f.line, key: f.key }))).toEqual(e.failed.map((f) => ({ line: f.line, key: f.key })));
    for (const [i, f] of failed.entries()) {
      expect(f.error!.message).toContain(e.failed[i]!.error);
      expect(f.error!.code).toBe(3);
    }
    const good = lines.filter((l) => l.outcome !== "failed");
    const keys = [...e.users.map((u) => u.key), ...(e.linked ?? []).map((l) => l.key), ...(e.machines ?? []).map((m) => m.key)];
    expect(new Set(good.map((l) => l.key))).toEqual(new Set(keys));
    expect(good).toHaveLength(keys.length);
    for (const line of good) {
      expect(line.outcome).toBe(update ? "updated" : "created");
      expect(line.userId).toMatch(/^\d+$/);
    }
    // The report is in file order and the summary counts match it.
    expect(lines.map((l) => l.line)).toEqual([...lines.map((l) => l.line)].sort((a, b) => a - b));
    expect(run.stdout).toContain(
      `total ${lines.length}  created ${update ? 0 : good.length}  updated ${update ? good.length : 0}  skipped 0  failed ${failed.length}`,
    );
    // No secret on the terminal or in the report.
    const text = readFileSync(report, "utf8") + run.stdout + run.stderr;
    for (const user of e.users) expect(text).not.toContain(user.password);

    const userOf = new Map(good.map((l) => [l.key!, l.userId!]));
    for (const user of e.users) {
      const signIn = (password: string) =>
        main.rest.call(SESSIONS.createSession, { checks: { user: { userId: userOf.get(user.key)! }, password: { password } } });
      expect((await signIn(`x${user.password}`)).ok, `${user.key} with a wrong password`).toBe(false);
      expect(expectOk(await signIn(user.password)).sessionToken, user.key).toEqual(expect.any(String));
    }
    for (const link of e.linked ?? []) {
      const links = expectOk(await main.rest.call(V2.listIDPLinks, { userId: userOf.get(link.key)! }));
      expect(links.result).toEqual([expect.objectContaining({ idpId: idp, userId: link.externalUserId })]);
    }
    for (const machine of e.machines ?? []) {
      const user = expectOk(await main.rest.call(V2.getUserByID, { userId: userOf.get(machine.key)! }));
      expect((user.user as JsonObject).machine).toBeDefined();
    }
  });
});

describe("dry run, exit statuses and the summary", () => {
  it("--dry-run answers what the import would do and writes nothing; the import afterwards creates every user (exit 0)", async () => {
    const prefix = `dry-${Date.now().toString(36)}-`;
    const file = join(work, "dry.ndjson");
    nativeExport(file, prefix, 50);
    const report = join(work, "dry.report.ndjson");
    const dry = await cli([file, "--format", "native", "--url", main.url, "--token-file", join(main.dataDir, "admin.pat"), "--dry-run", "--report", report]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain("dry run (nothing written)");
    expect(dry.stdout).toContain("total 50  created 50");
    expect(dry.stdout).toContain("hash families: bcrypt 50");
    const lines = readReport(report);
    expect(lines).toHaveLength(50);
    expect(lines.every((l) => l.outcome === "created" && l.userId === undefined)).toBe(true);
    expect(await main.countUsers(prefix)).toBe(0);

    const real = await cli([file, "--format", "native", "--url", main.url, "--token-file", join(main.dataDir, "admin.pat")]);
    expect(real.code, real.stderr).toBe(0);
    expect(real.stdout).toMatch(/^job \d+: /);
    expect(real.stdout).toContain("total 50  created 50  updated 0  skipped 0  failed 0");
    expect(real.stderr).toBe("");
    expect(await main.countUsers(prefix)).toBe(50);

    // Again with --on-conflict skip: every record names the stored user; still exit 0.
    const again = await cli([file, "--format", "native", "--url", main.url, "--on-conflict", "skip"], { USERPORT_TOKEN: main.token });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain("total 50  created 0  updated 0  skipped 50  failed 0");
  });

  it("exit status 2 with a one-line message: usage, file, token and connection errors", async () => {
    const token = join(main.dataDir, "admin.pat");
    const cases: Array<[string[], RegExp]> = [
      [["--format", "native"], /name the export file/],
      [[fixturePath("native.ndjson"), "--format", "nonsense"], /unknown --format "nonsense": one of native, zitadel/],
      [[fixturePath("native.ndjson")], /--format is required/],
      [[fixturePath("native.ndjson"), "--format", "native", "--on-conflict", "maybe"], /--on-conflict takes fail, skip or update/],
      [[fixturePath("native.ndjson"), "--format", "native", "--frobnicate"], /Unknown option '--frobnicate'/],
      [
        [join(work, "missing.ndjson"), "--format", "native", "--token-file", token, "--url", main.url],
        /cannot read the export .*missing\.ndjson: no such file/,
      ],
      [[fixturePath("native.ndjson"), "--format", "native", "--token-file", join(work, "none.pat"), "--url", main.url], /no token: cannot read .*none\.pat/],
      [[fixturePath("native.ndjson"), "--format", "native", "--token", "not-a-token", "--url", main.url], /the server refused the token/],
      [
        [fixturePath("native.ndjson"), "--format", "native", "--token-file", token, "--url", `http://127.0.0.1:${await freePort()}`],
        /cannot reach userport at http:\/\/127\.0\.0\.1:\d+ .*: start it, or pass --url/,
      ],
      [
        [fixturePath("native.ndjson"), "--format", "native", "--token-file", token, "--url", main.url, "--resume", "404404404"],
        /the server refused the import: .*not found/i,
      ],
    ];
    for (const [args, message] of cases) {
      const run = await cli(args);
      expect(run.code, args.join(" ")).toBe(2);
      expect(run.stderr, args.join(" ")).toMatch(message);
      expect(run.stderr.trim().split("\n"), args.join(" ")).toHaveLength(1);
      expect(run.stderr).not.toMatch(/\n\s+at /); // no stack trace
    }
  }, 180_000);

  it("--help documents every format and option with an example each; --format <f> --help only that format", async () => {
    const all = await cli(["--help"]);
    expect(all.code).toBe(0);
    for (const format of ["native", "zitadel", "csv", "auth0", "keycloak", "firebase", "pingone-csv", "ldif"]) expect(all.stdout).toContain(`\n  ${format}: `);
    for (const option of [
      "--url",
      "--token-file",
      "--token",
      "--org",
      "--dry-run",
      "--on-conflict",
      "--resume",
      "--report",
      "--map",
      "--passwords",
      "--idp",
      "--hash-key",
      "--population",
    ])
      expect(all.stdout).toContain(option);
    expect(all.stdout.match(/e\.g\. /g)!.length).toBeGreaterThanOrEqual(12);
    expect(all.stdout.match(/Example: /g)).toHaveLength(8);
    const one = await cli(["--format", "keycloak", "--help"]);
    expect(one.stdout).toContain("keycloak: a realm export");
    expect(one.stdout).not.toContain("pingone-csv:");
  });
});

describe("stopping and resuming", () => {
  // Enough records that the import is still running when the test interrupts it (SIGINT, or
  // kill -9 of the server) at the first progress line with created users: with 6,000, a fast
  // machine once finished them all first.
  const COUNT = 30_000;

  it("SIGINT stops after the batches in flight are answered and prints the --resume command, which finishes the job; the report holds every record once", async () => {
    const prefix = `int-${Date.now().toString(36)}-`;
    const file = join(work, "interrupt.ndjson");
    nativeExport(file, prefix, COUNT);
    const report = join(work, "interrupt.report.ndjson");
    const args = [
      file,
      "--format",
      "native",
      "--url",
      main.url,
      "--token-file",
      join(main.dataDir, "admin.pat"),
      "--report",
      report,
      "--progress-every",
      "0.1",
    ];
    const running = startCli(args);
    // Once the plain progress line shows created users, Ctrl-C.
    const progress = new RegExp(`import: [1-9][\\d,]*/${COUNT.toLocaleString("en")} records \\(\\d+%\\), [\\d,]+/s, created [1-9]`);
    await until("progress", () => progress.test(running.output()), running.output);
    running.child.kill("SIGINT");
    const first = await running.done;
    expect(first.code, first.stderr).toBe(2);
    const resume = first.stderr.match(/userport import: interrupted; continue with:\n {2}userport import (.+) --resume (\d+)\n$/);
    expect(resume, first.stderr).not.toBeNull();
    const done = readReport(report);
    expect(done.length).toBeGreaterThan(0);
    expect(done.length).toBeLessThan(COUNT);
    expect(done.length % 1000).toBe(0); // whole batches: every batch sent was answered
    expect(first.stdout).toContain(`total ${done.length.toLocaleString("en")}  created ${done.length.toLocaleString("en")}`);
    expect(await main.countUsers(prefix)).toBe(done.length);

    const second = await cli([...args, "--resume", resume![2]!]);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain(`resumed at record ${done.length.toLocaleString("en")}`);
    const all = readReport(report);
    expect(all).toHaveLength(COUNT);
    expect(all.map((l) => l.index)).toEqual(Array.from({ length: COUNT }, (_, i) => i));
    expect(all.map((l) => l.line)).toEqual(Array.from({ length: COUNT }, (_, i) => i + 1));
    expect(all.every((l) => l.outcome === "created")).toBe(true);
    expect(new Set(all.map((l) => l.userId)).size).toBe(COUNT);
    expect(await main.countUsers(prefix)).toBe(COUNT);
  }, 120_000);

  it("kill -9 of the server mid-import: the command prints the --resume command; after a restart it stores each record once", async () => {
    const crashed = new Instance(join(work, "crash"), await freePort());
    try {
      await crashed.start();
      const prefix = `crash-${Date.now().toString(36)}-`;
      const file = join(work, "crash.ndjson");
      nativeExport(file, prefix, COUNT);
      const report = join(work, "crash.report.ndjson");
      const args = [
        file,
        "--format",
        "native",
        "--url",
        crashed.url,
        "--token-file",
        join(crashed.dataDir, "admin.pat"),
        "--report",
        report,
        "--progress-every",
        "0.1",
      ];
      const running = startCli(args);
      await until("progress", () => /created [1-9]/.test(running.output()), running.output);
      crashed.served.child.kill("SIGKILL");
      const first = await running.done;
      expect(first.code, first.stderr).toBe(2);
      const resume = first.stderr.match(/; continue with:\n {2}userport import .+ --resume (\d+)\n$/);
      expect(resume, first.stderr).not.toBeNull();
      expect(first.stderr).not.toContain("interrupted");
      const before = readReport(report);
      expect(before.length).toBeLessThan(COUNT);

      await crashed.stop();
      await crashed.start();
      const second = await cli([...args, "--resume", resume![1]!]);
      expect(second.code, second.stderr).toBe(0);
      const all = readReport(report);
      // Records committed but not answered before the crash are taken from the job's results.
      expect(all.map((l) => l.index)).toEqual(Array.from({ length: COUNT }, (_, i) => i));
      expect(all.every((l) => l.outcome === "created")).toBe(true);
      const userOf = new Map(all.map((l) => [l.key, l.userId]));
      for (const line of before) expect(userOf.get(line.key), line.key).toBe(line.userId);
      expect(new Set(all.map((l) => l.userId)).size).toBe(COUNT);
      expect(await crashed.countUsers(prefix)).toBe(COUNT);
    } finally {
      await crashed.stop();
      await dropTestDatabase(crashed.dataDir);
    }
  }, 120_000);
});
