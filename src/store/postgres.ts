import { type CompiledQuery, Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { type StagedUnits, UniqueViolation } from "../domain/ports.js";
import type { Db, WriteQueue } from "./db.js";
import { migrateToLatest } from "./migrations.js";
import type { WriteStatement } from "./prepared.js";
import { openReplicaNotices } from "./replica-notices.js";
import type { Database } from "./schema.js";

/**
 * bigint columns (timestamps in milliseconds, event positions) and counts arrive as numbers,
 * as they do from SQLite: every value the store keeps stays below 2^53.
 */
const types = {
  getTypeParser(oid: number, format?: "text" | "binary") {
    if (oid === pg.types.builtins.INT8 || oid === pg.types.builtins.NUMERIC) return Number;
    return pg.types.getTypeParser(oid, format);
  },
};

/** Any number, the same on every replica: migrations run under this advisory lock. */
const MIGRATION_LOCK = 4_242_001;

/**
 * Opens the PostgreSQL store at `url` and migrates it. Several replicas may start together: the
 * first to take the advisory lock migrates, the others find the schema current once they get it.
 * A serving replica (`listen`) also listens for the others' notices (src/store/replica-notices.ts).
 */
export async function openPostgres(url: string, poolSize: number, options: { listen: boolean } = { listen: false }): Promise<Db> {
  const pool = new pg.Pool({ connectionString: url, max: poolSize, types });
  // An idle connection that breaks (the server restarts) must not crash the process; the pool
  // drops it and the next query opens a new one.
  pool.on("error", () => {});
  // The pool listens for errors only on idle connections: one that breaks while checked out
  // (a commit or read in flight when the server ends the backend) would emit an 'error' nobody
  // hears and end the process. Its queries fail on their own; the pool drops it on release.
  pool.on("connect", (client) => client.on("error", () => {}));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    const lock = await pool.connect();
    try {
      await lock.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK]);
      await migrateToLatest(db as Kysely<unknown>, "postgres");
    } finally {
      await lock.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK]).catch(() => {});
      lock.release();
    }
  } catch (err) {
    await db.destroy();
    throw err;
  }
  const names = new StatementNames();
  const writes = new PgCommitQueue(pool, names);
  const notices = await openReplicaNotices(url, pool, options);
  return {
    dialect: "postgres",
    notices,
    db,
    read: async <Row>(query: CompiledQuery) => (await pool.query<Row & pg.QueryResultRow>(names.config(query.sql, query.parameters))).rows as Row[],
    writes,
    async close() {
      await notices.close();
      await writes.close();
      await db.destroy();
    },
    connections: () => ({ open: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
  };
}

/** Enough for every statement the service builds; texts beyond it run unnamed (unprepared). */
const NAMED_STATEMENTS = 1000;

/**
 * Names SQL texts, so that pg prepares each on a connection once and then only binds and runs
 * it: the parse and plan of the hot statements are not repeated per request.
 */
class StatementNames {
  readonly #names = new Map<string, string>();

  config(text: string, values: readonly unknown[]): pg.QueryConfig {
    let name = this.#names.get(text);
    if (name === undefined && this.#names.size < NAMED_STATEMENTS) {
      name = `up${this.#names.size}`;
      this.#names.set(text, name);
    }
    return { text, values: values as unknown[], ...(name === undefined ? {} : { name }) };
  }
}

/**
 * A plain single-row insert as Kysely compiles the store's prepared inserts (no ON CONFLICT, no
 * RETURNING, only placeholders): rows of many commands for one table can share one statement.
 */
const PLAIN_INSERT = /^insert into ("[^"]+") \(([^)]*)\) values \((\$\d+(?:, \$\d+)*)\)$/;
/** PostgreSQL's limit of parameters per statement. */
const MAX_PARAMETERS = 65535;
/** Row counts whose multi-row texts are kept and prepared (named); others run unnamed. */
const NAMED_SIZES = 32;

interface InsertShape {
  head: string;
  columns: number;
  maxRows: number;
  texts: Map<number, { text: string; name: string }>;
}

/** The multi-row forms of plain inserts, by their single-row SQL. */
class MultiRowInserts {
  readonly #shapes = new Map<string, InsertShape | undefined>();
  #named = 0;

  of(sql: string): InsertShape | undefined {
    if (this.#shapes.has(sql)) return this.#shapes.get(sql);
    const match = PLAIN_INSERT.exec(sql);
    let shape: InsertShape | undefined;
    if (match) {
      const columns = match[2]!.split(",").length;
      shape = { head: `insert into ${match[1]} (${match[2]}) values `, columns, maxRows: Math.floor(MAX_PARAMETERS / columns), texts: new Map() };
    }
    this.#shapes.set(sql, shape);
    return shape;
  }

  /**
   * The insert of `size` rows, its placeholders numbered row after row: one statement (one round
   * trip) whatever the count. A bulk import sends the same counts over and over, so the first
   * few counts of each table are prepared once per connection; any other runs unprepared.
   */
  config(shape: InsertShape, size: number, values: unknown[]): pg.QueryConfig {
    const known = shape.texts.get(size);
    if (known) return { text: known.text, values, name: known.name };
    const rows: string[] = [];
    for (let r = 0; r < size; r++) {
      rows.push(`(${Array.from({ length: shape.columns }, (_, c) => `$${r * shape.columns + c + 1}`).join(", ")})`);
    }
    const text = shape.head + rows.join(", ");
    if (shape.texts.size >= NAMED_SIZES) return { text, values };
    const name = `upmulti${this.#named++}`;
    shape.texts.set(size, { text, name });
    return { text, values, name };
  }
}

interface Pending {
  statements: readonly WriteStatement[];
  /** Set when the caller waived the order of statements (`WriteQueue.runStaged`' `unordered`). */
  unordered?: true;
  resolve: () => void;
  reject: (reason: unknown) => void;
}

/** Units staged for PostgreSQL (`stageUnits`): the statements as they are. */
interface PgStaged extends StagedUnits {
  units: ReadonlyArray<readonly WriteStatement[]>;
}

/** Batches committing at once, each on its own connection; later writes gather behind them. */
const MAX_IN_FLIGHT = 2;
/** A batch that lost a deadlock or a serialization conflict is run again, this often at most. */
const MAX_BATCH_ATTEMPTS = 5;
const UNIQUE_VIOLATION = "23505";
const RETRYABLE = new Set(["40P01", "40001"]);

/**
 * Group commit on PostgreSQL: writes that arrive while a batch commits are gathered and
 * committed together in the next transaction. When a command of the batch fails, the batch runs
 * again with each caller's statements under a savepoint of their own, so the failing command
 * rolls back alone and the others still commit. A caller's
 * promise settles only after COMMIT returned, that is once PostgreSQL made the batch durable.
 *
 * Uniqueness across replicas is the database's: a replica inserting a value another one holds
 * (committed or in flight) waits for it and gets the unique violation, as the SQLite writer does.
 */
class PgCommitQueue implements WriteQueue {
  #pending: Pending[] = [];
  #inFlight = 0;
  #idle: Array<() => void> = [];
  /**
   * Settles once the latest batch ran all of its statements (it may still be committing). The
   * next batch runs its statements only then: it takes its rows' locks after the batch before it,
   * so of two commands claiming the same value (two batches of one import stream, say) the
   * earlier one wins, as on SQLite's single writer; only the commits overlap. A batch whose
   * commands all waived that order (`runStaged`' `unordered`) runs its statements at once.
   */
  #lastRan: Promise<void> = Promise.resolve();
  onBatch?: (size: number, seconds: number, failed: boolean) => void;

  private readonly multiRows = new MultiRowInserts();

  constructor(
    private readonly pool: pg.Pool,
    private readonly names: StatementNames,
  ) {}

  run(statements: readonly WriteStatement[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#pending.push({ statements, resolve, reject });
      if (this.#inFlight < MAX_IN_FLIGHT) void this.#next();
    });
  }

  /** The statements themselves: they go to PostgreSQL as they are, in multi-row inserts made when the batch runs. */
  stageUnits(units: ReadonlyArray<readonly WriteStatement[]>): StagedUnits {
    const staged: PgStaged = { count: units.length, units };
    return staged;
  }

  runStaged(staged: readonly StagedUnits[], options: { unordered?: boolean } = {}): Promise<unknown[]> {
    const units = (staged as readonly PgStaged[]).flatMap((part) => part.units);
    if (units.length === 0) return Promise.resolve([]);
    return new Promise<unknown[]>((resolve, reject) => {
      const outcomes: unknown[] = new Array(units.length).fill(undefined);
      let left = units.length;
      let whole: unknown;
      const settled = () => {
        if (--left > 0) return;
        // The transaction itself failed: nothing of it committed.
        if (whole !== undefined) reject(whole);
        else resolve(outcomes);
      };
      units.forEach((statements, n) => {
        this.#pending.push({
          statements,
          ...(options.unordered ? { unordered: true as const } : {}),
          resolve: settled,
          reject: (err) => {
            if ((err as { batchFailed?: boolean } | undefined)?.batchFailed === true) whole ??= err;
            outcomes[n] = err;
            settled();
          },
        });
      });
      if (this.#inFlight < MAX_IN_FLIGHT) void this.#next();
    });
  }

  waiting(): number {
    return this.#pending.length;
  }

  async close(): Promise<void> {
    if (this.#inFlight > 0 || this.#pending.length > 0) await new Promise<void>((resolve) => this.#idle.push(resolve));
  }

  async #next(): Promise<void> {
    const items = this.#pending;
    this.#pending = [];
    this.#inFlight++;
    const started = performance.now();
    const after = this.#lastRan;
    let ran!: () => void;
    const running = new Promise<void>((resolve) => (ran = resolve));
    // A batch whose every command waived the order runs its statements at once, alongside the
    // batch before (a bulk import's batches claim disjoint values: PostgreSQL's backends then
    // insert two batches at a time); a later batch that keeps the order still waits for both.
    const inOrder = items.some((item) => !item.unordered);
    this.#lastRan = inOrder ? running : Promise.all([after, running]).then(() => undefined);
    try {
      if (inOrder) await after;
      const outcomes = await this.#commitWithRetries(items, ran);
      this.onBatch?.(items.length, (performance.now() - started) / 1000, false);
      items.forEach((item, i) => {
        if (outcomes[i] === null) item.resolve();
        else item.reject(outcomes[i]);
      });
    } catch (err) {
      if (err instanceof Error) Object.assign(err, { batchFailed: true });
      this.onBatch?.(items.length, (performance.now() - started) / 1000, true);
      for (const item of items) item.reject(err);
    } finally {
      ran();
      this.#inFlight--;
      if (this.#pending.length > 0) void this.#next();
      else if (this.#inFlight === 0) for (const resolve of this.#idle.splice(0)) resolve();
    }
  }

  /** `ran` is called once the statements that commit have run, before the COMMIT. */
  async #commitWithRetries(items: Pending[], ran: () => void): Promise<Array<Error | null>> {
    // Optimistically without savepoints first, a round trip less per command; only a batch in
    // which a command failed runs again with a savepoint per command, so that the others commit.
    let savepoints = false;
    for (let attempt = 1; ; attempt++) {
      try {
        const outcomes = await this.#commit(items, savepoints, ran);
        if (outcomes) return outcomes;
        savepoints = true;
      } catch (err) {
        if (!RETRYABLE.has((err as { code?: string }).code ?? "") || attempt >= MAX_BATCH_ATTEMPTS) throw err;
        // The other transaction of the deadlock goes ahead meanwhile.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * attempt));
      }
    }
  }

  /**
   * One transaction for the batch: each command's outcome, or undefined when a command failed
   * without savepoints (nothing committed). Throws for what fails the whole batch; a deadlock or
   * serialization failure is the batch's, not a command's, even when a command met it.
   */
  async #commit(items: Pending[], savepoints: boolean, ran: () => void): Promise<Array<Error | null> | undefined> {
    const client = await this.pool.connect();
    let broken: unknown;
    try {
      if (!savepoints) {
        await client.query("BEGIN");
        try {
          await this.#runOptimistic(client, items);
        } catch (err) {
          if (RETRYABLE.has((err as { code?: string }).code ?? "")) throw err;
          await client.query("ROLLBACK");
          // A lone command's failure is its outcome; in a batch, the others deserve a savepoint run.
          return items.length === 1 ? [err as Error] : undefined;
        }
        ran();
        await client.query("COMMIT");
        return items.map(() => null);
      }
      // Each savepoint is released (COMMIT releases the last) in the round trip that opens the
      // next: the simple query protocol runs both statements of one text.
      await client.query("BEGIN; SAVEPOINT unit");
      const outcomes: Array<Error | null> = [];
      for (const [i, item] of items.entries()) {
        if (i > 0) await client.query("RELEASE SAVEPOINT unit; SAVEPOINT unit");
        try {
          for (const statement of item.statements) await this.#run(client, statement);
          outcomes.push(null);
        } catch (err) {
          if (RETRYABLE.has((err as { code?: string }).code ?? "")) throw err;
          await client.query("ROLLBACK TO SAVEPOINT unit");
          outcomes.push(err as Error);
        }
      }
      ran();
      await client.query("COMMIT");
      return outcomes;
    } catch (err) {
      await client.query("ROLLBACK").catch((rollbackFailed: unknown) => (broken = rollbackFailed));
      throw err;
    } finally {
      // A connection whose rollback failed is in an unknown state: the pool closes it.
      client.release(broken as Error | undefined);
    }
  }

  /**
   * Every command of the batch, without savepoints. Consecutive commands made only of plain
   * inserts (a bulk import's records) are written table by table, many rows per statement: one
   * round trip per table and chunk instead of one per row. Rows keep their commands' order.
   */
  async #runOptimistic(client: pg.PoolClient, items: Pending[]): Promise<void> {
    let i = 0;
    while (i < items.length) {
      let end = i;
      while (end < items.length && items[end]!.statements.every((statement) => this.multiRows.of(statement.sql) !== undefined)) end++;
      if (end - i < 2) {
        for (const statement of items[i]!.statements) await this.#run(client, statement);
        i++;
        continue;
      }
      const rowsBySql = new Map<string, Array<readonly unknown[]>>();
      for (let k = i; k < end; k++) {
        for (const statement of items[k]!.statements) {
          const rows = rowsBySql.get(statement.sql);
          if (rows) rows.push(statement.parameters);
          else rowsBySql.set(statement.sql, [statement.parameters]);
        }
      }
      for (const [text, rows] of rowsBySql) {
        const shape = this.multiRows.of(text)!;
        for (let at = 0; at < rows.length; at += shape.maxRows) {
          const size = Math.min(shape.maxRows, rows.length - at);
          const values: unknown[] = [];
          for (let r = at; r < at + size; r++) for (const value of rows[r]!) values.push(value);
          await client.query(size === 1 ? this.names.config(text, values) : this.multiRows.config(shape, size, values));
        }
      }
      i = end;
    }
  }

  async #run(client: pg.PoolClient, statement: WriteStatement): Promise<void> {
    try {
      await client.query(this.names.config(statement.sql, statement.parameters));
    } catch (err) {
      if (statement.uniqueKind !== undefined && (err as { code?: string }).code === UNIQUE_VIOLATION) {
        throw new UniqueViolation(statement.uniqueKind);
      }
      throw err;
    }
  }
}
