/**
 * The AdministratorStore contract (src/domain/ports.ts) as `userport token` relies on it
 * (src/admin-token.ts): the instance the store holds, and its active service users holding
 * IAM_OWNER, the oldest first.
 */
import { describe, expect, it } from "vitest";
import { createAdministratorStore, createFirstInstance } from "../../src/store/access-store.js";
import { createUserStore } from "../../src/store/user-store.js";
import { T0, ids, storesUnderTest, useStore } from "../helpers/stores.js";

describe.each(storesUnderTest)("AdministratorStore on %s", (kind) => {
  const store = useStore(kind, { perTest: true });
  const administrators = () => createAdministratorStore(store());

  async function firstInstance() {
    const first = {
      instanceId: ids("inst"),
      orgId: ids("org"),
      orgName: ids("Org"),
      adminUserId: ids("admin"),
      adminUsername: "userport-admin",
      tokenId: ids("tok"),
      tokenDigest: ids("digest"),
      tokenExpiresAt: Date.UTC(9999, 0, 1),
      now: T0,
    };
    await createFirstInstance(store(), first);
    return first;
  }

  it("holds no instance before the first start", async () => {
    expect(await administrators().instanceId()).toBeUndefined();
  });

  it("finds the first instance and its IAM_OWNER service user", async () => {
    const first = await firstInstance();
    expect(await administrators().instanceId()).toBe(first.instanceId);
    expect(await administrators().activeInstanceOwners(first.instanceId)).toEqual([{ id: first.adminUserId, username: "userport-admin", orgId: first.orgId }]);
    expect(await administrators().activeInstanceOwners(ids("inst"))).toEqual([]);
  });

  it("leaves out an owner that is not active", async () => {
    const first = await firstInstance();
    const users = createUserStore(store());
    await users.changeUser({
      instanceId: first.instanceId,
      userId: first.adminUserId,
      expectedSequence: (await users.getUser(first.instanceId, first.adminUserId))!.sequence,
      event: { type: "user.locked", payload: {} },
      at: T0 + 1,
      creator: "c",
      state: "LOCKED",
    });
    expect(await administrators().activeInstanceOwners(first.instanceId)).toEqual([]);
  });
});
