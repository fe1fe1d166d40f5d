import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import { UniqueViolation } from "../domain/store-port.js";
import type { WriteStatement } from "./prepared.js";

interface Pending {
  statements: readonly WriteStatement[];
  resolve: () => void;
  reject: (reason: unknown) => void;
}

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
  #pending: Pending[] = [];
  /** The batch the writer is committing, if any: at most one at a time, so the next one grows. */
  #inFlight: { id: number; items: Pending[] } | undefined;
  #nextId = 1;
  #idle: Array<() => void> = [];
  /** Ids of the SQL texts the writer has prepared: each text crosses the thread boundary once. */
  readonly #sqlIds = new Map<string, number>();

  constructor(file: string) {
    const driverPath = createRequire(import.meta.url).resolve("better-sqlite3");
    this.#worker = new Worker(new URL("./write-worker.cjs", import.meta.url), { workerData: { file, driverPath } });
    this.#worker.on("message", (result: BatchResult) => this.#settle(result));
    this.#worker.on("error", (err) => this.#failAll(err));
  }

  /** Runs the statements atomically; resolves once they are durably committed. */
  run(statements: readonly WriteStatement[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#pending.push({ statements, resolve, reject });
      if (!this.#inFlight) this.#send();
    });
  }

  /** Resolves once everything queued so far is committed (used on shutdown). */
  drain(): Promise<void> {
    if (!this.#inFlight && this.#pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Commits what is pending, then stops the writer and closes its connection. */
  async close(): Promise<void> {
    await this.drain();
    const exited = new Promise((resolve) => this.#worker.once("exit", resolve));
    this.#worker.postMessage({ close: true });
    await exited;
  }

  #send(): void {
    const items = this.#pending;
    this.#pending = [];
    this.#inFlight = { id: this.#nextId++, items };
    const sql: Array<[number, string]> = [];
    const units = items.map((item) =>
      item.statements.map((statement) => {
        let sqlId = this.#sqlIds.get(statement.sql);
        if (sqlId === undefined) {
          sqlId = this.#sqlIds.size;
          this.#sqlIds.set(statement.sql, sqlId);
          sql.push([sqlId, statement.sql]);
        }
        return [sqlId, statement.parameters, statement.uniqueKind ?? null];
      }),
    );
    // One JSON string clones across threads faster than the structured clone of many small
    // arrays; parameters are strings, numbers and nulls only.
    this.#worker.postMessage(JSON.stringify({ id: this.#inFlight.id, sql, units }));
  }

  #settle(result: BatchResult): void {
    const batch = this.#inFlight;
    if (!batch || batch.id !== result.id) return;
    this.#inFlight = undefined;
    batch.items.forEach((item, i) => {
      const outcome = "error" in result ? result.error : result.results[i];
      if (outcome === null || outcome === undefined) item.resolve();
      else if ("uniqueKind" in outcome) item.reject(new UniqueViolation(outcome.uniqueKind));
      else item.reject(Object.assign(new Error(outcome.message), { code: outcome.code }));
    });
    if (this.#pending.length > 0) this.#send();
    else for (const resolve of this.#idle.splice(0)) resolve();
  }

  #failAll(err: Error): void {
    const items = [...(this.#inFlight?.items ?? []), ...this.#pending.splice(0)];
    this.#inFlight = undefined;
    for (const item of items) item.reject(err);
    for (const resolve of this.#idle.splice(0)) resolve();
  }
}
