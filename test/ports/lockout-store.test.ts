/**
 * The LockoutStore contract (src/domain/ports.ts) as the lockout commands rely on it
 * (src/domain/lockout.ts): a policy of an organisation or (orgId "") of the instance, written with
 * its owner's event as the owner's next sequence, so a concurrent change of the owner fails it
 * with UniqueViolation("sequence") and writes nothing.
 */
import { describe, expect, it } from "vitest";
import type { LockoutChange } from "../../src/domain/lockout.js";
import { createLockoutStore } from "../../src/store/lockout-store.js";
import { createOrgStore } from "../../src/store/org-store.js";
import { T0, ids, newOrg, rejection, storesUnderTest, useStore } from "../helpers/stores.js";

describe.each(storesUnderTest)("LockoutStore on %s", (kind) => {
  const store = useStore(kind);
  const lockout = () => createLockoutStore(store());

  async function createOrg() {
    const instanceId = ids("inst");
    const { org, domain } = newOrg(instanceId);
    await createOrgStore(store()).createOrg({
      org,
      domain,
      owner: { userId: ids("u"), roles: ["ORG_OWNER"] },
      events: [{ type: "org.added", payload: {} }],
      creator: "c",
    });
    return org;
  }

  const write = (instanceId: string, orgId: string, expectedSequence: number, policy: LockoutChange["policy"]): LockoutChange => ({
    instanceId,
    orgId,
    expectedSequence,
    event: { type: policy ? "policy.lockout.changed" : "policy.lockout.removed", payload: {} },
    policy,
    at: T0 + 1000 * (expectedSequence + 1),
    creator: "c",
  });

  it("stores an organisation's policy as the organisation's next sequence", async () => {
    const org = await createOrg();
    expect(await lockout().storedPolicy(org.instanceId, org.id)).toBeUndefined();
    expect(await lockout().ownerSequence(org.instanceId, org.id)).toBe(1);
    await lockout().write(write(org.instanceId, org.id, 1, { maxPasswordAttempts: 5, maxOtpAttempts: 3, createdAt: T0 + 2000 }));
    expect(await lockout().storedPolicy(org.instanceId, org.id)).toEqual({
      maxPasswordAttempts: 5,
      maxOtpAttempts: 3,
      createdAt: T0 + 2000,
      changedAt: T0 + 2000,
      sequence: 2,
    });
    expect(await lockout().ownerSequence(org.instanceId, org.id)).toBe(2);
    // The organisation's own reads follow.
    expect((await createOrgStore(store()).getOrg(org.instanceId, org.id))?.sequence).toBe(2);
    // The instance's policy is another one.
    expect(await lockout().storedPolicy(org.instanceId, "")).toBeUndefined();
  });

  it("changes and removes a policy, keeping its creation time while it exists", async () => {
    const org = await createOrg();
    await lockout().write(write(org.instanceId, org.id, 1, { maxPasswordAttempts: 5, maxOtpAttempts: 0, createdAt: T0 + 2000 }));
    await lockout().write(write(org.instanceId, org.id, 2, { maxPasswordAttempts: 1, maxOtpAttempts: 1, createdAt: T0 + 2000 }));
    expect(await lockout().storedPolicy(org.instanceId, org.id)).toEqual({
      maxPasswordAttempts: 1,
      maxOtpAttempts: 1,
      createdAt: T0 + 2000,
      changedAt: T0 + 3000,
      sequence: 3,
    });
    await lockout().write(write(org.instanceId, org.id, 3, undefined));
    expect(await lockout().storedPolicy(org.instanceId, org.id)).toBeUndefined();
    expect(await lockout().ownerSequence(org.instanceId, org.id)).toBe(4);
  });

  it("fails a write on a stale sequence with UniqueViolation('sequence') and writes nothing", async () => {
    const org = await createOrg();
    await lockout().write(write(org.instanceId, org.id, 1, { maxPasswordAttempts: 5, maxOtpAttempts: 3, createdAt: T0 }));
    const failure = await rejection(lockout().write(write(org.instanceId, org.id, 1, undefined)));
    expect(failure).toMatchObject({ name: "UniqueViolation", kind: "sequence" });
    expect(await lockout().storedPolicy(org.instanceId, org.id)).toMatchObject({ maxPasswordAttempts: 5, sequence: 2 });
    expect(await lockout().ownerSequence(org.instanceId, org.id)).toBe(2);
  });

  it("stores the instance's policy on the instance aggregate, counting its events", async () => {
    const instanceId = ids("inst");
    expect(await lockout().ownerSequence(instanceId, "")).toBe(0);
    await lockout().write(write(instanceId, "", 0, { maxPasswordAttempts: 10, maxOtpAttempts: 10, createdAt: T0 }));
    expect(await lockout().ownerSequence(instanceId, "")).toBe(1);
    expect(await lockout().storedPolicy(instanceId, "")).toMatchObject({ maxPasswordAttempts: 10, sequence: 1 });
    const failure = await rejection(lockout().write(write(instanceId, "", 0, { maxPasswordAttempts: 2, maxOtpAttempts: 2, createdAt: T0 })));
    expect(failure).toMatchObject({ name: "UniqueViolation", kind: "sequence" });
    expect(await lockout().storedPolicy(instanceId, "")).toMatchObject({ maxPasswordAttempts: 10 });
    expect(await lockout().ownerSequence(ids("inst"), "")).toBe(0);
  });

  it("lets one of concurrent writes on the same sequence commit", async () => {
    const org = await createOrg();
    const results = await Promise.allSettled(
      [1, 2, 3].map((n) => lockout().write(write(org.instanceId, org.id, 1, { maxPasswordAttempts: n, maxOtpAttempts: n, createdAt: T0 }))),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    expect(await lockout().ownerSequence(org.instanceId, org.id)).toBe(2);
  });
});
