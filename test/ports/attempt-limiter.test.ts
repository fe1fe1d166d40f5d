/**
 * The AttemptLimiter contract (src/domain/ports.ts) as the password and session commands rely on
 * it (src/domain/passwords.ts, sessions.ts). It keeps no data in the stores (src/edge/rate-limits.ts
 * counts in memory, per replica), so it runs once rather than per store. The window's end is time
 * and is left to the limiter library; what is checked here is the budget within one window.
 */
import { describe, expect, it } from "vitest";
import { createAttemptLimiter } from "../../src/edge/rate-limits.js";

describe("AttemptLimiter (src/edge/rate-limits.ts)", () => {
  it("grants a key its budget within a window, then refuses it", async () => {
    const limiter = createAttemptLimiter(3, 3600);
    const taken = [];
    for (let i = 0; i < 5; i++) taken.push(await limiter.take("user-1"));
    expect(taken).toEqual([true, true, true, false, false]);
  });

  it("counts each key on its own", async () => {
    const limiter = createAttemptLimiter(1, 3600);
    expect(await limiter.take("user-1")).toBe(true);
    expect(await limiter.take("user-1")).toBe(false);
    expect(await limiter.take("user-2")).toBe(true);
  });

  it("never grants more than the budget to concurrent attempts", async () => {
    const limiter = createAttemptLimiter(5, 3600);
    const taken = await Promise.all(Array.from({ length: 20 }, () => limiter.take("user-1")));
    expect(taken.filter(Boolean)).toHaveLength(5);
  });

  it("limits nothing with a budget of 0", async () => {
    const limiter = createAttemptLimiter(0, 3600);
    const taken = await Promise.all(Array.from({ length: 50 }, () => limiter.take("user-1")));
    expect(taken.every(Boolean)).toBe(true);
  });
});
