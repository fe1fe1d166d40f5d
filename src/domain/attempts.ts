import { RateLimitErrors } from "./error-catalogue.js";
import type { AttemptLimiter } from "./ports.js";

/** No limit: for commands built without one (tools, benchmarks). */
export const UNLIMITED_ATTEMPTS: AttemptLimiter = { take: async () => true };

/**
 * Counts a credential check for the user and refuses it, before any hashing or code comparison,
 * when the user's budget is used up: `RESOURCE_EXHAUSTED` (HTTP 429). ZITADEL has no such limit
 * (its lockout policy counts failures only), so the error id is userport's own.
 */
export async function takeUserAttempt(limiter: AttemptLimiter | undefined, instanceId: string, userId: string): Promise<void> {
  if (!limiter) return;
  if (!(await limiter.take(`${instanceId}/${userId}`))) {
    throw RateLimitErrors.tooManyAttempts();
  }
}
