import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dropTestDatabase, testDatabaseUrl, testPostgresUrl } from "./helpers/database.js";
import { type Mailbox, startMailbox } from "./helpers/mailbox.js";
import { runImport } from "./helpers/import-stream.js";
import { freePort, type Served, serveProcess } from "./helpers/process.js";

interface Replica extends Served {
  dataDir: string;
}

/** `userport serve` in a process of its own, on the shared database, as an operator runs a replica. */
async function startReplica(databaseUrl: string, masterKey: string, smtpUrl: string): Promise<Replica> {
  // Not created yet: the server creates it for its token and key, as it does for SQLite's file.
  const dataDir = join(mkdtempSync(join(tmpdir(), "userport-replica-")), "data");
  const started = serveProcess(await freePort(), {
    USERPORT_DATA_DIR: dataDir,
    USERPORT_DATABASE_URL: databaseUrl,
    USERPORT_MASTER_KEY: masterKey,
    USERPORT_SMTP_URL: smtpUrl,
    USERPORT_OUTBOX_POLL_MS: "50",
    USERPORT_BCRYPT_COST: "4",
    USERPORT_LOG_LEVEL: "warn",
    // Far longer than any test: a replica that forgets a caller here does so because it was told to.
    USERPORT_CALLER_CACHE_MS: "600000",
  });
  // A replica that did not start leaves no directory behind.
  started.catch(() => rmSync(dirname(dataDir), { recursive: true, force: true }));
  return { ...(await started), dataDir };
}

async function call(url: string, token: string, method: string, path: string, body: unknown) {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const importBody = (userName: string, email = `${userName}@example.com`, isEmailVerified = true) => ({
  userName,
  profile: { firstName: "Ada", lastName: "Lovelace" },
  email: { email, isEmailVerified },
  hashedPassword: { value: "$2b$04$kZGQ0mOUxwjRc/ZbnXYOy.dvSSx7Rk5vJ/iWzhRtC6jbbYyNOA8M6" },
});

// Several processes on one database is what PostgreSQL is for; the SQLite pass has no such case.
describe.runIf(testPostgresUrl)("two replicas on one PostgreSQL", () => {
  const replicas: Replica[] = [];
  let mailbox: Mailbox;
  let token: string;
  const sharedDir = mkdtempSync(join(tmpdir(), "userport-replicas-"));

  beforeAll(async () => {
    mailbox = await startMailbox();
    const databaseUrl = (await testDatabaseUrl(sharedDir))!;
    const masterKey = randomBytes(32).toString("base64");
    // Started together: both migrate the empty database and race to create the first instance.
    replicas.push(...(await Promise.all([0, 1].map(() => startReplica(databaseUrl, masterKey, mailbox.url)))));
    const tokenFiles = replicas.map((replica) => join(replica.dataDir, "admin.pat")).filter((file) => existsSync(file));
    expect(tokenFiles, "exactly one replica created the instance and holds its token").toHaveLength(1);
    token = readFileSync(tokenFiles[0]!, "utf8").trim();
  }, 60_000);

  afterAll(async () => {
    for (const replica of replicas) replica.child.kill("SIGTERM");
    await Promise.all(
      replicas.map((replica) => new Promise((resolve) => (replica.child.exitCode !== null ? resolve(null) : replica.child.once("exit", resolve)))),
    );
    await mailbox?.stop();
    await dropTestDatabase(sharedDir);
    for (const dir of [sharedDir, ...replicas.map((replica) => dirname(replica.dataDir))]) rmSync(dir, { recursive: true, force: true });
  });

  it("serves one instance: the token of the replica that created it works on both, and a user created on one is read on the other", async () => {
    const created = await call(replicas[0]!.url, token, "POST", "/management/v1/users/human/_import", importBody(`shared-${Date.now()}`));
    expect(created.status).toBe(200);
    const read = await call(replicas[1]!.url, token, "GET", `/management/v1/users/${created.body.userId as string}`, undefined);
    expect(read.status).toBe(200);
    expect((read.body.user as { id: string }).id).toBe(created.body.userId);
  });

  it("lets exactly one of many concurrent imports of one username succeed, across both replicas; the others get ALREADY_EXISTS", async () => {
    for (let round = 0; round < 5; round++) {
      const userName = `race-${round}-${randomBytes(4).toString("hex")}`;
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          call(replicas[i % 2]!.url, token, "POST", "/management/v1/users/human/_import", importBody(userName, `${userName}-${i}@example.com`)),
        ),
      );
      expect(
        results.filter((r) => r.status === 200),
        JSON.stringify(results),
      ).toHaveLength(1);
      const refused = results.filter((r) => r.status !== 200);
      expect(refused).toHaveLength(9);
      for (const r of refused) expect(r).toMatchObject({ status: 409, body: { code: 6 } });
    }
  });

  it("two ImportUsers streams through both replicas with overlapping usernames: each username is created once, the other record fails with ALREADY_EXISTS", async () => {
    const tag = randomBytes(4).toString("hex");
    const names = Array.from({ length: 120 }, (_, i) => `bulk-race-${tag}-${i}`);
    const record = (name: string, stream: number) => ({
      key: `${stream}-${name}`,
      human: {
        username: name,
        profile: { givenName: "Ada", familyName: "Lovelace" },
        email: { email: `${name}-${stream}@example.com`, isVerified: true },
        hashedPassword: { hash: "$2b$04$kZGQ0mOUxwjRc/ZbnXYOy.dvSSx7Rk5vJ/iWzhRtC6jbbYyNOA8M6" },
      },
    });
    // Stream 0 sends the names in order, stream 1 in reverse, so the two meet in the middle;
    // every batch of each holds names the other is committing at the same time.
    const batches = (order: string[], stream: number) =>
      Array.from({ length: order.length / 20 }, (_, b) => order.slice(b * 20, b * 20 + 20).map((name) => record(name, stream)));
    const runs = await Promise.all([
      runImport(replicas[0]!.url, token, "grpc-js", {}, batches(names, 0)),
      runImport(replicas[1]!.url, token, "connect-grpc-h2", {}, batches([...names].reverse(), 1)),
    ]);
    for (const run of runs) {
      expect(run.error).toBeUndefined();
      expect(run.results).toHaveLength(names.length);
    }
    const byName = new Map<string, string[]>();
    for (const run of runs) {
      for (const result of run.results) {
        const name = String(result.key).slice(2);
        byName.set(name, [...(byName.get(name) ?? []), String(result.outcome)]);
        if (result.outcome === "IMPORT_OUTCOME_FAILED") expect(result.error).toMatchObject({ code: 6, id: "V3-DKcYh" });
      }
    }
    for (const name of names) expect(byName.get(name)?.sort(), name).toEqual(["IMPORT_OUTCOME_CREATED", "IMPORT_OUTCOME_FAILED"]);
    // Both streams won some: they really ran at the same time.
    for (const run of runs) expect(run.results.some((r) => r.outcome === "IMPORT_OUTCOME_CREATED")).toBe(true);
    const db = new pg.Client({ connectionString: await testDatabaseUrl(sharedDir) });
    await db.connect();
    try {
      const { rows } = await db.query("SELECT username, count(*)::int AS n FROM users WHERE username LIKE $1 GROUP BY username", [`bulk-race-${tag}-%`]);
      expect(rows).toHaveLength(names.length);
      for (const row of rows) expect(row.n, row.username).toBe(1);
    } finally {
      await db.end();
    }
  });

  it("numbers a user's events without gaps or repeats under concurrent changes through both replicas", async () => {
    const created = await call(replicas[0]!.url, token, "POST", "/management/v1/users/human/_import", importBody(`busy-${Date.now()}`));
    const userId = created.body.userId as string;
    const changes = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        call(replicas[i % 2]!.url, token, "POST", `/management/v1/users/${userId}/metadata/key-${i}`, { value: Buffer.from(`v${i}`).toString("base64") }),
      ),
    );
    expect(
      changes.map((c) => c.status),
      JSON.stringify(changes.filter((c) => c.status !== 200)),
    ).toEqual(changes.map(() => 200));
    const sequences = changes.map((c) => Number((c.body.details as { sequence: string }).sequence)).sort((a, b) => a - b);
    expect(new Set(sequences).size, "no sequence is handed out twice").toBe(24);
    const history = await call(replicas[1]!.url, token, "POST", `/management/v1/users/${userId}/changes/_search`, { query: { limit: 100, asc: true } });
    const recorded = (history.body.result as Array<{ sequence: string }>).map((change) => Number(change.sequence));
    expect(recorded).toEqual(Array.from({ length: recorded.length }, (_, i) => i + 1));
    expect(recorded.length).toBeGreaterThanOrEqual(25);
    for (const sequence of sequences) expect(recorded).toContain(sequence);
  });

  it("refuses to start a replica whose master key is not the one the database's codes are sealed with", async () => {
    const otherKey = randomBytes(32).toString("base64");
    const started = startReplica((await testDatabaseUrl(sharedDir))!, otherKey, mailbox.url);
    await expect(started).rejects.toThrow(
      /the master key \(USERPORT_MASTER_KEY or <data-dir>\/master.key\) is not the one this database's secrets are sealed with/,
    );
  });

  it("keeps serving when the database drops its connections, answering at worst a bare internal error meanwhile", async () => {
    const admin = new pg.Client({ connectionString: await testDatabaseUrl(sharedDir) });
    await admin.connect();
    try {
      // What a PostgreSQL restart or a failover does to every open connection of the replicas:
      // their client connections (not PostgreSQL's own workers on the database, autovacuum's
      // say, which only a superuser may end).
      const { rows } = await admin.query(
        "SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND usename = current_user",
      );
      expect(rows.length, "the replicas had connections open").toBeGreaterThan(0);
    } finally {
      await admin.end();
    }
    const statuses: number[] = [];
    for (const [i, replica] of replicas.entries()) {
      for (let attempt = 0; attempt < 3; attempt++) {
        const result = await call(replica.url, token, "POST", "/management/v1/users/human/_import", importBody(`after-drop-${i}-${attempt}-${Date.now()}`));
        statuses.push(result.status);
        if (result.status !== 200) expect(result.body).toEqual({ code: 13, message: "Internal error", details: [] });
      }
      expect(statuses.at(-1), "the replica serves again on new connections").toBe(200);
    }
    for (const replica of replicas) expect(replica.child.exitCode).toBeNull();
  });

  it("keeps serving when the database ends a connection in the middle of a write", async () => {
    const url = (await testDatabaseUrl(sharedDir))!;
    const locker = new pg.Client({ connectionString: url });
    const admin = new pg.Client({ connectionString: url });
    await locker.connect();
    await admin.connect();
    const replica = replicas[0]!;
    try {
      // The lock holds the replica's write on a checked-out connection until that connection is ended.
      await locker.query("BEGIN");
      await locker.query("LOCK TABLE users IN ACCESS EXCLUSIVE MODE");
      const blocked = call(replica.url, token, "POST", "/management/v1/users/human/_import", importBody(`mid-write-${Date.now()}`));
      let ended = 0;
      for (let attempt = 0; attempt < 100 && ended === 0; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        const { rows } = await admin.query(
          "SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
        );
        ended = rows.length;
      }
      expect(ended, "a write of the replica waited on the lock").toBeGreaterThan(0);
      const answered = await blocked;
      // The write failed with its connection (or was retried on a new one): never a dead process.
      if (answered.status !== 200) expect(answered.body).toEqual({ code: 13, message: "Internal error", details: [] });
    } finally {
      await locker.query("ROLLBACK").catch(() => {});
      await locker.end();
      await admin.end();
    }
    expect(replica.child.exitCode, replica.output()).toBeNull();
    const after = await call(replica.url, token, "POST", "/management/v1/users/human/_import", importBody(`after-mid-write-${Date.now()}`));
    expect(after.status).toBe(200);
  });

  /** The replicas' listening connections (src/store/replica-notices.ts), by backend pid. */
  async function listeners(admin: pg.Client): Promise<number[]> {
    const { rows } = await admin.query<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'userport replica notices'",
    );
    return rows.map((row) => row.pid);
  }

  /** The listening connections once both replicas listen on connections other than `ended` (a replica listens again a second after it lost one). */
  async function bothListening(admin: pg.Client, ended: number[] = []): Promise<number[]> {
    let pids: number[] = [];
    for (let attempt = 0; attempt < 100; attempt++) {
      pids = (await listeners(admin)).filter((pid) => !ended.includes(pid));
      if (pids.length === 2) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return pids;
  }

  /**
   * A service user with ORG_OWNER and a token, made through replica 0; its token is then used on
   * replica 1 (which remembers its caller), removed through replica 0, and must be refused by
   * replica 1 without waiting out the ten minutes it may remember callers for.
   */
  async function removedTokenRefusedOnTheOtherReplica(tag: string) {
    const [first, second] = [replicas[0]!.url, replicas[1]!.url];
    const machine = await call(first, token, "POST", "/management/v1/users/machine", { userName: `robot-${tag}`, name: "Robot" });
    expect(machine.status, JSON.stringify(machine.body)).toBe(200);
    const userId = machine.body.userId as string;
    expect((await call(first, token, "POST", "/management/v1/orgs/me/members", { userId, roles: ["ORG_OWNER"] })).status).toBe(200);
    const pat = await call(first, token, "POST", `/management/v1/users/${userId}/pats`, {});
    expect(pat.status, JSON.stringify(pat.body)).toBe(200);
    const robotToken = pat.body.token as string;
    const readSelf = (url: string) => call(url, robotToken, "GET", `/management/v1/users/${userId}`, undefined);
    expect((await readSelf(second)).status, "the token works on the other replica, which now remembers its caller").toBe(200);

    expect((await call(first, token, "DELETE", `/management/v1/users/${userId}/pats/${pat.body.tokenId as string}`, {})).status).toBe(200);
    expect((await readSelf(first)).status, "the replica that removed it refuses it at once").toBe(401);
    let refused: Awaited<ReturnType<typeof readSelf>> | undefined;
    // The notice takes milliseconds; ten seconds bound the wait, far below the ten minutes of memory.
    for (let attempt = 0; attempt < 200 && refused === undefined; attempt++) {
      const answer = await readSelf(second);
      if (answer.status === 401) refused = answer;
      else {
        expect(answer.status).toBe(200);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    expect(refused?.body, "the other replica refuses the removed token once the notice arrived").toMatchObject({ code: 16 });
  }

  it("refuses a token removed through one replica on the other as soon as the notice arrives, though replicas remember callers for minutes", async () => {
    const admin = new pg.Client({ connectionString: await testDatabaseUrl(sharedDir) });
    await admin.connect();
    try {
      // (An earlier test ended every connection of the replicas: they may be about to listen again.)
      expect(await bothListening(admin), "each replica keeps one connection listening").toHaveLength(2);
    } finally {
      await admin.end();
    }
    await removedTokenRefusedOnTheOtherReplica(randomBytes(4).toString("hex"));
  });

  it("listens again when the database ends a replica's listening connection, and hears notices as before", async () => {
    const admin = new pg.Client({ connectionString: await testDatabaseUrl(sharedDir) });
    await admin.connect();
    try {
      const before = await bothListening(admin);
      expect(before).toHaveLength(2);
      await admin.query("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", [before]);
      expect(await bothListening(admin, before), "both replicas listen again, on new connections").toHaveLength(2);
    } finally {
      await admin.end();
    }
    await removedTokenRefusedOnTheOtherReplica(randomBytes(4).toString("hex"));
    for (const replica of replicas) expect(replica.child.exitCode).toBeNull();
  });

  it("delivers each outbox message once, though both replicas dispatch", async () => {
    const users = Array.from({ length: 12 }, (_, i) => `mail-${i}-${randomBytes(3).toString("hex")}`);
    const created = await Promise.all(
      users.map((userName, i) =>
        call(replicas[i % 2]!.url, token, "POST", "/management/v1/users/human/_import", importBody(userName, `${userName}@example.com`, false)),
      ),
    );
    expect(created.map((c) => c.status)).toEqual(users.map(() => 200));
    for (const userName of users) await mailbox.waitFor(`${userName}@example.com`);
    // Not a pause for some poll cycles (the replicas are processes of their own, with their own
    // clocks) but the outbox's own record: a message is marked sent only under the claim that sent
    // it (src/store/outbox-store.ts markSent), so once no message is unsent, every send is done.
    const db = new pg.Client({ connectionString: await testDatabaseUrl(sharedDir) });
    await db.connect();
    try {
      const unsent = async () => (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NULL")).rows[0]!.n;
      await expect.poll(unsent, { timeout: 10_000, interval: 20 }).toBe(0);
      const sent = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM outbox WHERE sent_at IS NOT NULL");
      expect(sent.rows[0]!.n).toBeGreaterThanOrEqual(users.length);
    } finally {
      await db.end();
    }
    for (const userName of users) expect(mailbox.to(`${userName}@example.com`), userName).toHaveLength(1);
  });
});
