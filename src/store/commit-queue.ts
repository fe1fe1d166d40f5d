import type { ControlledTransaction, Kysely, Transaction } from "kysely";
import type { Database } from "./schema.js";

/** A unit of work run inside a shared transaction; it must only touch the database. */
export type Work<T> = (trx: Transaction<Database>) => Promise<T>;

interface Pending {
  work: Work<unknown>;
  resolve: (value: unknown) => void;
  reject: (reason: unknown) => void;
}

/** A batch this large already amortises the commit; more would only delay the first caller. */
const MAX_BATCH = 256;

/**
 * Group commit: writes that arrive while a commit is under way are gathered and committed
 * together in one transaction, so many requests share one durable fsync.
 *
 * Each unit of work runs under its own savepoint: when one fails (a unique constraint, say) only
 * its own changes are rolled back and only its caller sees the error; the others still commit.
 * A caller's promise settles only after the commit, so nobody is answered before their data is
 * durable.
 */
export class CommitQueue {
  #pending: Pending[] = [];
  #flushing: Promise<void> | undefined;

  constructor(private readonly db: Kysely<Database>) {}

  run<T>(work: Work<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ work, resolve: resolve as (v: unknown) => void, reject });
      // Wait one turn of the event loop, so that requests parsed in the same turn join the batch.
      this.#flushing ??= new Promise((done) => setImmediate(done)).then(() => this.#flushAll());
    });
  }

  /** Resolves once everything queued so far is committed (used on shutdown). */
  async drain(): Promise<void> {
    while (this.#flushing) await this.#flushing;
  }

  async #flushAll(): Promise<void> {
    try {
      while (this.#pending.length > 0) await this.#commitBatch(this.#pending.splice(0, MAX_BATCH));
    } finally {
      this.#flushing = undefined;
    }
  }

  async #commitBatch(batch: Pending[]): Promise<void> {
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    let trx: ControlledTransaction<Database> | undefined;
    try {
      trx = await this.db.startTransaction().execute();
      for (const item of batch) {
        const savepoint = await trx.savepoint("work").execute();
        try {
          const value = await item.work(savepoint);
          await savepoint.releaseSavepoint("work").execute();
          outcomes.push({ ok: true, value });
        } catch (error) {
          await savepoint.rollbackToSavepoint("work").execute();
          await savepoint.releaseSavepoint("work").execute();
          outcomes.push({ ok: false, error });
        }
      }
      await trx.commit().execute();
    } catch (error) {
      if (trx && !trx.isCommitted && !trx.isRolledBack) await trx.rollback().execute().catch(() => undefined);
      for (const item of batch) item.reject(error);
      return;
    }
    batch.forEach((item, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) item.resolve(outcome.value);
      else item.reject(outcome.error);
    });
  }
}
