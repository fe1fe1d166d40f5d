import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { UniqueViolation } from "../src/domain/ports.js";
import type { CommitQueue } from "../src/store/commit-queue.js";
import { type Db, openSqlite } from "../src/store/db.js";
import { openPostgres } from "../src/store/postgres.js";
import { param, paramList, prepare, type WriteStatement } from "../src/store/prepared.js";
import { dropTestDatabase, testDatabaseUrl, testPostgresUrl } from "./helpers/database.js";

/** How each store is opened, and how another connection (another process) counts claims in it. */
const STORES = {
  sqlite: {
    open: (dir: string) => openSqlite(dir),
    async countFromOutside(dir: string): Promise<number> {
      const other = new Database(join(dir, "userport.sqlite"), { readonly: true });
      try {
        return (other.prepare("SELECT count(*) AS n FROM unique_constraints").get() as { n: number }).n;
      } finally {
        other.close();
      }
    },
    brokenStatement: { sql: "INSERT INTO no_such_table VALUES (?)", error: /no such table/ },
  },
  postgres: {
    open: async (dir: string) => openPostgres((await testDatabaseUrl(dir))!, 4),
    async countFromOutside(dir: string): Promise<number> {
      const other = new pg.Client({ connectionString: await testDatabaseUrl(dir) });
      await other.connect();
      try {
        return Number((await other.query("SELECT count(*) AS n FROM unique_constraints")).rows[0].n);
      } finally {
        await other.end();
      }
    },
    brokenStatement: { sql: "INSERT INTO no_such_table VALUES ($1)", error: /relation "no_such_table" does not exist/ },
  },
};

// SQLite's WAL is folded back into the database file by a checkpointer thread of its own
// (src/store/commit-queue.ts), not by the writer after its commits.
describe("the SQLite store's checkpointer", () => {
  it("puts committed rows into the database file itself, long before the writer's own checkpoint would", async () => {
    const dir = mkdtempSync(join(tmpdir(), "userport-checkpoint-"));
    const store = await openSqlite(dir);
    try {
      const writes = store.writes as CommitQueue;
      const claim = (value: string) =>
        store.db.insertInto("unique_constraints").values({ instance_id: "i", kind: "username", value, owner_id: value }).compile();
      // A thousand units (CHECKPOINT_EVERY_UNITS) in ten commits: some hundred pages of WAL,
      // where the writer's own checkpoint waits for 10,000.
      for (let batch = 0; batch < 10; batch++) {
        await writes.runStaged([writes.stageUnits(Array.from({ length: 100 }, (_, i) => [claim(`folded-${batch}-${i}`)]))]);
      }
      await writes.checkpointed();
      // The database file alone, without its WAL, copied aside: it holds every row.
      const copy = join(dir, "file-only.sqlite");
      copyFileSync(join(dir, "userport.sqlite"), copy);
      const fileOnly = new Database(copy);
      try {
        const { n } = fileOnly.prepare("SELECT count(*) AS n FROM unique_constraints WHERE value LIKE 'folded-%'").get() as { n: number };
        expect(n).toBe(1000);
      } finally {
        fileOnly.close();
      }
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the SQLite store's commit queue", () => {
  it("sends a command at once to an idle writer, and gathers those that follow in the same turn into the next batch", async () => {
    const dir = mkdtempSync(join(tmpdir(), "userport-batches-"));
    const store = await openSqlite(dir);
    try {
      const writes = store.writes as CommitQueue;
      const sizes: number[] = [];
      writes.onBatch = (size) => sizes.push(size);
      const claim = (value: string) =>
        store.db.insertInto("unique_constraints").values({ instance_id: "i", kind: "username", value, owner_id: value }).compile();
      await Promise.all(Array.from({ length: 6 }, (_, i) => writes.run([claim(`turn-${i}`)])));
      // Handed over as each arrived, the second would have gone alone too: [1, 1, 4].
      expect(sizes).toEqual([1, 5]);
      await writes.run([claim("alone")]);
      expect(sizes).toEqual([1, 5, 1]);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// SQLite always; PostgreSQL too on the suite's PostgreSQL pass.
describe.each(testPostgresUrl ? (["sqlite", "postgres"] as const) : (["sqlite"] as const))("the %s store's write path", (kind) => {
  const { open, countFromOutside, brokenStatement } = STORES[kind];
  let dir: string;
  let store: Db;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "userport-store-"));
    store = await open(dir);
  });
  afterEach(async () => {
    await store.close();
    await dropTestDatabase(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  const claim = (value: string, owner: string) =>
    store.db.insertInto("unique_constraints").values({ instance_id: "i", kind: "username", value, owner_id: owner }).compile();
  const claims = () => store.db.selectFrom("unique_constraints").select(["value", "owner_id"]).where("instance_id", "=", "i").orderBy("value").execute();

  it("rolls back only the failing command of a shared commit, and reports which rule it broke", async () => {
    await store.writes.run([claim("taken", "first")]);
    // Called in one turn of the event loop: the fillers go first, so the three after them wait
    // and are committed together in one batch (on SQLite, with the second filler).
    const results = await Promise.allSettled([
      store.writes.run([claim("filler-1", "f")]),
      store.writes.run([claim("filler-2", "f")]),
      store.writes.run([claim("alpha", "a")]),
      // Its first statement succeeds, its second breaks the rule: neither may remain.
      store.writes.run([claim("beta", "b"), { ...claim("taken", "b"), uniqueKind: "username" }]),
      store.writes.run([claim("gamma", "c")]),
    ]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "fulfilled", "rejected", "fulfilled"]);
    const failure = (results[3] as PromiseRejectedResult).reason;
    expect(failure).toBeInstanceOf(UniqueViolation);
    expect(failure.kind).toBe("username");
    expect(await claims()).toEqual([
      { value: "alpha", owner_id: "a" },
      { value: "filler-1", owner_id: "f" },
      { value: "filler-2", owner_id: "f" },
      { value: "gamma", owner_id: "c" },
      { value: "taken", owner_id: "first" },
    ]);
  });

  // Consecutive insert-only commands are written table by table in multi-row inserts
  // (write-worker.cjs, postgres.ts); a failing one must still fail alone, with its own rule.
  it.each([
    ["in one part", (units: WriteStatement[][]) => store.writes.runStaged([store.writes.stageUnits(units)])],
    [
      // As a bulk import hands a batch over a part at a time (src/domain/bulk-import.ts).
      "staged in parts",
      (units: WriteStatement[][]) =>
        store.writes.runStaged([units.slice(0, 100), units.slice(100, 220), [], units.slice(220)].map((part) => store.writes.stageUnits(part))),
    ],
  ])("runs many insert-only commands as one (%s): each failing one alone, the others committed in command order", async (_how, runStaged) => {
    await store.writes.run([claim("stored", "first")]);
    const event = (owner: string, n: number) =>
      store.db
        .insertInto("events")
        .values({
          instance_id: "i",
          aggregate_type: "user",
          aggregate_id: owner,
          sequence: n,
          type: "user.human.added",
          payload: "{}",
          creator: "c",
          created_at: n,
          resource_owner: "o",
        })
        .compile();
    // 300 commands: more rows per table than one multi-row statement holds.
    const units = Array.from({ length: 300 }, (_, n) => {
      const value = n === 150 ? "u-7" : n === 200 ? "stored" : `u-${n}`;
      return [event(`owner-${n}`, 1), { ...claim(value, `owner-${n}`), uniqueKind: "username" }, event(`owner-${n}`, 2)];
    });
    const outcomes = await runStaged(units);
    expect(outcomes).toHaveLength(300);
    const failed = outcomes.flatMap((outcome, n) => (outcome === undefined ? [] : [n]));
    expect(failed).toEqual([150, 200]);
    expect(outcomes[150]).toBeInstanceOf(UniqueViolation);
    expect((outcomes[200] as UniqueViolation).kind).toBe("username");
    const owners = (await claims()).map((c) => c.owner_id);
    expect(owners).toHaveLength(299);
    expect(owners).not.toContain("owner-150");
    expect(owners).not.toContain("owner-200");
    // Events in the order of their commands, and none of the failed ones.
    const events = await store.db.selectFrom("events").select(["aggregate_id", "sequence"]).where("instance_id", "=", "i").orderBy("position").execute();
    const expected = units.flatMap((_, n) =>
      n === 150 || n === 200
        ? []
        : [
            { aggregate_id: `owner-${n}`, sequence: 1 },
            { aggregate_id: `owner-${n}`, sequence: 2 },
          ],
    );
    expect(events).toEqual(expected);
  });

  // SQLite's writer gets its units as UTF-8 bytes (src/store/commit-queue.ts): every character
  // must come back as written, beyond Latin-1 and outside the basic plane too.
  it("stores text beyond ASCII exactly as written, alone and staged in parts", async () => {
    const texts = ["Zoë Ångström", "Łódź 東京 Δ", "emoji 😀🧑‍💻", 'quote " and \\ backslash', "nul-free \u2028 line sep"];
    await store.writes.run([claim(texts[0]!, "alone")]);
    await store.writes.runStaged([
      store.writes.stageUnits([[claim(texts[1]!, "part-1")], [claim(texts[2]!, "part-1")]]),
      store.writes.stageUnits([[claim(texts[3]!, "part-2")], [claim(texts[4]!, "part-2")]]),
    ]);
    expect((await claims()).map((c) => c.value).sort()).toEqual([...texts].sort());
  });

  it("rolls back a lone failing command entirely, and reports which rule it broke", async () => {
    await store.writes.run([claim("taken", "first")]);
    await expect(store.writes.run([claim("delta", "d"), { ...claim("taken", "d"), uniqueKind: "username" }])).rejects.toMatchObject({
      name: "UniqueViolation",
      kind: "username",
    });
    expect(await claims()).toEqual([{ value: "taken", owner_id: "first" }]);
  });

  it("resolves only once the data is committed for every other connection to see", async () => {
    const before = await countFromOutside(dir);
    await Promise.all(Array.from({ length: 200 }, (_, i) => store.writes.run([claim(`user-${i}`, `${i}`)])));
    expect(await countFromOutside(dir)).toBe(before + 200);
  });

  it("commits what is queued before it closes", async () => {
    const before = await countFromOutside(dir);
    const pending = Array.from({ length: 50 }, (_, i) => store.writes.run([claim(`late-${i}`, `${i}`)]));
    await store.close();
    await Promise.all(pending);
    expect(await countFromOutside(dir)).toBe(before + 50);
    store = await open(dir); // for afterEach
  });

  it("reports a statement that is not a unique violation as the error it is", async () => {
    const broken = { sql: brokenStatement.sql, parameters: [1], uniqueKind: "username" };
    await expect(store.writes.run([broken])).rejects.toThrow(brokenStatement.error);
    await store.writes.run([claim("still-writable", "x")]);
    expect((await claims()).map((c) => c.value)).toEqual(["still-writable"]);
  });

  // PostgreSQL only: SQLite's one writer runs every batch in order.
  it.runIf(kind === "postgres")("runs units that waive the order while the batch before them is held up; units in order commit after it", async () => {
    await store.writes.run([claim("held", "first")]);
    // Another connection holds the row a batch is about to change: that batch waits for it.
    const outside = new pg.Client({ connectionString: await testDatabaseUrl(dir) });
    await outside.connect();
    try {
      await outside.query("BEGIN");
      await outside.query("SELECT * FROM unique_constraints WHERE value = 'held' FOR UPDATE");
      const change = store.db.updateTable("unique_constraints").set({ owner_id: "second" }).where("value", "=", "held").compile();
      const held = store.writes.run([change]);
      const waiting = async () =>
        Number((await outside.query("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")).rows[0].n);
      for (let tries = 0; (await waiting()) === 0; tries++) {
        expect(tries, "the first batch waits for the row").toBeLessThan(200);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      // Units that waive the order commit meanwhile; in order they would wait behind the held batch.
      await expect(store.writes.runStaged([store.writes.stageUnits([[claim("free", "third")]])], { unordered: true })).resolves.toEqual([undefined]);
      const ordered = store.writes.runStaged([store.writes.stageUnits([[claim("later", "fourth")]])]);
      const committed = async (value: string) =>
        Number((await outside.query("SELECT count(*) AS n FROM unique_constraints WHERE value = $1", [value])).rows[0].n);
      expect(await committed("free")).toBe(1);
      await outside.query("COMMIT");
      await Promise.all([held, ordered]);
      expect(await committed("later")).toBe(1);
      expect(Number((await outside.query("SELECT count(*) AS n FROM unique_constraints WHERE owner_id = 'second'")).rows[0].n)).toBe(1);
    } finally {
      await outside.end();
    }
  });
});

describe("prepared queries", () => {
  it("bind values by name in the order the SQL needs them", async () => {
    const dir = mkdtempSync(join(tmpdir(), "userport-store-"));
    const store = await openSqlite(dir);
    try {
      const byOwner = prepare<{ owner: string; kind: string }>(
        store.db.selectFrom("unique_constraints").select("value").where("kind", "=", param<string>("kind")).where("owner_id", "=", param<string>("owner")),
      );
      expect(byOwner.bind({ owner: "o", kind: "k" }).parameters).toEqual(["k", "o"]);
      const inList = prepare<{ kind: string; values: string[] }>(
        store.db
          .selectFrom("unique_constraints")
          .select("value")
          .where("value", "in", paramList<string>("values", 3))
          .where("kind", "=", param<string>("kind")),
      );
      expect(inList.bind({ kind: "k", values: ["a", "b", "c"] }).parameters).toEqual(["a", "b", "c", "k"]);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuse a query with a literal value, which would be bound into every use", () => {
    const dir = mkdtempSync(join(tmpdir(), "userport-store-"));
    return openSqlite(dir).then(async (store) => {
      try {
        expect(() => prepare(store.db.selectFrom("unique_constraints").select("value").where("kind", "=", "literal"))).toThrow(/literal parameter/);
      } finally {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
