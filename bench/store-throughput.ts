/**
 * REST import throughput on each store, measured in one run: SQLite, PostgreSQL, and two replicas
 * on one PostgreSQL, reported as ratios (PostgreSQL / SQLite, two replicas / one).
 *
 *   USERPORT_TEST_DATABASE_URL=postgres://user:pass@127.0.0.1:5432/db npm run bench:stores
 *   npm run bench:stores -- --seconds 10 --connections 50
 *
 * Every server is `userport serve` in a process of its own, as an operator runs it (replicas must
 * be processes); the load comes from bench/load-worker.ts in worker threads of this process, one
 * per replica, each with its share of the connections. USERPORT_TEST_DATABASE_URL names a
 * PostgreSQL server where this run may create (and drops again) a database per phase. Each phase
 * imports pre-hashed users under its own prefix; afterwards its store must hold exactly the users
 * whose import was acknowledged. Exit code 1 if any request failed or a store does not match.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import bcrypt from "bcrypt";
import Database from "better-sqlite3";
import pg from "pg";
import { dropTestDatabase, testDatabaseUrl, testPostgresUrl } from "../test/helpers/database.js";
import { freePort, type Served, serveProcess } from "../test/helpers/process.js";
import type { PhaseResult, PhaseSpec } from "./load-worker.js";

const { values: flags } = parseArgs({
  options: { seconds: { type: "string" }, warmup: { type: "string" }, connections: { type: "string" } },
  strict: true,
});
const seconds = Number(flags.seconds ?? 10);
const warmupSeconds = Number(flags.warmup ?? 2);
const connections = Number(flags.connections ?? 50);
if (!testPostgresUrl) {
  console.error("set USERPORT_TEST_DATABASE_URL to a PostgreSQL server this benchmark may create databases on");
  process.exit(2);
}

interface Replica extends Served {
  dataDir: string;
}

async function startReplica(env: Record<string, string>): Promise<Replica> {
  const dataDir = mkdtempSync(join(tmpdir(), "userport-bench-"));
  return { ...(await serveProcess(await freePort(), { ...env, USERPORT_DATA_DIR: dataDir, USERPORT_LOG_LEVEL: "warn" })), dataDir };
}

async function stopReplica(replica: Replica): Promise<void> {
  const exited = new Promise((resolve) => replica.child.once("exit", resolve));
  replica.child.kill("SIGTERM");
  await exited;
}

/** One load worker, as bench/import-throughput.ts starts it (tsx's loader registered inside). */
function runLoad(spec: PhaseSpec): Promise<PhaseResult> {
  const worker = new Worker(
    `import("tsx/esm/api").then(({ register }) => { register(); return import(${JSON.stringify(new URL("./load-worker.ts", import.meta.url).href)}); });`,
    { eval: true },
  );
  return new Promise<PhaseResult>((resolve, reject) => {
    worker.once("message", (message: { type: "result"; result: PhaseResult } | { type: "error"; error: string }) =>
      message.type === "result" ? resolve(message.result) : reject(new Error(message.error)),
    );
    worker.once("error", reject);
    worker.postMessage({ type: "run", spec });
  }).finally(() => void worker.terminate());
}

/** The usernames of humans in the store with `prefix`, lower-cased. */
async function storedUsernames(replica: Replica, databaseUrl: string | undefined, prefix: string): Promise<Set<string>> {
  if (!databaseUrl) {
    const sqlite = new Database(join(replica.dataDir, "userport.sqlite"), { readonly: true, fileMustExist: true });
    try {
      const rows = sqlite.prepare("SELECT username FROM users WHERE username LIKE ?").all(`${prefix}%`) as Array<{ username: string }>;
      return new Set(rows.map((row) => row.username.toLowerCase()));
    } finally {
      sqlite.close();
    }
  }
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ username: string }>("SELECT username FROM users WHERE username LIKE $1", [`${prefix}%`]);
    return new Set(rows.map((row) => row.username.toLowerCase()));
  } finally {
    await client.end();
  }
}

interface Outcome {
  name: string;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  failed: number;
  storeMatches: boolean;
}

const passwordHash = bcrypt.hashSync("Bench-Passw0rd!", 10);
const masterKey = randomBytes(32).toString("base64");

async function phase(name: string, store: "sqlite" | "postgres", replicaCount: number): Promise<Outcome> {
  const dataDir = mkdtempSync(join(tmpdir(), "userport-bench-db-"));
  const databaseUrl = store === "postgres" ? await testDatabaseUrl(dataDir) : undefined;
  const env = { USERPORT_MASTER_KEY: masterKey, ...(databaseUrl ? { USERPORT_DATABASE_URL: databaseUrl } : {}) };
  // The first replica creates the instance (and holds its token); the others join it.
  const replicas = [await startReplica(env)];
  for (let i = 1; i < replicaCount; i++) replicas.push(await startReplica(env));
  const token = readFileSync(join(replicas[0]!.dataDir, "admin.pat"), "utf8").trim();
  const prefix = `${name}-`;
  try {
    process.stdout.write(`running ${name} (${replicaCount} replica${replicaCount === 1 ? "" : "s"} on ${store}) … `);
    const results = await Promise.all(
      replicas.map((replica, i) =>
        runLoad({
          name,
          target: "rest-import",
          url: replica.url,
          path: "/management/v1/users/human/_import",
          drainPath: "/healthz",
          token,
          passwordHash,
          usernamePrefix: `${prefix}${i}-`,
          connections: Math.ceil(connections / replicaCount),
          grpcSessions: 1,
          warmupMs: warmupSeconds * 1000,
          durationMs: seconds * 1000,
          drainTimeoutMs: 30_000,
        }),
      ),
    );
    const acknowledged = new Set(results.flatMap((r) => r.okUsernames.map((u) => u.toLowerCase())));
    const stored = await storedUsernames(replicas[0]!, databaseUrl, prefix);
    const storeMatches = stored.size === acknowledged.size && [...acknowledged].every((u) => stored.has(u));
    const outcome = {
      name,
      rps: results.reduce((sum, r) => sum + r.rps, 0),
      p50Ms: Math.max(...results.map((r) => r.p50Ms)),
      p99Ms: Math.max(...results.map((r) => r.p99Ms)),
      failed: results.reduce((sum, r) => sum + r.failed + r.unanswered, 0),
      storeMatches,
    };
    console.log(`${outcome.rps.toFixed(0)} req/s, failed ${outcome.failed}, store ${storeMatches ? "matches" : "DOES NOT MATCH"}`);
    return outcome;
  } finally {
    await Promise.all(replicas.map(stopReplica));
    await dropTestDatabase(dataDir);
    for (const dir of [dataDir, ...replicas.map((r) => r.dataDir)]) rmSync(dir, { recursive: true, force: true });
  }
}

console.log(
  `userport import throughput per store: ${warmupSeconds}s warm-up + ${seconds}s measured, ${connections} connections in all; ` +
    `node ${process.version}, ${cpus().length} CPUs, loadavg ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
);
const sqlite = await phase("sqlite", "sqlite", 1);
const postgres = await phase("postgres", "postgres", 1);
const replicas = await phase("postgres-x2", "postgres", 2);
console.log("");
console.log("| phase | req/s | p50 ms | p99 ms | failed | store |");
console.log("| --- | --- | --- | --- | --- | --- |");
for (const o of [sqlite, postgres, replicas]) {
  console.log(`| ${o.name} | ${o.rps.toFixed(0)} | ${o.p50Ms.toFixed(1)} | ${o.p99Ms.toFixed(1)} | ${o.failed} | ${o.storeMatches ? "matches" : "MISMATCH"} |`);
}
console.log("");
console.log(`PostgreSQL / SQLite (one replica each): ${(postgres.rps / sqlite.rps).toFixed(3)}`);
console.log(`two replicas / one replica (PostgreSQL): ${(replicas.rps / postgres.rps).toFixed(3)}`);
const ok = [sqlite, postgres, replicas].every((o) => o.failed === 0 && o.storeMatches);
process.exit(ok ? 0 : 1);
