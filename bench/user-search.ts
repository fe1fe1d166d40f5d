/**
 * User search latency of userport over 100,000 users, against a baseline measured in the same run.
 *
 *   npx tsx bench/user-search.ts                 # or: node --import tsx bench/user-search.ts
 *   BENCH_USERS=100000 BENCH_REQUESTS=2000 BENCH_WARMUP_REQUESTS=200 npx tsx bench/user-search.ts
 *   USERPORT_TEST_DATABASE_URL=postgres://… BENCH_STORE=postgres npx tsx bench/user-search.ts
 *
 * BENCH_STORE=postgres runs the same on a fresh PostgreSQL database (created on the server that
 * USERPORT_TEST_DATABASE_URL names, dropped afterwards), with its plans after ANALYZE.
 *
 * 1. Seeds BENCH_USERS human users into the default organisation of a fresh store, through the
 *    store's own write path (`createUserStore(...).createUser`, group-committed, thousands in
 *    flight), then closes the store.
 * 2. Starts userport on that data directory (`startServer`, as `userport serve` does).
 * 3. From a worker thread (so the client never shares the server's event loop), sends each phase's
 *    requests one at a time over HTTP/1.1 keep-alive, each with a different random user, and
 *    records the latency of every request after the warm-up:
 *      baseline   GET /healthz
 *      by-id      GetUserByID, GET /management/v1/users/{id}: a read of one user by key, for reference
 *      equals     ListUsers userNameQuery EQUALS                    (1 match)
 *      starts     ListUsers userNameQuery STARTS_WITH a 4-digit prefix (11 matches)
 *      ignorecase ListUsers emailQuery EQUALS_IGNORE_CASE, upper-cased (1 match)
 *      and        ListUsers lastNameQuery EQUALS (100 users) AND userNameQuery
 *                 STARTS_WITH_IGNORE_CASE, upper-cased, AND stateQuery ACTIVE (1 match, rarely 2)
 *      v2-equals  v2 ListUsers userNameQuery EQUALS, as IAM_OWNER (every organisation)
 *      contains   ListUsers userNameQuery CONTAINS "-<4 digits>"     (11 matches; no index can
 *                 serve it, so it tests every user of the organisation: informational)
 *    Every response is checked (status 200, the expected total); any failure exits with code 1.
 * 4. Prints p50/p99/mean per phase, their ratios to the baseline, and the query plans.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { isMainThread, parentPort, Worker } from "node:worker_threads";
import SQLite from "better-sqlite3";
import { Kysely, SqliteDialect } from "kysely";
import pg from "pg";
import { loadConfig } from "../src/config.js";
import { createIdGenerator } from "../src/domain/ids.js";
import type { NewUser, User } from "../src/domain/ports.js";
import type { UserSearch } from "../src/domain/user-queries.js";
import { startServer } from "../src/server.js";
import { ensureFirstInstance } from "../src/setup.js";
import { type Db, openSqlite } from "../src/store/db.js";
import { openPostgres } from "../src/store/postgres.js";
import type { Database } from "../src/store/schema.js";
import { TEXT_SQL, userSearchStatement } from "../src/store/user-search.js";
import { createUserStore } from "../src/store/user-store.js";
import { dropTestDatabase, testDatabaseUrl } from "../test/helpers/database.js";

const USERS = Number(process.env.BENCH_USERS ?? 100_000);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 2000);
const WARMUP = Number(process.env.BENCH_WARMUP_REQUESTS ?? 200);
/** Every phase runs once per round; the first round also warms the page cache after seeding. */
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 2));
/** A structurally valid bcrypt hash; nothing here verifies it. */
const HASH = "$2b$10$abcdefghijklmnopqrstuuTHKRNsGNqVR6XH2tBYS2QNvfo6Wddpi";
const STORE = process.env.BENCH_STORE ?? "sqlite";
if (STORE !== "sqlite" && STORE !== "postgres") throw new Error(`BENCH_STORE must be sqlite or postgres, got "${STORE}"`);

// ---------------------------------------------------------------- the phases

type PhaseName = "baseline" | "by-id" | "equals" | "starts" | "ignorecase" | "and" | "v2-equals" | "contains";
const PHASES: PhaseName[] = ["baseline", "by-id", "equals", "starts", "ignorecase", "and", "v2-equals", "contains"];

const name = (i: number) => `bench-user-${i}`;
const given = (i: number) => `Given${i % 500}`;
const family = (i: number) => `Family${i % 1000}`;
const email = (i: number) => `Bench.User${i}@Example.com`;

/** A request of a phase for user number `i` (chosen at random), and the total it must report. */
function requestOf(phase: PhaseName, i: number, ids: readonly string[]): { method: "GET" | "POST"; path: string; body?: unknown; total?: number } {
  const search = (queries: unknown[], total: number, path = "/management/v1/users/_search") => ({
    method: "POST" as const,
    path,
    body: { queries },
    total,
  });
  switch (phase) {
    case "baseline":
      return { method: "GET", path: "/healthz" };
    case "by-id":
      return { method: "GET", path: `/management/v1/users/${ids[i]}` };
    case "equals":
      return search([{ userNameQuery: { userName: name(i), method: "TEXT_QUERY_METHOD_EQUALS" } }], 1);
    case "starts": {
      // A 4-digit number n: the user n and the users n0 … n9 (and n00 … n99 beyond 100,000 users).
      const n = 1000 + (i % 9000);
      return search([{ userNameQuery: { userName: name(n), method: "TEXT_QUERY_METHOD_STARTS_WITH" } }], numbersStartingWith(n));
    }
    case "ignorecase":
      return search([{ emailQuery: { emailAddress: email(i).toUpperCase(), method: "TEXT_QUERY_METHOD_EQUALS_IGNORE_CASE" } }], 1);
    case "and": {
      // The family of user i (USERS / 1000 users), among them those whose username starts with
      // user i's (in upper case), and ACTIVE: user i, sometimes one more.
      const f = i % 1000;
      return search(
        [
          { lastNameQuery: { lastName: family(i), method: "TEXT_QUERY_METHOD_EQUALS" } },
          { userNameQuery: { userName: name(i).toUpperCase(), method: "TEXT_QUERY_METHOD_STARTS_WITH_IGNORE_CASE" } },
          { stateQuery: { state: "USER_STATE_ACTIVE" } },
        ],
        expectedAnd(f, i),
      );
    }
    case "v2-equals":
      return search([{ userNameQuery: { userName: name(i), method: "TEXT_QUERY_METHOD_EQUALS" } }], 1, "/v2/users");
    case "contains": {
      // "-<n>" occurs in the usernames of the numbers that start with n.
      const n = 1000 + (i % 9000);
      return search([{ userNameQuery: { userName: `-${n}`, method: "TEXT_QUERY_METHOD_CONTAINS" } }], numbersStartingWith(n));
    }
  }
}

/** How many user numbers below USERS start with the digits of n. */
function numbersStartingWith(n: number): number {
  let count = 0;
  for (let low = n, width = 1; low < USERS; low *= 10, width *= 10) count += Math.min(width, USERS - low);
  return count;
}

/** Users of family `f` whose number starts with the digits of `i`. */
function expectedAnd(f: number, i: number): number {
  let count = 0;
  for (let j = f; j < USERS; j += 1000) if (String(j).startsWith(String(i))) count++;
  return count;
}

// ---------------------------------------------------------------- client (worker thread)

interface ClientJob {
  url: string;
  token: string;
  phase: PhaseName;
  requests: number;
  warmup: number;
  users: number;
  /** The seeded users' ids, by number. */
  ids: string[];
}
interface ClientResult {
  phase: PhaseName;
  latencies: number[];
  failures: string[];
}

async function runClient(job: ClientJob): Promise<ClientResult> {
  const latencies: number[] = [];
  const failures: string[] = [];
  for (let n = 0; n < job.warmup + job.requests; n++) {
    const request = requestOf(job.phase, Math.floor(Math.random() * job.users), job.ids);
    const started = performance.now();
    const response = await fetch(job.url + request.path, {
      method: request.method,
      headers: { authorization: `Bearer ${job.token}`, ...(request.body ? { "content-type": "application/json" } : {}) },
      ...(request.body ? { body: JSON.stringify(request.body) } : {}),
    });
    const text = await response.text();
    const elapsed = performance.now() - started;
    if (response.status !== 200) {
      failures.push(`${job.phase}: HTTP ${response.status} ${text.slice(0, 200)}`);
      continue;
    }
    if (request.total !== undefined) {
      const total = Number((JSON.parse(text) as { details?: { totalResult?: string } }).details?.totalResult ?? 0);
      if (total !== request.total) failures.push(`${job.phase}: total ${total}, expected ${request.total} for ${JSON.stringify(request.body)}`);
    }
    if (n >= job.warmup) latencies.push(elapsed);
  }
  return { phase: job.phase, latencies, failures };
}

if (!isMainThread) {
  parentPort!.on("message", (job: ClientJob) => {
    void runClient(job).then(
      (result) => parentPort!.postMessage(result),
      (err: unknown) => parentPort!.postMessage({ phase: job.phase, latencies: [], failures: [String(err)] }),
    );
  });
}

// ---------------------------------------------------------------- server side (main thread)

async function seed(dataDir: string, databaseUrl: string | undefined): Promise<{ instanceId: string; orgId: string; seconds: number; ids: string[] }> {
  const store: Db = databaseUrl ? await openPostgres(databaseUrl, 10) : await openSqlite(dataDir);
  const newId = createIdGenerator();
  const instance = await ensureFirstInstance(store, dataDir, newId);
  const userStore = createUserStore(store);
  const started = performance.now();
  const at = Date.now();
  const ids: string[] = [];
  const newUser = (i: number): NewUser => {
    ids[i] = newId();
    const user: User = {
      instanceId: instance.id,
      id: ids[i],
      orgId: instance.defaultOrgId,
      type: "human",
      state: "ACTIVE",
      username: name(i),
      createdAt: at,
      changedAt: at,
      sequence: 2,
      human: {
        profile: {
          givenName: given(i),
          familyName: family(i),
          nickName: "",
          displayName: `${given(i)} ${family(i)}`,
          preferredLanguage: "en",
          gender: 0,
        },
        email: { address: email(i), verified: true },
        phone: { number: "", verified: false },
        passwordSet: true,
        passwordChangeRequired: false,
        passwordChangedAt: at,
      },
    };
    return {
      user,
      passwordHash: HASH,
      uniques: [{ kind: "username", value: user.username.toLowerCase() }],
      events: [
        { type: "user.human.added", payload: { userName: user.username } },
        { type: "user.human.email.verified", payload: {} },
      ],
      firstSequence: 1,
      codes: [],
      creator: "bench",
    };
  };
  const CHUNK = 5000;
  for (let i = 0; i < USERS; i += CHUNK) {
    await Promise.all(Array.from({ length: Math.min(CHUNK, USERS - i) }, (_, j) => userStore.createUser(newUser(i + j))));
  }
  const seconds = (performance.now() - started) / 1000;
  await store.close();
  return { instanceId: instance.id, orgId: instance.defaultOrgId, seconds, ids };
}

const worker = isMainThread
  ? new Worker(`import("tsx/esm/api").then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}); });`, { eval: true })
  : undefined;

function runPhase(job: ClientJob): Promise<ClientResult> {
  return new Promise((resolve, reject) => {
    const onMessage = (result: ClientResult) => {
      worker!.off("error", onError);
      resolve(result);
    };
    const onError = (error: Error) => {
      worker!.off("message", onMessage);
      reject(error);
    };
    worker!.once("message", onMessage);
    worker!.once("error", onError);
    worker!.postMessage(job);
  });
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

/** The plan of the page statement each phase runs, from the server's own store. */
async function plans(dataDir: string, databaseUrl: string | undefined, instanceId: string, orgId: string): Promise<Array<[string, string[]]>> {
  const base: UserSearch = { instanceId, orgIds: [orgId], filters: [], sort: "id", asc: false, offset: 0, limit: 1000 };
  const searches: Array<[string, Partial<UserSearch>]> = [
    ["equals", { filters: [{ kind: "text", field: "username", value: name(4242), method: "equals" }] }],
    ["starts", { filters: [{ kind: "text", field: "username", value: name(4242), method: "startsWith" }] }],
    ["ignorecase", { filters: [{ kind: "text", field: "email", value: email(4242).toUpperCase(), method: "equalsIgnoreCase" }] }],
    [
      "and",
      {
        filters: [
          { kind: "text", field: "familyName", value: family(4242), method: "equals" },
          { kind: "text", field: "username", value: name(4242).toUpperCase(), method: "startsWithIgnoreCase" },
          { kind: "state", state: "ACTIVE" },
        ],
      },
    ],
    ["v2-equals", { orgIds: "all", limit: 100, filters: [{ kind: "text", field: "username", value: name(4242), method: "equals" }] }],
    ["contains", { filters: [{ kind: "text", field: "username", value: "-42424", method: "contains" }] }],
  ];
  if (databaseUrl) {
    const store = await openPostgres(databaseUrl, 2);
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      // The statistics autovacuum would gather after a while, at once.
      await client.query("ANALYZE");
      const result: Array<[string, string[]]> = [];
      for (const [phase, search] of searches) {
        const statement = userSearchStatement(store.db, TEXT_SQL.postgres, { ...base, ...search });
        const { rows } = await client.query<{ "QUERY PLAN": string }>(`EXPLAIN ${statement.sql}`, statement.parameters as unknown[]);
        result.push([phase, rows.map((row) => row["QUERY PLAN"])]);
      }
      return result;
    } finally {
      await client.end();
      await store.close();
    }
  }
  const raw = new SQLite(join(dataDir, "userport.sqlite"), { readonly: true });
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: raw }) });
  try {
    return searches.map(([phase, search]) => {
      const statement = userSearchStatement(db, TEXT_SQL.sqlite, { ...base, ...search });
      const rows = raw.prepare(`EXPLAIN QUERY PLAN ${statement.sql}`).all(...(statement.parameters as unknown[])) as Array<{ detail: string }>;
      return [phase, rows.map((row) => row.detail)];
    });
  } finally {
    raw.close();
  }
}

async function main(): Promise<number> {
  const dataDir = mkdtempSync(join(process.env.BENCH_DATA_DIR ?? tmpdir(), "userport-search-bench-"));
  const databaseUrl = STORE === "postgres" ? await testDatabaseUrl(dataDir) : undefined;
  if (STORE === "postgres" && !databaseUrl) throw new Error("BENCH_STORE=postgres needs USERPORT_TEST_DATABASE_URL");
  console.log(`userport user search on ${STORE}: ${USERS} users, ${REQUESTS} requests per phase (after ${WARMUP} warm-up), one at a time over HTTP/1.1`);
  console.log(
    `node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? "?"}), load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
  const { instanceId, orgId, seconds, ids } = await seed(dataDir, databaseUrl);
  console.log(`seeded ${USERS} users through the store's write path in ${seconds.toFixed(1)} s (${Math.round(USERS / seconds)} users/s)`);

  const server = await startServer({ ...loadConfig([], {}), port: 0, host: "127.0.0.1", dataDir, databaseUrl, logLevel: "silent" });
  const token = readFileSync(server.adminTokenFile, "utf8").trim();
  let failed = false;
  const rounds: Array<Array<{ phase: PhaseName; p50: number; p99: number; mean: number; n: number }>> = [];
  /** The machine is shared: the load average tells how much else ran. */
  const loadAtEnd: string[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const rows: (typeof rounds)[number] = [];
      rounds.push(rows);
      for (const phase of PHASES) {
        // CONTAINS tests every user of the organisation, so it gets a tenth of the requests.
        const share = phase === "contains" ? 10 : 1;
        const result = await runPhase({
          url: server.url,
          token,
          phase,
          requests: Math.ceil(REQUESTS / share),
          warmup: Math.ceil(WARMUP / share),
          users: USERS,
          ids,
        });
        if (result.failures.length > 0) {
          failed = true;
          console.error(`FAILED ${phase}: ${result.failures.length} failures, e.g.\n  ${result.failures.slice(0, 3).join("\n  ")}`);
        }
        const sorted = [...result.latencies].sort((a, b) => a - b);
        const mean = sorted.reduce((sum, ms) => sum + ms, 0) / Math.max(1, sorted.length);
        rows.push({ phase, p50: percentile(sorted, 50), p99: percentile(sorted, 99), mean, n: sorted.length });
      }
      loadAtEnd.push(
        loadavg()
          .map((load) => load.toFixed(2))
          .join(" "),
      );
    }
  } finally {
    await server.close();
    await worker!.terminate();
  }

  rounds.forEach((rows, round) => {
    const baseline = rows.find((row) => row.phase === "baseline")!;
    console.log(`\nround ${round + 1} of ${rounds.length} (load average at its end: ${loadAtEnd[round]})`);
    console.log("\n| phase | requests | p50 ms | p99 ms | mean ms | p50 / baseline | p99 / baseline |");
    console.log("|---|---:|---:|---:|---:|---:|---:|");
    for (const row of rows) {
      console.log(
        `| ${row.phase} | ${row.n} | ${row.p50.toFixed(2)} | ${row.p99.toFixed(2)} | ${row.mean.toFixed(2)} | ` +
          `${(row.p50 / baseline.p50).toFixed(2)} | ${(row.p99 / baseline.p99).toFixed(2)} |`,
      );
    }
  });
  console.log("\nquery plans (page statement and its total subquery):");
  for (const [phase, lines] of await plans(dataDir, databaseUrl, instanceId, orgId)) console.log(`  ${phase}:\n    ${lines.join("\n    ")}`);
  if (process.env.BENCH_KEEP_DATA === "1") console.log(`data kept in ${dataDir}${databaseUrl ? ` and ${databaseUrl}` : ""}`);
  else {
    await dropTestDatabase(dataDir);
    rmSync(dataDir, { recursive: true, force: true });
  }
  return failed ? 1 : 0;
}

if (isMainThread) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
