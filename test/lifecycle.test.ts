import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { dropTestDatabase, testDatabaseUrl } from "./helpers/database.js";
import { freePort, type Served, serveProcess } from "./helpers/process.js";

/** Runs `userport serve` on `dataDir` (and its test database, on PostgreSQL). */
async function serve(dataDir: string, port: number): Promise<Served> {
  const databaseUrl = await testDatabaseUrl(dataDir);
  return serveProcess(port, {
    USERPORT_DATA_DIR: dataDir,
    ...(databaseUrl ? { USERPORT_DATABASE_URL: databaseUrl } : {}),
    USERPORT_BCRYPT_COST: "4",
    USERPORT_LOG_LEVEL: "info",
  });
}

function importUser(url: string, token: string, userName: string) {
  return fetch(`${url}/management/v1/users/human/_import`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({
      userName,
      profile: { firstName: "Ada", lastName: "Lovelace" },
      email: { email: `${userName}@example.com`, isEmailVerified: true },
      hashedPassword: { value: "$2b$04$kZGQ0mOUxwjRc/ZbnXYOy.dvSSx7Rk5vJ/iWzhRtC6jbbYyNOA8M6" },
    }),
  });
}

describe("userport serve", () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  function newDataDir() {
    const dir = mkdtempSync(join(tmpdir(), "userport-lifecycle-"));
    cleanup.push(async () => {
      await dropTestDatabase(dir);
      rmSync(dir, { recursive: true, force: true });
    });
    return dir;
  }

  /** Runs DDL on the store of `dataDir` underneath its running server, whichever store it is. */
  async function alterStore(dataDir: string, statement: string) {
    const databaseUrl = await testDatabaseUrl(dataDir);
    if (!databaseUrl) {
      const sqlite = new Database(join(dataDir, "userport.sqlite"));
      sqlite.exec(statement);
      sqlite.close();
      return;
    }
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    await client.query(statement);
    await client.end();
  }

  it("creates the admin token file with mode 0600 on first start and never logs the token", async () => {
    const dataDir = newDataDir();
    const served = await serve(dataDir, await freePort());
    cleanup.push(() => served.child.kill("SIGKILL"));
    const token = readFileSync(join(dataDir, "admin.pat"), "utf8").trim();
    expect(token.length).toBeGreaterThanOrEqual(40);
    expect(statSync(join(dataDir, "admin.pat")).mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, "master.key")).mode & 0o777).toBe(0o600);
    expect(served.output()).toContain("admin.pat");
    // The start line names the address it binds, not another one.
    expect(served.output()).toContain(`userport: serving on 127.0.0.1:${new URL(served.url).port} (this address only`);
    const response = await importUser(served.url, token, "first-start");
    expect(response.status).toBe(200);
    // The SQLite files hold hashes and sealed secrets: the owner's only, as admin.pat.
    if (!(await testDatabaseUrl(dataDir))) {
      for (const file of ["userport.sqlite", "userport.sqlite-wal", "userport.sqlite-shm"]) {
        expect(statSync(join(dataDir, file)).mode & 0o777, file).toBe(0o600);
      }
    }
    served.child.kill("SIGTERM");
    expect(await served.exited).toBe(0);
    expect(served.output()).not.toContain(token);
  });

  it("keeps users and the admin token across a restart", async () => {
    const dataDir = newDataDir();
    const port = await freePort();
    const first = await serve(dataDir, port);
    const token = readFileSync(join(dataDir, "admin.pat"), "utf8").trim();
    const created = (await (await importUser(first.url, token, "survivor")).json()) as { userId: string };
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);

    const second = await serve(dataDir, port);
    cleanup.push(() => second.child.kill("SIGKILL"));
    expect(readFileSync(join(dataDir, "admin.pat"), "utf8").trim()).toBe(token);
    const read = await fetch(`${second.url}/management/v1/users/${created.userId}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(read.status).toBe(200);
    expect(((await read.json()) as { user: { userName: string } }).user.userName).toBe("survivor");
    const duplicate = await importUser(second.url, token, "SURVIVOR");
    expect(duplicate.status).toBe(409);
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
  });

  it("answers in-flight requests on SIGTERM, and every user it confirmed is there after a restart", async () => {
    const dataDir = newDataDir();
    const port = await freePort();
    const first = await serve(dataDir, port);
    const token = readFileSync(join(dataDir, "admin.pat"), "utf8").trim();
    const names = Array.from({ length: 60 }, (_, i) => `inflight-${i}`);
    const responses = names.map((name) =>
      importUser(first.url, token, name).then(
        (r) => r.status,
        () => "refused" as const,
      ),
    );
    // Signal as soon as the first answer arrives, while the others are still being handled.
    await Promise.race(responses);
    first.child.kill("SIGTERM");
    const statuses = await Promise.all(responses);
    expect(await first.exited).toBe(0);
    // A request is answered 200 (and then durable), or refused: 503 once closing, or no connection.
    expect(statuses.every((status) => status === 200 || status === 503 || status === "refused")).toBe(true);
    const confirmed = names.filter((_, i) => statuses[i] === 200);
    expect(confirmed.length).toBeGreaterThan(0);

    const second = await serve(dataDir, port);
    cleanup.push(() => second.child.kill("SIGKILL"));
    for (const name of confirmed) {
      const again = await importUser(second.url, token, name);
      expect(again.status, `${name} was confirmed before shutdown`).toBe(409);
    }
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
  });

  it("answers an unexpected store failure with a bare internal error, logs its cause, and keeps serving", async () => {
    const dataDir = newDataDir();
    const served = await serve(dataDir, await freePort());
    cleanup.push(() => served.child.kill("SIGKILL"));
    const token = readFileSync(join(dataDir, "admin.pat"), "utf8").trim();
    // Break the store underneath the running server: codes can no longer be written.
    await alterStore(dataDir, "ALTER TABLE codes RENAME TO codes_elsewhere");
    const password = "Unl0gged!secret";
    const broken = await fetch(`${served.url}/management/v1/users/human/_import`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({
        userName: "needs-a-code",
        profile: { firstName: "Ada", lastName: "Lovelace" },
        email: { email: "code@example.com", isEmailVerified: false },
        password,
      }),
    });
    expect(broken.status).toBe(500);
    expect(await broken.json()).toEqual({ code: 13, message: "Internal error", details: [] });
    await alterStore(dataDir, "ALTER TABLE codes_elsewhere RENAME TO codes");

    expect((await importUser(served.url, token, "after-the-failure")).status).toBe(200);
    // Nothing of the failed request was written: its username is still free.
    const retried = await fetch(`${served.url}/management/v1/users/human/_import`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({
        userName: "needs-a-code",
        profile: { firstName: "Ada", lastName: "Lovelace" },
        email: { email: "code@example.com" },
        password,
      }),
    });
    expect(retried.status).toBe(200);
    served.child.kill("SIGTERM");
    expect(await served.exited).toBe(0);
    expect(served.output()).toMatch(/no such table: codes|relation \\?"codes\\?" does not exist/);
    expect(served.output()).not.toContain(password);
    expect(served.output()).not.toContain(token);
  });
});
