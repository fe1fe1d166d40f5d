/**
 * The DirectoryStore contract (src/domain/ports.ts) as the directory objects and populations
 * rely on it (src/domain/directory-objects.ts): objects are kept per kind with their folded name
 * claimed (UniqueViolation("<kind>_name")), organisations are summarised with their user counts,
 * renamed with their name claim moving, and removed with everything they own.
 */
import { describe, expect, it } from "vitest";
import type { DirectoryObject } from "../../src/domain/directory-objects.js";
import { createFirstInstance, createCredentialStore } from "../../src/store/access-store.js";
import { createDirectoryStore } from "../../src/store/directory-store.js";
import { createLockoutStore } from "../../src/store/lockout-store.js";
import { createOrgStore } from "../../src/store/org-store.js";
import { createUserStore } from "../../src/store/user-store.js";
import { T0, ids, newMachine, newOrg, rejection, storesUnderTest, useStore } from "../helpers/stores.js";

describe.each(storesUnderTest)("DirectoryStore on %s", (kind) => {
  const store = useStore(kind);
  const directory = () => createDirectoryStore(store());
  const orgs = () => createOrgStore(store());

  const object = (overrides: Partial<DirectoryObject> = {}): DirectoryObject => ({
    kind: "schema_attribute",
    id: ids("obj"),
    name: ids("Name"),
    body: { type: "STRING", nested: { list: [1, "two"] } },
    sealedSecret: undefined,
    createdAt: T0,
    changedAt: T0,
    ...overrides,
  });

  async function createOrg(instanceId: string, name?: string, createdAt = T0) {
    const created = newOrg(instanceId, name);
    created.org.createdAt = created.org.changedAt = createdAt;
    await orgs().createOrg({ ...created, owner: { userId: ids("u"), roles: ["ORG_OWNER"] }, events: [{ type: "org.added", payload: {} }], creator: "c" });
    return created;
  }

  describe("objects", () => {
    it("puts objects and reads them back per kind, by creation", async () => {
      const instanceId = ids("inst");
      const first = object({ createdAt: T0 + 1, sealedSecret: "sealed" });
      const second = object({ createdAt: T0 + 2 });
      const gateway = object({ kind: "gateway", name: first.name });
      for (const o of [second, first, gateway]) await directory().putObject(instanceId, o, undefined);
      expect(await directory().getObject(instanceId, "schema_attribute", first.id)).toEqual(first);
      expect(await directory().listObjects(instanceId, "schema_attribute")).toEqual([first, second]);
      // Kinds and instances are apart.
      expect(await directory().getObject(instanceId, "gateway", first.id)).toBeUndefined();
      expect(await directory().listObjects(instanceId, "gateway")).toEqual([gateway]);
      expect(await directory().listObjects(ids("inst"), "schema_attribute")).toEqual([]);
    });

    it("refuses a name taken in the kind, in any case, with UniqueViolation('<kind>_name') and writes nothing", async () => {
      const instanceId = ids("inst");
      const first = object();
      await directory().putObject(instanceId, first, undefined);
      const rival = object({ name: first.name.toUpperCase() });
      expect(await rejection(directory().putObject(instanceId, rival, undefined))).toMatchObject({
        name: "UniqueViolation",
        kind: "schema_attribute_name",
      });
      expect(await directory().getObject(instanceId, "schema_attribute", rival.id)).toBeUndefined();
    });

    it("refuses a second object with the same id as UniqueViolation('<kind>_id')", async () => {
      const instanceId = ids("inst");
      const first = object();
      await directory().putObject(instanceId, first, undefined);
      const twin = object({ id: first.id });
      expect(await rejection(directory().putObject(instanceId, twin, undefined))).toMatchObject({ kind: "schema_attribute_id" });
      expect(await directory().getObject(instanceId, "schema_attribute", first.id)).toEqual(first);
      // Its name was not claimed.
      await directory().putObject(instanceId, object({ name: twin.name }), undefined);
    });

    it("replaces an object: a new name moves the claim, a change of case keeps it", async () => {
      const instanceId = ids("inst");
      const original = object();
      await directory().putObject(instanceId, original, undefined);
      const recased = { ...original, name: original.name.toUpperCase(), body: { type: "BOOLEAN" }, changedAt: T0 + 1 };
      await directory().putObject(instanceId, recased, original);
      expect(await directory().getObject(instanceId, "schema_attribute", original.id)).toEqual(recased);
      const renamed = { ...recased, name: ids("Renamed"), changedAt: T0 + 2 };
      await directory().putObject(instanceId, renamed, recased);
      expect(await directory().listObjects(instanceId, "schema_attribute")).toEqual([renamed]);
      // The old name is free, the new one taken.
      await directory().putObject(instanceId, object({ name: original.name }), undefined);
      expect(await rejection(directory().putObject(instanceId, object({ name: renamed.name }), undefined))).toMatchObject({
        kind: "schema_attribute_name",
      });
    });

    it("refuses a rename to a taken name and keeps the object as it was", async () => {
      const instanceId = ids("inst");
      const a = object();
      const b = object();
      await directory().putObject(instanceId, a, undefined);
      await directory().putObject(instanceId, b, undefined);
      const failure = await rejection(directory().putObject(instanceId, { ...b, name: a.name, changedAt: T0 + 1 }, b));
      expect(failure).toMatchObject({ kind: "schema_attribute_name" });
      expect(await directory().getObject(instanceId, "schema_attribute", b.id)).toEqual(b);
      // b still holds its name.
      expect(await rejection(directory().putObject(instanceId, object({ name: b.name }), undefined))).toMatchObject({
        kind: "schema_attribute_name",
      });
    });

    it("removes an object and frees its name", async () => {
      const instanceId = ids("inst");
      const gone = object({ kind: "gateway" });
      await directory().putObject(instanceId, gone, undefined);
      await directory().removeObject(instanceId, gone);
      expect(await directory().getObject(instanceId, "gateway", gone.id)).toBeUndefined();
      await directory().putObject(instanceId, object({ kind: "gateway", name: gone.name }), undefined);
    });
  });

  describe("organisations", () => {
    it("summarises the instance's organisations by creation, with their user counts", async () => {
      const instanceId = ids("inst");
      const later = await createOrg(instanceId, undefined, T0 + 10);
      const earlier = await createOrg(instanceId, undefined, T0 + 5);
      const users = createUserStore(store());
      await users.createUser(newMachine({ instanceId, orgId: later.org.id }));
      await users.createUser(newMachine({ instanceId, orgId: later.org.id }));
      expect(await directory().listOrgs(instanceId)).toEqual([
        { id: earlier.org.id, name: earlier.org.name, createdAt: T0 + 5, changedAt: T0 + 5, userCount: 0 },
        { id: later.org.id, name: later.org.name, createdAt: T0 + 10, changedAt: T0 + 10, userCount: 2 },
      ]);
      expect(await directory().getOrgSummary(instanceId, later.org.id)).toMatchObject({ userCount: 2 });
      expect(await directory().getOrgSummary(instanceId, ids("org"))).toBeUndefined();
      expect(await directory().listOrgs(ids("inst"))).toEqual([]);
    });

    it("renames an organisation as its next sequence, moving its name claim", async () => {
      const instanceId = ids("inst");
      const { org } = await createOrg(instanceId);
      const other = await createOrg(instanceId);
      const rename = { instanceId, orgId: org.id, at: T0 + 100, creator: "c", event: { type: "org.changed", payload: {} } };
      const taken = await rejection(directory().renameOrg({ ...rename, expectedSequence: 1, name: other.org.name.toLowerCase() }));
      expect(taken).toMatchObject({ name: "UniqueViolation", kind: "org_name" });
      expect((await orgs().getOrg(instanceId, org.id))?.name).toBe(org.name);

      const renamed = ids("Renamed");
      await directory().renameOrg({ ...rename, expectedSequence: 1, name: renamed });
      expect(await orgs().getOrg(instanceId, org.id)).toMatchObject({ name: renamed, sequence: 2, changedAt: T0 + 100 });
      const stale = await rejection(directory().renameOrg({ ...rename, expectedSequence: 1, name: ids("Late") }));
      expect(stale).toMatchObject({ kind: "sequence" });
      expect((await orgs().getOrg(instanceId, org.id))?.name).toBe(renamed);
      // The old name is free.
      await createOrg(instanceId, org.name);
    });

    it("removes an organisation with its domains, members, policies, claims and population", async () => {
      const instanceId = ids("inst");
      const { org, domain } = await createOrg(instanceId);
      await createLockoutStore(store()).write({
        instanceId,
        orgId: org.id,
        expectedSequence: 1,
        event: { type: "org.policy.lockout.added", payload: {} },
        policy: { maxPasswordAttempts: 3, maxOtpAttempts: 3, createdAt: T0 },
        at: T0,
        creator: "c",
      });
      await directory().putObject(instanceId, object({ kind: "population", id: org.id, name: org.id }), undefined);
      const stale = await rejection(directory().removeOrg({ instanceId, orgId: org.id, expectedSequence: 1, at: T0 + 1, creator: "c" }));
      expect(stale).toMatchObject({ kind: "sequence" });
      expect(await orgs().getOrg(instanceId, org.id)).toBeDefined();

      await directory().removeOrg({ instanceId, orgId: org.id, expectedSequence: 2, at: T0 + 1, creator: "c" });
      expect(await orgs().getOrg(instanceId, org.id)).toBeUndefined();
      expect(await orgs().listDomains(instanceId, org.id)).toEqual([]);
      expect(await orgs().listMembers(instanceId, org.id)).toEqual([]);
      expect(await createLockoutStore(store()).storedPolicy(instanceId, org.id)).toBeUndefined();
      expect(await directory().getObject(instanceId, "population", org.id)).toBeUndefined();
      expect(await createCredentialStore(store()).orgOfVerifiedDomain(instanceId, domain.domain)).toBeUndefined();
      // Its name and domain are free for another organisation.
      const successor = newOrg(instanceId, org.name);
      await orgs().createOrg({
        org: successor.org,
        domain: { ...successor.domain, domain: domain.domain },
        owner: { userId: ids("u"), roles: [] },
        events: [{ type: "org.added", payload: {} }],
        creator: "c",
      });
    });

    it("answers the instance with its default organisation, which can be changed", async () => {
      // The first instance can be created once per database: the other tests keep to other instances.
      const instanceId = ids("first");
      const defaultOrgId = ids("org");
      expect(await directory().instance(instanceId)).toBeUndefined();
      await createFirstInstance(store(), {
        instanceId,
        orgId: defaultOrgId,
        orgName: "Default",
        adminUserId: ids("admin"),
        adminUsername: ids("admin"),
        tokenId: ids("token"),
        tokenDigest: ids("digest"),
        tokenExpiresAt: T0 * 2,
        now: T0,
      });
      expect(await directory().instance(instanceId)).toEqual({ createdAt: T0, defaultOrgId });
      const { org } = await createOrg(instanceId);
      await directory().setDefaultOrg(instanceId, org.id, T0 + 1, "c");
      expect(await directory().instance(instanceId)).toEqual({ createdAt: T0, defaultOrgId: org.id });
    });
  });
});
