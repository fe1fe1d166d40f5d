/**
 * `userport import <file | -> --format <f> …`: a client of the bulk migration API. The export is
 * read as a stream by the format's converter (./formats), the records go to the server in batches
 * over one `MigrationService/ImportUsers` stream (a few batches in flight, so the server never
 * waits for the client), and every record's outcome comes back in order: counted for the progress
 * and the summary, and written to the `--report` file. The engine (validation, conflicts, resume
 * bookkeeping) is the server's; nothing of it is repeated here.
 *
 * Stopping: Ctrl-C (SIGINT) sends no further batch, half-closes the stream and waits for the
 * results of the batches in flight, then prints the `--resume <jobId>` command; a lost connection
 * prints the same. A resumed run asks the server where the job stopped (`job.next_index`) and
 * skips that many converted records of the same file.
 */
import { fromJson, type JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { closeSync, createReadStream, createWriteStream, fstatSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { parseArgs } from "node:util";
// The results it decodes, a million for a million users, take the cheaper field lookup too.
import "../../edge/protobuf-field-lookup.js";
import {
  ConflictPolicy,
  type ImportRecord,
  ImportRecordSchema,
  type ImportResult,
  type ImportUsersRequest,
  type ImportUsersResponse,
  ImportOutcome,
  MigrationService,
} from "../../../gen/userport/migration/v1/migration_pb.js";
import { createHashRegistry, HASH_FAMILY_NAMES } from "../../domain/hashes/index.js";
import { type ConvertOptions, FORMATS, isFailed } from "./formats/index.js";
import { helpText } from "./help.js";
import { type Counts, formatSeconds, startProgress } from "./progress.js";

/** Records per stream message (the API's limit is 1000) and an estimate of its size's limit. */
const BATCH_RECORDS = 1000;
const BATCH_BYTES = 2 * 1024 * 1024;
/** Batches sent and not yet answered: enough that the server always has the next one. */
const WINDOW = 4;

class UsageError extends Error {}

/** A one-line failure of the command (exit status 2): what went wrong and what to do. */
class FatalError extends Error {}

const OUTCOME_NAMES: Record<ImportOutcome, string> = {
  [ImportOutcome.UNSPECIFIED]: "unspecified",
  [ImportOutcome.CREATED]: "created",
  [ImportOutcome.UPDATED]: "updated",
  [ImportOutcome.SKIPPED]: "skipped",
  [ImportOutcome.FAILED]: "failed",
};

const CONFLICT: Record<string, ConflictPolicy> = {
  fail: ConflictPolicy.FAIL,
  skip: ConflictPolicy.SKIP,
  update: ConflictPolicy.UPDATE,
};

/** The gRPC code INVALID_ARGUMENT, given to records the converter could not read. */
const INVALID_ARGUMENT = 3;

interface Io {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  stdin: Readable;
  env: NodeJS.ProcessEnv;
}

/** Runs the command; resolves to the exit status. */
export async function importCommand(
  argv: string[],
  io: Io = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env },
): Promise<number> {
  try {
    return await run(argv, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`userport import: ${err.message} (see userport import --help)\n`);
      return 2;
    }
    if (err instanceof FatalError) {
      io.stderr.write(`userport import: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

const OPTIONS = {
  format: { type: "string" },
  url: { type: "string" },
  "token-file": { type: "string" },
  token: { type: "string" },
  "data-dir": { type: "string" },
  org: { type: "string" },
  "dry-run": { type: "boolean" },
  "on-conflict": { type: "string" },
  resume: { type: "string" },
  report: { type: "string" },
  "progress-every": { type: "string" },
  help: { type: "boolean", short: "h" },
  // format options
  map: { type: "string", multiple: true },
  delimiter: { type: "string" },
  passwords: { type: "string" },
  idp: { type: "string", multiple: true },
  population: { type: "string", multiple: true },
  "hash-key": { type: "string" },
  "salt-separator": { type: "string" },
  rounds: { type: "string" },
  "mem-cost": { type: "string" },
  "force-password-change": { type: "boolean" },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>["values"];

function parse(argv: string[]): { values: Values; positionals: string[] } {
  try {
    return parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    // node:util's messages name the option ("Unknown option '--x'"); keep the first sentence.
    throw new UsageError(
      String((err as Error).message)
        .split(". ")[0]!
        .replace(/\.$/, ""),
    );
  }
}

/** `a=b` pairs of a repeatable option into an object. */
function pairs(option: string, list: string[] | undefined): Record<string, string> | undefined {
  if (!list || list.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const item of list) {
    const at = item.indexOf("=");
    if (at <= 0 || at === item.length - 1) throw new UsageError(`--${option} takes <name>=<value>, not "${item}"`);
    out[item.slice(0, at)] = item.slice(at + 1);
  }
  return out;
}

function positiveInt(option: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new UsageError(`--${option} takes a positive whole number, not "${value}"`);
  return Number(value);
}

function openFile(path: string, what: string): Readable {
  checkFile(path, what);
  return createReadStream(path);
}

function checkFile(path: string, what: string): void {
  try {
    const stat = statSync(path);
    if (!stat.isFile()) throw new FatalError(`${what} ${path} is not a file`);
  } catch (err) {
    if (err instanceof FatalError) throw err;
    throw new FatalError(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message}`);
  }
}

function readToken(values: Values, env: NodeJS.ProcessEnv): string {
  if (values.token) return values.token.trim();
  if (env.USERPORT_TOKEN) return env.USERPORT_TOKEN.trim();
  const file = values["token-file"] ?? join(values["data-dir"] ?? env.USERPORT_DATA_DIR ?? "./.data", "admin.pat");
  let token: string;
  try {
    token = readFileSync(file, "utf8").trim();
  } catch {
    throw new FatalError(`no token: cannot read ${file}; pass --token-file <file>, --token <token> or USERPORT_TOKEN`);
  }
  if (token === "") throw new FatalError(`no token: ${file} is empty; pass --token-file <file>, --token <token> or USERPORT_TOKEN`);
  return token;
}

/** Lines of a file (the record count of native NDJSON), counted in 1 MiB reads; blank lines are not records. */
function countLines(path: string): number {
  const fd = openSync(path, "r");
  try {
    const buffer = Buffer.allocUnsafe(1 << 20);
    let count = 0;
    let lineHasText = false;
    for (let n = readSync(fd, buffer); n > 0; n = readSync(fd, buffer)) {
      for (let i = 0; i < n; i++) {
        const byte = buffer[i]!;
        if (byte === 10) {
          if (lineHasText) count++;
          lineHasText = false;
        } else if (byte !== 13 && byte !== 32 && byte !== 9) lineHasText = true;
      }
    }
    return lineHasText ? count + 1 : count;
  } finally {
    closeSync(fd);
  }
}

/** The last report line of an earlier run, to continue the report where it ends. */
function lastReported(path: string): { line: number; index: number } {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return { line: 0, index: -1 };
  }
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, 1 << 20);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    let line = 0;
    let index = -1;
    for (const text of buffer.toString("utf8").split("\n")) {
      try {
        const entry = JSON.parse(text) as { line?: number; index?: number };
        if (typeof entry.line === "number") line = Math.max(line, entry.line);
        if (typeof entry.index === "number") index = Math.max(index, entry.index);
      } catch {
        // a partial line at the cut or at the end: ignored
      }
    }
    return { line, index };
  } finally {
    closeSync(fd);
  }
}

const shellQuote = (arg: string) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`);

/** The command line that continues the job: the same arguments, with --resume <jobId>. */
function resumeCommand(argv: string[], jobId: string): string {
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--resume") {
      i++;
      continue;
    }
    if (arg.startsWith("--resume=")) continue;
    args.push(arg);
  }
  return ["userport", "import", ...args, "--resume", jobId].map(shellQuote).join(" ");
}

/** Connection failures and the server's refusals as one line that says what to do. */
function describeCallError(err: unknown, url: string): string {
  const e = ConnectError.from(err);
  switch (e.code) {
    case Code.Unavailable:
    case Code.Unknown:
    case Code.Internal:
    case Code.DeadlineExceeded:
      return `cannot reach userport at ${url} (${e.rawMessage}): start it, or pass --url`;
    case Code.Unauthenticated:
      return `the server refused the token (${e.rawMessage}): pass a valid --token-file, --token or USERPORT_TOKEN`;
    case Code.PermissionDenied:
      return `the token may not import users here (${e.rawMessage}): it needs user.write in the organisation`;
    default:
      return `the server refused the import: ${e.rawMessage}`;
  }
}

/** An async queue of stream requests: the producer pushes, Connect's client pulls. */
class RequestQueue implements AsyncIterable<ImportUsersRequest> {
  #items: ImportUsersRequest[] = [];
  #wake: (() => void) | undefined;
  #ended = false;
  push(item: ImportUsersRequest) {
    this.#items.push(item);
    this.#wake?.();
  }
  end() {
    this.#ended = true;
    this.#wake?.();
  }
  async *[Symbol.asyncIterator](): AsyncGenerator<ImportUsersRequest> {
    for (;;) {
      const item = this.#items.shift();
      if (item !== undefined) {
        yield item;
        continue;
      }
      if (this.#ended) return;
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = undefined;
    }
  }
}

/** A record on its way: where it is in the file, and (for one the converter failed) why. */
interface Entry {
  line: number;
  key: string | undefined;
  local?: string;
}

async function run(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv);
  if (values.help) {
    io.stdout.write(helpText(values.format));
    return 0;
  }
  if (positionals.length !== 1)
    throw new UsageError(positionals.length === 0 ? "name the export file, or - for standard input" : `one file at a time, not ${positionals.length}`);
  const format = values.format;
  if (format === undefined) throw new UsageError(`--format is required: one of ${Object.keys(FORMATS).join(", ")}`);
  const converter = FORMATS[format];
  if (!converter) throw new UsageError(`unknown --format "${format}": one of ${Object.keys(FORMATS).join(", ")}`);
  const onConflict = values["on-conflict"] === undefined ? ConflictPolicy.UNSPECIFIED : CONFLICT[values["on-conflict"]];
  if (onConflict === undefined) throw new UsageError(`--on-conflict takes fail, skip or update, not "${values["on-conflict"]}"`);
  const dryRun = values["dry-run"] === true;
  const resume = values.resume;
  if (dryRun && resume) throw new UsageError("--dry-run cannot resume a job (a dry run stores none)");
  if (resume !== undefined && !/^[\w-]{1,200}$/.test(resume)) throw new UsageError(`--resume takes a job id, not "${resume}"`);
  const everySeconds = Number(values["progress-every"] ?? 5);
  if (!(everySeconds > 0)) throw new UsageError(`--progress-every takes a number of seconds, not "${values["progress-every"]}"`);
  const url = (values.url ?? "http://localhost:8080").replace(/\/+$/, "");
  if (!/^https?:\/\/[^/]+/.test(url)) throw new UsageError(`--url must be http://host:port or https://host:port, not "${url}"`);
  const firebaseFlags = [values["hash-key"], values["salt-separator"], values.rounds, values["mem-cost"]];
  if (firebaseFlags.some((v) => v !== undefined) && firebaseFlags.some((v) => v === undefined))
    throw new UsageError("Firebase's hash parameters go together: --hash-key, --salt-separator, --rounds and --mem-cost");

  const file = positionals[0]!;
  const options: ConvertOptions = {
    ...(values.org ? { orgId: values.org } : {}),
    ...(pairs("map", values.map) ? { map: pairs("map", values.map)! } : {}),
    ...(values.delimiter !== undefined ? { delimiter: values.delimiter } : {}),
    ...(pairs("idp", values.idp) ? { idps: pairs("idp", values.idp)! } : {}),
    ...(pairs("population", values.population) ? { populations: pairs("population", values.population)! } : {}),
    ...(values["hash-key"] !== undefined
      ? {
          firebase: {
            signerKey: values["hash-key"]!,
            saltSeparator: values["salt-separator"]!,
            rounds: positiveInt("rounds", values.rounds)!,
            memCost: positiveInt("mem-cost", values["mem-cost"])!,
          },
        }
      : {}),
    ...(values["force-password-change"] ? { forcePasswordChange: true } : {}),
  };
  if (file !== "-") checkFile(file, "the export");
  if (values.passwords !== undefined) checkFile(values.passwords, "the password export");
  const token = readToken(values, io.env);
  const input = file === "-" ? io.stdin : openFile(file, "the export");
  if (values.passwords !== undefined) options.passwords = openFile(values.passwords, "the password export");
  const totalRecords = format === "native" && file !== "-" ? countLines(file) : undefined;
  const size = file === "-" ? 0 : statSync(file).size;

  // Where an earlier run's report ends, so that a resumed run continues it without gaps or repeats.
  const earlier = resume && values.report ? lastReported(values.report) : { line: 0, index: -1 };

  const transport = createGrpcTransport({ baseUrl: url });
  const client = createClient(MigrationService, transport);
  const headers = { authorization: `Bearer ${token}` };
  const abort = new AbortController();
  const requests = new RequestQueue();
  requests.push({
    $typeName: "userport.migration.v1.ImportUsersRequest",
    payload: {
      case: "options",
      value: {
        $typeName: "userport.migration.v1.ImportOptions",
        organizationId: values.org ?? "",
        dryRun,
        onConflict,
        jobId: resume ?? "",
        expectedRecords: BigInt(totalRecords ?? 0),
      },
    },
  });
  const responses = client.importUsers(requests, { headers, signal: abort.signal })[Symbol.asyncIterator]();
  let first: IteratorResult<ImportUsersResponse>;
  try {
    first = await responses.next();
  } catch (err) {
    input.destroy();
    options.passwords?.destroy();
    throw new FatalError(describeCallError(err, url));
  }
  const job = first.done ? undefined : first.value.job;
  if (!job) {
    input.destroy();
    throw new FatalError(`the server at ${url} did not open an import job`);
  }
  const jobId = job.id;
  const skip = resume ? Number(job.nextIndex) : 0;

  const report = values.report ? createWriteStream(values.report, { flags: resume ? "a" : "w" }) : undefined;
  const reportError = new Promise<never>((_, reject) =>
    report?.once("error", (err) => reject(new FatalError(`cannot write the report ${values.report}: ${err.message}`))),
  );
  reportError.catch(() => undefined);

  const counts: Counts = { done: 0, created: 0, updated: 0, skipped: 0, failed: 0 };
  const families = new Map<string, number>();
  const registry = createHashRegistry({ enabled: HASH_FAMILY_NAMES });
  let plaintext = 0;

  const write = async (entry: JsonObject) => {
    if (!report) return;
    if (!report.write(`${JSON.stringify(entry)}\n`)) await Promise.race([new Promise<void>((resolve) => report.once("drain", () => resolve())), reportError]);
  };
  const emitLocal = (entry: Entry) => {
    counts.done++;
    counts.failed++;
    return write({
      line: entry.line,
      ...(entry.key !== undefined ? { key: entry.key } : {}),
      outcome: "failed",
      error: { code: INVALID_ARGUMENT, id: "", message: entry.local! },
    });
  };
  const emitResult = (entry: Entry, result: ImportResult) => {
    counts.done++;
    if (result.outcome === ImportOutcome.CREATED) counts.created++;
    else if (result.outcome === ImportOutcome.UPDATED) counts.updated++;
    else if (result.outcome === ImportOutcome.SKIPPED) counts.skipped++;
    else counts.failed++;
    return write({
      line: entry.line,
      index: Number(result.index),
      key: result.key,
      outcome: OUTCOME_NAMES[result.outcome],
      ...(result.userId ? { userId: result.userId } : {}),
      ...(result.error ? { error: { code: result.error.code, id: result.error.id, message: result.error.message } } : {}),
      ...(result.replayed ? { replayed: true } : {}),
    });
  };

  // Stopping: SIGINT once ends the stream after the batches in flight; twice, at once.
  let stopping: "interrupted" | undefined;
  let interrupts = 0;
  let wakeProducer: (() => void) | undefined;
  const onSigint = () => {
    interrupts++;
    stopping = "interrupted";
    wakeProducer?.();
    if (interrupts > 1) abort.abort();
  };
  process.on("SIGINT", onSigint);

  const started = Date.now();
  const progress = startProgress(
    {
      counts: () => counts,
      ...(totalRecords !== undefined ? { totalRecords } : {}),
      ...(size > 0 ? { bytes: () => ({ read: (input as unknown as { bytesRead?: number }).bytesRead ?? 0, size }) } : {}),
    },
    { tty: io.stderr.isTTY === true, everySeconds, stream: io.stderr },
  );

  // Records sent (or failed locally) and not yet answered, in file order.
  const pending: Entry[] = [];
  let head = 0;
  let unanswered = 0;
  let lost: unknown;

  const producer = (async () => {
    let skipped = 0;
    let recovered: ImportResult[] = [];
    let recoveredFrom = 0;
    let batch: ImportRecord[] = [];
    let batchEntries: Entry[] = [];
    let batchBytes = 0;
    const send = async () => {
      while (unanswered >= WINDOW * BATCH_RECORDS && !stopping && lost === undefined) await new Promise<void>((resolve) => (wakeProducer = resolve));
      if (stopping || lost !== undefined) return;
      pending.push(...batchEntries);
      unanswered += batch.length;
      requests.push({
        $typeName: "userport.migration.v1.ImportUsersRequest",
        payload: { case: "records", value: { $typeName: "userport.migration.v1.ImportRecordBatch", records: batch } },
      });
      batch = [];
      batchEntries = [];
      batchBytes = 0;
    };
    for await (const item of converter(input, options)) {
      if (stopping || lost !== undefined) break;
      if (isFailed(item)) {
        if (skipped < skip && item.line <= earlier.line) continue; // in the earlier run's report
        const entry = { line: item.line, key: item.key, local: item.error };
        if (skipped < skip || (batch.length === 0 && batchEntries.length === 0 && head === pending.length)) await emitLocal(entry);
        else batchEntries.push(entry);
        continue;
      }
      if (skipped < skip) {
        // Imported by an earlier run: its result goes into the report if that run could not write it.
        const index = skipped++;
        if (report && index > earlier.index) {
          if (index >= recoveredFrom + recovered.length) {
            const page = await client.listImportJobResults({ jobId, offset: BigInt(index), limit: 1000 }, { headers, signal: abort.signal });
            recovered = page.result;
            recoveredFrom = index;
          }
          const result = recovered[index - recoveredFrom];
          if (result) await emitResult({ line: item.line, key: item.key }, result);
        }
        continue;
      }
      const record = item.record;
      let bytes = 512;
      if (item.machine) {
        batch.push(item.message ?? fromJson(ImportRecordSchema, { key: item.key, machine: record }));
      } else {
        const hash = (record.hashedPassword as JsonObject | undefined)?.hash;
        if (typeof hash === "string") {
          const family = registry.identify(hash) ?? "unknown";
          families.set(family, (families.get(family) ?? 0) + 1);
        } else if (record.password !== undefined) plaintext++;
        for (const m of (record.metadata as Array<{ value: string }> | undefined) ?? []) bytes += m.value.length;
        batch.push(item.message ?? fromJson(ImportRecordSchema, { key: item.key, human: record }));
      }
      batchEntries.push({ line: item.line, key: item.key });
      batchBytes += bytes;
      if (batch.length >= BATCH_RECORDS || batchBytes >= BATCH_BYTES) await send();
    }
    if (!stopping && lost === undefined) {
      if (batch.length > 0) await send();
      else pending.push(...batchEntries);
    }
  })().finally(() => requests.end());

  const consumer = (async () => {
    try {
      for (let next = await responses.next(); !next.done; next = await responses.next()) {
        for (const result of next.value.results) {
          while (head < pending.length && pending[head]!.local !== undefined) await emitLocal(pending[head++]!);
          const entry = pending[head++] ?? { line: 0, key: result.key };
          unanswered--;
          await emitResult(entry, result);
          if (head > 4096) {
            pending.splice(0, head);
            head = 0;
          }
        }
        wakeProducer?.();
      }
    } catch (err) {
      lost = err;
      wakeProducer?.();
    }
  })();

  let fileError: unknown;
  await producer.catch((err: unknown) => {
    fileError = err;
    abort.abort();
  });
  await consumer;
  if (lost === undefined && fileError === undefined) while (head < pending.length) await emitLocal(pending[head++]!);
  process.off("SIGINT", onSigint);
  progress.stop();
  if (report) await Promise.race([new Promise<void>((resolve) => report.end(resolve)), reportError]);

  // The summary.
  const elapsed = (Date.now() - started) / 1000;
  const n = (v: number) => v.toLocaleString("en");
  const out = io.stdout;
  out.write(`${dryRun ? "dry run (nothing written)" : `job ${jobId}`}: ${file === "-" ? "standard input" : file} (${format}) → ${url}\n`);
  if (skip > 0) out.write(`  resumed at record ${n(skip)}: the records before it were imported by earlier runs\n`);
  out.write(
    `  total ${n(counts.done)}  created ${n(counts.created)}  updated ${n(counts.updated)}  skipped ${n(counts.skipped)}  failed ${n(counts.failed)}\n`,
  );
  out.write(`  elapsed ${formatSeconds(elapsed)}, ${n(Math.round(counts.done / Math.max(elapsed, 0.001)))} records/s\n`);
  const found = [...families.entries()].sort((a, b) => b[1] - a[1]).map(([family, count]) => `${family} ${n(count)}`);
  if (plaintext > 0) found.push(`plaintext ${n(plaintext)}`);
  out.write(`  hash families: ${found.length > 0 ? found.join(", ") : "none"}\n`);
  if (report) out.write(`  report: ${values.report}\n`);

  const interrupted = stopping !== undefined || lost !== undefined || fileError !== undefined;
  if (interrupted) {
    const why =
      fileError !== undefined
        ? `reading ${file} failed (${(fileError as Error).message})`
        : lost !== undefined && !(stopping && ConnectError.from(lost).code === Code.Canceled)
          ? describeCallError(lost, url).replace(/: start it, or pass --url$/, "")
          : "interrupted";
    if (dryRun || jobId === "") io.stderr.write(`userport import: ${why}; the dry run stopped\n`);
    else io.stderr.write(`userport import: ${why}; continue with:\n  ${resumeCommand(argv, jobId)}\n`);
    return 2;
  }
  if (counts.failed > 0) {
    io.stderr.write(
      `userport import: ${n(counts.failed)} of ${n(counts.done)} records failed: ${report ? `see ${values.report}` : "run again with --report <file> to see which and why"}\n`,
    );
    return 1;
  }
  return 0;
}
