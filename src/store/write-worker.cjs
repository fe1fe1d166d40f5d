// The store's writer thread: runs group-committed write batches on its own SQLite connection,
// so that executing statements and waiting for fsync never block the server's event loop.
// Plain CommonJS because worker threads load it directly, under tsx, vitest and the build alike.
// Messages in: {id, sql: [[sqlId, text]…], units: [UTF-8 JSON of [[sqlId, parameters, uniqueKind]…][], the units in parts]}
// or {close: true}; each SQL text comes once, then only its id. Out, per batch: {id, results},
// where results[i] is null (committed), {uniqueKind} or {message, code} for units[i], or
// {id, error} when the whole batch failed to commit.
// Consecutive units made only of plain inserts (a bulk import's records) are written table by
// table in multi-row inserts under one savepoint; only when that fails does each unit run again
// under a savepoint of its own, so each still gets its own outcome.
"use strict";
const { parentPort, workerData } = require("node:worker_threads");
const utf8 = new TextDecoder();
const Database = require(workerData.driverPath);

const { applyWriterPragmas } = require("./sqlite-pragmas.cjs");

const db = new Database(workerData.file);
applyWriterPragmas(db);

/** Prepared statements by the id the main thread gave their SQL, with their multi-row form. */
const statements = new Map();

const UNIQUE_CODES = new Set(["SQLITE_CONSTRAINT_PRIMARYKEY", "SQLITE_CONSTRAINT_UNIQUE"]);

/**
 * A plain single-row insert (no ON CONFLICT, no RETURNING, only placeholders), as Kysely compiles
 * the store's prepared inserts: rows of many units for the same table can go in one statement.
 */
const PLAIN_INSERT = /^insert into ("[^"]+") \(([^)]*)\) values (\(\?(?:, \?)*\))$/;
/** Rows per multi-row statement: powers of two, so that a handful of texts serve every count. */
const MAX_ROWS = 128;
/** SQLite's default SQLITE_MAX_VARIABLE_NUMBER (3.32 and later). */
const MAX_VARIABLES = 32766;

function register(sqlId, text) {
  const match = PLAIN_INSERT.exec(text);
  let multi;
  if (match) {
    const columns = match[2].split(",").length;
    let maxRows = 1;
    while (maxRows * 2 <= MAX_ROWS && maxRows * 2 * columns <= MAX_VARIABLES) maxRows *= 2;
    multi = { head: `insert into ${match[1]} (${match[2]}) values `, row: match[3], maxRows, bySize: new Map() };
  }
  statements.set(sqlId, { single: db.prepare(text), multi });
}

/** The insert of `size` rows at once, prepared on first use. */
function multiRow(multi, size) {
  let prepared = multi.bySize.get(size);
  if (!prepared) {
    prepared = db.prepare(multi.head + Array.from({ length: size }, () => multi.row).join(", "));
    multi.bySize.set(size, prepared);
  }
  return prepared;
}

// A transaction function called inside another runs under a savepoint: a failing unit rolls
// back only its own statements.
const applyUnit = db.transaction((unit) => {
  for (const [sqlId, parameters, uniqueKind] of unit) {
    try {
      statements.get(sqlId).single.run(parameters);
    } catch (err) {
      if (uniqueKind !== undefined && uniqueKind !== null && UNIQUE_CODES.has(err.code)) throw { uniqueKind };
      throw err;
    }
  }
});

/** Whether every statement of the unit is a plain insert, so that it can join a multi-row batch. */
const groupable = (unit) => unit.every(([sqlId]) => statements.get(sqlId).multi !== undefined);

/**
 * The units' rows, table by table in multi-row inserts, under one savepoint. Rows keep the order
 * of their units, so the result is that of running the units one after another; when a statement
 * fails (a unique violation, say) all of it rolls back and the caller runs the units one by one.
 */
const applyGrouped = db.transaction((units) => {
  const rowsById = new Map();
  for (const unit of units) {
    for (const [sqlId, parameters] of unit) {
      const rows = rowsById.get(sqlId);
      if (rows) rows.push(parameters);
      else rowsById.set(sqlId, [parameters]);
    }
  }
  for (const [sqlId, rows] of rowsById) {
    const { single, multi } = statements.get(sqlId);
    let at = 0;
    while (at < rows.length) {
      let size = multi.maxRows;
      while (size > rows.length - at) size /= 2;
      if (size === 1) single.run(rows[at]);
      else {
        const values = [];
        for (let end = at + size, i = at; i < end; i++) for (const value of rows[i]) values.push(value);
        multiRow(multi, size).run(values);
      }
      at += size;
    }
  }
});

function unitResult(unit) {
  try {
    applyUnit(unit);
    return null;
  } catch (err) {
    return err.uniqueKind !== undefined ? { uniqueKind: err.uniqueKind } : { message: String(err.message), code: err.code };
  }
}

const commitBatch = db.transaction((units) => {
  const results = new Array(units.length).fill(null);
  let i = 0;
  while (i < units.length) {
    let end = i;
    while (end < units.length && groupable(units[end])) end++;
    if (end - i < 2) {
      results[i] = unitResult(units[i]);
      i++;
      continue;
    }
    try {
      applyGrouped(units.slice(i, end));
    } catch {
      // Some unit of the run failed: each one again under its own savepoint, for its own outcome.
      for (let k = i; k < end; k++) results[k] = unitResult(units[k]);
    }
    i = end;
  }
  return results;
});

parentPort.on("message", (message) => {
  if (message.close) {
    db.close();
    parentPort.close();
    return;
  }
  try {
    for (const [sqlId, text] of message.sql) register(sqlId, text);
    const units = [];
    for (const json of message.units) for (const unit of JSON.parse(utf8.decode(json))) units.push(unit);
    parentPort.postMessage({ id: message.id, results: commitBatch(units) });
  } catch (err) {
    parentPort.postMessage({ id: message.id, error: { message: String(err.message), code: err.code } });
  }
});
