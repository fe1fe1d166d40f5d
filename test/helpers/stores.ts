/**
 * The stores the port contract suites (test/ports/) run against: SQLite in a temporary
 * directory always, and PostgreSQL too when USERPORT_TEST_DATABASE_URL names a server (the
 * suite's PostgreSQL pass). Each suite is written once and run per store:
 *
 *     describe.each(storesUnderTest)("UserStore on %s", (kind) => {
 *       const store = useStore(kind);
 *       it("…", async () => { const users = createUserStore(store()); … });
 *     });
 *
 * The stores are opened as the server opens them (openSqlite / openPostgres, migrations
 * included; on PostgreSQL each suite gets a copy of a database migrated once), and the ports are
 * created with the store modules' own factories on them.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, afterEach, beforeAll, beforeEach } from "vitest";
import type { NewEvent, NewUser, User } from "../../src/domain/ports.js";
import type { Org, OrgDomain } from "../../src/domain/orgs.js";
import { usernameClaim } from "../../src/domain/users.js";
import { type Db, openSqlite } from "../../src/store/db.js";
import { openPostgres } from "../../src/store/postgres.js";
import { dropTestDatabase, testDatabaseUrl, testPostgresUrl } from "./database.js";

export type StoreKind = "sqlite" | "postgres";

/** SQLite always; PostgreSQL too on the suite's PostgreSQL pass. */
export const storesUnderTest: readonly StoreKind[] = testPostgresUrl ? ["sqlite", "postgres"] : ["sqlite"];

export interface OpenedStore {
  db: Db;
  /** Closes the store and removes its data (the directory; on PostgreSQL its database). */
  dispose(): Promise<void>;
}

/**
 * PostgreSQL databases of the contracts sort text by a language's rules (as databases created
 * with a server's usual en_US locale do), unlike the C locale test servers often have: the store
 * must give its text columns the binary collation itself (migration 0009) to order as SQLite does.
 */
const LOCALE_AWARE = "TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'";

/** Any number, the same in every test process: the template is built under this advisory lock. */
const TEMPLATE_LOCK = 4_242_017;
let template: Promise<string> | undefined;

/**
 * A PostgreSQL database migrated by openPostgres once, which each suite's database copies
 * (CREATE DATABASE … TEMPLATE): a copy is much cheaper than running every migration again per
 * suite. It is named after the migrations' source, so a changed migration builds a new one, and
 * it is built under a different name and renamed when complete, so a run that stopped half-way
 * never leaves a half-migrated template behind.
 */
function postgresTemplate(): Promise<string> {
  template ??= (async () => {
    const source = readFileSync(new URL("../../src/store/migrations.ts", import.meta.url));
    const name = `userport_contracts_${createHash("sha256").update(source).digest("hex").slice(0, 16)}`;
    const admin = new pg.Client({ connectionString: testPostgresUrl });
    await admin.connect();
    try {
      await admin.query("SELECT pg_advisory_lock($1)", [TEMPLATE_LOCK]);
      const found = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
      if (found.rowCount === 0) {
        const building = `${name}_building`;
        await admin.query(`DROP DATABASE IF EXISTS ${building}`);
        await admin.query(`CREATE DATABASE ${building} ${LOCALE_AWARE}`);
        const url = new URL(testPostgresUrl!);
        url.pathname = `/${building}`;
        await (await openPostgres(url.toString(), 2)).close();
        await admin.query(`ALTER DATABASE ${building} RENAME TO ${name}`);
      }
      return name;
    } finally {
      await admin.query("SELECT pg_advisory_unlock($1)", [TEMPLATE_LOCK]).catch(() => {});
      await admin.end();
    }
  })();
  return template;
}

/** Opens a fresh, migrated store of `kind` in a directory (and on PostgreSQL a database) of its own. */
export async function openStore(kind: StoreKind): Promise<OpenedStore> {
  const dir = mkdtempSync(join(tmpdir(), "userport-ports-"));
  try {
    const db = kind === "sqlite" ? await openSqlite(dir) : await openPostgres((await testDatabaseUrl(dir, `TEMPLATE ${await postgresTemplate()}`))!, 4);
    return {
      db,
      async dispose() {
        await db.close();
        await dropTestDatabase(dir);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await dropTestDatabase(dir);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Opens a store of `kind` for the calling describe block and closes it after: one for the whole
 * block (tests keep apart by using ids of their own, see {@link ids}), or with `perTest` a fresh
 * one for every test (for ports whose reads span the whole store, like the outbox's).
 */
export function useStore(kind: StoreKind, { perTest = false } = {}): () => Db {
  let opened: OpenedStore | undefined;
  const open = async () => {
    opened = await openStore(kind);
  };
  const dispose = async () => {
    await opened?.dispose();
    opened = undefined;
  };
  if (perTest) {
    beforeEach(open);
    afterEach(dispose);
  } else {
    beforeAll(open);
    afterAll(dispose);
  }
  return () => {
    if (!opened) throw new Error("the store is not open yet");
    return opened.db;
  };
}

let counter = 0;
/** Ids no other test of the run uses: `ids("user")` is like "user-3-9f2c1a". */
export function ids(prefix: string): string {
  counter++;
  return `${prefix}-${counter}-${randomBytes(3).toString("hex")}`;
}

/** A fixed clock reading, far from 0 so that "unset" and "at the epoch" differ. */
export const T0 = Date.UTC(2026, 0, 1);

/**
 * What the domain writes to create a human (src/domain/users.ts prepareHuman), reduced to the
 * rows a contract needs; `overrides` and `human` replace parts of it.
 */
export function newHuman(
  at: { instanceId: string; orgId: string; id?: string; username?: string; firstSequence?: number },
  overrides: Partial<NewUser> = {},
): NewUser {
  const id = at.id ?? ids("user");
  const username = at.username ?? ids("name");
  const firstSequence = at.firstSequence ?? 1;
  const events: NewEvent[] = overrides.events ?? [{ type: "user.human.added", payload: { userName: username } }];
  const user: User = {
    instanceId: at.instanceId,
    id,
    orgId: at.orgId,
    type: "human",
    state: "ACTIVE",
    username,
    createdAt: T0,
    changedAt: T0,
    sequence: firstSequence + events.length - 1,
    human: {
      profile: { givenName: "Ada", familyName: "Lovelace", nickName: "", displayName: "Ada Lovelace", preferredLanguage: "en", gender: 0 },
      email: { address: `${username}@example.com`, verified: true },
      phone: { number: "", verified: false },
      passwordSet: false,
      passwordChangeRequired: false,
      passwordChangedAt: undefined,
    },
  };
  return {
    user,
    passwordHash: undefined,
    uniques: [usernameClaim(username, at.orgId, false)],
    events,
    firstSequence,
    codes: [],
    creator: "creator-1",
    ...overrides,
  };
}

/** What the domain writes to create a machine user (src/domain/users.ts prepareMachine). */
export function newMachine(at: { instanceId: string; orgId: string; id?: string; username?: string }): NewUser {
  const id = at.id ?? ids("machine");
  const username = at.username ?? ids("svc");
  return {
    user: {
      instanceId: at.instanceId,
      id,
      orgId: at.orgId,
      type: "machine",
      state: "ACTIVE",
      username,
      createdAt: T0,
      changedAt: T0,
      sequence: 1,
      machine: { name: "a service", description: "" },
    },
    passwordHash: undefined,
    uniques: [usernameClaim(username, at.orgId, false)],
    events: [{ type: "user.machine.added", payload: { userName: username } }],
    firstSequence: 1,
    codes: [],
    creator: "creator-1",
  };
}

/** An organisation as src/domain/orgs.ts creates it, with its generated (verified, primary) domain. */
export function newOrg(instanceId: string, name = ids("Org")): { org: Org; domain: OrgDomain } {
  const id = ids("org");
  return {
    org: {
      instanceId,
      id,
      name,
      state: "ACTIVE",
      createdAt: T0,
      changedAt: T0,
      sequence: 1,
      primaryDomain: "",
      userLoginMustBeDomain: false,
    },
    domain: {
      orgId: id,
      domain: `${id}.example.test`,
      verified: true,
      primary: true,
      validationType: 0,
      createdAt: T0,
      changedAt: T0,
    },
  };
}

/** Awaits `promise`, which must reject, and returns its reason (fails the test if it resolves). */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected the promise to reject, but it resolved");
}
