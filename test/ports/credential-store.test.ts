/**
 * The CredentialStore contract (src/domain/ports.ts) as authentication relies on it
 * (src/domain/authentication.ts, access.ts): a personal access token names its caller only while
 * it is unexpired and its user active; a session token names its session with what it proved;
 * organisations and verified domains are looked up as stored.
 */
import { describe, expect, it } from "vitest";
import type { SessionRecord, User } from "../../src/domain/ports.js";
import { createCredentialStore, createFirstInstance } from "../../src/store/access-store.js";
import { createOrgStore } from "../../src/store/org-store.js";
import { createSessionStore } from "../../src/store/session-store.js";
import { createUserStore } from "../../src/store/user-store.js";
import { T0, ids, newMachine, newOrg, storesUnderTest, useStore } from "../helpers/stores.js";

const NOW = T0 + 1_000_000;

describe.each(storesUnderTest)("CredentialStore on %s", (kind) => {
  const store = useStore(kind);
  const credentials = () => createCredentialStore(store());
  const orgStore = () => createOrgStore(store());

  /** An organisation with a machine user that is a member of it, as the org commands write them. */
  async function orgWithMember(roles: string[]) {
    const instanceId = ids("inst");
    const { org, domain } = newOrg(instanceId);
    const creation = newMachine({ instanceId, orgId: org.id });
    await createUserStore(store()).createUser(creation);
    await orgStore().createOrg({ org, domain, owner: { userId: creation.user.id, roles }, events: [{ type: "org.added", payload: {} }], creator: "c" });
    return { instanceId, org, domain, user: creation.user };
  }

  async function addToken(user: User, expectedSequence: number, expiresAt: number) {
    const digest = ids("digest");
    await orgStore().changeTokens({
      instanceId: user.instanceId,
      userId: user.id,
      expectedSequence,
      event: { type: "user.personal.token.added", payload: {} },
      at: T0,
      creator: "c",
      add: { id: ids("token"), userId: user.id, expiresAt, createdAt: T0, digest },
    });
    return digest;
  }

  describe("tokenOwner", () => {
    it("names the token's user with its organisation roles while the token is unexpired", async () => {
      const { instanceId, org, user } = await orgWithMember(["ORG_OWNER", "ORG_USER_MANAGER"]);
      const digest = await addToken(user, 1, NOW + 1);
      const found = await credentials().tokenOwner(digest, NOW);
      expect(found?.tokenExpiresAt).toBe(NOW + 1);
      expect(found?.principal).toMatchObject({ instanceId, userId: user.id, orgId: org.id, instanceRoles: [] });
      expect(Object.fromEntries(found!.principal.orgRoles)).toEqual({ [org.id]: ["ORG_OWNER", "ORG_USER_MANAGER"] });
      // Expired at its expiry instant.
      expect(await credentials().tokenOwner(digest, NOW + 1)).toBeUndefined();
      expect(await credentials().tokenOwner(ids("unknown"), NOW)).toBeUndefined();
    });

    it("names nobody for a user that is not active, nor after the user's removal", async () => {
      const { instanceId, user } = await orgWithMember(["ORG_OWNER"]);
      const digest = await addToken(user, 1, NOW * 2);
      const users = createUserStore(store());
      const change = { instanceId, userId: user.id, at: T0 + 1, creator: "c" };
      await users.changeUser({ ...change, expectedSequence: 2, event: { type: "user.deactivated", payload: {} }, state: "INACTIVE" });
      expect(await credentials().tokenOwner(digest, NOW)).toBeUndefined();
      await users.changeUser({ ...change, expectedSequence: 3, event: { type: "user.reactivated", payload: {} }, state: "ACTIVE" });
      expect((await credentials().tokenOwner(digest, NOW))?.principal.userId).toBe(user.id);
      await users.changeUser({ ...change, expectedSequence: 4, event: { type: "user.removed", payload: {} }, state: "removed" });
      expect(await credentials().tokenOwner(digest, NOW)).toBeUndefined();
    });

    it("names nobody for a removed token", async () => {
      const { user } = await orgWithMember(["ORG_OWNER"]);
      const digest = await addToken(user, 1, NOW * 2);
      const [token] = await orgStore().listTokens(user.instanceId, user.id);
      await orgStore().changeTokens({
        instanceId: user.instanceId,
        userId: user.id,
        expectedSequence: 2,
        event: { type: "user.personal.token.removed", payload: {} },
        at: T0 + 1,
        creator: "c",
        removeId: token!.id,
      });
      expect(await credentials().tokenOwner(digest, NOW)).toBeUndefined();
    });

    it("carries the instance roles of the first instance's administrator", async () => {
      // The first instance can be created once per database: the rest of this suite keeps to other instances.
      const instanceId = ids("first");
      const first = {
        instanceId,
        orgId: ids("org"),
        orgName: "Default",
        adminUserId: ids("admin"),
        adminUsername: ids("admin"),
        tokenId: ids("token"),
        tokenDigest: ids("digest"),
        tokenExpiresAt: NOW * 2,
        now: T0,
      };
      await createFirstInstance(store(), first);
      const found = await credentials().tokenOwner(first.tokenDigest, NOW);
      expect(found?.principal).toMatchObject({ instanceId, userId: first.adminUserId, orgId: first.orgId, instanceRoles: ["IAM_OWNER"] });
      expect(found?.principal.orgRoles.size).toBe(0);
    });
  });

  describe("sessionCredential", () => {
    async function writeSession(overrides: Partial<SessionRecord> & { instanceId: string }) {
      const session: SessionRecord = {
        id: ids("session"),
        creator: "c",
        userId: "",
        userOrgId: "",
        userCheckedAt: undefined,
        passwordCheckedAt: undefined,
        totpCheckedAt: undefined,
        tokenDigest: ids("digest"),
        userAgent: {},
        metadata: {},
        expiresAt: undefined,
        terminated: false,
        createdAt: T0,
        changedAt: T0,
        sequence: 1,
        ...overrides,
      };
      await createSessionStore(store()).write({ session: { session, fromSequence: 0, events: [{ type: "session.added", payload: {} }] } });
      return session;
    }

    it("answers an authenticated session with its user as the caller and the user's roles", async () => {
      const { instanceId, org, user } = await orgWithMember(["ORG_OWNER"]);
      const s = await writeSession({ instanceId, userId: user.id, userOrgId: org.id, userCheckedAt: T0, passwordCheckedAt: T0, expiresAt: NOW });
      const found = await credentials().sessionCredential(s.tokenDigest);
      expect(found).toMatchObject({ terminated: false, expiresAt: NOW, authenticated: true, principal: { instanceId, userId: user.id, orgId: org.id } });
      expect(Object.fromEntries(found!.principal!.orgRoles)).toEqual({ [org.id]: ["ORG_OWNER"] });
      expect(await credentials().sessionCredential(ids("unknown"))).toBeUndefined();
    });

    it("says what a session has not proved: no user, only the user checked, terminated, a user not active", async () => {
      const { instanceId, org, user } = await orgWithMember(["ORG_OWNER"]);
      const empty = await writeSession({ instanceId });
      expect(await credentials().sessionCredential(empty.tokenDigest)).toEqual({
        terminated: false,
        expiresAt: undefined,
        authenticated: false,
        principal: undefined,
      });
      const userOnly = await writeSession({ instanceId, userId: user.id, userOrgId: org.id, userCheckedAt: T0 });
      expect(await credentials().sessionCredential(userOnly.tokenDigest)).toMatchObject({ authenticated: false });
      const totp = await writeSession({ instanceId, userId: user.id, userOrgId: org.id, totpCheckedAt: T0, terminated: true });
      expect(await credentials().sessionCredential(totp.tokenDigest)).toMatchObject({ authenticated: true, terminated: true });

      await createUserStore(store()).changeUser({
        instanceId,
        userId: user.id,
        expectedSequence: 1,
        event: { type: "user.locked", payload: {} },
        at: T0 + 1,
        creator: "c",
        state: "LOCKED",
      });
      const locked = await credentials().sessionCredential(totp.tokenDigest);
      expect(locked).toMatchObject({ authenticated: true });
      expect(locked?.principal).toBeUndefined();
    });
  });

  describe("organisations", () => {
    it("knows which organisations exist and who verified a domain", async () => {
      const { instanceId, org, domain } = await orgWithMember(["ORG_OWNER"]);
      expect(await credentials().orgExists(instanceId, org.id)).toBe(true);
      expect(await credentials().orgExists(instanceId, ids("org"))).toBe(false);
      expect(await credentials().orgExists(ids("inst"), org.id)).toBe(false);
      expect(await credentials().orgOfVerifiedDomain(instanceId, domain.domain)).toBe(org.id);
      expect(await credentials().orgOfVerifiedDomain(instanceId, "nobody.example.test")).toBeUndefined();

      const unverified = `${ids("pending")}.example.test`;
      await orgStore().changeOrg({
        instanceId,
        orgId: org.id,
        expectedSequence: 1,
        events: [{ type: "org.domain.added", payload: {} }],
        writes: [
          {
            kind: "addDomain",
            domain: { orgId: org.id, domain: unverified, verified: false, primary: false, validationType: 0, createdAt: T0, changedAt: T0 },
          },
        ],
        at: T0 + 1,
        creator: "c",
      });
      expect(await credentials().orgOfVerifiedDomain(instanceId, unverified)).toBeUndefined();
    });
  });
});
