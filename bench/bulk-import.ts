/**
 * Bulk import throughput: N pre-hashed users over one ImportUsers gRPC stream (grpc-js) into
 * `userport serve` on SQLite, against a raw batched better-sqlite3 insert of the same rows in the
 * same run (the limit here), then the same stream on PostgreSQL, and a dry run of the same
 * records. Prints users/s, ratios and the server's peak RSS (VmHWM of its process).
 *
 * The server runs as operators run it: the built bin (dist/, built first when the sources changed).
 *
 *   node --import tsx bench/bulk-import.ts --users 1000000
 *   USERPORT_TEST_DATABASE_URL=postgres://… node --import tsx bench/bulk-import.ts --users 1000000
 *   node --import tsx bench/bulk-import.ts --users 20000 --plain 400   (adds plaintext passwords, bcrypt cost 10)
 *
 * Every acknowledged record must be CREATED and the store must hold exactly N users of the run's
 * prefix; otherwise the run exits with code 1.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import bcrypt from "bcrypt";
import Database from "better-sqlite3";
import { Kysely, SqliteDialect } from "kysely";
import {
  ImportOutcome,
  type ImportRecord,
  ImportRecordSchema,
  type ImportResult,
  ImportResultSchema,
  ImportUsersRequestSchema,
} from "../gen/userport/migration/v1/migration_pb.js";
import { openImportStream } from "./import-stream.js";
import { migrateToLatest } from "../src/store/migrations.js";
import { dropTestDatabase, testDatabaseUrl, testPostgresUrl } from "../test/helpers/database.js";
import { freePort, type Served, serveProcess } from "../test/helpers/process.js";
import { ensureBuilt } from "./built.js";

const { values: flags } = parseArgs({
  options: {
    users: { type: "string" },
    batch: { type: "string" },
    window: { type: "string" },
    // Users of the plaintext-password phase (bcrypt cost 10 on the server), 0 to skip it.
    plain: { type: "string" },
    // Only the stream, against a server already running (for profiling it): --url and its data dir.
    url: { type: "string" },
    "data-dir": { type: "string" },
    // With --url: stream a dry run.
    "dry-run": { type: "boolean" },
    // The phases to run, comma-separated (default all): sqlite,raw,dry-run,plaintext,postgres.
    // `raw` needs `sqlite` (it copies that phase's rows); postgres runs when the URL is set.
    phases: { type: "string" },
  },
  strict: true,
});
const USERS = Number(flags.users ?? 1_000_000);
const BATCH = Number(flags.batch ?? 1000);
/** Batches the client keeps sent and unanswered; the server reads no faster than it commits anyway. */
const WINDOW = Number(flags.window ?? 4);
const PLAIN_USERS = Number(flags.plain ?? 0);
const PHASES = new Set((flags.phases ?? "sqlite,raw,dry-run,plaintext,postgres").split(",").map((name) => name.trim()));
const PASSWORD = "Secr3t-Passw0rd!";
const HASH = bcrypt.hashSync(PASSWORD, 10);

interface Phase {
  name: string;
  seconds: number;
  created: number;
  peakRssMb: number;
  /** The server's resident set once it answered /healthz, before the stream. */
  idleRssMb?: number;
  /** CPU time per user, µs, during the stream: the server's threads and this (client) process. */
  cpu?: ThreadCpu;
}

interface ThreadCpu {
  main: number;
  /** The server thread other than the main one that used the most CPU (the writer, in a real import). */
  busiest: number;
  /** Every other server thread (V8's helpers, libuv's pool, …). */
  rest: number;
  client: number;
}

/** CPU time (µs) of each thread of a process, by thread id, from /proc (utime + stime). */
function threadCpu(pid: number): Map<number, number> {
  const ticks = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // Fields 14 and 15 of stat (utime, stime), counted from the state (field 3) here.
      ticks.set(Number(tid), ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS);
    } catch {
      // The thread ended meanwhile.
    }
  }
  return ticks;
}
const CLOCK_TICKS = 100;

function cpuPerUser(pid: number, before: Map<number, number>, after: Map<number, number>, client: NodeJS.CpuUsage, users: number): ThreadCpu {
  const used = [...after].map(([tid, us]) => [tid, us - (before.get(tid) ?? 0)] as const);
  const main = used.find(([tid]) => tid === pid)?.[1] ?? 0;
  const others = used.filter(([tid]) => tid !== pid).map(([, us]) => us);
  const busiest = Math.max(0, ...others);
  const rest = others.reduce((sum, us) => sum + us, 0) - busiest;
  return { main: main / users, busiest: busiest / users, rest: rest / users, client: (client.user + client.system) / users };
}

function record(prefix: string, i: string, plain = false): ImportRecord {
  return create(ImportRecordSchema, {
    key: `${prefix}${i}`,
    user: {
      case: "human",
      value: {
        username: `${prefix}${i}`,
        profile: { givenName: "Bench", familyName: `User ${i}` },
        email: { email: `${prefix}${i}@example.com`, verification: { case: "isVerified", value: true } },
        passwordType: plain ? { case: "password", value: { password: PASSWORD } } : { case: "hashedPassword", value: { hash: HASH } },
      },
    },
  });
}

/** Digits of a record's number: every record of a run encodes to the same length. */
const DIGITS = 7;

/**
 * Encodes the records message of users [from, to) as protobuf-es encodes it, from one template
 * record whose number is a placeholder: the client's CPU per user (it shares the cores with the
 * server) drops from about 20 µs (create() and toBinary() of each record) to about 1 µs.
 */
function batchEncoder(prefix: string, plain: boolean) {
  const mark = "#".repeat(DIGITS);
  const template = toBinary(ImportRecordSchema, record(prefix, mark, plain));
  const markBytes = new TextEncoder().encode(mark);
  const offsets: number[] = [];
  for (let at = 0; at <= template.length - DIGITS; at++) {
    if (markBytes.every((byte, d) => template[at + d] === byte)) offsets.push(at);
  }
  if (offsets.length === 0) throw new Error("the template record has no placeholder");
  return (from: number, to: number): Uint8Array => {
    // ImportUsersRequest.records (2) is an ImportRecordBatch, whose records (1) repeat.
    const writer = new BinaryWriter().tag(2, WireType.LengthDelimited).fork();
    for (let i = from; i < to; i++) {
      const bytes = template.slice();
      const digits = String(i).padStart(DIGITS, "0");
      for (const at of offsets) for (let d = 0; d < DIGITS; d++) bytes[at + d] = digits.charCodeAt(d);
      writer.tag(1, WireType.LengthDelimited).bytes(bytes);
    }
    return writer.join().finish();
  };
}

/** What the client needs of a response: the results that are not CREATED, and how many are. */
interface ResultsSeen {
  results: number;
  created: number;
  notCreated: ImportResult[];
}

/**
 * Reads a response's results as far as the benchmark needs them: each result's outcome, and the
 * whole result only when it is not CREATED. The client shares the two cores with the server, and
 * `fromBinary` of a response of a thousand results (every key, user id and index built as a
 * string or BigInt) cost it about 4 µs a user, half of its CPU.
 */
function scanResults(bytes: Uint8Array): ResultsSeen {
  const seen: ResultsSeen = { results: 0, created: 0, notCreated: [] };
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    // ImportUsersResponse.results (2), each an ImportResult whose outcome is field 3.
    if (field !== 2 || wireType !== WireType.LengthDelimited) {
      reader.skip(wireType, field);
      continue;
    }
    const result = reader.bytes();
    const inner = new BinaryReader(result);
    let outcome = ImportOutcome.UNSPECIFIED;
    while (inner.pos < inner.len) {
      const [resultField, resultWireType] = inner.tag();
      if (resultField === 3 && resultWireType === WireType.Varint) outcome = inner.int32();
      else inner.skip(resultWireType, resultField);
    }
    seen.results++;
    if (outcome === ImportOutcome.CREATED) seen.created++;
    else seen.notCreated.push(fromBinary(ImportResultSchema, result));
  }
  return seen;
}

/** VmHWM: the peak resident set of a process, in MB. */
function peakRssMb(pid: number, field = "VmHWM"): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) / 1024;
}

async function stream(
  url: string,
  token: string,
  prefix: string,
  dryRun: boolean,
  users = USERS,
  plain = false,
): Promise<{ seconds: number; created: number }> {
  if (users >= 10 ** DIGITS) throw new Error(`at most ${10 ** DIGITS - 1} users`);
  const encode = batchEncoder(prefix, plain);
  const { client, call } = openImportStream(url, token, scanResults);
  const started = performance.now();
  call.write(create(ImportUsersRequestSchema, { payload: { case: "options", value: { dryRun, expectedRecords: BigInt(users) } } }));
  let sent = 0;
  let answered = 0;
  let created = 0;
  let bad = 0;
  const sendMore = () => {
    while (sent < users && sent - answered < WINDOW * BATCH) {
      const end = Math.min(sent + BATCH, users);
      call.write(encode(sent, end));
      sent = end;
    }
    if (sent >= users) call.end();
  };
  await new Promise<void>((resolve, reject) => {
    call.on("data", (seen: ResultsSeen) => {
      answered += seen.results;
      created += seen.created;
      for (const result of seen.notCreated) if (bad++ < 3) console.error("not created:", result.key, result.error?.id, result.error?.message);
      if (seen.results > 0 && sent < users) sendMore();
    });
    call.on("error", reject);
    call.on("end", () => resolve());
    sendMore();
  });
  client.close();
  return { seconds: (performance.now() - started) / 1000, created };
}

async function startServer(dataDir: string, databaseUrl: string | undefined, env: Record<string, string> = {}): Promise<Served> {
  return serveProcess(
    await freePort(),
    {
      ...env,
      USERPORT_DATA_DIR: dataDir,
      ...(databaseUrl ? { USERPORT_DATABASE_URL: databaseUrl } : {}),
      USERPORT_LOG_LEVEL: "warn",
    },
    { built: true },
  );
}

async function stop(served: Served) {
  served.child.kill("SIGTERM");
  await served.exited;
}

async function importPhase(name: string, databaseUrl: string | undefined, dataDir: string, dryRun = false, users = USERS, plain = false): Promise<Phase> {
  const served = await startServer(dataDir, databaseUrl, plain ? { USERPORT_BCRYPT_COST: "10" } : {});
  const idle = peakRssMb(served.child.pid!, "VmRSS");
  const token = readFileSync(join(dataDir, "admin.pat"), "utf8").trim();
  const prefix = `${name}-${Date.now().toString(36)}-`;
  const pid = served.child.pid!;
  const before = threadCpu(pid);
  const clientBefore = process.cpuUsage();
  const run = await stream(served.url, token, prefix, dryRun, users, plain);
  const cpu = cpuPerUser(pid, before, threadCpu(pid), process.cpuUsage(clientBefore), users);
  const peak = peakRssMb(pid);
  await stop(served);
  if (run.created !== users) {
    console.error(`${name}: ${run.created} of ${users} created`);
    process.exitCode = 1;
  }
  return { name, seconds: run.seconds, created: run.created, peakRssMb: peak, idleRssMb: idle, cpu };
}

/**
 * The limit: the same rows (users, claims, events, job results) copied by better-sqlite3 into a
 * fresh, migrated store, batch after batch in durable transactions (WAL, synchronous=FULL), with
 * prepared multi-row inserts; no server, no validation, no protocol.
 */
async function rawPhase(sourceFile: string): Promise<Phase> {
  const dir = mkdtempSync(join(tmpdir(), "userport-raw-"));
  const file = join(dir, "raw.sqlite");
  const target = new Database(file);
  target.pragma("journal_mode = WAL");
  target.pragma("synchronous = FULL");
  target.pragma("cache_size = -65536");
  target.pragma("wal_autocheckpoint = 10000");
  const kysely = new Kysely<unknown>({ dialect: new SqliteDialect({ database: target }) });
  await migrateToLatest(kysely, "sqlite");
  const source = new Database(sourceFile, { readonly: true });
  // The rows, read up front so that only the inserts are timed.
  const users = source.prepare("SELECT * FROM users WHERE type = 'human' AND username LIKE 'sqlite-%' ORDER BY rowid").raw().all() as unknown[][];
  const ids = new Set(users.map((row) => row[1] as string));
  const claims = (source.prepare("SELECT * FROM unique_constraints WHERE kind = 'username'").raw().all() as unknown[][]).filter((row) =>
    ids.has(row[3] as string),
  );
  const events = (
    source
      .prepare(
        "SELECT instance_id, aggregate_type, aggregate_id, sequence, type, payload, creator, created_at, resource_owner FROM events WHERE aggregate_type = 'user'",
      )
      .raw()
      .all() as unknown[][]
  ).filter((row) => ids.has(row[2] as string));
  const results = source.prepare("SELECT * FROM import_job_records").raw().all() as unknown[][];
  source.close();
  const columnsOf = (table: string) =>
    target
      .prepare(`SELECT * FROM ${table} LIMIT 0`)
      .columns()
      .map((c) => c.name);
  const multi = (table: string, columns: string[], rows: number) =>
    target.prepare(
      `INSERT INTO ${table} (${columns.join(", ")}) VALUES ${Array.from({ length: rows }, () => `(${columns.map(() => "?").join(", ")})`).join(", ")}`,
    );
  const userColumns = columnsOf("users");
  const eventColumns = ["instance_id", "aggregate_type", "aggregate_id", "sequence", "type", "payload", "creator", "created_at", "resource_owner"];
  const PER = 100;
  const insertAll = (table: string, columns: string[], rows: unknown[][]) => {
    const full = multi(table, columns, PER);
    let i = 0;
    for (; i + PER <= rows.length; i += PER) full.run(rows.slice(i, i + PER).flat());
    if (i < rows.length) multi(table, columns, rows.length - i).run(rows.slice(i).flat());
  };
  const started = performance.now();
  const TX = 5000;
  const perUserEvents = events.length / Math.max(users.length, 1);
  for (let i = 0; i < users.length; i += TX) {
    const part = users.slice(i, i + TX);
    target.transaction(() => {
      insertAll("users", userColumns, part);
      insertAll("unique_constraints", ["instance_id", "kind", "value", "owner_id"], claims.slice(i, i + TX));
      insertAll("events", eventColumns, events.slice(Math.round(i * perUserEvents), Math.round((i + TX) * perUserEvents)));
      insertAll("import_job_records", columnsOf("import_job_records"), results.slice(i, i + TX));
    })();
  }
  const seconds = (performance.now() - started) / 1000;
  target.close();
  await kysely.destroy().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
  return { name: "raw better-sqlite3", seconds, created: users.length, peakRssMb: 0 };
}

/**
 * The limit of plaintext imports: bcrypt (cost 10) of N passwords through the bcrypt binding's
 * asynchronous hash, which runs on libuv's thread pool, with enough in flight to keep every core busy.
 */
async function rawBcryptPhase(users: number): Promise<Phase> {
  const inFlight = Math.max(4, availableParallelism() * 2);
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < users) {
        next++;
        await bcrypt.hash(PASSWORD, 10);
      }
    }),
  );
  return { name: "raw bcrypt (all cores)", seconds: (performance.now() - started) / 1000, created: users, peakRssMb: 0 };
}

if (flags.url) {
  const token = readFileSync(join(flags["data-dir"]!, "admin.pat"), "utf8").trim();
  const run = await stream(flags.url, token, `profile-${Date.now().toString(36)}-`, flags["dry-run"] ?? false, PLAIN_USERS || USERS, PLAIN_USERS > 0);
  console.log(`${run.created} created in ${run.seconds.toFixed(1)} s: ${Math.round(run.created / run.seconds)} users/s`);
  process.exit(0);
}

ensureBuilt();
const phases: Phase[] = [];
const sqliteDir = mkdtempSync(join(tmpdir(), "userport-bulk-"));
try {
  if (PHASES.has("sqlite")) phases.push(await importPhase("sqlite", undefined, sqliteDir));
  if (PHASES.has("sqlite") && PHASES.has("raw")) phases.push(await rawPhase(join(sqliteDir, "userport.sqlite")));
  if (PHASES.has("dry-run")) {
    const dryDir = mkdtempSync(join(tmpdir(), "userport-dry-"));
    phases.push(await importPhase("dry-run", undefined, dryDir, true));
    rmSync(dryDir, { recursive: true, force: true });
  }
  if (PLAIN_USERS > 0 && PHASES.has("plaintext")) {
    // The limit is measured right before and right after the import, and their mean taken: on a
    // shared machine the load moves between phases of 20–30 s.
    const before = await rawBcryptPhase(PLAIN_USERS);
    const plainDir = mkdtempSync(join(tmpdir(), "userport-plain-"));
    phases.push(await importPhase("plaintext", undefined, plainDir, false, PLAIN_USERS, true));
    rmSync(plainDir, { recursive: true, force: true });
    const after = await rawBcryptPhase(PLAIN_USERS);
    console.log(`raw bcrypt before / after the plaintext import: ${before.seconds.toFixed(1)} s / ${after.seconds.toFixed(1)} s`);
    phases.push({ ...before, seconds: (before.seconds + after.seconds) / 2 });
  }
  if (testPostgresUrl && PHASES.has("postgres")) {
    const pgDir = mkdtempSync(join(tmpdir(), "userport-bulk-pg-"));
    try {
      phases.push(await importPhase("postgres", await testDatabaseUrl(pgDir), pgDir));
    } finally {
      await dropTestDatabase(pgDir);
      rmSync(pgDir, { recursive: true, force: true });
    }
  }
} finally {
  rmSync(sqliteDir, { recursive: true, force: true });
}

const rate = (phase: Phase | undefined) => (phase ? phase.created / phase.seconds : 0);
const by = (name: string) => phases.find((phase) => phase.name === name);
console.log(`\n${USERS} pre-hashed users, ${BATCH} per message, durable commits\n`);
for (const phase of phases) {
  console.log(
    `${phase.name.padEnd(20)} ${phase.seconds.toFixed(1).padStart(7)} s ${Math.round(rate(phase)).toString().padStart(8)} users/s` +
      (phase.peakRssMb ? `   peak server RSS ${Math.round(phase.peakRssMb)} MB (idle ${Math.round(phase.idleRssMb ?? 0)} MB)` : ""),
  );
}
console.log("\nCPU per user, µs: server main thread / its busiest other thread / its other threads / bench client");
for (const phase of phases) {
  if (!phase.cpu) continue;
  const { main, busiest, rest, client } = phase.cpu;
  console.log(`${phase.name.padEnd(20)} ${[main, busiest, rest, client].map((us) => us.toFixed(1).padStart(6)).join(" / ")}`);
}
console.log(
  `load average at the end: ${loadavg()
    .map((load) => load.toFixed(1))
    .join(" ")}`,
);
if (by("raw better-sqlite3")) console.log(`\nstream / raw insert (SQLite): ${(rate(by("sqlite")) / rate(by("raw better-sqlite3"))).toFixed(2)}`);
if (by("sqlite") && by("dry-run")) console.log(`dry run / real import:        ${(rate(by("dry-run")) / rate(by("sqlite"))).toFixed(2)}`);
if (by("postgres")) console.log(`PostgreSQL / SQLite:          ${(rate(by("postgres")) / rate(by("sqlite"))).toFixed(2)}`);
if (by("plaintext")) console.log(`plaintext / raw bcrypt:       ${(rate(by("plaintext")) / rate(by("raw bcrypt (all cores)"))).toFixed(2)}`);
