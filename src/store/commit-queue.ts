import type SQLite from "better-sqlite3";
import { UniqueViolation } from "../domain/store-port.js";
import type { WriteStatement } from "./prepared.js";

interface Pending {
  statements: readonly WriteStatement[];
  resolve: () => void;
  reject: (reason: unknown) => void;
  failure?: unknown;
}

/** A batch this large already amortises the commit; more would only delay the first caller. */
const MAX_BATCH = 512;

/**
 * Group commit: writes that arrive while the event loop is busy are gathered and committed
 * together in one transaction, so many requests share one durable fsync.
 *
 * Each unit of work (the statements of one command) runs under its own savepoint: when one
 * fails (a unique constraint, say) only its own changes are rolled back and only its caller sees
 * the error; the others still commit. A caller's promise settles only after the commit, so nobody
 * is answered before their data is on disk. Batches run synchronously on the connection, so no
 * other query can interleave with them.
 */
export class CommitQueue {
  #pending: Pending[] = [];
  #scheduled: Promise<void> | undefined;
  readonly #commitBatch: (batch: Pending[]) => void;

  constructor(sqlite: SQLite.Database, prepare: (sql: string) => SQLite.Statement) {
    // better-sqlite3 runs a transaction function nested in another under a savepoint.
    const applyUnit = sqlite.transaction((statements: readonly WriteStatement[]) => {
      for (const statement of statements) {
        try {
          prepare(statement.sql).run(...statement.parameters);
        } catch (err) {
          throw statement.uniqueKind !== undefined && isSqliteUniqueViolation(err)
            ? new UniqueViolation(statement.uniqueKind)
            : err;
        }
      }
    });
    this.#commitBatch = sqlite.transaction((batch: Pending[]) => {
      for (const item of batch) {
        try {
          applyUnit(item.statements);
        } catch (err) {
          item.failure = err;
        }
      }
    });
  }

  /** Runs the statements atomically; resolves once they are durably committed. */
  run(statements: readonly WriteStatement[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#pending.push({ statements, resolve, reject });
      // Wait one turn of the event loop, so that requests parsed in the same turn join the batch.
      this.#scheduled ??= new Promise((done) => setImmediate(done)).then(() => this.#flushAll());
    });
  }

  /** Resolves once everything queued so far is committed (used on shutdown). */
  async drain(): Promise<void> {
    while (this.#scheduled) await this.#scheduled;
  }

  #flushAll(): void {
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending.splice(0, MAX_BATCH);
        try {
          this.#commitBatch(batch);
        } catch (err) {
          for (const item of batch) item.reject(err);
          continue;
        }
        for (const item of batch) {
          if ("failure" in item) item.reject(item.failure);
          else item.resolve();
        }
      }
    } finally {
      this.#scheduled = undefined;
    }
  }
}

function isSqliteUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "SQLITE_CONSTRAINT_PRIMARYKEY" || code === "SQLITE_CONSTRAINT_UNIQUE";
}
