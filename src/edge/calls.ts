import { Code, ConnectError, createContextKey, type ContextValues, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import type { RequestState } from "../domain/ports.js";

/**
 * Set on a call's context values once its request message decoded, just before the service
 * implementation runs. A call that failed without it failed in Connect's protocol layer: see
 * src/edge/undecodable.ts.
 */
export const decodedKey = createContextKey(false);

/**
 * How a call's end is followed: the part of AbortSignal {@link Calls.run} uses. A call served by
 * the gRPC fast path (src/edge/grpc-fast-path.ts) offers one under {@link cancellationKey} that
 * costs less than an AbortSignal, whose signal is then made only when something else asks for it.
 */
export interface CallCancellation {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: "abort", listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: "abort", listener: () => void): void;
}

/** The call's own {@link CallCancellation}, when it has one other than its signal. */
export const cancellationKey = createContextKey<CallCancellation | undefined>(undefined);

/** The state of the request a call's implementation runs for, set by {@link Calls.run}. */
const requestStateKey = createContextKey<RequestState | undefined>(undefined);

/**
 * The request a call works for, to hand to the domain commands it runs (their writes are refused
 * once it has ended). Undefined outside {@link Calls.run}: a stream's work is never refused.
 */
export function requestOf(ctx: HandlerContext): RequestState | undefined {
  return ctx.values.get(requestStateKey);
}

/** How every RPC (Connect, gRPC, gRPC-Web and REST alike) runs its service implementation. */
export interface Calls {
  /**
   * Runs `work` for the request behind `signal` and settles with it, or rejects as soon as the
   * signal aborts: DEADLINE_EXCEEDED once the caller's deadline passed, CANCELLED once the caller
   * went away. Work already under way then goes on unanswered, but the store refuses to start its
   * writes (src/store/request-scope.ts): the request's state is put in `values`, where
   * {@link requestOf} finds it for the commands the call runs.
   */
  run<T>(signal: CallCancellation, values: ContextValues, work: () => Promise<T>): Promise<T>;
  /** Resolves once no call's work is running any more, including work whose caller has gone. */
  settled(): Promise<void>;
  /**
   * The Connect interceptor that runs each call through {@link Calls.run} and marks it decoded.
   *
   * Connect gives every handler context a `signal` that aborts at the deadline (`grpc-timeout`,
   * `connect-timeout-ms`) or when the client disconnects, but it leaves honouring it to the
   * implementation: without this, a call whose deadline passed ran to completion.
   */
  interceptor: Interceptor;
}

export function createCalls(): Calls {
  const running = new Set<Promise<unknown>>();

  function run<T>(signal: CallCancellation, values: ContextValues, work: () => Promise<T>): Promise<T> {
    if (signal.aborted) return Promise.reject(endOf(signal));
    // Not the signal itself: Connect aborts it when a call completes normally too, and work the
    // call set off (and outlives it) must not count as ended then.
    const state = { ended: false };
    values.set(requestStateKey, state);
    const done = Promise.resolve().then(work);
    running.add(done);
    const forget = () => void running.delete(done);
    done.then(forget, forget);
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        state.ended = true;
        reject(endOf(signal));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      done.then(
        (value) => {
          signal.removeEventListener("abort", onAbort);
          resolve(value);
        },
        (err: unknown) => {
          signal.removeEventListener("abort", onAbort);
          reject(err);
        },
      );
    });
  }

  return {
    run,
    async settled() {
      while (running.size > 0) await Promise.allSettled([...running]);
    },
    interceptor: (next) => async (req) => {
      if (req.stream) return next({ ...req, message: markedOnFirst(req.message, req.contextValues) });
      req.contextValues.set(decodedKey, true);
      return run(req.contextValues.get(cancellationKey) ?? req.signal, req.contextValues, () => next(req));
    },
  };
}

/** What a caller whose signal aborted is answered: Connect's own reason when it gave one. */
function endOf(signal: CallCancellation): ConnectError {
  const reason: unknown = signal.reason;
  if (reason instanceof ConnectError) return reason;
  return new ConnectError("the request was cancelled", Code.Canceled);
}

/** Streams decode their request while the implementation runs: marks the call once one did. */
async function* markedOnFirst<T>(messages: AsyncIterable<T>, values: ContextValues): AsyncIterable<T> {
  for await (const message of messages) {
    values.set(decodedKey, true);
    yield message;
  }
}
