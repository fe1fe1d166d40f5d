// The store's checkpointer thread: folds the WAL back into the database file on a connection of
// its own whenever the commit queue asks (a PASSIVE checkpoint: the writer thread goes on
// committing meanwhile), so that the writer does not stop between commits to do it (see
// CHECKPOINT_EVERY_UNITS in src/store/commit-queue.ts).
// Plain CommonJS because worker threads load it directly, under tsx, vitest and the build alike.
// Messages in: {checkpoint: true} or {close: true}. Out: {} when a checkpoint is over. One that
// fails (the file busy, say) is left to the next one, or to the writer's own.
"use strict";
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driverPath);

const { applyConnectionPragmas } = require("./sqlite-pragmas.cjs");

const db = new Database(workerData.file);
applyConnectionPragmas(db);

parentPort.on("message", (message) => {
  if (message.close) {
    db.close();
    parentPort.close();
    return;
  }
  try {
    db.pragma("wal_checkpoint(PASSIVE)");
  } catch {
    // Left to the next checkpoint (see above).
  }
  parentPort.postMessage({});
});
