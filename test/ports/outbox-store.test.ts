/**
 * The OutboxStore contract (src/domain/ports.ts) as the mail dispatcher relies on it
 * (src/domain/notifications.ts): messages exist exactly when the change that caused them
 * committed; a claim is exclusive and leased; a claimant that lost its message to another (its
 * lease ran out) changes nothing of it.
 */
import { beforeEach, describe, expect, it } from "vitest";
import type { OutboxMessage } from "../../src/domain/ports.js";
import { createOutboxStore } from "../../src/store/outbox-store.js";
import { createUserStore } from "../../src/store/user-store.js";
import { T0, ids, newMachine, storesUnderTest, useStore } from "../helpers/stores.js";

/** Later than every time a test uses. */
const FAR = T0 + 10 * 365 * 24 * 3_600_000;
const LEASE = 60_000;

describe.each(storesUnderTest)("OutboxStore on %s", (kind) => {
  const store = useStore(kind);
  const outbox = () => createOutboxStore(store());

  // The outbox is one queue for the whole store: each test starts with nothing deliverable left
  // unsent by the tests before it.
  beforeEach(async () => {
    for (const message of await outbox().claimDue(FAR, 10_000, 0)) await outbox().markSent(message, FAR);
    expect(await outbox().claimDue(FAR, 10_000, 0)).toEqual([]);
  });

  /** Enqueues messages the way every change does: with a user's creation, in its commit. */
  async function enqueue(...messages: Array<Partial<OutboxMessage>>): Promise<OutboxMessage[]> {
    const instanceId = ids("inst");
    const creation = newMachine({ instanceId, orgId: ids("org") });
    const full = messages.map(
      (m): OutboxMessage => ({
        id: ids("msg"),
        instanceId,
        userId: creation.user.id,
        kind: "init",
        channel: "email",
        recipient: "ada@example.com",
        deliverable: true,
        subject: "Welcome",
        sealedBody: `sealed-${ids("body")}`,
        createdAt: T0,
        ...m,
      }),
    );
    await createUserStore(store()).createUser({ ...creation, outbox: full });
    return full;
  }

  it("claims the deliverable messages that are due, oldest first, up to the limit", async () => {
    const [older, newer] = await enqueue(
      { createdAt: T0 + 10 },
      { createdAt: T0 + 20, kind: "password_reset", subject: "Reset" },
      { createdAt: T0 + 1_000 },
      { createdAt: T0, channel: "sms", deliverable: false },
    );
    const claimed = await outbox().claimDue(T0 + 500, 10, LEASE);
    expect(claimed.map((m) => m.id)).toEqual([older!.id, newer!.id]);
    expect(claimed[1]).toMatchObject({
      kind: "password_reset",
      recipient: "ada@example.com",
      subject: "Reset",
      sealedBody: newer!.sealedBody,
      attempts: 0,
    });

    await outbox().release(claimed[0]!);
    await outbox().release(claimed[1]!);
    expect((await outbox().claimDue(T0 + 2_000, 1, LEASE)).map((m) => m.id)).toEqual([older!.id]);
  });

  it("holds a claimed message until its lease ends, then lets another claimant take it", async () => {
    const [message] = await enqueue({});
    const [first] = await outbox().claimDue(T0 + 1_000, 10, LEASE);
    expect(first?.id).toBe(message!.id);
    expect(await outbox().claimDue(T0 + 1_000 + LEASE - 1, 10, LEASE)).toEqual([]);
    const [second] = await outbox().claimDue(T0 + 1_000 + LEASE, 10, LEASE);
    expect(second?.id).toBe(message!.id);
    expect(second?.claimToken).not.toBe(first?.claimToken);
  });

  it("gives each message to one of concurrent claimants", async () => {
    const messages = await enqueue(...Array.from({ length: 8 }, (_, i) => ({ createdAt: T0 + i })));
    const batches = await Promise.all(Array.from({ length: 4 }, () => outbox().claimDue(T0 + 1_000, 8, LEASE)));
    const claimedIds = batches.flat().map((m) => m.id);
    expect(new Set(claimedIds).size).toBe(claimedIds.length);
    expect(claimedIds.sort()).toEqual(messages.map((m) => m.id).sort());
  });

  it("marks a message sent: it is never claimed again and no longer unsent", async () => {
    const unsentBefore = await outbox().countUnsent();
    await enqueue({});
    expect(await outbox().countUnsent()).toBe(unsentBefore + 1);
    const [claimed] = await outbox().claimDue(T0 + 1_000, 10, LEASE);
    await outbox().markSent(claimed!, T0 + 1_001);
    expect(await outbox().countUnsent()).toBe(unsentBefore);
    expect(await outbox().claimDue(FAR, 10, LEASE)).toEqual([]);
  });

  it("counts undeliverable messages as unsent without ever handing them out", async () => {
    const unsentBefore = await outbox().countUnsent();
    await enqueue({ channel: "sms", deliverable: false });
    expect(await outbox().countUnsent()).toBe(unsentBefore + 1);
    expect(await outbox().claimDue(FAR, 10, LEASE)).toEqual([]);
  });

  it("records a failed attempt: the message waits until its next attempt, counting the attempts", async () => {
    await enqueue({});
    const [claimed] = await outbox().claimDue(T0 + 1_000, 10, LEASE);
    await outbox().markFailed(claimed!, { nextAttemptAt: T0 + 30_000, error: "connection refused" });
    expect(await outbox().claimDue(T0 + 29_999, 10, LEASE)).toEqual([]);
    const [again] = await outbox().claimDue(T0 + 30_000, 10, LEASE);
    expect(again).toMatchObject({ id: claimed!.id, attempts: 1 });
    await outbox().markFailed(again!, { nextAttemptAt: T0 + 60_000, error: "timeout" });
    expect((await outbox().claimDue(T0 + 60_000, 10, LEASE))[0]?.attempts).toBe(2);
  });

  it("takes a released message back untried: due at once, its attempts unchanged", async () => {
    await enqueue({});
    const [claimed] = await outbox().claimDue(T0 + 1_000, 10, LEASE);
    await outbox().release(claimed!);
    const [again] = await outbox().claimDue(T0 + 1_000, 10, LEASE);
    expect(again).toMatchObject({ id: claimed!.id, attempts: 0 });
  });

  it("ignores what a claimant reports after it lost the message to another", async () => {
    const unsentBefore = await outbox().countUnsent();
    await enqueue({});
    const [lost] = await outbox().claimDue(T0 + 1_000, 10, LEASE);
    const [current] = await outbox().claimDue(T0 + 1_000 + LEASE, 10, LEASE);
    expect(current?.id).toBe(lost!.id);

    await outbox().markSent(lost!, T0 + 1_000 + LEASE + 1);
    await outbox().markFailed(lost!, { nextAttemptAt: FAR, error: "late" });
    await outbox().release(lost!);
    expect(await outbox().countUnsent()).toBe(unsentBefore + 1);
    // Still held by the current claimant, with no attempt counted.
    expect(await outbox().claimDue(T0 + 1_000 + LEASE + 2, 10, LEASE)).toEqual([]);
    await outbox().release(current!);
    expect((await outbox().claimDue(T0 + 1_000 + LEASE + 3, 10, LEASE))[0]).toMatchObject({ id: lost!.id, attempts: 0 });
  });

  it("holds no message of a creation that failed", async () => {
    const unsentBefore = await outbox().countUnsent();
    const [message] = await enqueue({});
    const users = createUserStore(store());
    const rival = newMachine({ instanceId: message!.instanceId, orgId: ids("org"), id: message!.userId });
    await expect(users.createUser({ ...rival, outbox: [{ ...message!, id: ids("msg") }] })).rejects.toMatchObject({ kind: "user_id" });
    expect(await outbox().countUnsent()).toBe(unsentBefore + 1);
  });
});
