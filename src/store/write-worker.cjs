// The store's writer thread: runs group-committed write batches on its own SQLite connection,
// so that executing statements and waiting for fsync never block the server's event loop.
// Plain CommonJS because worker threads load it directly, under tsx, vitest and the build alike.
// Messages in (batches as JSON text): {id, sql: [[sqlId, text]…], units: [[sqlId, parameters, uniqueKind]…][]} or
// {close: true}; each SQL text comes once, then only its id. Out, per batch: {id, results},
// where results[i] is null (committed), {uniqueKind} or {message, code} for units[i], or
// {id, error} when the whole batch failed to commit.
"use strict";
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driverPath);

const db = new Database(workerData.file);
db.pragma("journal_mode = WAL");
db.pragma("synchronous = FULL");
db.pragma("busy_timeout = 5000");
// Index pages of the users and events tables stay in memory across batches (64 MiB), and the WAL
// is folded back into the database less often: each checkpoint is an extra synchronous write.
db.pragma("cache_size = -65536");
db.pragma("wal_autocheckpoint = 10000");

/** Prepared statements by the id the main thread gave their SQL. */
const statements = new Map();

const UNIQUE_CODES = new Set(["SQLITE_CONSTRAINT_PRIMARYKEY", "SQLITE_CONSTRAINT_UNIQUE"]);

// A transaction function called inside another runs under a savepoint: a failing unit rolls
// back only its own statements.
const applyUnit = db.transaction((unit) => {
  for (const [sqlId, parameters, uniqueKind] of unit) {
    try {
      statements.get(sqlId).run(parameters);
    } catch (err) {
      if (uniqueKind !== undefined && uniqueKind !== null && UNIQUE_CODES.has(err.code)) throw { uniqueKind };
      throw err;
    }
  }
});

const commitBatch = db.transaction((units) =>
  units.map((unit) => {
    try {
      applyUnit(unit);
      return null;
    } catch (err) {
      return err.uniqueKind !== undefined ? { uniqueKind: err.uniqueKind } : { message: String(err.message), code: err.code };
    }
  }),
);

parentPort.on("message", (data) => {
  const message = typeof data === "string" ? JSON.parse(data) : data;
  if (message.close) {
    db.close();
    parentPort.close();
    return;
  }
  try {
    for (const [sqlId, text] of message.sql) statements.set(sqlId, db.prepare(text));
    parentPort.postMessage({ id: message.id, results: commitBatch(message.units) });
  } catch (err) {
    parentPort.postMessage({ id: message.id, error: { message: String(err.message), code: err.code } });
  }
});
