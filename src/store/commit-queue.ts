import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import { type StagedUnits, UniqueViolation } from "../domain/ports.js";
import type { WriteStatement } from "./prepared.js";

/** Units as the writer reads them: a JSON array of `[[sqlId, parameters, uniqueKind]…]`, one per unit, in UTF-8. */
interface Encoded extends StagedUnits {
  json: Uint8Array<ArrayBuffer>;
}

/** A caller's units of work (one for `run`, many for `runStaged`), settled together. */
interface Pending {
  /** The units in parts, in order (see `Encoded`). */
  json: Array<Uint8Array<ArrayBuffer>>;
  /** How many units. */
  count: number;
  /** Each unit's outcome: undefined (committed) or its error. */
  settle: (outcomes: unknown[]) => void;
  /** The whole transaction failed: nothing of it committed. */
  fail: (reason: unknown) => void;
}

const MAX_IN_FLIGHT = 2;

/**
 * Units committed between two checkpoints of the checkpointer thread (`checkpoint-worker.cjs`):
 * a bulk-import batch, or a hundred batches of ten REST imports, a few MB of WAL.
 *
 * SQLite folds the WAL back into the database file on the connection that commits once the WAL
 * passes `wal_autocheckpoint` pages, right after that commit: the writer thread copied 40 MB of
 * pages and waited for their fsync, while the batches queued behind it waited too. The
 * checkpointer does that copy alongside the writer instead, a batch's worth at a time; the
 * writer's own checkpoint stays, as a bound on the WAL when the checkpointer falls behind, and
 * finds little left to copy. Streaming 300,000 or 1,000,000 users into SQLite, thirteen
 * alternating pairs: eleven faster, -6.5 to +38 % users/s, median +6.5 %; the writer 1.3-10 µs
 * less CPU a user, the checkpointer 3-4 µs more. REST imports no different in three pairs
 * (BENCHMARKS.md, "Bulk import").
 */
const CHECKPOINT_EVERY_UNITS = 1000;
const utf8 = new TextEncoder();

/** What the writer thread reports for one unit of work. */
type UnitResult = null | { uniqueKind: string } | { message: string; code?: string };

/** The writer thread's answer to one batch. */
type BatchResult = { id: number; results: UnitResult[] } | { id: number; error: { message: string; code?: string } };

/**
 * Group commit on a writer thread: writes that arrive while a commit is under way are gathered
 * and committed together in the next transaction, so many requests share one durable fsync,
 * and neither the statements nor the fsync run on the server's event loop.
 *
 * Each unit of work (the statements of one command) runs under its own savepoint: when one
 * fails (a unique constraint, say) only its own changes are rolled back and only its caller sees
 * the error; the others still commit. A caller's promise settles only after the commit, so nobody
 * is answered before their data is on disk. Reads use the main thread's connection; SQLite's WAL
 * lets them run alongside and see every committed batch.
 */
export class CommitQueue {
  readonly #worker: Worker;
  /** Undefined once it failed: the writer's own checkpoints then bound the WAL, as they always do. */
  #checkpointer: Worker | undefined;
  #checkpointing: Promise<void> | undefined;
  #unitsSinceCheckpoint = 0;
  #pending: Pending[] = [];
  /**
   * Batches handed to the writer and not yet settled. Two at most: one committing and one queued
   * behind it, so the writer never waits for the main thread, while the next batch still grows.
   */
  readonly #inFlight: Array<{ id: number; items: Array<Omit<Pending, "json">> }> = [];
  #nextId = 1;
  /** A hand-over is scheduled for the end of this event-loop turn (`#sendSoon`). */
  #sendScheduled = false;
  #idle: Array<() => void> = [];
  /** Ids of the SQL texts the writer has prepared: each text crosses the thread boundary once. */
  readonly #sqlIds = new Map<string, number>();
  /** SQL texts given an id since the last batch went to the writer: they travel with the next one. */
  #newSql: Array<[number, string]> = [];
  /** When each batch in flight was handed to the writer. */
  readonly #sentAt = new Map<number, number>();
  onBatch?: (size: number, seconds: number, failed: boolean) => void;

  /** Commands waiting for the next batch. */
  waiting(): number {
    return this.#pending.length;
  }

  /** Batches handed to the writer and not yet settled. */
  inFlight(): number {
    return this.#inFlight.length;
  }

  constructor(file: string) {
    const driverPath = createRequire(import.meta.url).resolve("better-sqlite3");
    // The writer's young generation capped at 16 MB (V8's default lets it grow further): a bulk
    // import's batches arrive as large JSON texts, and the garbage of parsing them cost some
    // 20 MB of the server's peak memory for no speed (300,000 users, 16 MB against V8's default:
    // 17,271 and 16,791 users/s, peak 276 and 294 MB; BENCHMARKS.md, "Bulk import").
    this.#worker = new Worker(new URL("./write-worker.cjs", import.meta.url), {
      workerData: { file, driverPath },
      resourceLimits: { maxYoungGenerationSizeMb: 16 },
    });
    this.#worker.on("message", (result: BatchResult) => this.#settle(result));
    this.#worker.on("error", (err) => this.#failAll(err));
    this.#checkpointer = new Worker(new URL("./checkpoint-worker.cjs", import.meta.url), { workerData: { file, driverPath } });
    this.#checkpointer.on("error", () => {
      this.#checkpointer = undefined;
    });
  }

  /** Runs the statements atomically; resolves once they are durably committed. */
  run(statements: readonly WriteStatement[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#pending.push({
        json: [this.#encode([statements])],
        count: 1,
        settle: ([outcome]) => (outcome === undefined ? resolve() : reject(outcome)),
        fail: reject,
      });
      this.#sendSoon();
    });
  }

  /** The units encoded for the writer now: their statement objects can go before the batch is whole. */
  stageUnits(units: ReadonlyArray<readonly WriteStatement[]>): StagedUnits {
    const encoded: Encoded = { count: units.length, json: this.#encode(units) };
    return encoded;
  }

  /**
   * Runs the units staged in parts (by `stageUnits`) in one transaction (all are queued together,
   * so they travel in one batch), each under its own savepoint; resolves with each unit's error,
   * or undefined, once durable. The one writer runs every batch in order: there is no order to
   * waive.
   */
  runStaged(staged: readonly StagedUnits[], _options?: { unordered?: boolean }): Promise<unknown[]> {
    const parts = (staged as readonly Encoded[]).filter((part) => part.count > 0);
    if (parts.length === 0) return Promise.resolve([]);
    return new Promise<unknown[]>((resolve, reject) => {
      this.#pending.push({
        json: parts.map((part) => part.json),
        count: parts.reduce((count, part) => count + part.count, 0),
        settle: resolve,
        fail: reject,
      });
      // A bulk batch goes at once: the turn that staged it goes on preparing the next one.
      if (this.#inFlight.length < MAX_IN_FLIGHT) this.#send();
    });
  }

  /** Resolves once everything queued so far is committed (used on shutdown). */
  drain(): Promise<void> {
    if (this.#inFlight.length === 0 && this.#pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Resolves once the checkpoint under way, if any, is over. */
  checkpointed(): Promise<void> {
    return this.#checkpointing ?? Promise.resolve();
  }

  /** Commits what is pending, then stops the checkpointer and the writer and closes their connections. */
  async close(): Promise<void> {
    await this.drain();
    await this.checkpointed();
    const checkpointer = this.#checkpointer;
    if (checkpointer) {
      this.#checkpointer = undefined;
      const stopped = new Promise((resolve) => checkpointer.once("exit", resolve));
      checkpointer.postMessage({ close: true });
      await stopped;
    }
    const exited = new Promise((resolve) => this.#worker.once("exit", resolve));
    this.#worker.postMessage({ close: true });
    await exited;
  }

  /**
   * The units as JSON text in UTF-8 bytes, made when they are queued or staged: a batch waiting
   * for the writer holds a few buffers, not thousands of statement objects that would outlive
   * young-generation collections (a bulk import's batch waits while the one before commits, and
   * is staged a part at a time as it is built). Each SQL text crosses the thread boundary once,
   * then only its id; parameters are strings, numbers and nulls only. JSON crosses threads faster
   * than the structured clone of many small arrays.
   *
   * Bytes, not the JSON string: the string (1.3 KB a bulk-imported user) lived on the V8 heap
   * until its batch went to the writer, so young-generation collections copied it and then
   * promoted it; its bytes live outside the heap and are handed over (transferred), not copied.
   * 300,000-user bulk imports: 1,147 -> 776 MB copied and 1,004 -> 648 MB promoted by those
   * collections, their pauses 3.7 -> 2.8 s (`--trace-gc-nvp`; BENCHMARKS.md, "Bulk import").
   */
  #encode(units: ReadonlyArray<readonly WriteStatement[]>): Uint8Array<ArrayBuffer> {
    const encoded = units.map((statements) =>
      statements.map((statement) => {
        let sqlId = this.#sqlIds.get(statement.sql);
        if (sqlId === undefined) {
          sqlId = this.#sqlIds.size;
          this.#sqlIds.set(statement.sql, sqlId);
          this.#newSql.push([sqlId, statement.sql]);
        }
        return [sqlId, statement.parameters, statement.uniqueKind ?? null];
      }),
    );
    return utf8.encode(JSON.stringify(encoded));
  }

  /**
   * Hands what is pending to the writer: at once when it is idle; while it commits a batch, at the
   * end of this event-loop turn, so that the next batch gathers every command the turn queues
   * (the calls a turn serves reach the queue one after another, and the first would otherwise
   * leave alone, its own transaction, message and fsync). Not later: the writer never waits for
   * a turn to end (a next batch deferred while it was idle starved it; BENCHMARKS.md).
   */
  #sendSoon(): void {
    if (this.#inFlight.length === 0) this.#send();
    else if (this.#inFlight.length < MAX_IN_FLIGHT && !this.#sendScheduled) {
      this.#sendScheduled = true;
      setImmediate(() => {
        this.#sendScheduled = false;
        if (this.#pending.length > 0 && this.#inFlight.length < MAX_IN_FLIGHT) this.#send();
      });
    }
  }

  #send(): void {
    const items = this.#pending;
    this.#pending = [];
    const batch = { id: this.#nextId++, items: items.map(({ count, settle, fail }) => ({ count, settle, fail })) };
    this.#inFlight.push(batch);
    this.#sentAt.set(batch.id, performance.now());
    const sql = this.#newSql;
    this.#newSql = [];
    const units = items.flatMap((item) => item.json);
    // Each encoding has its own ArrayBuffer (TextEncoder's), used by nothing else once sent.
    this.#worker.postMessage(
      { id: batch.id, sql, units },
      units.map((unit) => unit.buffer),
    );
  }

  #settle(result: BatchResult): void {
    // The writer answers batches in the order it got them.
    const batch = this.#inFlight.shift();
    if (!batch || batch.id !== result.id) throw new Error(`writer answered batch ${result.id} out of order`);
    const sentAt = this.#sentAt.get(batch.id) ?? performance.now();
    this.#sentAt.delete(batch.id);
    const units = batch.items.reduce((count, item) => count + item.count, 0);
    this.onBatch?.(units, (performance.now() - sentAt) / 1000, "error" in result);
    this.#unitsSinceCheckpoint += units;
    if (this.#unitsSinceCheckpoint >= CHECKPOINT_EVERY_UNITS) this.#checkpoint();
    if ("error" in result) {
      const err = Object.assign(new Error(result.error.message), { code: result.error.code, batchFailed: true });
      for (const item of batch.items) item.fail(err);
    } else {
      let at = 0;
      for (const item of batch.items) {
        const outcomes = result.results.slice(at, at + item.count).map((outcome) => {
          if (outcome === null || outcome === undefined) return undefined;
          if ("uniqueKind" in outcome) return new UniqueViolation(outcome.uniqueKind);
          return Object.assign(new Error(outcome.message), { code: outcome.code });
        });
        at += item.count;
        item.settle(outcomes);
      }
    }
    if (this.#pending.length > 0) this.#send();
    else if (this.#inFlight.length === 0) for (const resolve of this.#idle.splice(0)) resolve();
  }

  /** Asks the checkpointer to fold the WAL back, unless it is still at it. */
  #checkpoint(): void {
    const checkpointer = this.#checkpointer;
    if (!checkpointer || this.#checkpointing) return;
    this.#unitsSinceCheckpoint = 0;
    this.#checkpointing = new Promise<void>((resolve) => {
      const done = () => {
        checkpointer.off("message", done);
        checkpointer.off("exit", done);
        this.#checkpointing = undefined;
        resolve();
      };
      checkpointer.on("message", done);
      checkpointer.on("exit", done);
    });
    checkpointer.postMessage({ checkpoint: true });
  }

  #failAll(err: Error): void {
    Object.assign(err, { batchFailed: true });
    const items = [...this.#inFlight.splice(0).flatMap((batch) => batch.items), ...this.#pending.splice(0)];
    for (const item of items) item.fail(err);
    for (const resolve of this.#idle.splice(0)) resolve();
  }
}
