/**
 * Backups of the SQLite store while the server serves: `userport backup` under write load, then
 * `userport restore` into a new data directory with the master key, and a server on it that has
 * every user acknowledged before the backup started. The restore refuses a missing or other key.
 * (Backups are of the SQLite store; on PostgreSQL the commands point to pg_dump.)
 */
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, type Served, serveProcess } from "./helpers/process.js";

/** `userport <command>` with the given arguments, on SQLite whatever the suite's store. */
async function cli(args: string[], env: Record<string, string> = {}) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("USERPORT_")));
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", ...args], { env: { ...clean, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  const status = await new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { status, output };
}

function importUser(url: string, token: string, userName: string) {
  return fetch(`${url}/management/v1/users/human/_import`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({
      userName,
      profile: { firstName: "Ada", lastName: "Lovelace" },
      // Unverified: each user also gets an init code sealed with the master key.
      email: { email: `${userName}@example.com`, isEmailVerified: false },
      hashedPassword: { value: "$2b$04$kZGQ0mOUxwjRc/ZbnXYOy.dvSSx7Rk5vJ/iWzhRtC6jbbYyNOA8M6" },
    }),
  });
}

describe("userport backup and restore", () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), "userport-backup-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  };
  const serve = async (dataDir: string): Promise<Served> => {
    const served = await serveProcess(await freePort(), { USERPORT_DATA_DIR: dataDir, USERPORT_DATABASE_URL: "", USERPORT_BCRYPT_COST: "4" });
    cleanup.push(() => served.child.kill("SIGKILL"));
    return served;
  };

  it("backs up under write load; the restore holds every user acknowledged before the backup started", { timeout: 120_000 }, async () => {
    const work = tempDir();
    const dataDir = join(work, "live");
    const live = await serve(dataDir);
    const token = readFileSync(join(dataDir, "admin.pat"), "utf8").trim();

    // Writers that keep importing users until told to stop, remembering when each was acknowledged.
    const acknowledged: Array<{ name: string; at: number }> = [];
    const attempted = new Set<string>();
    let stop = false;
    let next = 0;
    const writer = async () => {
      while (!stop) {
        const name = `loaded-${next++}`;
        attempted.add(name);
        const response = await importUser(live.url, token, name);
        if (response.status === 200) acknowledged.push({ name, at: Date.now() });
        else throw new Error(`import answered ${response.status}`);
      }
    };
    const writers = Array.from({ length: 8 }, writer);
    while (acknowledged.length < 200) await new Promise((resolve) => setTimeout(resolve, 20));

    const backupFile = join(work, "userport-backup.sqlite");
    const countAtStart = acknowledged.length;
    const backup = await cli(["backup", "--data-dir", dataDir, "--out", backupFile]);
    const writtenDuring = acknowledged.length - countAtStart;
    stop = true;
    await Promise.all(writers);
    expect(backup.status, backup.output).toBe(0);
    expect(backup.output).toMatch(/backed up .* into .*userport-backup\.sqlite \(\d+ bytes, \d+ users, mode 0600\)/);
    expect(backup.output).toContain("the master key is not in the backup");
    expect(statSync(backupFile).mode & 0o777).toBe(0o600);
    // The load really ran alongside: writes were acknowledged while the backup was taken.
    expect(writtenDuring).toBeGreaterThan(0);

    // Without the master key the restore refuses, and writes nothing.
    const restored = join(work, "restored");
    const noKey = await cli(["restore", "--from", backupFile, "--data-dir", restored]);
    expect(noKey.status).toBe(2);
    expect(noKey.output).toMatch(/no master key for the restored store: copy the master.key of the backed-up data directory/);
    expect(existsSync(join(restored, "userport.sqlite"))).toBe(false);
    // With another key it refuses too.
    const otherKey = await cli(["restore", "--from", backupFile, "--data-dir", restored], { USERPORT_MASTER_KEY: randomBytes(32).toString("base64") });
    expect(otherKey.status).toBe(2);
    expect(otherKey.output).toMatch(/the master key \(USERPORT_MASTER_KEY\) is not the one the backup's secrets are sealed with/);

    // With the key of the live data directory (and its token file).
    mkdirSync(restored, { recursive: true });
    copyFileSync(join(dataDir, "master.key"), join(restored, "master.key"));
    copyFileSync(join(dataDir, "admin.pat"), join(restored, "admin.pat"));
    const restore = await cli(["restore", "--from", backupFile, "--data-dir", restored]);
    expect(restore.status, restore.output).toBe(0);
    expect(statSync(join(restored, "userport.sqlite")).mode & 0o777).toBe(0o600);
    const again = await cli(["restore", "--from", backupFile, "--data-dir", restored]);
    expect(again.status).toBe(2);
    expect(again.output).toMatch(/already holds a store: restore into a new data directory/);

    // The restored store: every user acknowledged before the backup started, nothing unknown.
    const sqlite = new Database(join(restored, "userport.sqlite"), { readonly: true });
    const names = new Set((sqlite.prepare("SELECT username FROM users").all() as Array<{ username: string }>).map((r) => r.username));
    sqlite.close();
    // Those acknowledged before the backup process was started (by count: an acknowledgement in
    // the same millisecond as the start is before it too).
    const before = acknowledged.slice(0, countAtStart).map((ack) => ack.name);
    expect(before.length).toBeGreaterThanOrEqual(200);
    expect(before.filter((name) => !names.has(name))).toEqual([]);
    expect([...names].filter((name) => name !== "userport-admin" && !attempted.has(name))).toEqual([]);

    // A server on it starts (the master key matches), serves the users and their sealed codes.
    const second = await serve(restored);
    const sample = before[before.length - 1]!;
    const unique = await fetch(`${second.url}/management/v1/users/_is_unique?userName=${sample}`, { headers: { authorization: `Bearer ${token}` } });
    expect(await unique.json()).toEqual({});
    const listed = await fetch(`${second.url}/management/v1/users/_search`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ query: { limit: 1 }, queries: [{ userNameQuery: { userName: sample, method: "TEXT_QUERY_METHOD_EQUALS" } }] }),
    });
    expect(((await listed.json()) as { result: Array<{ userName: string }> }).result.map((u) => u.userName)).toEqual([sample]);
  });

  it("refuses a PostgreSQL store, pointing to pg_dump", async () => {
    const result = await cli(["backup", "--out", join(tempDir(), "x.sqlite")], { USERPORT_DATABASE_URL: "postgres://u:p@127.0.0.1:5432/db" });
    expect(result.status).toBe(2);
    expect(result.output.trim()).toBe("userport: USERPORT_DATABASE_URL is set: userport backs up its SQLite store only; back up PostgreSQL with pg_dump");
  });

  it("refuses an existing output file and a data directory without a store", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "taken.sqlite"), "");
    const taken = await cli(["backup", "--data-dir", dir, "--out", join(dir, "taken.sqlite")]);
    expect(taken.status).toBe(2);
    expect(taken.output).toMatch(/taken\.sqlite exists: give a new file/);
    const empty = await cli(["backup", "--data-dir", join(dir, "nothing"), "--out", join(dir, "new.sqlite")]);
    expect(empty.status).toBe(2);
    expect(empty.output).toMatch(/holds no userport store/);
  });
});
