// The store's writer thread: runs group-committed write batches on its own SQLite connection,
// so that executing statements and waiting for fsync never block the server's event loop.
// Plain CommonJS because worker threads load it directly, under tsx, vitest and the build alike.
// Messages in: {id, units: WriteStatement[][]} or {close: true}; out: {id, results} per batch,
// where results[i] is null (committed), {uniqueKind} or {message, code} for units[i], or
// {id, error} when the whole batch failed to commit.
"use strict";
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driverPath);

const db = new Database(workerData.file);
db.pragma("journal_mode = WAL");
db.pragma("synchronous = FULL");
db.pragma("busy_timeout = 5000");

const statements = new Map();
const prepare = (sql) => {
  let statement = statements.get(sql);
  if (!statement) {
    statement = db.prepare(sql);
    statements.set(sql, statement);
  }
  return statement;
};

const UNIQUE_CODES = new Set(["SQLITE_CONSTRAINT_PRIMARYKEY", "SQLITE_CONSTRAINT_UNIQUE"]);

// A transaction function called inside another runs under a savepoint: a failing unit rolls
// back only its own statements.
const applyUnit = db.transaction((unit) => {
  for (const statement of unit) {
    try {
      prepare(statement.sql).run(...statement.parameters);
    } catch (err) {
      if (statement.uniqueKind !== undefined && UNIQUE_CODES.has(err.code)) throw { uniqueKind: statement.uniqueKind };
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

parentPort.on("message", (message) => {
  if (message.close) {
    db.close();
    parentPort.close();
    return;
  }
  try {
    parentPort.postMessage({ id: message.id, results: commitBatch(message.units) });
  } catch (err) {
    parentPort.postMessage({ id: message.id, error: { message: String(err.message), code: err.code } });
  }
});
