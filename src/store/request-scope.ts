import { RequestEnded } from "../domain/ports.js";
import type { Db } from "./db.js";

/**
 * The store, refusing to start a write for a request that has already ended: every write names
 * the request it is made for (`RequestState` in src/domain/ports.ts), and one whose caller's
 * deadline passed or whose caller disconnected while its command hashed a password or read the
 * store writes nothing. A write already handed to the commit queue still commits.
 *
 * Writes of no request (start-up, the mail dispatcher) are never refused.
 */
export function refusingWritesOfEndedRequests(store: Db): Db {
  const writes = store.writes;
  return {
    ...store,
    writes: {
      run(statements, request) {
        if (request?.ended) return Promise.reject(new RequestEnded());
        return writes.run(statements);
      },
      stageUnits: (units) => writes.stageUnits(units),
      runStaged(staged, options) {
        if (options?.request?.ended) return Promise.reject(new RequestEnded());
        return writes.runStaged(staged, options);
      },
      waiting: () => writes.waiting(),
      close: () => writes.close(),
      // Observers of the commits (metrics) are set on the queue itself, which calls them.
      set onBatch(observer) {
        writes.onBatch = observer;
      },
      get onBatch() {
        return writes.onBatch;
      },
    },
  };
}
