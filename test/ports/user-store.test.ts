/**
 * The UserStore contract (src/domain/ports.ts), as the user commands rely on it
 * (src/domain/users.ts, user-changes.ts, user-states.ts, verification.ts): every write is atomic,
 * a taken unique claim fails the whole write with the claim's kind, and a change built on a stale
 * sequence fails with UniqueViolation("sequence") and writes nothing.
 */
import { describe, expect, it } from "vitest";
import { type NewCode, UniqueViolation } from "../../src/domain/ports.js";
import { linkClaim, usernameClaim } from "../../src/domain/users.js";
import { createOrgStore } from "../../src/store/org-store.js";
import { createOutboxStore } from "../../src/store/outbox-store.js";
import { createSessionStore } from "../../src/store/session-store.js";
import { createUserStore } from "../../src/store/user-store.js";
import { T0, ids, newHuman, newMachine, newOrg, rejection, storesUnderTest, useStore } from "../helpers/stores.js";

const code = (kind: NewCode["kind"], overrides: Partial<NewCode> = {}): NewCode => ({
  id: ids("code"),
  kind,
  sealedCode: `sealed-${ids("c")}`,
  expiresAt: T0 + 3_600_000,
  returned: false,
  ...overrides,
});

describe.each(storesUnderTest)("UserStore on %s", (kind) => {
  const store = useStore(kind);
  const users = () => createUserStore(store());
  /** Each test works in an instance of its own, so that claims of other tests never collide. */
  const scope = () => ({ instanceId: ids("inst"), orgId: ids("org") });

  describe("createUser", () => {
    it("writes the user, its claims, events, codes, links and metadata together", async () => {
      const at = scope();
      const linkIdp = ids("idp");
      const creation = newHuman(at, {
        events: [
          { type: "user.human.added", payload: {} },
          { type: "user.human.mfa.otp.added", payload: {} },
        ],
        codes: [code("email")],
        idpLinks: [{ idpId: linkIdp, externalUserId: "ext-1", displayName: "Ext One" }],
        metadata: [{ key: "team", value: new Uint8Array([0, 1, 255]) }],
      });
      creation.uniques.push(linkClaim(linkIdp, "ext-1"));
      creation.user.sequence = 2;
      await users().createUser(creation);

      const stored = await users().getUser(at.instanceId, creation.user.id);
      expect(stored).toMatchObject({
        id: creation.user.id,
        orgId: at.orgId,
        type: "human",
        state: "ACTIVE",
        username: creation.user.username,
        sequence: 2,
        createdAt: T0,
        human: { email: { address: creation.user.human!.email.address, verified: true }, passwordSet: false },
        loginNames: [creation.user.username],
        preferredLoginName: creation.user.username,
      });
      expect(await users().lastSequence(at.instanceId, creation.user.id)).toBe(2);
      expect(await users().findCode(at.instanceId, creation.user.id, "email")).toMatchObject({
        id: creation.codes[0]!.id,
        sealedCode: creation.codes[0]!.sealedCode,
        usedAt: undefined,
      });
      expect(await users().listIdpLinks(at.instanceId, creation.user.id)).toEqual([{ idpId: linkIdp, externalUserId: "ext-1", displayName: "Ext One" }]);
      const metadata = await users().listMetadata(at.instanceId, creation.user.id);
      expect(metadata.map((entry) => [entry.key, [...entry.value]])).toEqual([["team", [0, 1, 255]]]);
      // The username is claimed: another user cannot take it.
      const rival = newHuman({ ...at, username: creation.user.username });
      expect(await rejection(users().createUser(rival))).toMatchObject({ name: "UniqueViolation", kind: "username" });
    });

    it("never hands out the password hash, only whether one is set", async () => {
      const at = scope();
      const creation = newHuman(at, { passwordHash: "$2a$10$secret-hash-value" });
      await users().createUser(creation);
      const stored = await users().getUser(at.instanceId, creation.user.id);
      expect(stored?.human?.passwordSet).toBe(true);
      expect(JSON.stringify(stored)).not.toContain("secret-hash-value");
    });

    it("refuses a taken claim with the claim's kind and writes nothing of the user", async () => {
      const at = scope();
      const first = newHuman(at);
      const idpId = ids("idp");
      first.uniques.push(linkClaim(idpId, "shared"));
      first.idpLinks = [{ idpId, externalUserId: "shared", displayName: "" }];
      await users().createUser(first);

      // A fresh username, but the link is taken.
      const second = newHuman(at, { codes: [code("init")], metadata: [{ key: "k", value: new Uint8Array([1]) }] });
      second.uniques.push(linkClaim(idpId, "SHARED"));
      second.idpLinks = [{ idpId, externalUserId: "SHARED", displayName: "" }];
      const failure = await rejection(users().createUser(second));
      expect(failure).toBeInstanceOf(UniqueViolation);
      expect((failure as UniqueViolation).kind).toBe("idp_link");

      expect(await users().getUser(at.instanceId, second.user.id)).toBeUndefined();
      expect(await users().lastSequence(at.instanceId, second.user.id)).toBe(0);
      expect(await users().findCode(at.instanceId, second.user.id, "init")).toBeUndefined();
      expect(await users().listMetadata(at.instanceId, second.user.id)).toEqual([]);
      // Its username claim was rolled back with it: a third user can take that username.
      await users().createUser(newHuman({ ...at, username: second.user.username }));
    });

    it("refuses a taken user id as UniqueViolation('user_id')", async () => {
      const at = scope();
      const first = newMachine(at);
      await users().createUser(first);
      const failure = await rejection(users().createUser(newMachine({ ...at, id: first.user.id })));
      expect(failure).toMatchObject({ name: "UniqueViolation", kind: "user_id" });
      expect((await users().getUser(at.instanceId, first.user.id))?.username).toBe(first.user.username);
    });

    it("enqueues the creation's messages in the same commit, and none when the creation fails", async () => {
      const at = scope();
      const outbox = createOutboxStore(store());
      const message = (userId: string) => ({
        id: ids("msg"),
        instanceId: at.instanceId,
        userId,
        kind: "init" as const,
        channel: "email" as const,
        recipient: "ada@example.com",
        deliverable: true,
        subject: "Welcome",
        sealedBody: "sealed",
        createdAt: T0,
      });
      const before = await outbox.countUnsent();
      const first = newHuman(at);
      await users().createUser({ ...first, outbox: [message(first.user.id)] });
      expect(await outbox.countUnsent()).toBe(before + 1);
      const rival = newHuman({ ...at, username: first.user.username });
      await rejection(users().createUser({ ...rival, outbox: [message(rival.user.id)] }));
      expect(await outbox.countUnsent()).toBe(before + 1);
    });

    it("lets concurrent creations of one username commit exactly one", async () => {
      const at = scope();
      const username = ids("race");
      const results = await Promise.allSettled(Array.from({ length: 6 }, () => users().createUser(newHuman({ ...at, username }))));
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      for (const r of results.filter((r) => r.status === "rejected")) {
        expect((r as PromiseRejectedResult).reason).toMatchObject({ name: "UniqueViolation", kind: "username" });
      }
    });
  });

  describe("changeUser", () => {
    it("applies a state change as the next sequence", async () => {
      const at = scope();
      const creation = newHuman(at);
      await users().createUser(creation);
      await users().changeUser({
        ...at,
        userId: creation.user.id,
        expectedSequence: 1,
        event: { type: "user.deactivated", payload: {} },
        at: T0 + 1000,
        creator: "admin",
        state: "INACTIVE",
      });
      expect(await users().getUser(at.instanceId, creation.user.id)).toMatchObject({ state: "INACTIVE", sequence: 2, changedAt: T0 + 1000 });
      expect(await users().lastSequence(at.instanceId, creation.user.id)).toBe(2);
    });

    it("fails a change built on a stale sequence with UniqueViolation('sequence') and changes nothing", async () => {
      const at = scope();
      const creation = newHuman(at);
      await users().createUser(creation);
      const change = {
        ...at,
        userId: creation.user.id,
        expectedSequence: 1,
        at: T0 + 1000,
        creator: "admin",
      };
      await users().changeUser({ ...change, event: { type: "user.locked", payload: {} }, state: "LOCKED" });
      const failure = await rejection(
        users().changeUser({ ...change, event: { type: "user.deactivated", payload: {} }, state: "INACTIVE", codes: [code("init")] }),
      );
      expect(failure).toMatchObject({ name: "UniqueViolation", kind: "sequence" });
      expect(await users().getUser(at.instanceId, creation.user.id)).toMatchObject({ state: "LOCKED", sequence: 2 });
      expect(await users().findCode(at.instanceId, creation.user.id, "init")).toBeUndefined();
    });

    it("lets only one of concurrent changes on the same sequence commit", async () => {
      const at = scope();
      const creation = newHuman(at);
      await users().createUser(creation);
      const results = await Promise.allSettled(
        (["INACTIVE", "LOCKED", "INACTIVE", "LOCKED"] as const).map((state) =>
          users().changeUser({
            ...at,
            userId: creation.user.id,
            expectedSequence: 1,
            event: { type: `user.${state.toLowerCase()}`, payload: {} },
            at: T0 + 1000,
            creator: "admin",
            state,
          }),
        ),
      );
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      for (const r of results.filter((r) => r.status === "rejected")) {
        expect((r as PromiseRejectedResult).reason).toMatchObject({ name: "UniqueViolation", kind: "sequence" });
      }
      expect(await users().lastSequence(at.instanceId, creation.user.id)).toBe(2);
    });

    it("removes a user: it is gone, its claims are free, its events stay and its id continues after them", async () => {
      const at = scope();
      const idpId = ids("idp");
      const creation = newHuman(at, { codes: [code("email")], metadata: [{ key: "k", value: new Uint8Array([7]) }] });
      creation.uniques.push(linkClaim(idpId, "ext"));
      creation.idpLinks = [{ idpId, externalUserId: "ext", displayName: "" }];
      await users().createUser(creation);
      await users().changeUser({
        ...at,
        userId: creation.user.id,
        expectedSequence: 1,
        event: { type: "user.removed", payload: {} },
        at: T0 + 1000,
        creator: "admin",
        state: "removed",
      });
      expect(await users().getUser(at.instanceId, creation.user.id)).toBeUndefined();
      expect(await users().listIdpLinks(at.instanceId, creation.user.id)).toEqual([]);
      expect(await users().listMetadata(at.instanceId, creation.user.id)).toEqual([]);
      expect(await users().findCode(at.instanceId, creation.user.id, "email")).toBeUndefined();
      // Removed users keep their events.
      expect(await users().lastSequence(at.instanceId, creation.user.id)).toBe(2);

      // Another user takes the username and the link.
      const successor = newHuman({ ...at, username: creation.user.username });
      successor.uniques.push(linkClaim(idpId, "ext"));
      successor.idpLinks = [{ idpId, externalUserId: "ext", displayName: "" }];
      await users().createUser(successor);
      // And the id may be taken again, its events following the old ones.
      const again = newHuman({ ...at, id: creation.user.id, firstSequence: 3 });
      await users().createUser(again);
      expect(await users().getUser(at.instanceId, creation.user.id)).toMatchObject({ username: again.user.username, sequence: 3 });
      expect(await users().lastSequence(at.instanceId, creation.user.id)).toBe(3);
    });

    it("forgets failed checks on request, and stores the change's codes", async () => {
      const at = scope();
      const creation = newHuman(at);
      await users().createUser(creation);
      // Failed checks as the session commands count them (src/domain/sessions.ts).
      const sessions = createSessionStore(store());
      await sessions.write({
        credentials: {
          ...at,
          userId: creation.user.id,
          expectedSequence: 1,
          events: [{ type: "user.locked", payload: {} }],
          at: T0 + 500,
          creator: "system",
          set: { failedAttempts: 3, otpFailedAttempts: 2, state: "LOCKED" },
        },
      });
      const init = code("init");
      await users().changeUser({
        ...at,
        userId: creation.user.id,
        expectedSequence: 2,
        event: { type: "user.unlocked", payload: {} },
        at: T0 + 1000,
        creator: "admin",
        state: "ACTIVE",
        resetFailedChecks: true,
        codes: [init],
      });
      expect((await users().findCode(at.instanceId, creation.user.id, "init"))?.id).toBe(init.id);
      expect(await sessions.credentials(at.instanceId, creation.user.id)).toMatchObject({
        user: { state: "ACTIVE", sequence: 3 },
        failedAttempts: 0,
        otpFailedAttempts: 0,
      });
    });
  });

  describe("updateUser", () => {
    it("sets the columns, moves claims and writes its events as the next sequences", async () => {
      const at = scope();
      const creation = newHuman(at);
      await users().createUser(creation);
      const renamed = ids("renamed");
      await users().updateUser({
        ...at,
        userId: creation.user.id,
        expectedSequence: 1,
        events: [
          { type: "user.username.changed", payload: {} },
          { type: "user.human.email.changed", payload: {} },
        ],
        at: T0 + 5000,
        creator: "admin",
        set: { username: renamed, email: "new@example.com", emailVerified: false, passwordHash: "hash", passwordChangeRequired: true },
        release: [{ kind: "username" }],
        claim: [usernameClaim(renamed, at.orgId, false)],
      });
      expect(await users().getUser(at.instanceId, creation.user.id)).toMatchObject({
        username: renamed,
        sequence: 3,
        changedAt: T0 + 5000,
        human: {
          email: { address: "new@example.com", verified: false },
          passwordSet: true,
          passwordChangeRequired: true,
          passwordChangedAt: T0 + 5000,
        },
      });
      expect(await users().lastSequence(at.instanceId, creation.user.id)).toBe(3);
      // The old username is free, the new one is taken.
      await users().createUser(newHuman({ ...at, username: creation.user.username }));
      expect(await rejection(users().createUser(newHuman({ ...at, username: renamed.toUpperCase() })))).toMatchObject({
        kind: "username",
      });
    });

    it("removes the password when the update sets its hash to null (PingOne's Set Gateway to an LDAP authority)", async () => {
      const at = scope();
      const creation = newHuman(at, { passwordHash: "$2a$10$secret-hash-value" });
      await users().createUser(creation);
      await users().updateUser({
        ...at,
        userId: creation.user.id,
        expectedSequence: 1,
        events: [{ type: "user.human.password.external.linked", payload: {} }],
        at: T0 + 5000,
        creator: "admin",
        set: { passwordHash: null },
      });
      const stored = await users().getUser(at.instanceId, creation.user.id);
      expect(stored?.human?.passwordSet).toBe(false);
      expect(stored?.human?.passwordChangedAt).toBeUndefined();
      expect((await createSessionStore(store()).credentials(at.instanceId, creation.user.id))?.passwordHash).toBeUndefined();
    });

    it("fails on a taken claim with its kind and writes nothing of the update", async () => {
      const at = scope();
      const holder = newHuman(at);
      const creation = newHuman(at);
      await users().createUser(holder);
      await users().createUser(creation);
      const failure = await rejection(
        users().updateUser({
          ...at,
          userId: creation.user.id,
          expectedSequence: 1,
          events: [{ type: "user.username.changed", payload: {} }],
          at: T0 + 5000,
          creator: "admin",
          set: { username: holder.user.username, email: "changed@example.com" },
          release: [{ kind: "username" }],
          claim: [usernameClaim(holder.user.username, at.orgId, false)],
          codes: [code("email")],
        }),
      );
      expect(failure).toMatchObject({ name: "UniqueViolation", kind: "username" });
      expect(await users().getUser(at.instanceId, creation.user.id)).toMatchObject({
        username: creation.user.username,
        sequence: 1,
        human: { email: { address: creation.user.human!.email.address } },
      });
      expect(await users().lastSequence(at.instanceId, creation.user.id)).toBe(1);
      expect(await users().findCode(at.instanceId, creation.user.id, "email")).toBeUndefined();
      // Its release was rolled back too: the user still holds its username.
      expect(await rejection(users().createUser(newHuman({ ...at, username: creation.user.username })))).toMatchObject({
        kind: "username",
      });
    });

    it("fails an update built on a stale sequence with UniqueViolation('sequence') and writes nothing", async () => {
      const at = scope();
      const creation = newHuman(at);
      await users().createUser(creation);
      const update = {
        ...at,
        userId: creation.user.id,
        expectedSequence: 1,
        events: [{ type: "user.human.phone.changed", payload: {} }],
        at: T0 + 5000,
        creator: "admin",
      };
      await users().updateUser({ ...update, set: { phone: "+41790000001" } });
      const failure = await rejection(
        users().updateUser({ ...update, set: { phone: "+41790000002" }, setMetadata: [{ key: "late", value: new Uint8Array([1]) }] }),
      );
      expect(failure).toMatchObject({ name: "UniqueViolation", kind: "sequence" });
      expect((await users().getUser(at.instanceId, creation.user.id))?.human?.phone.number).toBe("+41790000001");
      expect(await users().listMetadata(at.instanceId, creation.user.id)).toEqual([]);
    });

    it("uses a code up, replaces codes of a kind, and findCode answers the newest", async () => {
      const at = scope();
      const first = code("email");
      const creation = newHuman(at, { codes: [first] });
      await users().createUser(creation);
      await users().updateUser({
        ...at,
        userId: creation.user.id,
        expectedSequence: 1,
        events: [{ type: "user.human.email.verified", payload: {} }],
        at: T0 + 2000,
        creator: "admin",
        set: { emailVerified: true },
        useCode: first.id,
      });
      expect(await users().findCode(at.instanceId, creation.user.id, "email")).toMatchObject({ id: first.id, usedAt: T0 + 2000 });

      const second = code("email");
      await users().updateUser({
        ...at,
        userId: creation.user.id,
        expectedSequence: 2,
        events: [{ type: "user.human.email.code.added", payload: {} }],
        at: T0 + 3000,
        creator: "admin",
        replaceCodes: ["email"],
        codes: [second],
      });
      expect(await users().findCode(at.instanceId, creation.user.id, "email")).toMatchObject({
        id: second.id,
        sealedCode: second.sealedCode,
        createdAt: T0 + 3000,
        usedAt: undefined,
      });
      // Codes of other kinds are untouched by the replacement.
      expect(await users().findCode(at.instanceId, creation.user.id, "init")).toBeUndefined();
    });

    it("adds and removes links and metadata", async () => {
      const at = scope();
      const creation = newHuman(at, {
        metadata: [
          { key: "a", value: new Uint8Array([1]) },
          { key: "b", value: new Uint8Array([2]) },
        ],
      });
      await users().createUser(creation);
      const idpId = ids("idp");
      await users().updateUser({
        ...at,
        userId: creation.user.id,
        expectedSequence: 1,
        events: [
          { type: "user.idp.link.added", payload: {} },
          { type: "user.metadata.set", payload: {} },
        ],
        at: T0 + 2000,
        creator: "admin",
        claim: [linkClaim(idpId, "x")],
        addLinks: [{ idpId, externalUserId: "x", displayName: "X" }],
        setMetadata: [{ key: "a", value: new Uint8Array([9, 9]) }],
        removeMetadata: ["b"],
      });
      expect(await users().listIdpLinks(at.instanceId, creation.user.id)).toEqual([{ idpId, externalUserId: "x", displayName: "X" }]);
      expect(await users().listMetadata(at.instanceId, creation.user.id)).toEqual([
        { key: "a", value: new Uint8Array([9, 9]), createdAt: T0 + 2000, changedAt: T0 + 2000, sequence: 3 },
      ]);
      await users().updateUser({
        ...at,
        userId: creation.user.id,
        expectedSequence: 3,
        events: [{ type: "user.idp.link.removed", payload: {} }],
        at: T0 + 3000,
        creator: "admin",
        release: [{ kind: "idp_link", value: linkClaim(idpId, "x").value }],
        removeLinks: [{ idpId, externalUserId: "x" }],
      });
      expect(await users().listIdpLinks(at.instanceId, creation.user.id)).toEqual([]);
      // The link's claim is free again.
      const other = newHuman(at);
      other.uniques.push(linkClaim(idpId, "x"));
      await users().createUser(other);
    });
  });

  describe("reads", () => {
    it("answers undefined and 0 for users that never existed, and keeps instances apart", async () => {
      const at = scope();
      const creation = newHuman(at);
      await users().createUser(creation);
      expect(await users().getUser(at.instanceId, ids("nobody"))).toBeUndefined();
      expect(await users().lastSequence(at.instanceId, ids("nobody"))).toBe(0);
      expect(await users().getUser(ids("other-instance"), creation.user.id)).toBeUndefined();
      expect(await users().lastSequence(ids("other-instance"), creation.user.id)).toBe(0);
      // The same username is free in another instance.
      await users().createUser(newHuman({ instanceId: ids("inst"), orgId: at.orgId, username: creation.user.username }));
    });

    it("usernameRules reads the organisation's domain policy and who verified a domain", async () => {
      const instanceId = ids("inst");
      const orgs = createOrgStore(store());
      const { org, domain } = newOrg(instanceId);
      await orgs.createOrg({ org, domain, owner: { userId: ids("owner"), roles: ["ORG_OWNER"] }, events: [{ type: "org.added", payload: {} }], creator: "c" });
      expect(await users().usernameRules(instanceId, org.id, "plain")).toEqual({ orgScoped: false, domainOwner: undefined });
      expect(await users().usernameRules(instanceId, org.id, `ada@${domain.domain.toUpperCase()}`)).toEqual({
        orgScoped: false,
        domainOwner: org.id,
      });
      await orgs.changeOrg({
        instanceId,
        orgId: org.id,
        expectedSequence: 1,
        events: [{ type: "org.policy.domain.added", payload: {} }],
        writes: [
          {
            kind: "setDomainPolicy",
            policy: { userLoginMustBeDomain: true, validateOrgDomains: false, smtpSenderAddressMatchesInstanceDomain: false },
            effectiveMustBeDomain: true,
            reclaimUsernames: true,
          },
        ],
        at: T0 + 1000,
        creator: "c",
      });
      expect(await users().usernameRules(instanceId, org.id, "plain")).toEqual({ orgScoped: true, domainOwner: undefined });
      // Users of such an organisation have domain login names, the primary domain preferred.
      const creation = newHuman({ instanceId, orgId: org.id });
      creation.uniques = [usernameClaim(creation.user.username, org.id, true)];
      await users().createUser(creation);
      expect(await users().getUser(instanceId, creation.user.id)).toMatchObject({
        loginNames: [`${creation.user.username}@${domain.domain}`],
        preferredLoginName: `${creation.user.username}@${domain.domain}`,
      });
    });
  });
});
