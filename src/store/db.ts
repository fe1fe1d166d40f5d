import { mkdirSync } from "node:fs";
import { join } from "node:path";
import SQLite from "better-sqlite3";
import { Kysely, SqliteDialect } from "kysely";
import { CommitQueue } from "./commit-queue.js";
import { migrateToLatest } from "./migrations.js";
import type { Database } from "./schema.js";

export interface Db {
  db: Kysely<Database>;
  /** Every write goes through here, so that concurrent writes share a durable commit. */
  writes: CommitQueue;
  /** Waits for queued writes to commit, then closes the database. */
  close(): Promise<void>;
}

/**
 * Opens (creating if needed) the embedded SQLite store in `dataDir` and migrates it.
 *
 * WAL with synchronous=FULL: a commit is on disk before it returns, so a response sent after a
 * commit never describes data a crash could lose.
 */
export async function openSqlite(dataDir: string): Promise<Db> {
  mkdirSync(dataDir, { recursive: true });
  const sqlite = new SQLite(join(dataDir, "userport.sqlite"));
  sqlite.pragma("journal_mode = WAL");
  sqlite.pragma("synchronous = FULL");
  sqlite.pragma("busy_timeout = 5000");
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  await migrateToLatest(db as Kysely<unknown>);
  const writes = new CommitQueue(db);
  return {
    db,
    writes,
    async close() {
      await writes.drain();
      await db.destroy();
    },
  };
}

/** True for a driver's unique/primary-key violation (SQLite, or PostgreSQL's 23505). */
export function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "SQLITE_CONSTRAINT_PRIMARYKEY" || code === "SQLITE_CONSTRAINT_UNIQUE" || code === "23505";
}
