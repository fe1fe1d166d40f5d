/**
 * `userport serve` with a bad setting, as an operator meets it: one line on stderr that names the
 * setting (by the flag or variable it was given by), says what is wrong and what to do, exit
 * status 2, and nothing written: no store, no master key, no token.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SETTINGS } from "../src/config.js";

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A data directory that does not exist yet (its parent does): a failed start must not create it. */
function freshDataDir(): string {
  const parent = mkdtempSync(join(tmpdir(), "userport-settings-"));
  dirs.push(parent);
  return join(parent, "data");
}

/** The environment without any USERPORT_* variable of the machine running the tests. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("USERPORT_")));
  return { ...env, ...extra };
}

async function cli(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", ...args], {
    env: cleanEnv(env),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => (stdout += chunk));
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const status = await new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { status, stdout, stderr };
}

/** Runs serve on a fresh data dir, expecting a refusal: returns the one line it printed. */
async function refused(args: string[], env: Record<string, string> = {}): Promise<string> {
  const dataDir = freshDataDir();
  const result = await cli(["serve", "--data-dir", dataDir, "--host", "127.0.0.1", ...args], env);
  expect(result.status, result.stderr + result.stdout).toBe(2);
  const lines = result.stderr.trim().split("\n");
  expect(lines, result.stderr).toHaveLength(1);
  expect(result.stderr).not.toMatch(/\n\s+at |Error:/); // no stack trace, no exception name
  // Nothing written: the data directory was never created.
  expect(existsSync(dataDir), `${dataDir} was created`).toBe(false);
  return lines[0]!;
}

describe("a bad setting refuses the start with one line, exit status 2 and nothing written", () => {
  it("--port out of range", async () => {
    expect(await refused(["--port", "99999"])).toMatch(/^userport: --port must be between 0 and 65535, got 99999$/);
  });

  it("USERPORT_PORT that is not a number", async () => {
    expect(await refused([], { USERPORT_PORT: "eighty" })).toMatch(/USERPORT_PORT must be a whole number, got "eighty"/);
  });

  it("USERPORT_EXTERNAL_URL that is not a URL", async () => {
    expect(await refused([], { USERPORT_EXTERNAL_URL: "not-a-url" })).toMatch(/USERPORT_EXTERNAL_URL "not-a-url" is not an http:\/\/ or https:\/\/ URL: give/);
  });

  it("USERPORT_TLS_CERT without USERPORT_TLS_KEY", async () => {
    expect(await refused([], { USERPORT_TLS_CERT: "/etc/hostname" })).toMatch(/USERPORT_TLS_CERT is set but USERPORT_TLS_KEY is not: set both/);
  });

  it("TLS files that cannot be read", async () => {
    const line = await refused([], { USERPORT_TLS_CERT: "/nonexistent/cert.pem", USERPORT_TLS_KEY: "/nonexistent/key.pem" });
    expect(line).toMatch(/USERPORT_TLS_CERT "\/nonexistent\/cert.pem" cannot be read \(ENOENT\)/);
  });

  it("TLS files that are not PEM", async () => {
    const line = await refused([], { USERPORT_TLS_CERT: "package.json", USERPORT_TLS_KEY: "package.json" });
    expect(line).toMatch(/USERPORT_TLS_CERT\/USERPORT_TLS_KEY are not a usable PEM certificate and key/);
  });

  it("USERPORT_SMTP_URL that is not an SMTP URL, its password never shown", async () => {
    expect(await refused([], { USERPORT_SMTP_URL: "notaurl" })).toMatch(/USERPORT_SMTP_URL "notaurl" is not an SMTP URL: give smtp:\/\//);
    const line = await refused([], { USERPORT_SMTP_URL: "http://mailer:hunter2@mail.example.com" });
    expect(line).toMatch(/USERPORT_SMTP_URL "http:\/\/mailer:\*\*\*@mail.example.com\/" is not an SMTP URL/);
    expect(line).not.toContain("hunter2");
  });

  it("USERPORT_LOG_LEVEL that is not a level", async () => {
    expect(await refused([], { USERPORT_LOG_LEVEL: "loud" })).toMatch(
      /USERPORT_LOG_LEVEL "loud" is not a log level: use one of fatal, error, warn, info, debug, trace, silent/,
    );
  });

  it("USERPORT_MASTER_KEY that is not 32 bytes of base64, the value never shown", async () => {
    const line = await refused([], { USERPORT_MASTER_KEY: "c2hvcnQta2V5" });
    expect(line).toMatch(/USERPORT_MASTER_KEY must be 32 bytes, base64-encoded .*openssl rand -base64 32/);
    expect(line).not.toContain("c2hvcnQta2V5");
  });

  it("USERPORT_PASSWORD_VERIFIERS naming an unknown family", async () => {
    expect(await refused([], { USERPORT_PASSWORD_VERIFIERS: "argon2,sha1" })).toMatch(
      /USERPORT_PASSWORD_VERIFIERS names unknown password hash families: sha1 \(known: /,
    );
  });

  it("an unknown flag, with a hint to --help", async () => {
    expect(await refused(["--prot", "8080"])).toMatch(/^userport: unknown option --prot: `userport serve --help` lists/);
  });

  it("a data directory that cannot be created, with its path", async () => {
    const parent = mkdtempSync(join(tmpdir(), "userport-settings-"));
    dirs.push(parent);
    writeFileSync(join(parent, "a-file"), "");
    const result = await cli(["serve", "--data-dir", join(parent, "a-file", "data"), "--port", "0"]);
    expect(result.status).toBe(2);
    expect(result.stderr.trim()).toBe(
      `userport: --data-dir "${join(parent, "a-file", "data")}" cannot be used (ENOTDIR): give a directory userport may create and write to`,
    );
  });

  it("a port in use: refused before the store is created", async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const { port } = blocker.address() as { port: number };
    try {
      expect(await refused(["--port", String(port)])).toBe(
        `userport: --port ${port}: 127.0.0.1:${port} is already in use: stop what listens there or choose another port`,
      );
      expect(await refused([], { USERPORT_PORT: String(port) })).toMatch(/^userport: USERPORT_PORT \d+: .* is already in use/);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  it("a PostgreSQL URL nobody answers at, named by the flag or the variable it came from, its password never shown", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const { port } = closed.address() as { port: number };
    await new Promise((resolve) => closed.close(resolve));
    const url = `postgres://someone:s3cret-pw@127.0.0.1:${port}/userport`;
    const byFlag = await refused(["--database-url", url]);
    expect(byFlag).toBe(
      `userport: --database-url (postgres://someone:***@127.0.0.1:${port}/userport): cannot use the database: the connection was refused: is PostgreSQL running there and listening on that port?`,
    );
    const byVariable = await refused([], { USERPORT_DATABASE_URL: url });
    expect(byVariable).toMatch(
      /^userport: USERPORT_DATABASE_URL \(postgres:\/\/someone:\*\*\*@127\.0\.0\.1:\d+\/userport\): cannot use the database: the connection was refused/,
    );
    const unknownHost = await refused([], { USERPORT_DATABASE_URL: "postgres://someone:s3cret-pw@db.invalid/userport" });
    expect(unknownHost).toMatch(
      /USERPORT_DATABASE_URL \(postgres:\/\/someone:\*\*\*@db\.invalid\/userport\): cannot use the database: the host name does not resolve/,
    );
    for (const line of [byFlag, byVariable, unknownHost]) expect(line).not.toContain("s3cret-pw");
    expect(await refused([], { USERPORT_DATABASE_URL: "mysql://db/userport" })).toMatch(
      /USERPORT_DATABASE_URL "mysql:\/\/db\/userport" is not a PostgreSQL URL/,
    );
  });

  it("an unknown command, with a hint to --help", async () => {
    const result = await cli(["srve"]);
    expect(result.status).toBe(2);
    expect(result.stderr.trim()).toBe('userport: unknown command "srve": `userport --help` lists the commands');
  });
});

describe("userport serve --help", () => {
  it("lists every setting, the environment-only ones included", async () => {
    const result = await cli(["serve", "--help"]);
    expect(result.status).toBe(0);
    for (const setting of SETTINGS) {
      expect(result.stdout).toContain(setting.env);
      if (setting.flag) expect(result.stdout).toContain(`--${setting.flag}`);
    }
    expect(SETTINGS.map((s) => s.env)).toEqual(
      expect.arrayContaining(["USERPORT_SMTP_URL", "USERPORT_MASTER_KEY", "USERPORT_LOG_LEVEL", "USERPORT_TLS_CERT", "USERPORT_CORS_ORIGINS"]),
    );
  });

  it("the README's configuration table lists every setting too", async () => {
    const readme = readFileSync("README.md", "utf8");
    const missing = SETTINGS.filter((s) => !readme.includes(`\`${s.env}\``)).map((s) => s.env);
    expect(missing).toEqual([]);
  });
});
