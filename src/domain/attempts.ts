import { DomainError } from "./errors.js";

/**
 * Bounds how often one user's credentials (a password, a one-time code) may be checked within a
 * time window, so that neither a guesser nor a flood of requests spread over many sources makes
 * the server spend unbounded CPU on one user. The per-source limit sits at the edge (src/api);
 * this one lives here, where the user is known. src/api/rate-limits.ts implements it.
 */
export interface AttemptLimiter {
  /** Counts an attempt for `key`; resolves false when the key has used up its window's budget. */
  take(key: string): Promise<boolean>;
}

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
    throw new DomainError("ResourceExhausted", "UP-RATE2", "Too many attempts for this user, try again later");
  }
}
