import { losesClaim } from "./claims.js";

/**
 * How often a change is planned and written again when another change of the same object
 * committed between its read and its write. Many requests changing one user at once (through
 * several replicas, say) each need a turn: one of them wins every round.
 */
const MAX_ATTEMPTS = 30;

/**
 * Whether `err` is the store's report that the object's sequence moved on (`kind`) and there are
 * attempts left; if so, waits a random moment first, growing with the attempt, so that the
 * contenders spread out instead of colliding again.
 */
export async function retryAfterConflict(err: unknown, attempt: number, kind = "sequence"): Promise<boolean> {
  if (!losesClaim(err, kind) || attempt >= MAX_ATTEMPTS) return false;
  await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(50, 2 ** attempt)));
  return true;
}

/** Runs `attempt` (a read, then a write) again while it loses to another change of the same object. */
export async function retryingConflicts<T>(attempt: () => Promise<T>): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (await retryAfterConflict(err, i)) continue;
      throw err;
    }
  }
}
