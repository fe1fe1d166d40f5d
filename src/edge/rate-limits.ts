import { RateLimitErrors } from "../domain/error-catalogue.js";
import type { AttemptLimiter } from "../domain/ports.js";
import type { DescService } from "@bufbuild/protobuf";
import { createContextKey, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";
import { UNLIMITED_ATTEMPTS } from "../domain/attempts.js";

/**
 * Rate limits of the routes that do expensive work for callers who may not be who they claim:
 * checking passwords (bcrypt) and one-time codes. Two limits apply, each a fixed window
 * (`rate-limiter-flexible`'s in-memory limiter, so each replica counts for itself):
 *
 * - per source (client address), here at the edge: the login routes (init, email verification)
 *   and the RPCs that check a credential (CreateSession/SetSession with a password or TOTP check,
 *   VerifyEmail, VerifyPhone, SetPassword with the current password or a code) share one budget
 *   per address;
 * - per user, in the domain where the user is known (src/domain/attempts.ts).
 *
 * A refused request is `RESOURCE_EXHAUSTED` with a `zitadel.v1.ErrorDetail` (HTTP 429 on REST and
 * the login routes), rendered like every other error (src/edge/errors.ts), before any work is done.
 */

/** The client's address (fastify's `request.ip`), put into each RPC's context by the adapters. */
export const clientAddressKey = createContextKey<string>("");

/** A fixed-window limiter of `points` attempts per key per `windowSeconds`; 0 points is no limit. */
export function createAttemptLimiter(points: number, windowSeconds: number): AttemptLimiter {
  if (points === 0) return UNLIMITED_ATTEMPTS;
  const limiter = new RateLimiterMemory({ points, duration: windowSeconds });
  return {
    async take(key) {
      try {
        await limiter.consume(key);
        return true;
      } catch (res) {
        // The limiter rejects with its result object when the key is over its budget.
        if (res instanceof RateLimiterRes) return false;
        throw res;
      }
    },
  };
}

/** Counts a request of the client address and throws RESOURCE_EXHAUSTED when it is over the limit. */
export type SourceLimit = (address: string) => Promise<void>;

export function sourceLimit(limiter: AttemptLimiter): SourceLimit {
  return async (address) => {
    if (!(await limiter.take(address))) {
      throw RateLimitErrors.tooManyRequests();
    }
  };
}

type Handler = (req: never, ctx: HandlerContext) => unknown;

/**
 * Wraps the named methods of a service so that each call that does expensive work (as `limited`
 * decides from the request) first counts against its client address. Goes inside
 * `secureService`, so a refusal leaves as a ZITADEL-shaped error on every protocol.
 */
export function limitBySource<S extends DescService>(
  impl: ServiceImpl<S>,
  limit: SourceLimit,
  limited: { [M in keyof ServiceImpl<S>]?: (req: Parameters<ServiceImpl<S>[M]>[0]) => boolean },
): ServiceImpl<S> {
  const wrapped: Record<string, unknown> = { ...impl };
  for (const [name, expensive] of Object.entries(limited) as Array<[string, (req: unknown) => boolean]>) {
    const inner = (impl as Record<string, Handler>)[name]!;
    wrapped[name] = async (req: never, ctx: HandlerContext) => {
      if (expensive(req)) await limit(ctx.values.get(clientAddressKey));
      return inner.call(impl, req, ctx);
    };
  }
  return wrapped as ServiceImpl<S>;
}
