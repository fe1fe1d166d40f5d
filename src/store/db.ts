import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import SQLite from "better-sqlite3";
import { type CompiledQuery, Kysely, SqliteDialect, type SqliteDatabase } from "kysely";
import { CommitQueue } from "./commit-queue.js";
import { migrateToLatest } from "./migrations.js";
import type { ReplicaNotices, RequestState, StagedUnits } from "../domain/ports.js";
import type { WriteStatement } from "./prepared.js";
import type { Database } from "./schema.js";

/** The connection settings, shared with the writer thread (a CommonJS module both load). */
const { applyConnectionPragmas } = createRequire(import.meta.url)("./sqlite-pragmas.cjs") as { applyConnectionPragmas(db: SQLite.Database): void };

/** Group commit: runs each caller's statements atomically, many callers per durable commit. */
export interface WriteQueue {
  /**
   * Runs the statements atomically; resolves once they are durably committed. Refused with
   * `RequestEnded` when `request` has ended (see `RequestState` in src/domain/ports.ts and
   * src/store/request-scope.ts, which does the refusing for both stores).
   */
  run(statements: readonly WriteStatement[], request?: RequestState): Promise<void>;
  /**
   * Units of work (each the statements of one command) in the form this queue sends to its
   * writer, made now (SQLite's queue encodes them for its writer thread), so that the statement
   * objects need not live until `runStaged`. A bulk import stages a batch a part at a time.
   * Staged units go to one `runStaged` call: SQLite's queue hands their bytes over to its writer.
   */
  stageUnits(units: ReadonlyArray<readonly WriteStatement[]>): StagedUnits;
  /**
   * Runs the staged units in one transaction, each under its own savepoint, and resolves once
   * they are durably committed with each unit's outcome, in the parts' order: undefined when it
   * committed, else its error (a `UniqueViolation` for a broken uniqueness rule); the others
   * commit regardless. Rejects when the transaction itself failed (nothing of it committed).
   * Used by bulk imports.
   *
   * Batches run their statements in the order they were queued, so that of two writes claiming
   * one value the earlier wins. `unordered` waives that for these units: the caller vouches that
   * none of them claims a value that a write it queued earlier, and has not yet seen committed,
   * claims too (PostgreSQL then runs them alongside the batch before; SQLite's one writer runs
   * everything in order anyway). `request`: as for `run`.
   */
  runStaged(staged: readonly StagedUnits[], options?: { unordered?: boolean; request?: RequestState }): Promise<unknown[]>;
  /** Commits what is pending, then releases the connection(s). */
  close(): Promise<void>;
  /** Told after each batch commits (or fails): how many commands it held and how long it took. */
  onBatch?: (size: number, seconds: number, failed: boolean) => void;
  /** Commands waiting for the next batch. */
  waiting(): number;
}

export interface Db {
  /** The SQL dialect, for the few queries whose text differs between the two. */
  dialect: "sqlite" | "postgres";
  /** Builds queries; runs migrations and the occasional cold query. */
  db: Kysely<Database>;
  /**
   * Runs a compiled read on a kept prepared statement. The hot reads (the caller behind a token,
   * a user by id) go here instead of through Kysely's executor, whose per-query machinery
   * costs more than the lookups themselves.
   */
  read<Row>(query: CompiledQuery): Promise<Row[]>;
  /** Every write goes through here, so that concurrent writes share a durable commit. */
  writes: WriteQueue;
  /** Waits for queued writes to commit, then closes the writer and the database. */
  close(): Promise<void>;
  /** Connections to the database: open, idle, and requests waiting for one (for metrics). */
  connections(): { open: number; idle: number; waiting: number };
  /** How replicas on one PostgreSQL database tell each other what to forget; the embedded SQLite store has none. */
  notices?: ReplicaNotices;
}

/**
 * Opens (creating if needed) the embedded SQLite store in `dataDir` and migrates it.
 *
 * WAL with synchronous=FULL: a commit is on disk before it returns, so a response sent after a
 * commit never describes data a crash could lose (src/store/sqlite-pragmas.cjs, shared with the
 * writer thread).
 */
export async function openSqlite(dataDir: string): Promise<Db> {
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, "userport.sqlite");
  restrictToOwner(file);
  const sqlite = new SQLite(file);
  applyConnectionPragmas(sqlite);
  const cached = withStatementCache(sqlite);
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: cached }) });
  await migrateToLatest(db as Kysely<unknown>, "sqlite");
  const writes = new CommitQueue(file);
  return {
    dialect: "sqlite",
    db,
    read: async <Row>(query: CompiledQuery) => cached.prepare(query.sql).all(query.parameters as unknown[]) as Row[],
    writes,
    async close() {
      await writes.close();
      await db.destroy();
    },
    // One reading connection on the main thread and the writer thread's own.
    connections: () => ({ open: 2, idle: writes.inFlight() === 0 ? 2 : 1, waiting: 0 }),
  };
}

/**
 * The store holds password hashes and sealed secrets: its files are the owner's only (0600), as
 * admin.pat is. SQLite creates the -wal and -shm files with the mode of the database file, so
 * creating that one 0600 is enough; files of an older start are narrowed.
 */
function restrictToOwner(file: string): void {
  if (!existsSync(file)) closeSync(openSync(file, "a", 0o600));
  for (const path of [file, `${file}-wal`, `${file}-shm`]) {
    if (existsSync(path) && (statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
  }
}

/** Enough distinct statements for every query the service builds; dynamic ones evict the oldest. */
const STATEMENT_CACHE_SIZE = 1000;

/**
 * Kysely's SQLite driver prepares every query anew; preparing costs more than running a simple
 * statement, so prepared statements are kept and reused by their SQL text.
 */
function withStatementCache(sqlite: SQLite.Database): SqliteDatabase & { prepare(sql: string): SQLite.Statement } {
  const statements = new Map<string, SQLite.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(sql: string) {
      let statement = statements.get(sql);
      if (!statement) {
        statement = sqlite.prepare(sql);
        if (statements.size >= STATEMENT_CACHE_SIZE) statements.delete(statements.keys().next().value!);
        statements.set(sql, statement);
      }
      return statement;
    },
  };
}
