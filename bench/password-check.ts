/**
 * Password work of userport against the raw bcrypt rate of this machine at the same cost, all
 * measured in the same run, with the server's event-loop delay during each phase.
 *
 *   npm run bench:passwords                 # or: npx tsx bench/password-check.ts
 *   USERPORT_BCRYPT_COST=12 BENCH_OPS=100 npm run bench:passwords
 *   npm run bench:passwords -- --cost 10 --ops 300 --concurrency 16 --rehash-vector pbkdf2-sha256-keycloak
 *
 * Phases, in this order (each comparison right after its baseline, since the machine is shared):
 *   raw-hash     baseline: bcrypt.hash(password, cost), the `bcrypt` binding's async API on libuv's
 *                thread pool, as the server hashes, with the same number in flight as the clients.
 *   import       POST /management/v1/users/human/_import with a plaintext password (hashed by the
 *                server at the cost)                                             -> ratio to raw-hash
 *   raw-compare  baseline: bcrypt.compare against a hash at the cost.
 *   check        POST /v2/sessions with checks.user + checks.password for the users just imported
 *                (bcrypt at the cost: verified, not rehashed)                    -> ratio to raw-compare
 *   raw-hash     baseline again.
 *   rehash       POST /v2/sessions for users imported (before the phase, unmeasured) with a hash of
 *                another family from test/fixtures/hashes/vectors.json; each sign-in verifies it and
 *                replaces it by bcrypt at the cost, so every user signs in once  -> ratio to raw-hash
 *
 * Every phase runs a warm-up batch, then the measured batch of BENCH_OPS operations with
 * BENCH_CONCURRENCY in flight; throughput is operations / wall time of the measured batch.
 *
 * The server (startServer from src/server.ts) runs on the main thread of this process, so the
 * event-loop delay measured there (perf_hooks.monitorEventLoopDelay, 1 ms sampling, reported as
 * the delay beyond that interval) is the server's. The HTTP client runs in a worker thread
 * (bench/request-worker.ts) with its own event loop, but shares the process's CPU and thread pool.
 *
 * Checks: every request must answer 200 (import) or 201 (CreateSession); at the end the store must
 * hold exactly the imported users, with bcrypt hashes at the cost, one session per sign-in, no
 * rehash of the bcrypt users and exactly one of each legacy user. Exit code 1 otherwise.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { execFileSync } from "node:child_process";
import { Worker } from "node:worker_threads";
import bcrypt from "bcrypt";
import { loadConfig } from "../src/config.js";
import { parseHashFamilyList } from "../src/domain/hashes/index.js";
import { startServer } from "../src/server.js";
import type { Batch, BatchResult } from "./request-worker.js";

const PASSWORD = "Bench-Passw0rd!";
/** Sampling interval of the event-loop delay histogram: delays shorter than this go unseen. */
const ELD_RESOLUTION_MS = 1;

// ---------------------------------------------------------------- options

const { values: flags } = parseArgs({
  options: {
    cost: { type: "string" },
    ops: { type: "string" },
    "warmup-ops": { type: "string" },
    concurrency: { type: "string" },
    "rehash-vector": { type: "string" },
    json: { type: "string" },
    "keep-data": { type: "boolean" },
  },
  strict: true,
});

function int(flag: string | undefined, env: string | undefined, fallback: number, name: string, min: number): number {
  const raw = flag ?? env;
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be an integer >= ${min}, got "${raw}"`);
  return value;
}

const cost = int(flags.cost, process.env.USERPORT_BCRYPT_COST, 10, "USERPORT_BCRYPT_COST", 4);
const ops = int(flags.ops, process.env.BENCH_OPS, 300, "BENCH_OPS", 1);
const warmupOps = int(flags["warmup-ops"], process.env.BENCH_WARMUP_OPS, 20, "BENCH_WARMUP_OPS", 0);
const concurrency = int(flags.concurrency, process.env.BENCH_CONCURRENCY, 16, "BENCH_CONCURRENCY", 1);
const vectorId = flags["rehash-vector"] ?? process.env.BENCH_REHASH_VECTOR ?? "md5-crypt";
const jsonOut = flags.json ?? process.env.BENCH_JSON;
const keepData = flags["keep-data"] ?? process.env.BENCH_KEEP_DATA === "1";
// Node reads UV_THREADPOOL_SIZE once, when the pool starts; 4 unless it is set.
const threadPool = Number(process.env.UV_THREADPOOL_SIZE || 4);

interface Vector {
  id: string;
  family: string;
  tool: string;
  password: string;
  encoded: string;
}
const vectorsFile = JSON.parse(readFileSync(new URL("../test/fixtures/hashes/vectors.json", import.meta.url), "utf8")) as {
  vectors: Vector[];
  slow: Vector[];
};
const vector = [...vectorsFile.vectors, ...vectorsFile.slow].find((v) => v.id === vectorId);
if (!vector) throw new Error(`no vector "${vectorId}" in test/fixtures/hashes/vectors.json`);
if (vector.family === "bcrypt") throw new Error("the rehash vector must be of another family than bcrypt");

// ---------------------------------------------------------------- measuring a phase

interface CpuSample {
  at: number;
  self: NodeJS.CpuUsage;
  /** Jiffies of the main thread (the server), and busy jiffies of the whole machine. */
  mainThread: number;
  machineBusy: number;
  elu: ReturnType<typeof performance.eventLoopUtilization>;
}

const TICK_MS = 10; // USER_HZ is 100 on every Linux this runs on

function sampleCpu(): CpuSample {
  let mainThread = NaN;
  let machineBusy = NaN;
  try {
    // Fields after the ")" of the command name: utime is field 14, stime 15.
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    mainThread = Number(fields[11]) + Number(fields[12]);
    const [user, nice, system, , , irq, softirq] = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    machineBusy = user! + nice! + system! + irq! + softirq!;
  } catch {
    // not Linux: no per-thread or machine figures
  }
  return { at: performance.now(), self: process.cpuUsage(), mainThread, machineBusy, elu: performance.eventLoopUtilization() };
}

interface PhaseResult {
  phase: string;
  ops: number;
  failed: number;
  failureSamples: string[];
  opsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Event-loop delay of the main thread (the server) beyond the sampling interval, ms. */
  eld: { p50: number; p99: number; max: number };
  /** Event-loop utilisation and CPU cores of the main thread. */
  mainElu: number;
  mainCores: number;
  /** CPU cores of this process (server, thread pool, client) and of everything else on the machine. */
  processCores: number;
  otherCores: number;
  /**
   * CPU time of this process per operation, ms. bcrypt is CPU-bound, so this is steadier than
   * throughput when other processes take cores away; it includes the client thread's share.
   */
  cpuMsPerOp: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Runs `work` (one measured batch) with the event-loop delay histogram and CPU sampling around it. */
async function measure(
  phase: string,
  work: () => Promise<{ wallMs: number; latenciesMs: number[]; failed: number; failureSamples: string[] }>,
): Promise<PhaseResult> {
  const histogram = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
  const before = sampleCpu();
  histogram.enable();
  const outcome = await work();
  histogram.disable();
  const after = sampleCpu();
  const wallMs = after.at - before.at;
  const selfMs = (after.self.user - before.self.user + after.self.system - before.self.system) / 1000;
  const delay = (ns: number) => Math.max(0, ns / 1e6 - ELD_RESOLUTION_MS);
  const sorted = outcome.latenciesMs.sort((a, b) => a - b);
  return {
    phase,
    ops: outcome.latenciesMs.length,
    failed: outcome.failed,
    failureSamples: outcome.failureSamples,
    opsPerSecond: outcome.latenciesMs.length / (outcome.wallMs / 1000),
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    eld: { p50: delay(histogram.percentile(50)), p99: delay(histogram.percentile(99)), max: delay(histogram.max) },
    mainElu: performance.eventLoopUtilization(after.elu, before.elu).utilization,
    mainCores: ((after.mainThread - before.mainThread) * TICK_MS) / wallMs,
    processCores: selfMs / wallMs,
    otherCores: Math.max(0, (after.machineBusy - before.machineBusy) * TICK_MS - selfMs) / wallMs,
    cpuMsPerOp: selfMs / outcome.latenciesMs.length,
  };
}

/** `count` calls of `op` with `concurrency` in flight, on this thread (the raw bcrypt baselines). */
async function runLocal(count: number, op: () => Promise<unknown>) {
  const latenciesMs: number[] = [];
  const failureSamples: string[] = [];
  let failed = 0;
  let next = 0;
  const started = performance.now();
  const lane = async () => {
    while (next < count) {
      next++;
      const sent = performance.now();
      try {
        const result = await op();
        if (result === false) throw new Error("bcrypt.compare answered false for the right password");
        latenciesMs.push(performance.now() - sent);
      } catch (err) {
        failed++;
        if (failureSamples.length < 10) failureSamples.push(err instanceof Error ? err.message : String(err));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  return { wallMs: performance.now() - started, latenciesMs, failed, failureSamples };
}

// Started through tsx's API so that it loads the TypeScript worker however this script was started.
const worker = new Worker(
  `import("tsx/esm/api").then(({ register }) => { register(); return import(${JSON.stringify(new URL("./request-worker.ts", import.meta.url).href)}); });`,
  { eval: true },
);

function runRemote(batch: Batch): Promise<BatchResult> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: { type: "result"; result: BatchResult } | { type: "error"; error: string }) => {
      worker.off("error", reject);
      if (message.type === "error") reject(new Error(`request worker failed: ${message.error}`));
      else resolve(message.result);
    };
    worker.once("message", onMessage);
    worker.once("error", reject);
    worker.postMessage(batch);
  });
}

// ---------------------------------------------------------------- run

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : "n/a");

async function main(): Promise<number> {
  const dataDir = mkdtempSync(join(process.env.BENCH_DATA_DIR ?? tmpdir(), "userport-bench-pw-"));
  const config = {
    ...loadConfig([], { USERPORT_BCRYPT_COST: String(cost) }),
    port: 0,
    host: "127.0.0.1",
    dataDir,
    logLevel: "silent",
    passwordVerifiers: parseHashFamilyList(vector!.family),
    // Every sign-in comes from this one address: the limits would measure themselves.
    rateLimitPerSource: 0,
    rateLimitPerUser: 0,
  };
  const userport = await startServer(config);
  const token = readFileSync(userport.adminTokenFile, "utf8").trim();

  let revision = "unknown revision";
  try {
    const git = (...args: string[]) => execFileSync("git", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    revision = `${git("rev-parse", "--short", "HEAD")}${git("status", "--porcelain", "--", "src", "gen") ? " + uncommitted changes in src/ or gen/" : ""}`;
  } catch {
    // not a git checkout
  }
  console.log(
    `userport password checks: bcrypt cost ${cost}, ${ops} operations per phase after ${warmupOps} warm-up, ` +
      `${concurrency} in flight, libuv thread pool ${threadPool}; rehash from ${vector!.id} (${vector!.family})`,
  );
  console.log(
    `node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? "?"}), loadavg ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
  console.log(`userport at ${revision}; data dir ${dataDir}`);

  const plainUser = (i: number) => `bench-plain-${i}`;
  const legacyUser = (i: number) => `bench-legacy-${i}`;
  const importBody = (userName: string, password: Record<string, unknown>) => ({
    userName,
    profile: { firstName: "Bench", lastName: "User" },
    email: { email: `${userName}@example.com`, isEmailVerified: true },
    ...password,
  });
  const signIn = (userName: string, password: string) => ({
    path: "/v2/sessions",
    body: { checks: { user: { loginName: userName }, password: { password } } },
  });
  const batch = (expectStatus: number, requests: Batch["requests"]): Batch => ({ url: userport.url, token, concurrency, expectStatus, requests });
  const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i);
  const warmUsers = range(0, warmupOps);
  const measuredUsers = range(warmupOps, ops);
  const hashAtCost = await bcrypt.hash(PASSWORD, cost);

  const results: PhaseResult[] = [];
  // Failures outside the measured batches (warm-ups, the legacy users' import): they fail the run too.
  const warmupFailures: string[] = [];
  let warmupFailed = 0;
  const run = async (
    phase: string,
    warmup: () => Promise<{ failed: number; failureSamples: string[] }>,
    work: () => Promise<{ wallMs: number; latenciesMs: number[]; failed: number; failureSamples: string[] }>,
  ) => {
    process.stdout.write(`running ${phase} … `);
    const warm = await warmup();
    warmupFailed += warm.failed;
    warmupFailures.push(...warm.failureSamples.map((s) => `${phase} warm-up: ${s}`));
    const result = await measure(phase, work);
    results.push(result);
    console.log(`${fmt(result.opsPerSecond, 1)} ops/s, event-loop delay p99 ${fmt(result.eld.p99, 1)} ms, failed ${result.failed + warm.failed}`);
    return result;
  };

  const rawHash = () => runLocal(ops, () => bcrypt.hash(PASSWORD, cost));
  const rawHashWarm = () => runLocal(warmupOps, () => bcrypt.hash(PASSWORD, cost));
  const rawCompare = () => runLocal(ops, () => bcrypt.compare(PASSWORD, hashAtCost));
  const importPlain = (users: number[]) => () =>
    runRemote(
      batch(
        200,
        users.map((i) => ({ path: "/management/v1/users/human/_import", body: importBody(plainUser(i), { password: PASSWORD }) })),
      ),
    );
  const checkPlain = (users: number[]) => () =>
    runRemote(
      batch(
        201,
        users.map((i) => signIn(plainUser(i), PASSWORD)),
      ),
    );
  const signInLegacy = (users: number[]) => () =>
    runRemote(
      batch(
        201,
        users.map((i) => signIn(legacyUser(i), vector!.password)),
      ),
    );

  const rawHash1 = await run("raw bcrypt.hash", rawHashWarm, rawHash);
  const imported = await run("import, plaintext password (REST)", importPlain(warmUsers), importPlain(measuredUsers));
  const rawCompare1 = await run("raw bcrypt.compare", () => runLocal(warmupOps, () => bcrypt.compare(PASSWORD, hashAtCost)), rawCompare);
  const checked = await run("CreateSession, bcrypt at the cost (REST)", checkPlain(warmUsers), checkPlain(measuredUsers));
  const rawHash2 = await run("raw bcrypt.hash", rawHashWarm, rawHash);
  // The legacy users are imported before the phase, outside any measurement: each signs in once.
  const legacySetup = await runRemote(
    batch(
      200,
      range(0, warmupOps + ops).map((i) => ({
        path: "/management/v1/users/human/_import",
        body: importBody(legacyUser(i), { hashedPassword: { value: vector!.encoded } }),
      })),
    ),
  );
  warmupFailed += legacySetup.failed;
  warmupFailures.push(...legacySetup.failureSamples.map((s) => `legacy import: ${s}`));
  const rehashed = await run(`CreateSession, ${vector!.family} rehashed to bcrypt (REST)`, signInLegacy(warmUsers), signInLegacy(measuredUsers));

  await worker.terminate();

  // ------------------------------------------------------------ verification against the store
  const problems: string[] = [];
  const { db } = userport;
  const usersLike = (prefix: string) =>
    db.selectFrom("users").select(["id", "username", "state", "password_hash", "password_failed_attempts"]).where("username", "like", `${prefix}%`).execute();
  const hashUpdates = (prefix: string) =>
    db
      .selectFrom("events")
      .innerJoin("users", (join) => join.onRef("users.instance_id", "=", "events.instance_id").onRef("users.id", "=", "events.aggregate_id"))
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("users.username", "like", `${prefix}%`)
      .where("events.type", "=", "user.human.password.hash.updated")
      .executeTakeFirstOrThrow();
  const current = new RegExp(`^\\$2b\\$${String(cost).padStart(2, "0")}\\$`);
  const expected = warmupOps + ops;
  for (const [prefix, rehashes] of [
    ["bench-plain-", 0],
    ["bench-legacy-", expected],
  ] as const) {
    const rows = await usersLike(prefix);
    const bad = rows.filter((u) => u.state !== "ACTIVE" || !current.test(u.password_hash ?? "") || u.password_failed_attempts !== 0);
    if (rows.length !== expected) problems.push(`${prefix}*: ${rows.length} users stored, ${expected} imported`);
    if (bad.length > 0) problems.push(`${prefix}*: ${bad.length} users not ACTIVE, not bcrypt at cost ${cost}, or with failed attempts`);
    const { n } = await hashUpdates(prefix);
    if (Number(n) !== rehashes) problems.push(`${prefix}*: ${n} password.hash.updated events, expected ${rehashes}`);
  }
  const sessions = await db
    .selectFrom("sessions")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("password_checked_at", "is not", null)
    .executeTakeFirstOrThrow();
  if (Number(sessions.n) !== 2 * expected) problems.push(`${sessions.n} sessions with a password check stored, expected ${2 * expected}`);
  await userport.close();

  // ------------------------------------------------------------ report
  console.log("");
  console.log(
    "| phase | ops | ops/s | p50 ms | p99 ms | failed | event-loop delay p50 / p99 / max ms | main thread ELU / cores | this process (cores) | CPU ms per op | other processes (cores) |",
  );
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const r of results) {
    console.log(
      `| ${r.phase} | ${r.ops} | ${fmt(r.opsPerSecond, 1)} | ${fmt(r.p50Ms, 1)} | ${fmt(r.p99Ms, 1)} | ${r.failed} | ` +
        `${fmt(r.eld.p50, 2)} / ${fmt(r.eld.p99, 2)} / ${fmt(r.eld.max, 1)} | ${fmt(r.mainElu, 2)} / ${fmt(r.mainCores, 2)} | ${fmt(r.processCores, 2)} | ${fmt(r.cpuMsPerOp, 1)} | ${fmt(r.otherCores, 2)} |`,
    );
  }
  // Throughput ratio, and the same ratio computed from CPU time per operation (raw / userport).
  const ratio = (r: PhaseResult, base: PhaseResult) => ({ throughput: r.opsPerSecond / base.opsPerSecond, cpu: base.cpuMsPerOp / r.cpuMsPerOp });
  const ratios = {
    importToRawHash: ratio(imported, rawHash1),
    checkToRawCompare: ratio(checked, rawCompare1),
    rehashToRawHash: ratio(rehashed, rawHash2),
  };
  const line = (label: string, r: PhaseResult, base: PhaseResult, { throughput, cpu }: { throughput: number; cpu: number }) =>
    console.log(
      `${label.padEnd(38)} = ${fmt(throughput, 3)} (by CPU per op ${fmt(cpu, 3)});  event-loop delay p99 ${fmt(r.eld.p99, 2)} ms vs ${fmt(base.eld.p99, 2)} ms raw, max ${fmt(r.eld.max, 1)} vs ${fmt(base.eld.max, 1)} ms`,
    );
  console.log("");
  line("import (plaintext) / raw bcrypt.hash", imported, rawHash1, ratios.importToRawHash);
  line("password check / raw bcrypt.compare", checked, rawCompare1, ratios.checkToRawCompare);
  line("rehash on sign-in / raw bcrypt.hash", rehashed, rawHash2, ratios.rehashToRawHash);

  const failed = results.reduce((sum, r) => sum + r.failed, 0) + warmupFailed;
  let exitCode = 0;
  if (failed > 0) {
    exitCode = 1;
    console.error(`\n!!! FAILED OPERATIONS: ${failed} !!!`);
    for (const r of results) for (const sample of r.failureSamples) console.error(`  ${r.phase}: ${sample}`);
    for (const sample of warmupFailures) console.error(`  ${sample}`);
  }
  if (problems.length > 0) {
    exitCode = 1;
    console.error("\n!!! STORE CHECK FAILED !!!");
    for (const problem of problems) console.error(`  ${problem}`);
  } else {
    console.log(
      `store check: ${expected} plaintext-imported users and ${expected} legacy users, all ACTIVE with bcrypt at cost ${cost}; ` +
        `${expected} rehashes (legacy only), ${2 * expected} sessions with a password check → OK`,
    );
  }

  if (jsonOut) {
    writeFileSync(jsonOut, JSON.stringify({ cost, ops, warmupOps, concurrency, threadPool, vector: vector!.id, revision, results, ratios, problems }, null, 2));
  }
  if (keepData) console.log(`data kept in ${dataDir}`);
  else rmSync(dataDir, { recursive: true, force: true });
  return exitCode;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
