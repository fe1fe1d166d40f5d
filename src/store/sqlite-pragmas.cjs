// The settings of every connection to the SQLite store, in one place for the server's reading
// connection (src/store/db.ts) and the writer thread's (src/store/write-worker.cjs). Plain
// CommonJS so that the worker thread can require it as it is, under tsx, vitest and the build alike.
"use strict";

/**
 * WAL with synchronous=FULL: a commit is on disk before it returns, so a response sent after a
 * commit never describes data a crash could lose. A connection that finds the database locked
 * waits up to 5 s for it.
 */
function applyConnectionPragmas(db) {
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.pragma("busy_timeout = 5000");
}

/**
 * The writer's connection besides: index pages of the users and events tables stay in memory
 * across batches (16 MiB: with 64 MiB the writer spent no less time on a bulk import, as the pages
 * a smaller cache drops stay in the OS's page cache, and the server's resident set was 60 MB
 * larger); and the writer folds the WAL back into the database itself (a checkpoint, an extra
 * synchronous write) only when it passes 10000 pages, as the checkpointer thread does that
 * alongside it (CHECKPOINT_EVERY_UNITS in src/store/commit-queue.ts).
 */
function applyWriterPragmas(db) {
  applyConnectionPragmas(db);
  db.pragma("cache_size = -16384");
  db.pragma("wal_autocheckpoint = 10000");
}

module.exports = { applyConnectionPragmas, applyWriterPragmas };
