/**
 * Import throughput of userport against baselines measured in the same run.
 *
 *   npm run bench                          # or: npx tsx bench/import-throughput.ts
 *   BENCH_SECONDS=10 BENCH_WARMUP_SECONDS=2 BENCH_CONNECTIONS=50 npm run bench
 *   npm run bench -- --seconds 5 --phases bare,rest
 *
 * Phases (each a warm-up, then a measured window, then a drain that waits for every request sent):
 *   bare   Baseline A: a bare fastify app, one JSON POST route, HTTP/1.1, autocannon.
 *   rest   userport POST /management/v1/users/human/_import, pre-hashed bcrypt, HTTP/1.1, autocannon.
 *   health Baseline B: grpc.health.v1.Health/Check on a minimal fastify + Connect server, gRPC (h2c).
 *   grpc   userport ImportHumanUser over gRPC (h2c).
 *
 * Servers run on the main thread of this process; the load generator runs in a worker thread
 * (bench/load-worker.ts) so the two never share an event loop. The machine is small and shared,
 * so everything is reported as ratios to the baselines, each run right before the phase it is
 * compared with. At the end the SQLite store is opened read-only and checked against exactly the
 * usernames whose import was acknowledged. BENCH_DATA_DIR picks where the store goes (default: the
 * OS temp dir); BENCH_KEEP_DATA=1 / --keep-data keeps it. BENCH_CPU_PROFILE=<dir> writes a CPU
 * profile of the server thread per phase, covering exactly its measured window (summarise it with
 * bench/profile-summary.ts); profiling slows the servers, so such a run's figures are not results.
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
import { Worker } from "node:worker_threads";
import { fastifyConnectPlugin } from "@connectrpc/connect-fastify";
import bcrypt from "bcrypt";
import Database from "better-sqlite3";
import Fastify from "fastify";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { loadConfig, type Config } from "../src/config.js";
import { startServer } from "../src/server.js";
import type { PhaseResult, PhaseSpec, Target } from "./load-worker.js";

const BAR = 0.3;
const PHASES = ["bare", "rest", "health", "grpc"] as const;
type PhaseName = (typeof PHASES)[number];

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
const phases = (flags.phases ?? process.env.BENCH_PHASES ?? PHASES.join(","))
  .split(",")
  .map((p) => p.trim())
  .filter(Boolean) as PhaseName[];
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

/** Baseline B: grpc.health.v1.Health/Check on a minimal fastify + Connect server over h2c. */
async function startTrivialConnect() {
  const app = Fastify({ http2: true, logger: false });
  await app.register(fastifyConnectPlugin, {
    routes(router) {
      router.service(Health, {
        check: () => ({ status: HealthCheckResponse_ServingStatus.SERVING }),
        // A baseline that serves Check only: Watch ends at once without an update.
        // biome-ignore lint/correctness/useYield: it yields nothing on purpose
        async *watch() {
          return;
        },
      });
    },
  });
  await app.listen({ port: 0, host: "127.0.0.1" });
  const address = app.server.address();
  return { app, url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}` };
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

// Started through tsx's API so that it loads the TypeScript worker however this script was started
// (`npx tsx` does not pass its loader on to workers; `node --import tsx` does, and both work).
const worker = new Worker(
  `import("tsx/esm/api").then(({ register }) => { register(); return import(${JSON.stringify(new URL("./load-worker.ts", import.meta.url).href)}); });`,
  { eval: true },
);

function runPhase(spec: PhaseSpec): Promise<{ result: PhaseResult; noise: Noise }> {
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
        const file = join(profileDir!, `${spec.target}.cpuprofile`);
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
    worker.postMessage({ type: "run", spec });
  });
}

// ---------------------------------------------------------------- run

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : "n/a");

async function main(): Promise<number> {
  // A fresh directory per run (under BENCH_DATA_DIR if set), so the store holds only this run's users.
  const dataDir = mkdtempSync(join(process.env.BENCH_DATA_DIR ?? tmpdir(), "userport-bench-"));
  const passwordHash = bcrypt.hashSync("Bench-Passw0rd!", 10); // one real hash, reused for every user
  const config: Config = {
    ...loadConfig([], {}),
    port: 0,
    host: "127.0.0.1",
    dataDir,
    logLevel: "silent",
  };
  const userport = await startServer(config);
  const token = readFileSync(userport.adminTokenFile, "utf8").trim();
  const bare = phases.includes("bare") ? await startBareFastify() : undefined;
  const trivial = phases.includes("health") ? await startTrivialConnect() : undefined;

  let fsType = "?";
  try {
    fsType = `0x${statfsSync(dataDir).type.toString(16)}`;
  } catch {
    // statfs unavailable
  }
  console.log(
    `userport import throughput: ${phases.join(", ")}; ${warmupSeconds}s warm-up + ${seconds}s measured, ` +
      `${connections} connections / in-flight calls (gRPC over ${grpcSessions} HTTP/2 session${grpcSessions === 1 ? "" : "s"})`,
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

  const specOf = (name: PhaseName): PhaseSpec => {
    const base = {
      token,
      passwordHash,
      connections,
      grpcSessions,
      warmupMs: warmupSeconds * 1000,
      durationMs: seconds * 1000,
      drainTimeoutMs: 30_000,
    };
    const spec: Record<PhaseName, PhaseSpec> = {
      bare: {
        ...base,
        name: "A  bare fastify JSON POST (HTTP/1.1)",
        target: "bare-json" as Target,
        url: bare?.url ?? "",
        path: "/bare",
        drainPath: "/ping",
        usernamePrefix: "bare-",
      },
      rest: {
        ...base,
        name: "   userport REST import (HTTP/1.1)",
        target: "rest-import",
        url: userport.url,
        path: "/management/v1/users/human/_import",
        drainPath: "/healthz",
        usernamePrefix: "rest-",
      },
      health: {
        ...base,
        name: "B  trivial Connect RPC, Health/Check (gRPC)",
        target: "grpc-health",
        url: trivial?.url ?? "",
        path: "",
        drainPath: "",
        usernamePrefix: "health-",
      },
      grpc: {
        ...base,
        name: "   userport gRPC ImportHumanUser (gRPC)",
        target: "grpc-import",
        url: userport.url,
        path: "",
        drainPath: "",
        usernamePrefix: "grpc-",
      },
    };
    return spec[name];
  };

  const results = new Map<PhaseName, { result: PhaseResult; noise: Noise }>();
  for (const name of phases) {
    const spec = specOf(name);
    process.stdout.write(`running ${spec.name.trim()} … `);
    const outcome = await runPhase(spec);
    results.set(name, outcome);
    const r = outcome.result;
    console.log(
      `${fmt(r.rps)} req/s, p50 ${fmt(r.p50Ms, 1)} ms, p99 ${fmt(r.p99Ms, 1)} ms, failed ${r.failed}${r.unanswered ? `, UNANSWERED ${r.unanswered}` : ""}`,
    );
    // Let the server settle (commit queue idle, sockets closed) before the next phase.
    await new Promise((resolve) => setTimeout(resolve, 500));
  }

  // The clients go first: a server's close waits for the HTTP/2 sessions still open to it.
  await worker.terminate();
  await userport.close();
  await bare?.app.close();
  await trivial?.app.close();

  // ------------------------------------------------------------ verification against the store
  const importPhases = (["rest", "grpc"] as const).filter((p) => results.has(p));
  const acknowledged = new Set<string>();
  const refused = new Set<string>();
  const unanswered = new Set<string>();
  for (const p of importPhases) {
    const r = results.get(p)!.result;
    for (const u of r.okUsernames) acknowledged.add(u.toLowerCase());
    for (const u of r.failedUsernames) refused.add(u.toLowerCase());
    for (const u of r.unansweredUsernames) unanswered.add(u.toLowerCase());
  }
  const sqlite = new Database(join(dataDir, "userport.sqlite"), { readonly: true, fileMustExist: true });
  const stored = new Set(
    (sqlite.prepare("SELECT username FROM users WHERE type = 'human'").all() as Array<{ username: string }>).map((row) => row.username.toLowerCase()),
  );
  const humanEvents = (
    sqlite
      .prepare("SELECT COUNT(*) AS n FROM events e JOIN users u ON u.instance_id = e.instance_id AND u.id = e.aggregate_id WHERE u.type = 'human'")
      .get() as { n: number }
  ).n;
  const humanClaims = (
    sqlite
      .prepare(
        "SELECT COUNT(*) AS n FROM unique_constraints c JOIN users u ON u.instance_id = c.instance_id AND u.id = c.owner_id WHERE u.type = 'human' AND c.kind = 'username'",
      )
      .get() as { n: number }
  ).n;
  const notActive = (
    sqlite.prepare("SELECT COUNT(*) AS n FROM users WHERE type = 'human' AND (state <> 'ACTIVE' OR email_verified <> 1 OR password_hash IS NULL)").get() as {
      n: number;
    }
  ).n;
  sqlite.close();
  const lost = [...acknowledged].filter((u) => !stored.has(u));
  const phantom = [...stored].filter((u) => !acknowledged.has(u) && !unanswered.has(u));
  const storedDespiteFailure = [...refused].filter((u) => stored.has(u) && !acknowledged.has(u));
  const storeOk =
    stored.size === acknowledged.size &&
    lost.length === 0 &&
    phantom.length === 0 &&
    storedDespiteFailure.length === 0 &&
    humanEvents === 2 * stored.size &&
    humanClaims === stored.size &&
    notActive === 0;

  // ------------------------------------------------------------ report
  const rows = PHASES.filter((p) => results.has(p)).map((p) => {
    const { result: r, noise: n } = results.get(p)!;
    return `| ${r.name.trim()} | ${fmt(r.rps)} | ${fmt(r.p50Ms, 1)} | ${fmt(r.p99Ms, 1)} | ${r.windowOk} | ${r.failed + r.unanswered} | ${fmt(n.serverElu, 2)} / ${fmt(n.serverCores, 2)} | ${fmt((1000 * n.serverCores) / r.rps, 3)} | ${fmt(r.clientElu, 2)} | ${fmt(n.selfCores, 2)} | ${fmt(n.otherCores, 2)} / ${fmt(n.stealCores, 2)} |`;
  });
  console.log("");
  console.log(
    `| phase | req/s | p50 ms | p99 ms | ok in window | non-2xx / failed | server ELU / cores | server CPU ms per req | client ELU | this process (cores) | other processes / steal (cores) |`,
  );
  console.log(`|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|`);
  for (const row of rows) console.log(row);
  console.log("");

  const ratio = (a: PhaseName, b: PhaseName) => (results.has(a) && results.has(b) ? results.get(a)!.result.rps / results.get(b)!.result.rps : NaN);
  const restRatio = ratio("rest", "bare");
  const grpcRatio = ratio("grpc", "health");
  if (results.has("rest") && results.has("bare")) console.log(`REST import / bare fastify         = ${fmt(restRatio, 3)}`);
  if (results.has("grpc") && results.has("health")) console.log(`gRPC import / trivial Connect RPC  = ${fmt(grpcRatio, 3)}`);

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
  if (importPhases.length > 0) {
    console.log(
      `store check: ${stored.size} human users stored, ${acknowledged.size} imports acknowledged ` +
        `(${importPhases.map((p) => `${p} ${results.get(p)!.result.ok}`).join(", ")}); ` +
        `lost ${lost.length}, phantom ${phantom.length}, stored despite an error ${storedDespiteFailure.length}, ` +
        `unanswered ${unanswered.size}; events ${humanEvents} (expect ${2 * stored.size}), username claims ${humanClaims}, not ACTIVE/verified/hashed ${notActive}` +
        ` → ${storeOk ? "OK" : "MISMATCH"}`,
    );
    if (!storeOk) {
      exitCode = 1;
      console.error(`\n!!! STORE MISMATCH: the store does not hold exactly the acknowledged imports !!!`);
      if (lost.length) console.error(`  lost (acknowledged, not stored), e.g. ${lost.slice(0, 5).join(", ")}`);
      if (phantom.length) console.error(`  phantom (stored, never acknowledged), e.g. ${phantom.slice(0, 5).join(", ")}`);
      if (storedDespiteFailure.length) console.error(`  stored despite an error, e.g. ${storedDespiteFailure.slice(0, 5).join(", ")}`);
    }
  }
  if (Number.isFinite(restRatio)) {
    const holds = restRatio >= BAR && failures === 0;
    console.log(
      `bar: REST import ≥ ${BAR} × bare fastify with durable commits and zero failures → ${holds ? "HOLDS" : "NOT MET"} ` +
        `(ratio ${fmt(restRatio, 3)}, ${failures} failed requests)`,
    );
    if (!holds && enforceBar && exitCode === 0) exitCode = 2;
  }

  if (jsonOut) {
    const summary = {
      at: new Date().toISOString(),
      revision,
      node: process.version,
      cpus: cpus().length,
      seconds,
      warmupSeconds,
      connections,
      ratios: { restOverBare: restRatio, grpcOverHealth: grpcRatio },
      phases: Object.fromEntries(
        [...results].map(([p, { result: r, noise }]) => [
          p,
          { ...r, okUsernames: undefined, failedUsernames: undefined, unansweredUsernames: undefined, noise },
        ]),
      ),
      store: { stored: stored.size, acknowledged: acknowledged.size, lost: lost.length, phantom: phantom.length, ok: storeOk },
    };
    writeFileSync(jsonOut, JSON.stringify(summary, null, 2));
  }
  if (!keepData) rmSync(dataDir, { recursive: true, force: true });
  else console.log(`data kept in ${dataDir}`);
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
