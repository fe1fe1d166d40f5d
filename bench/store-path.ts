/**
 * The import's database work alone (no HTTP, no API layer), to size the store's share of an
 * import and what statement caching or a synchronous write path would save. Diagnostic only: the
 * headline figures come from bench/import-throughput.ts.
 *
 *   npx tsx bench/store-path.ts            # STORE_SECONDS=5 STORE_CONCURRENCY=50 by default
 *
 * Variants, each on a fresh store in the OS temp dir, with `STORE_CONCURRENCY` callers each
 * keeping one import in flight (as 50 HTTP connections would):
 *   kysely         src/store as it is: the import's 3 reads (token, memberships, org) through
 *                  Kysely, then createUser() through the group-commit queue (one savepoint each).
 *   kysely+cache   the same, with better-sqlite3's prepare() memoised per SQL text (Kysely's
 *                  SQLite driver prepares every query afresh).
 *   raw            the same reads and rows with prepared statements kept, and the batch written in
 *                  one synchronous better-sqlite3 transaction (a nested transaction, i.e. a
 *                  savepoint, per import), still one durable commit per batch.
 * Everything runs on this one thread, so CPU per import is this process's CPU time / imports.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import Database from "better-sqlite3";
import { findPrincipal } from "../src/store/access-store.js";
import { openSqlite } from "../src/store/db.js";
import { createUserStore, findOrg } from "../src/store/user-store.js";
import type { NewUser } from "../src/domain/store-port.js";

const seconds = Number(process.env.STORE_SECONDS ?? 5);
const concurrency = Number(process.env.STORE_CONCURRENCY ?? 50);
const INSTANCE = "inst1";
const ORG = "org1";
const ADMIN = "admin1";
const DIGEST = "digest-of-the-admin-token";
const HASH = "$2b$10$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234";

function newUser(n: number): NewUser {
  const username = `store-${n}`;
  const at = Date.now();
  return {
    user: {
      instanceId: INSTANCE,
      id: `u${n}`,
      orgId: ORG,
      type: "human",
      state: "ACTIVE",
      username,
      createdAt: at,
      changedAt: at,
      sequence: 2,
      human: {
        profile: { givenName: "Bench", familyName: "User", nickName: "", displayName: `Bench ${username}`, preferredLanguage: "en", gender: 0 },
        email: { address: `${username}@example.com`, verified: true },
        phone: { number: "", verified: false },
        passwordSet: true,
        passwordChangeRequired: false,
        passwordChangedAt: at,
      },
    },
    passwordHash: HASH,
    uniques: [{ kind: "username", value: username }],
    events: [
      { type: "user.human.added", payload: { userName: username, firstName: "Bench", lastName: "User", email: `${username}@example.com`, passwordSet: true } },
      { type: "user.human.email.verified", payload: {} },
    ],
    codes: [],
    creator: ADMIN,
  };
}

/** The instance, org, admin, membership and token the reads look up. */
async function seed(db: Awaited<ReturnType<typeof openSqlite>>) {
  await db.writes.run(async (trx) => {
    await trx.insertInto("orgs").values({ instance_id: INSTANCE, id: ORG, name: "org", created_at: 0 }).execute();
    await trx
      .insertInto("users")
      .values({
        instance_id: INSTANCE, id: ADMIN, org_id: ORG, type: "machine", state: "ACTIVE", username: "admin",
        given_name: "", family_name: "", nick_name: "", display_name: "", preferred_language: "", gender: 0,
        email: "", email_verified: 0, phone: "", phone_verified: 0, password_hash: null, password_change_required: 0,
        password_changed_at: null, machine_name: "", machine_description: "", created_at: 0, changed_at: 0, sequence: 1,
      })
      .execute();
    await trx.insertInto("members").values({ instance_id: INSTANCE, org_id: "", user_id: ADMIN, roles: "IAM_OWNER" }).execute();
    await trx
      .insertInto("personal_access_tokens")
      .values({ instance_id: INSTANCE, id: "t1", user_id: ADMIN, digest: DIGEST, expires_at: Date.now() + 1e9, created_at: 0 })
      .execute();
  });
}

async function drive(importOne: (n: number) => Promise<void>) {
  let n = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) await importOne(++n);
    }),
  );
  const wall = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { imports: n, rps: n / wall, cpuMsPerImport: (cpu.user + cpu.system) / 1000 / n };
}

/** Counts COMMITs by wrapping prepare (Kysely prepares every statement it runs). */
let commits = 0;
const proto = Database.prototype as unknown as { prepare: (this: Database.Database, sql: string) => Database.Statement };
const originalPrepare = proto.prepare;
const countingPrepare = function (this: Database.Database, sql: string) {
  if (sql === "commit") commits++;
  return originalPrepare.call(this, sql);
};
const caches = new WeakMap<object, Map<string, Database.Statement>>();
const cachingPrepare = function (this: Database.Database, sql: string) {
  if (sql === "commit") commits++;
  let cache = caches.get(this);
  if (!cache) caches.set(this, (cache = new Map()));
  let statement = cache.get(sql);
  if (!statement) cache.set(sql, (statement = originalPrepare.call(this, sql)));
  return statement;
};

async function kyselyVariant(cached: boolean) {
  const dir = mkdtempSync(join(tmpdir(), "userport-store-"));
  proto.prepare = cached ? cachingPrepare : countingPrepare;
  const db = await openSqlite(dir);
  await seed(db);
  const store = createUserStore(db);
  commits = 0;
  const result = await drive(async (n) => {
    await findPrincipal(db.db, DIGEST, Date.now());
    await findOrg(db.db, INSTANCE, ORG);
    await store.createUser(newUser(n));
  });
  const made = commits;
  await db.close();
  proto.prepare = originalPrepare;
  rmSync(dir, { recursive: true, force: true });
  return { ...result, commits: made };
}

async function rawVariant() {
  const dir = mkdtempSync(join(tmpdir(), "userport-store-"));
  const migrated = await openSqlite(dir); // the schema, via the real migrations
  await seed(migrated);
  await migrated.close();
  const sqlite = new Database(join(dir, "userport.sqlite"));
  sqlite.pragma("journal_mode = WAL");
  sqlite.pragma("synchronous = FULL");
  const principal = sqlite.prepare(
    `SELECT t.instance_id, t.user_id, t.expires_at, u.org_id, u.state FROM personal_access_tokens t
     JOIN users u ON u.instance_id = t.instance_id AND u.id = t.user_id WHERE t.digest = ?`,
  );
  const members = sqlite.prepare("SELECT org_id, roles FROM members WHERE instance_id = ? AND user_id = ?");
  const org = sqlite.prepare("SELECT instance_id, id, name FROM orgs WHERE instance_id = ? AND id = ?");
  const insertUser = sqlite.prepare(
    `INSERT INTO users (instance_id, id, org_id, type, state, username, given_name, family_name, nick_name, display_name,
       preferred_language, gender, email, email_verified, phone, phone_verified, password_hash, password_change_required,
       password_changed_at, machine_name, machine_description, created_at, changed_at, sequence)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertUnique = sqlite.prepare("INSERT INTO unique_constraints (instance_id, kind, value, owner_id) VALUES (?, ?, ?, ?)");
  const insertEvent = sqlite.prepare(
    `INSERT INTO events (instance_id, aggregate_type, aggregate_id, sequence, type, payload, creator, created_at)
     VALUES (?, 'user', ?, ?, ?, ?, ?, ?)`,
  );
  const writeOne = sqlite.transaction((change: NewUser) => {
    const { user } = change;
    const h = user.human!;
    insertUser.run(
      user.instanceId, user.id, user.orgId, user.type, user.state, user.username, h.profile.givenName, h.profile.familyName,
      h.profile.nickName, h.profile.displayName, h.profile.preferredLanguage, h.profile.gender, h.email.address,
      h.email.verified ? 1 : 0, h.phone.number, h.phone.verified ? 1 : 0, change.passwordHash ?? null,
      h.passwordChangeRequired ? 1 : 0, h.passwordChangedAt ?? null, "", "", user.createdAt, user.changedAt, user.sequence,
    );
    for (const u of change.uniques) insertUnique.run(user.instanceId, u.kind, u.value, user.id);
    change.events.forEach((e, i) =>
      insertEvent.run(user.instanceId, user.id, i + 1, e.type, JSON.stringify(e.payload), change.creator, user.createdAt),
    );
  });
  let pending: Array<{ change: NewUser; resolve: () => void; reject: (e: unknown) => void }> = [];
  let scheduled = false;
  const writeBatch = sqlite.transaction((batch: typeof pending) =>
    batch.map((item) => {
      try {
        writeOne(item.change); // nested: a savepoint per import
        return undefined;
      } catch (error) {
        return error;
      }
    }),
  );
  let rawCommits = 0;
  const flush = () => {
    scheduled = false;
    const batch = pending;
    pending = [];
    const outcomes = writeBatch(batch);
    rawCommits++;
    batch.forEach((item, i) => (outcomes[i] ? item.reject(outcomes[i]) : item.resolve()));
  };
  const result = await drive(async (n) => {
    principal.get(DIGEST);
    members.all(INSTANCE, ADMIN);
    org.get(INSTANCE, ORG);
    await new Promise<void>((resolve, reject) => {
      pending.push({ change: newUser(n), resolve, reject });
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    });
  });
  sqlite.close();
  rmSync(dir, { recursive: true, force: true });
  return { ...result, commits: rawCommits };
}

console.log(`store path only: ${seconds}s per variant, ${concurrency} imports in flight, SQLite WAL synchronous=FULL`);
console.log("| variant | imports/s | CPU ms per import | commits | imports per commit |");
console.log("|---|---:|---:|---:|---:|");
for (const [name, run] of [
  ["kysely (src/store as is)", () => kyselyVariant(false)],
  ["kysely + statement cache", () => kyselyVariant(true)],
  ["raw better-sqlite3, cached statements, sync batch", rawVariant],
] as const) {
  const r = await run();
  console.log(`| ${name} | ${r.rps.toFixed(0)} | ${r.cpuMsPerImport.toFixed(3)} | ${r.commits} | ${(r.imports / r.commits).toFixed(1)} |`);
}
