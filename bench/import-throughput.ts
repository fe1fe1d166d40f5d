/**
 * Import throughput of userport against baselines measured in the same run.
 *
 *   npm run bench                          # or: npx tsx bench/import-throughput.ts
 *   BENCH_SECONDS=10 BENCH_WARMUP_SECONDS=2 BENCH_CONNECTIONS=50 npm run bench
 *   npm run bench -- --seconds 5 --phases bare,rest
 *
 * Phases (each a warm-up, then a measured window, then a drain that waits for every request sent):
 *   bare     Baseline A: a bare fastify app, one JSON POST route, HTTP/1.1, autocannon.
 *   rest     userport POST /management/v1/users/human/_import, pre-hashed bcrypt, HTTP/1.1, autocannon.
 *   pgrest   the same import on a second userport whose store is PostgreSQL (BENCH_DATABASE_URL or
 *            USERPORT_TEST_DATABASE_URL names a server this run may create a database on).
 *   grpc     userport ImportHumanUser over gRPC (h2c), grpc-js client.
 *   connect-json-h1, connect-proto-h1, connect-json-h2, connect-proto-h2, grpcweb-h1, grpcweb-h2
 *            userport ImportHumanUser over Connect (JSON / binary) and gRPC-Web, HTTP/1.1 and HTTP/2.
 *   grpcjs   Baseline B: grpc.health.v1.Health/Check on a @grpc/grpc-js server, grpc-js client.
 *   health   userport's Health/Check over gRPC, grpc-js client.
 * And, with --phases (or --phases all), the hostings of the same trivial Check in isolation:
 *   raw-h2, connect-node (connectNodeAdapter on node:http2), connect-fastify (fastify http2 + plugin).
 *
 * Servers run on the main thread of this process; the load generator runs in a child process
 * (bench/load-worker.ts) so the two never share an event loop. The machine is small and shared,
 * so everything is reported as ratios to the baselines, each run right before the phase it is
 * compared with. At the end the SQLite store is opened read-only and checked against exactly the
 * usernames whose import was acknowledged. BENCH_DATA_DIR picks where the store goes (default: the
 * OS temp dir); BENCH_KEEP_DATA=1 / --keep-data keeps it. BENCH_CPU_PROFILE=<dir> writes a CPU
 * profile of the server thread per phase, covering exactly its measured window (summarise it with
 * bench/profile-summary.ts); profiling slows the servers, so such a run's figures are not results.
 * BENCH_CLIENT_PROF=<dir> writes the client process's CPU profile (all phases) there. userport runs
 * from dist/ (built first when the sources changed), as operators run it.
 * Exit code: 1 if any request failed or the store does
 * not match; 2 if BENCH_ENFORCE_BAR=1 and the REST/bare ratio is below the bar; 0 otherwise.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { execFileSync } from "node:child_process";
import { Session } from "node:inspector";
import { fork } from "node:child_process";
import http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { fastifyConnectPlugin } from "@connectrpc/connect-fastify";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import bcrypt from "bcrypt";
import Database from "better-sqlite3";
import Fastify from "fastify";
import pg from "pg";
import {
  Health,
  type HealthCheckRequest,
  HealthCheckRequestSchema,
  type HealthCheckResponse,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus,
} from "../gen/grpc/health/v1/health_pb.js";
import type { Config } from "../src/config.js";
import { dropTestDatabase, testDatabaseUrl } from "../test/helpers/database.js";
import { ensureBuilt } from "./built.js";
import type { PhaseResult, PhaseSpec, Target } from "./load-worker.js";

// userport as operators run it: the compiled modules of dist/ (built first when the sources
// changed), not the sources through tsx's loader, whose transform wraps every function the
// server makes per call in a naming helper (esbuild's keepNames): a few per cent of a trivial call.
ensureBuilt();
const { loadConfig } = (await import(String("../dist/src/config.js"))) as typeof import("../src/config.js");
const { startServer } = (await import(String("../dist/src/server.js"))) as typeof import("../src/server.js");

const BAR = 0.3;
const PHASES = [
  "bare",
  "rest",
  "pgrest",
  "grpc",
  "connect-json-h1",
  "connect-proto-h1",
  "connect-json-h2",
  "connect-proto-h2",
  "grpcweb-h1",
  "grpcweb-h2",
  "grpcjs",
  "health",
  "raw-h2",
  "connect-node",
  "connect-fastify",
] as const;
type PhaseName = (typeof PHASES)[number];
const ISOLATION: readonly PhaseName[] = ["raw-h2", "connect-node", "connect-fastify"];
const WEB_PHASES = {
  "connect-json-h1": { kind: "connect", binary: false, httpVersion: "1.1" },
  "connect-proto-h1": { kind: "connect", binary: true, httpVersion: "1.1" },
  "connect-json-h2": { kind: "connect", binary: false, httpVersion: "2" },
  "connect-proto-h2": { kind: "connect", binary: true, httpVersion: "2" },
  "grpcweb-h1": { kind: "grpc-web", binary: true, httpVersion: "1.1" },
  "grpcweb-h2": { kind: "grpc-web", binary: true, httpVersion: "2" },
} as const satisfies Partial<Record<PhaseName, PhaseSpec["protocol"]>>;
const databaseUrl = process.env.BENCH_DATABASE_URL || process.env.USERPORT_TEST_DATABASE_URL || undefined;

// ---------------------------------------------------------------- options

const { values: flags } = parseArgs({
  options: {
    seconds: { type: "string" },
    warmup: { type: "string" },
    connections: { type: "string" },
    "grpc-sessions": { type: "string" },
    phases: { type: "string" },
    json: { type: "string" },
    "keep-data": { type: "boolean" },
  },
  strict: true,
});

function num(flag: string | undefined, env: string | undefined, fallback: number, name: string): number {
  const raw = flag ?? env;
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a non-negative number, got "${raw}"`);
  return value;
}

const seconds = num(flags.seconds, process.env.BENCH_SECONDS, 10, "BENCH_SECONDS");
const warmupSeconds = num(flags.warmup, process.env.BENCH_WARMUP_SECONDS, 2, "BENCH_WARMUP_SECONDS");
const connections = Math.max(1, Math.floor(num(flags.connections, process.env.BENCH_CONNECTIONS, 50, "BENCH_CONNECTIONS")));
const grpcSessions = Math.max(1, Math.floor(num(flags["grpc-sessions"], process.env.BENCH_GRPC_SESSIONS, 1, "BENCH_GRPC_SESSIONS")));
const phaseList = flags.phases ?? process.env.BENCH_PHASES;
const phases = (
  phaseList === "all"
    ? PHASES.filter((p) => p !== "pgrest" || databaseUrl)
    : phaseList
      ? phaseList.split(",").map((p) => p.trim())
      : PHASES.filter((p) => !ISOLATION.includes(p) && (p !== "pgrest" || databaseUrl))
).filter(Boolean) as PhaseName[];
for (const phase of phases) {
  if (!PHASES.includes(phase)) throw new Error(`unknown phase "${phase}"; phases are ${PHASES.join(", ")}`);
}
const jsonOut = flags.json ?? process.env.BENCH_JSON;
const keepData = flags["keep-data"] ?? process.env.BENCH_KEEP_DATA === "1";
const enforceBar = process.env.BENCH_ENFORCE_BAR === "1";
/** Count the SQL statements the server prepares (one per query), per kind: shows statements per import and group-commit batch sizes. */
/** Directory to write a CPU profile of the server thread, per phase, covering its measured window. */
const profileDir = process.env.BENCH_CPU_PROFILE;
if (profileDir) mkdirSync(profileDir, { recursive: true });

/** The server's commit batches so far and the commands they held (its `userport_commit_batch_size` histogram). */
async function commitBatches(url: string): Promise<{ count: number; sum: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? 0);
  return { count: value("userport_commit_batch_size_count"), sum: value("userport_commit_batch_size_sum") };
}

// ---------------------------------------------------------------- machine / noise sampling

interface CpuSample {
  at: number;
  /** Jiffies of the whole machine, from /proc/stat. */
  busy: number;
  steal: number;
  total: number;
  /** CPU time of this process (all threads), microseconds. */
  self: NodeJS.CpuUsage;
  /** CPU time of the main thread (the servers under test), in jiffies. */
  mainThread: number;
  elu: ReturnType<typeof performance.eventLoopUtilization>;
}

function sampleCpu(): CpuSample {
  let busy = NaN;
  let steal = NaN;
  let total = NaN;
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!;
    const [user, nice, system, idle, iowait, irq, softirq, st] = line.trim().split(/\s+/).slice(1).map(Number) as number[];
    total = user! + nice! + system! + idle! + iowait! + irq! + softirq! + (st ?? 0);
    busy = total - idle! - iowait!;
    steal = st ?? 0;
  } catch {
    // not Linux: no machine-wide figures
  }
  let mainThread = NaN;
  try {
    // Fields after the ")" of the command name: state is field 3, utime 14, stime 15.
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    mainThread = Number(fields[11]) + Number(fields[12]);
  } catch {
    // not Linux
  }
  return { at: performance.now(), busy, steal, total, self: process.cpuUsage(), mainThread, elu: performance.eventLoopUtilization() };
}

interface Noise {
  /** Event-loop utilisation of the server thread during the window. */
  serverElu: number;
  /** Cores used by this process (servers + load generator) during the window. */
  selfCores: number;
  /** Cores used by the main thread, i.e. the servers under test, during the window. */
  serverCores: number;
  /** Cores used by everything else on the machine during the window. */
  otherCores: number;
  /** Cores stolen by the hypervisor during the window. */
  stealCores: number;
}

const TICK_MS = 10; // USER_HZ is 100 on every Linux this runs on

function noiseBetween(a: CpuSample, b: CpuSample): Noise {
  const wallMs = b.at - a.at;
  const selfMs = (b.self.user - a.self.user + b.self.system - a.self.system) / 1000;
  const busyMs = (b.busy - a.busy) * TICK_MS;
  return {
    serverElu: performance.eventLoopUtilization(b.elu, a.elu).utilization,
    selfCores: selfMs / wallMs,
    serverCores: ((b.mainThread - a.mainThread) * TICK_MS) / wallMs,
    otherCores: Math.max(0, busyMs - selfMs) / wallMs,
    stealCores: ((b.steal - a.steal) * TICK_MS) / wallMs,
  };
}

// ---------------------------------------------------------------- servers

/** Baseline A: one JSON POST route that parses the body and answers a small JSON object. */
async function startBareFastify() {
  const app = Fastify({ logger: false });
  app.post("/bare", async (request) => {
    const body = request.body as { userName?: unknown };
    return { ok: true, userName: typeof body.userName === "string" ? body.userName : "" };
  });
  app.get("/ping", async () => ({ ok: true }));
  await app.listen({ port: 0, host: "127.0.0.1" });
  const address = app.server.address();
  return { app, url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}` };
}

/** The trivial Health service every baseline serves: Check answers SERVING. */
function trivialHealth(router: ConnectRouter) {
  router.service(Health, {
    check: () => ({ status: HealthCheckResponse_ServingStatus.SERVING }),
    // A baseline that serves Check only: Watch ends at once without an update.
    // biome-ignore lint/correctness/useYield: it yields nothing on purpose
    async *watch() {
      return;
    },
  });
}

const addressOf = (server: { address(): unknown }) => {
  const address = server.address() as { port: number } | null;
  return `http://127.0.0.1:${address?.port ?? 0}`;
};

/** Health/Check on a minimal fastify (http2) + connect-fastify server over h2c. */
async function startConnectFastify() {
  const app = Fastify({ http2: true, logger: false });
  await app.register(fastifyConnectPlugin, { routes: trivialHealth });
  await app.listen({ port: 0, host: "127.0.0.1" });
  return { url: addressOf(app.server), close: () => app.close() };
}

/** Health/Check on connect-node's adapter straight on node:http2, no fastify. */
async function startConnectNode() {
  const server = http2.createServer(connectNodeAdapter({ routes: trivialHealth }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: addressOf(server), close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** Baseline B: Health/Check on a @grpc/grpc-js server. */
async function startGrpcJs() {
  const server = new grpc.Server();
  const serving = Buffer.from(toBinary(HealthCheckResponseSchema, create(HealthCheckResponseSchema, { status: HealthCheckResponse_ServingStatus.SERVING })));
  server.addService(
    {
      check: {
        path: `/${Health.typeName}/Check`,
        requestStream: false,
        responseStream: false,
        requestSerialize: (m: HealthCheckRequest) => Buffer.from(toBinary(HealthCheckRequestSchema, m)),
        requestDeserialize: (b: Buffer) => fromBinary(HealthCheckRequestSchema, b),
        responseSerialize: (m: HealthCheckResponse) => Buffer.from(toBinary(HealthCheckResponseSchema, m)),
        responseDeserialize: (b: Buffer) => fromBinary(HealthCheckResponseSchema, b),
      },
    },
    {
      check: (_call: unknown, callback: grpc.sendUnaryData<HealthCheckResponse>) => callback(null, fromBinary(HealthCheckResponseSchema, serving)),
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())) };
}

/** Raw node:http2 answering every stream with one SERVING frame: what the transport itself costs. */
async function startRawH2() {
  const message = toBinary(HealthCheckResponseSchema, create(HealthCheckResponseSchema, { status: HealthCheckResponse_ServingStatus.SERVING }));
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  const server = http2.createServer();
  server.on("stream", (stream) => {
    stream.resume();
    stream.once("end", () => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(frame);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: addressOf(server), close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

// ---------------------------------------------------------------- profiling (optional)

let inspector: Session | undefined;
function inspectorPost<T>(method: string, params?: object): Promise<T> {
  inspector ??= (() => {
    const session = new Session();
    session.connect();
    return session;
  })();
  return new Promise((resolve, reject) => inspector!.post(method, params ?? {}, (err, result) => (err ? reject(err) : resolve(result as T))));
}

async function startProfile(): Promise<void> {
  await inspectorPost("Profiler.enable");
  await inspectorPost("Profiler.setSamplingInterval", { interval: 500 });
  await inspectorPost("Profiler.start");
}

async function stopProfile(file: string): Promise<void> {
  const { profile } = await inspectorPost<{ profile: object }>("Profiler.stop");
  writeFileSync(file, JSON.stringify(profile));
  console.log(`\n  server-thread CPU profile of the window: ${file}`);
}

// ---------------------------------------------------------------- load worker

// A process of its own, as the issue's clients were: the clients share neither an event loop nor
// a process (its allocator, its garbage collector) with the servers under test.
const worker = fork(new URL("./load-worker.ts", import.meta.url).pathname, [], {
  execArgv: ["--import", "tsx", ...(process.env.BENCH_CLIENT_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CLIENT_PROF}`] : [])],
  stdio: "inherit",
});

function runPhase(phase: PhaseName, spec: PhaseSpec): Promise<{ result: PhaseResult; noise: Noise }> {
  return new Promise((resolve, reject) => {
    let windowStart: CpuSample | undefined;
    let windowEnd: CpuSample | undefined;
    // The server thread's timers may fire a little late under load; the window is approximate.
    let profiling: Promise<void> | undefined;
    const t1 = setTimeout(() => {
      windowStart = sampleCpu();
      if (profileDir) profiling = startProfile();
    }, spec.warmupMs);
    const t2 = setTimeout(() => {
      windowEnd = sampleCpu();
      if (profiling) {
        const file = join(profileDir!, `${phase}.cpuprofile`);
        profiling = profiling.then(() => stopProfile(file)).catch((err: unknown) => console.error("profiling failed", err));
      }
    }, spec.warmupMs + spec.durationMs);
    const onMessage = (message: { type: "result"; result: PhaseResult } | { type: "error"; error: string }) => {
      worker.off("message", onMessage);
      worker.off("error", onError);
      clearTimeout(t1);
      clearTimeout(t2);
      if (message.type === "error") return reject(new Error(`load worker failed: ${message.error}`));
      const end = windowEnd ?? sampleCpu();
      const outcome = {
        result: message.result,
        noise: noiseBetween(windowStart ?? end, end),
      };
      void (profiling ?? Promise.resolve()).then(() => resolve(outcome));
    };
    const onError = (error: Error) => {
      worker.off("message", onMessage);
      reject(error);
    };
    worker.on("message", onMessage);
    worker.on("error", onError);
    worker.send({ type: "run", spec });
  });
}

// ---------------------------------------------------------------- run

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : "n/a");

interface PhaseDef {
  name: string;
  target: Target;
  server: "userport" | "pg" | "bare" | "grpcjs" | "raw-h2" | "connect-node" | "connect-fastify";
  path?: string;
  drainPath?: string;
  protocol?: PhaseSpec["protocol"];
}

const PHASE_DEFS: Record<PhaseName, PhaseDef> = {
  bare: { name: "A  bare fastify JSON POST (HTTP/1.1)", target: "bare-json", server: "bare", path: "/bare", drainPath: "/ping" },
  rest: {
    name: "   userport REST import (HTTP/1.1)",
    target: "rest-import",
    server: "userport",
    path: "/management/v1/users/human/_import",
    drainPath: "/healthz",
  },
  pgrest: {
    name: "   userport REST import, PostgreSQL (HTTP/1.1)",
    target: "rest-import",
    server: "pg",
    path: "/management/v1/users/human/_import",
    drainPath: "/healthz",
  },
  grpc: { name: "   userport gRPC ImportHumanUser (grpc-js)", target: "grpc-import", server: "userport" },
  "connect-json-h1": { name: "   userport Connect JSON import (HTTP/1.1)", target: "web-import", server: "userport" },
  "connect-proto-h1": { name: "   userport Connect binary import (HTTP/1.1)", target: "web-import", server: "userport" },
  "connect-json-h2": { name: "   userport Connect JSON import (HTTP/2)", target: "web-import", server: "userport" },
  "connect-proto-h2": { name: "   userport Connect binary import (HTTP/2)", target: "web-import", server: "userport" },
  "grpcweb-h1": { name: "   userport gRPC-Web import (HTTP/1.1)", target: "web-import", server: "userport" },
  "grpcweb-h2": { name: "   userport gRPC-Web import (HTTP/2)", target: "web-import", server: "userport" },
  grpcjs: { name: "B  @grpc/grpc-js server, Health/Check", target: "grpc-health", server: "grpcjs" },
  health: { name: "   userport Health/Check (gRPC)", target: "grpc-health", server: "userport" },
  "raw-h2": { name: "   raw node:http2, one gRPC frame", target: "grpc-health", server: "raw-h2" },
  "connect-node": { name: "   connect-node on node:http2, Health/Check", target: "grpc-health", server: "connect-node" },
  "connect-fastify": { name: "   connect-fastify (fastify http2), Health/Check", target: "grpc-health", server: "connect-fastify" },
};
for (const [name, protocol] of Object.entries(WEB_PHASES)) PHASE_DEFS[name as PhaseName].protocol = protocol;

/** The SQLite (or PostgreSQL) store of a userport against the imports acknowledged to it. */
interface StoreCheck {
  stored: number;
  acknowledged: number;
  lost: string[];
  phantom: string[];
  storedDespiteFailure: string[];
  events: number;
  claims: number;
  notActive: number;
  ok: boolean;
}

type Query = (sql: string) => Promise<Array<Record<string, unknown>>>;

async function checkStore(query: Query, outcomes: PhaseResult[]): Promise<StoreCheck> {
  const acknowledged = new Set<string>();
  const refused = new Set<string>();
  const unanswered = new Set<string>();
  for (const r of outcomes) {
    for (const u of r.okUsernames) acknowledged.add(u.toLowerCase());
    for (const u of r.failedUsernames) refused.add(u.toLowerCase());
    for (const u of r.unansweredUsernames) unanswered.add(u.toLowerCase());
  }
  const stored = new Set((await query("SELECT username FROM users WHERE type = 'human'")).map((row) => String(row.username).toLowerCase()));
  const count = async (sql: string) => Number((await query(sql))[0]!.n);
  const events = await count(
    "SELECT COUNT(*) AS n FROM events e JOIN users u ON u.instance_id = e.instance_id AND u.id = e.aggregate_id WHERE u.type = 'human'",
  );
  const claims = await count(
    "SELECT COUNT(*) AS n FROM unique_constraints c JOIN users u ON u.instance_id = c.instance_id AND u.id = c.owner_id WHERE u.type = 'human' AND c.kind = 'username'",
  );
  const notActive = await count("SELECT COUNT(*) AS n FROM users WHERE type = 'human' AND (state <> 'ACTIVE' OR email_verified <> 1 OR password_hash IS NULL)");
  const lost = [...acknowledged].filter((u) => !stored.has(u));
  const phantom = [...stored].filter((u) => !acknowledged.has(u) && !unanswered.has(u));
  const storedDespiteFailure = [...refused].filter((u) => stored.has(u) && !acknowledged.has(u));
  const ok =
    stored.size === acknowledged.size &&
    lost.length === 0 &&
    phantom.length === 0 &&
    storedDespiteFailure.length === 0 &&
    events === 2 * stored.size &&
    claims === stored.size &&
    notActive === 0;
  return { stored: stored.size, acknowledged: acknowledged.size, lost, phantom, storedDespiteFailure, events, claims, notActive, ok };
}

async function main(): Promise<number> {
  // A fresh directory per run (under BENCH_DATA_DIR if set), so the store holds only this run's users.
  const dataDir = mkdtempSync(join(process.env.BENCH_DATA_DIR ?? tmpdir(), "userport-bench-"));
  const pgDataDir = mkdtempSync(join(process.env.BENCH_DATA_DIR ?? tmpdir(), "userport-bench-pg-"));
  const passwordHash = bcrypt.hashSync("Bench-Passw0rd!", 10); // one real hash, reused for every user
  const configOf = (dir: string, url?: string): Config => ({
    ...loadConfig([], {}),
    port: 0,
    host: "127.0.0.1",
    dataDir: dir,
    databaseUrl: url,
    logLevel: "silent",
  });
  const uses = (server: PhaseDef["server"]) => phases.some((p) => PHASE_DEFS[p].server === server);
  const userport = await startServer(configOf(dataDir));
  const token = readFileSync(userport.adminTokenFile, "utf8").trim();
  let pgUrl: string | undefined;
  if (uses("pg") && !databaseUrl) throw new Error("the pgrest phase needs BENCH_DATABASE_URL or USERPORT_TEST_DATABASE_URL");
  if (uses("pg")) {
    // A database of its own on the server named (created here, dropped at the end).
    process.env.USERPORT_TEST_DATABASE_URL = databaseUrl;
    pgUrl = await testDatabaseUrl(pgDataDir);
  }
  const userportPg = pgUrl ? await startServer(configOf(pgDataDir, pgUrl)) : undefined;
  // Round trips to PostgreSQL (every query a client sends, this process's pool being the only
  // one), and how many of them open a transaction: queries and commit batches per import.
  const pgTrips = { queries: 0, transactions: 0 };
  if (userportPg) {
    const query = pg.Client.prototype.query as (...args: unknown[]) => unknown;
    (pg.Client.prototype as { query: unknown }).query = function (this: pg.Client, ...args: unknown[]) {
      pgTrips.queries++;
      const text = typeof args[0] === "string" ? args[0] : (args[0] as { text?: unknown } | undefined)?.text;
      if (typeof text === "string" && text.startsWith("BEGIN")) pgTrips.transactions++;
      return query.apply(this, args);
    };
  }
  const pgToken = userportPg ? readFileSync(userportPg.adminTokenFile, "utf8").trim() : "";
  const baselines = new Map<PhaseDef["server"], { url: string; close(): Promise<unknown> }>();
  if (uses("bare")) {
    const bare = await startBareFastify();
    baselines.set("bare", { url: bare.url, close: () => bare.app.close() });
  }
  if (uses("grpcjs")) baselines.set("grpcjs", await startGrpcJs());
  if (uses("raw-h2")) baselines.set("raw-h2", await startRawH2());
  if (uses("connect-node")) baselines.set("connect-node", await startConnectNode());
  if (uses("connect-fastify")) baselines.set("connect-fastify", await startConnectFastify());

  let fsType = "?";
  try {
    fsType = `0x${statfsSync(dataDir).type.toString(16)}`;
  } catch {
    // statfs unavailable
  }
  console.log(
    `userport import throughput: ${phases.join(", ")}; ${warmupSeconds}s warm-up + ${seconds}s measured, ` +
      `${connections} connections / in-flight calls (gRPC over ${grpcSessions} HTTP/2 session${grpcSessions === 1 ? "" : "s"}); clients in a child process`,
  );
  console.log(
    `node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? "?"}), loadavg ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
  let revision = "unknown revision";
  try {
    const git = (...args: string[]) => execFileSync("git", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    revision = `${git("rev-parse", "--short", "HEAD")}${git("status", "--porcelain", "--", "src", "gen") ? " + uncommitted changes in src/ or gen/" : ""}`;
  } catch {
    // not a git checkout
  }
  console.log(`userport at ${revision}`);
  console.log(`data dir ${dataDir} (fs type ${fsType}); durable commits: SQLite WAL, synchronous=FULL, group commit`);
  if (userportPg) console.log(`PostgreSQL store: ${new URL(pgUrl!).pathname.slice(1)} on ${new URL(pgUrl!).host}`);

  const specOf = (name: PhaseName): PhaseSpec => {
    const def = PHASE_DEFS[name];
    const url = def.server === "userport" ? userport.url : def.server === "pg" ? userportPg!.url : baselines.get(def.server)!.url;
    return {
      name: def.name,
      target: def.target,
      url,
      path: def.path ?? "",
      drainPath: def.drainPath ?? "",
      protocol: def.protocol,
      token: def.server === "pg" ? pgToken : token,
      passwordHash,
      usernamePrefix: `${name}-`,
      connections,
      grpcSessions,
      warmupMs: warmupSeconds * 1000,
      durationMs: seconds * 1000,
      drainTimeoutMs: 30_000,
    };
  };

  const results = new Map<PhaseName, { result: PhaseResult; noise: Noise }>();
  for (const name of phases) {
    const spec = specOf(name);
    process.stdout.write(`running ${spec.name.trim()} … `);
    const tripsBefore = { ...pgTrips };
    const batchesBefore = PHASE_DEFS[name].server === "userport" ? await commitBatches(userport.url) : undefined;
    const outcome = await runPhase(name, spec);
    results.set(name, outcome);
    if (batchesBefore) {
      const after = await commitBatches(userport.url);
      const batches = after.count - batchesBefore.count;
      const commands = after.sum - batchesBefore.sum;
      if (commands > 0) console.log(`  SQLite group commits over the phase: ${batches} batches, ${fmt(commands / batches, 1)} commands a batch`);
    }
    if (PHASE_DEFS[name].server === "pg") {
      const imports = outcome.result.sent;
      console.log(
        `  PostgreSQL round trips over the phase: ${fmt((pgTrips.queries - tripsBefore.queries) / imports, 2)} queries and ` +
          `${fmt((pgTrips.transactions - tripsBefore.transactions) / imports, 3)} transactions per import (${imports} imports sent)`,
      );
    }
    const r = outcome.result;
    console.log(
      `${fmt(r.rps)} req/s, p50 ${fmt(r.p50Ms, 1)} ms, p99 ${fmt(r.p99Ms, 1)} ms, failed ${r.failed}${r.unanswered ? `, UNANSWERED ${r.unanswered}` : ""}`,
    );
    // Let the server settle (commit queue idle, sockets closed) before the next phase.
    await new Promise((resolve) => setTimeout(resolve, 500));
  }

  // The clients go first: a server's close waits for the HTTP/2 sessions still open to it.
  // Disconnecting lets the client process exit on its own (writing its CPU profile, when asked for).
  worker.disconnect();
  await userport.close();
  await userportPg?.close();
  for (const baseline of baselines.values()) await baseline.close();

  // ------------------------------------------------------------ verification against the stores
  const importsOn = (server: PhaseDef["server"]) =>
    [...results].filter(([p]) => PHASE_DEFS[p].server === server && PHASE_DEFS[p].target !== "grpc-health").map(([, { result }]) => result);
  const checks: Array<{ store: string; outcomes: PhaseResult[]; check: StoreCheck }> = [];
  if (importsOn("userport").length > 0) {
    const sqlite = new Database(join(dataDir, "userport.sqlite"), { readonly: true, fileMustExist: true });
    const outcomes = importsOn("userport");
    checks.push({ store: "SQLite", outcomes, check: await checkStore(async (sql) => sqlite.prepare(sql).all() as Array<Record<string, unknown>>, outcomes) });
    sqlite.close();
  }
  if (pgUrl && importsOn("pg").length > 0) {
    const client = new pg.Client({ connectionString: pgUrl });
    await client.connect();
    const outcomes = importsOn("pg");
    checks.push({ store: "PostgreSQL", outcomes, check: await checkStore(async (sql) => (await client.query(sql)).rows, outcomes) });
    await client.end();
  }
  if (pgUrl) await dropTestDatabase(pgDataDir);

  // ------------------------------------------------------------ report
  const rows = PHASES.filter((p) => results.has(p)).map((p) => {
    const { result: r, noise: n } = results.get(p)!;
    return `| ${r.name.trim()} | ${fmt(r.rps)} | ${fmt(r.p50Ms, 1)} | ${fmt(r.p99Ms, 1)} | ${r.windowOk} | ${r.failed + r.unanswered} | ${fmt(n.serverElu, 2)} / ${fmt(n.serverCores, 2)} | ${fmt((1000 * n.serverCores) / r.rps, 3)} | ${fmt(r.clientElu, 2)} | ${fmt(n.selfCores, 2)} | ${fmt(n.otherCores, 2)} / ${fmt(n.stealCores, 2)} |`;
  });
  console.log("");
  console.log(
    `| phase | req/s | p50 ms | p99 ms | ok in window | non-2xx / failed | server ELU / cores | server CPU ms per req | client ELU | servers' process (cores) | other processes / steal (cores) |`,
  );
  console.log(`|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|`);
  for (const row of rows) console.log(row);
  console.log("");

  const ratio = (a: PhaseName, b: PhaseName) => (results.has(a) && results.has(b) ? results.get(a)!.result.rps / results.get(b)!.result.rps : NaN);
  const failuresOf = (p: PhaseName) => (results.has(p) ? results.get(p)!.result.failed + results.get(p)!.result.unanswered : 0);
  const verdict = (value: number, met: boolean) => (Number.isFinite(value) ? (met ? "MET" : "NOT MET") : "not run");
  const restRatio = ratio("rest", "bare");
  const grpcRatio = ratio("grpc", "rest");
  const healthRatio = ratio("health", "grpcjs");
  const pgRatio = ratio("pgrest", "rest");
  const restP99 = results.get("rest")?.result.p99Ms ?? NaN;
  console.log("goals (each a ratio of two phases of this run):");
  console.log(`  1. gRPC ImportHumanUser / REST import           = ${fmt(grpcRatio, 3)}   goal ≥ 0.8   → ${verdict(grpcRatio, grpcRatio >= 0.8)}`);
  for (const p of Object.keys(WEB_PHASES) as PhaseName[]) {
    if (results.has(p) && results.has("rest"))
      console.log(`     ${PHASE_DEFS[p].name.trim().replace("userport ", "").padEnd(40)} / REST import = ${fmt(ratio(p, "rest"), 3)}`);
  }
  console.log(`  2. userport Health/Check / grpc-js Health/Check = ${fmt(healthRatio, 3)}   goal ≥ 0.8   → ${verdict(healthRatio, healthRatio >= 0.8)}`);
  for (const p of ISOLATION) {
    if (results.has(p) && results.has("grpcjs")) console.log(`     ${PHASE_DEFS[p].name.trim().padEnd(40)} / grpc-js = ${fmt(ratio(p, "grpcjs"), 3)}`);
  }
  const goal3 = restRatio >= 0.5 && restP99 < 15 && failuresOf("rest") === 0;
  console.log(
    `  3. REST import / bare fastify                   = ${fmt(restRatio, 3)}   goal ≥ 0.5, p99 < 15 ms (${fmt(restP99, 1)}), 0 errors (${failuresOf("rest")}) → ${verdict(restRatio, goal3)}`,
  );
  console.log(`  4. PostgreSQL REST import / SQLite REST import  = ${fmt(pgRatio, 3)}   goal ≥ 0.5   → ${verdict(pgRatio, pgRatio >= 0.5)}`);

  let exitCode = 0;
  const failures = [...results.values()].reduce((sum, { result: r }) => sum + r.failed + r.unanswered, 0);
  if (failures > 0) {
    exitCode = 1;
    console.error(`\n!!! FAILED REQUESTS: ${failures} request(s) failed or were never answered !!!`);
    for (const { result: r } of results.values()) {
      if (r.failed + r.unanswered === 0) continue;
      console.error(`  ${r.name.trim()}: failed ${r.failed}, unanswered ${r.unanswered}, statuses ${JSON.stringify(r.statusCounts)}`);
      for (const sample of r.failureSamples) console.error(`    ${sample}`);
    }
  }
  for (const { store, outcomes, check: c } of checks) {
    console.log(
      `store check (${store}): ${c.stored} human users stored, ${c.acknowledged} imports acknowledged ` +
        `(${outcomes.map((r) => `${r.name.trim()} ${r.ok}`).join(", ")}); ` +
        `lost ${c.lost.length}, phantom ${c.phantom.length}, stored despite an error ${c.storedDespiteFailure.length}; ` +
        `events ${c.events} (expect ${2 * c.stored}), username claims ${c.claims}, not ACTIVE/verified/hashed ${c.notActive}` +
        ` → ${c.ok ? "OK" : "MISMATCH"}`,
    );
    if (!c.ok) {
      exitCode = 1;
      console.error(`\n!!! STORE MISMATCH (${store}): the store does not hold exactly the acknowledged imports !!!`);
      if (c.lost.length) console.error(`  lost (acknowledged, not stored), e.g. ${c.lost.slice(0, 5).join(", ")}`);
      if (c.phantom.length) console.error(`  phantom (stored, never acknowledged), e.g. ${c.phantom.slice(0, 5).join(", ")}`);
      if (c.storedDespiteFailure.length) console.error(`  stored despite an error, e.g. ${c.storedDespiteFailure.slice(0, 5).join(", ")}`);
    }
  }
  if (Number.isFinite(restRatio)) {
    const holds = restRatio >= BAR && failures === 0;
    if (!holds && enforceBar && exitCode === 0) exitCode = 2;
  }

  if (jsonOut) {
    const summary = {
      at: new Date().toISOString(),
      revision,
      node: process.version,
      cpus: cpus().length,
      loadavg: loadavg(),
      seconds,
      warmupSeconds,
      connections,
      ratios: { grpcOverRest: grpcRatio, healthOverGrpcJs: healthRatio, restOverBare: restRatio, postgresOverSqlite: pgRatio },
      phases: Object.fromEntries(
        [...results].map(([p, { result: r, noise }]) => [
          p,
          { ...r, okUsernames: undefined, failedUsernames: undefined, unansweredUsernames: undefined, noise },
        ]),
      ),
      stores: checks.map(({ store, check: c }) => ({ store, stored: c.stored, acknowledged: c.acknowledged, ok: c.ok })),
    };
    writeFileSync(jsonOut, JSON.stringify(summary, null, 2));
  }
  if (!keepData) {
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(pgDataDir, { recursive: true, force: true });
  } else console.log(`data kept in ${dataDir}`);
  return exitCode;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error("\n!!! BENCHMARK ABORTED !!!");
    console.error(error);
    // Servers may still be listening; don't wait for them.
    process.exit(1);
  },
);
