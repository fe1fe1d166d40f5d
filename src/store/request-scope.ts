import { AsyncLocalStorage } from "node:async_hooks";
import { RequestEnded } from "../domain/ports.js";
import type { Db } from "./db.js";

/** Whether the request a piece of work belongs to has ended before its answer (deadline, client gone). */
export interface RequestState {
  ended: boolean;
}

/**
 * The state of the request whose work is running. Set by the protocol edge (src/edge/calls.ts)
 * around each call, read by the store, so that no domain command has to pass it along. A call
 * that completes normally never marks it ended.
 */
const requestState = new AsyncLocalStorage<RequestState>();

/** Runs `work` (and everything it starts) as work of the request with `state`. */
export function runForRequest<T>(state: RequestState, work: () => T): T {
  return requestState.run(state, work);
}

/**
 * Runs `fn` as work of no request: for long-lived work a request merely sets off (waking the
 * mail dispatcher), which would otherwise carry that request's state into its timers forever.
 */
export function outsideRequest<T>(fn: () => T): T {
  return requestState.exit(fn);
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
        if (requestState.getStore()?.ended) return Promise.reject(new RequestEnded());
        return writes.run(statements);
      },
      stageUnits: (units) => writes.stageUnits(units),
      runStaged(staged, options) {
        if (requestState.getStore()?.ended) return Promise.reject(new RequestEnded());
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
