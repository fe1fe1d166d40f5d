import { AsyncLocalStorage } from "node:async_hooks";
import { RequestEnded } from "../domain/store-port.js";
import type { Db } from "./db.js";

/**
 * The abort signal of the request whose work is running: aborted once its deadline passed or its
 * client went away. Set by the protocol edge (src/server/calls.ts) around each call, read by the
 * store, so that no domain command has to pass it along.
 */
const requestSignal = new AsyncLocalStorage<AbortSignal>();

/** Runs `work` (and everything it starts) as work of the request behind `signal`. */
export function runForRequest<T>(signal: AbortSignal, work: () => T): T {
  return requestSignal.run(signal, work);
}

/**
 * The store, refusing to start a write for a request that has already ended: a command whose
 * caller's deadline passed or whose caller disconnected while it hashed a password or read the
 * store writes nothing. A write already handed to the commit queue still commits (as with any
 * gRPC server, DEADLINE_EXCEEDED does not mean that nothing happened).
 *
 * Writes outside any request (start-up, the mail dispatcher) are never refused.
 */
export function refusingWritesOfEndedRequests(store: Db): Db {
  const writes = store.writes;
  return {
    ...store,
    writes: {
      run(statements) {
        if (requestSignal.getStore()?.aborted) return Promise.reject(new RequestEnded());
        return writes.run(statements);
      },
      close: () => writes.close(),
    },
  };
}
