/**
 * The IdpStore contract (src/domain/ports.ts) as the identity provider commands rely on it
 * (src/domain/idps.ts): a provider of an organisation or (orgId "") of the instance is written with
 * its event as the owner's next sequence, a concurrent change of the owner fails it with
 * UniqueViolation("sequence"), and the client secret stays sealed in the store, never read back.
 */
import { describe, expect, it } from "vitest";
import type { Idp } from "../../src/domain/idps.js";
import { createIdpStore } from "../../src/store/idp-store.js";
import { createLockoutStore } from "../../src/store/lockout-store.js";
import { createOrgStore } from "../../src/store/org-store.js";
import { T0, ids, newOrg, rejection, storesUnderTest, useStore } from "../helpers/stores.js";

describe.each(storesUnderTest)("IdpStore on %s", (kind) => {
  const store = useStore(kind);
  const idps = () => createIdpStore(store());

  async function createOrg(instanceId = ids("inst")) {
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

  const idp = (instanceId: string, orgId: string, sequence: number): Idp => ({
    instanceId,
    id: ids("idp"),
    orgId,
    type: "oidc",
    state: "ACTIVE",
    name: ids("Provider"),
    issuer: "https://issuer.example.test",
    clientId: "client-1",
    scopes: ["openid", "email"],
    isIdTokenMapping: true,
    usePkce: false,
    options: { isLinkingAllowed: true, isCreationAllowed: false, isAutoCreation: true, isAutoUpdate: false, autoLinking: 2 },
    createdAt: T0 + 100,
    changedAt: T0 + 100,
    sequence,
  });
  const added = { type: "org.idp.oidc.added", payload: {} };

  it("writes an organisation's provider as the organisation's next sequence and reads it back without its secret", async () => {
    const org = await createOrg();
    expect(await idps().lastSequence(org.instanceId, org.id)).toBe(1);
    const provider = idp(org.instanceId, org.id, 2);
    await idps().createIdp(provider, "sealed-client-secret", added, 1, "c");
    const stored = await idps().getIdp(org.instanceId, provider.id);
    expect(stored).toEqual(provider);
    expect(JSON.stringify(stored)).not.toContain("sealed-client-secret");
    expect(await idps().lastSequence(org.instanceId, org.id)).toBe(2);
    expect((await createOrgStore(store()).getOrg(org.instanceId, org.id))?.sequence).toBe(2);
    expect(await idps().getIdp(org.instanceId, ids("idp"))).toBeUndefined();
    expect(await idps().getIdp(ids("inst"), provider.id)).toBeUndefined();
  });

  it("fails on a stale sequence with UniqueViolation('sequence') and writes no provider", async () => {
    const org = await createOrg();
    await idps().createIdp(idp(org.instanceId, org.id, 2), "s", added, 1, "c");
    const late = idp(org.instanceId, org.id, 2);
    const failure = await rejection(idps().createIdp(late, "s", added, 1, "c"));
    expect(failure).toMatchObject({ name: "UniqueViolation", kind: "sequence" });
    expect(await idps().getIdp(org.instanceId, late.id)).toBeUndefined();
    expect(await idps().lastSequence(org.instanceId, org.id)).toBe(2);
  });

  it("writes the instance's providers on the instance aggregate, shared with its other policies", async () => {
    const instanceId = ids("inst");
    const provider = idp(instanceId, "", 1);
    await idps().createIdp(provider, "s", { type: "instance.idp.oidc.added", payload: {} }, 0, "c");
    expect(await idps().getIdp(instanceId, provider.id)).toEqual(provider);
    expect(await idps().lastSequence(instanceId, "")).toBe(1);
    // A lockout policy of the instance builds on the same sequence.
    const lockout = createLockoutStore(store());
    expect(await lockout.ownerSequence(instanceId, "")).toBe(1);
    const stale = await rejection(
      lockout.write({
        instanceId,
        orgId: "",
        expectedSequence: 0,
        event: { type: "instance.policy.lockout.added", payload: {} },
        policy: undefined,
        at: T0,
        creator: "c",
      }),
    );
    expect(stale).toMatchObject({ kind: "sequence" });
  });

  it("lists the providers of the owners asked for", async () => {
    const instanceId = ids("inst");
    const a = await createOrg(instanceId);
    const b = await createOrg(instanceId);
    const ofInstance = idp(instanceId, "", 1);
    const ofA = idp(instanceId, a.id, 2);
    const ofB = idp(instanceId, b.id, 2);
    await idps().createIdp(ofInstance, "s", added, 0, "c");
    await idps().createIdp(ofA, "s", added, 1, "c");
    await idps().createIdp(ofB, "s", added, 1, "c");
    const ids_ = async (owners: string[]) => (await idps().listIdps(instanceId, owners)).map((p) => p.id).sort();
    expect(await ids_(["", a.id])).toEqual([ofInstance.id, ofA.id].sort());
    expect(await ids_([b.id])).toEqual([ofB.id]);
    expect(await ids_([])).toEqual([]);
    expect(await idps().listIdps(ids("inst"), ["", a.id])).toEqual([]);
  });
});
