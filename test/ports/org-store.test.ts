/**
 * The OrgStore and PersonalAccessTokenStore contracts (src/domain/ports.ts), both implemented by
 * src/store/org-store.ts, as the organisation and token commands rely on them
 * (src/domain/orgs.ts, personal-access-tokens.ts): an organisation's name and verified domains are
 * claimed instance-wide, every change follows the organisation's (or user's) sequence and is
 * written whole or not at all.
 */
import { describe, expect, it } from "vitest";
import type { OrgChange, OrgDomain } from "../../src/domain/orgs.js";
import { usernameClaim } from "../../src/domain/users.js";
import { createIdpStore } from "../../src/store/idp-store.js";
import { createOrgStore } from "../../src/store/org-store.js";
import { createUserStore } from "../../src/store/user-store.js";
import { T0, ids, newHuman, newMachine, newOrg, rejection, storesUnderTest, useStore } from "../helpers/stores.js";

describe.each(storesUnderTest)("OrgStore and PersonalAccessTokenStore on %s", (kind) => {
  const store = useStore(kind);
  const orgs = () => createOrgStore(store());
  const users = () => createUserStore(store());

  async function createOrg(instanceId = ids("inst"), name?: string) {
    const created = newOrg(instanceId, name);
    const owner = newMachine({ instanceId, orgId: created.org.id });
    await users().createUser(owner);
    await orgs().createOrg({
      ...created,
      owner: { userId: owner.user.id, roles: ["ORG_OWNER"] },
      events: [
        { type: "org.added", payload: {} },
        { type: "org.domain.added", payload: {} },
        { type: "org.member.added", payload: {} },
      ],
      creator: "c",
    });
    return { instanceId, ...created, owner: owner.user };
  }

  const domainRow = (orgId: string, domain: string, verified: boolean): OrgDomain => ({
    orgId,
    domain,
    verified,
    primary: false,
    validationType: 0,
    createdAt: T0,
    changedAt: T0,
  });

  function change(org: { instanceId: string; id: string }, expectedSequence: number, writes: OrgChange["writes"]): OrgChange {
    return {
      instanceId: org.instanceId,
      orgId: org.id,
      expectedSequence,
      events: writes.map((w) => ({ type: `org.${w.kind}`, payload: {} })),
      writes,
      at: T0 + 1000 * expectedSequence,
      creator: "c",
    };
  }

  describe("createOrg", () => {
    it("writes the organisation, its primary domain, its owner and its events", async () => {
      const { instanceId, org, domain, owner } = await createOrg();
      expect(await orgs().getOrg(instanceId, org.id)).toEqual({
        ...org,
        sequence: 3,
        primaryDomain: domain.domain,
      });
      expect(await orgs().listDomains(instanceId, org.id)).toEqual([domain]);
      const members = await orgs().listMembers(instanceId, org.id);
      expect(members).toMatchObject([{ userId: owner.id, roles: ["ORG_OWNER"], createdAt: T0, user: { id: owner.id } }]);
      expect(await orgs().customDomainPolicy(instanceId, org.id)).toBeUndefined();
      expect(await orgs().getOrg(instanceId, ids("org"))).toBeUndefined();
      expect(await orgs().getOrg(ids("inst"), org.id)).toBeUndefined();
    });

    it("refuses a taken name (in any case) with UniqueViolation('org_name') and writes nothing", async () => {
      const { instanceId, org } = await createOrg();
      const rival = newOrg(instanceId, org.name.toUpperCase());
      const failure = await rejection(
        orgs().createOrg({ ...rival, owner: { userId: ids("u"), roles: ["ORG_OWNER"] }, events: [{ type: "org.added", payload: {} }], creator: "c" }),
      );
      expect(failure).toMatchObject({ name: "UniqueViolation", kind: "org_name" });
      expect(await orgs().getOrg(instanceId, rival.org.id)).toBeUndefined();
      expect(await orgs().listDomains(instanceId, rival.org.id)).toEqual([]);
      expect(await orgs().listMembers(instanceId, rival.org.id)).toEqual([]);
      // Its domain was not claimed: an organisation may verify it.
      const third = newOrg(instanceId);
      await orgs().createOrg({
        org: third.org,
        domain: { ...third.domain, domain: rival.domain.domain },
        owner: { userId: ids("u"), roles: ["ORG_OWNER"] },
        events: [{ type: "org.added", payload: {} }],
        creator: "c",
      });
    });

    it("refuses a domain another organisation verified with UniqueViolation('org_domain')", async () => {
      const { instanceId, domain } = await createOrg();
      const rival = newOrg(instanceId);
      const failure = await rejection(
        orgs().createOrg({
          org: rival.org,
          domain: { ...rival.domain, domain: domain.domain },
          owner: { userId: ids("u"), roles: ["ORG_OWNER"] },
          events: [{ type: "org.added", payload: {} }],
          creator: "c",
        }),
      );
      expect(failure).toMatchObject({ name: "UniqueViolation", kind: "org_domain" });
      expect(await orgs().getOrg(instanceId, rival.org.id)).toBeUndefined();
      // Nor is its name taken.
      await orgs().createOrg({
        ...newOrg(instanceId, rival.org.name),
        owner: { userId: ids("u"), roles: [] },
        events: [{ type: "org.added", payload: {} }],
        creator: "c",
      });
    });
  });

  describe("changeOrg", () => {
    it("adds, verifies, makes primary and removes domains; a verified domain is claimed instance-wide", async () => {
      const { instanceId, org, domain } = await createOrg();
      const other = await createOrg(instanceId);
      const custom = `${ids("custom")}.example.test`;
      await orgs().changeOrg(
        change(org, 3, [
          { kind: "addDomain", domain: domainRow(org.id, custom, true) },
          { kind: "setPrimaryDomain", domain: custom },
        ]),
      );
      expect((await orgs().getOrg(instanceId, org.id))?.primaryDomain).toBe(custom);
      expect((await orgs().listDomains(instanceId, org.id)).map((d) => [d.domain, d.verified, d.primary])).toEqual(
        [
          [custom, true, true],
          [domain.domain, true, false],
        ].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      );
      const taken = await rejection(orgs().changeOrg(change(other.org, 3, [{ kind: "addDomain", domain: domainRow(other.org.id, custom, true) }])));
      expect(taken).toMatchObject({ name: "UniqueViolation", kind: "org_domain" });
      expect((await orgs().getOrg(instanceId, other.org.id))?.sequence).toBe(3);
      // Unverified, another organisation may list it too.
      await orgs().changeOrg(change(other.org, 3, [{ kind: "addDomain", domain: domainRow(other.org.id, custom, false) }]));

      await orgs().changeOrg(
        change(org, 5, [
          { kind: "setPrimaryDomain", domain: domain.domain },
          { kind: "removeDomain", domain: custom, verified: true },
        ]),
      );
      expect((await orgs().listDomains(instanceId, org.id)).map((d) => d.domain)).toEqual([domain.domain]);
      // Its claim went with it.
      await orgs().changeOrg(
        change(other.org, 4, [
          { kind: "removeDomain", domain: custom, verified: false },
          { kind: "addDomain", domain: domainRow(other.org.id, custom, true) },
        ]),
      );
    });

    it("refuses a domain the organisation already has with UniqueViolation('org_domain_row')", async () => {
      const { instanceId, org } = await createOrg();
      const pending = `${ids("pending")}.example.test`;
      await orgs().changeOrg(change(org, 3, [{ kind: "addDomain", domain: domainRow(org.id, pending, false) }]));
      const failure = await rejection(orgs().changeOrg(change(org, 4, [{ kind: "addDomain", domain: domainRow(org.id, pending, false) }])));
      expect(failure).toMatchObject({ name: "UniqueViolation", kind: "org_domain_row" });
      expect((await orgs().getOrg(instanceId, org.id))?.sequence).toBe(4);
    });

    it("fails a change on a stale sequence with UniqueViolation('sequence') and writes nothing", async () => {
      const { instanceId, org } = await createOrg();
      const member = newMachine({ instanceId, orgId: org.id });
      await users().createUser(member);
      await orgs().changeOrg(change(org, 3, [{ kind: "addMember", userId: member.user.id, roles: ["ORG_USER_MANAGER"] }]));
      const custom = `${ids("late")}.example.test`;
      const failure = await rejection(
        orgs().changeOrg(
          change(org, 3, [
            { kind: "addDomain", domain: domainRow(org.id, custom, true) },
            { kind: "removeMember", userId: member.user.id },
          ]),
        ),
      );
      expect(failure).toMatchObject({ name: "UniqueViolation", kind: "sequence" });
      expect((await orgs().listDomains(instanceId, org.id)).map((d) => d.domain)).not.toContain(custom);
      expect((await orgs().listMembers(instanceId, org.id)).map((m) => m.userId)).toContain(member.user.id);
      expect((await orgs().getOrg(instanceId, org.id))?.sequence).toBe(4);
    });

    it("adds, changes and removes members; a second membership is UniqueViolation('member')", async () => {
      const { instanceId, org, owner } = await createOrg();
      const member = newMachine({ instanceId, orgId: org.id });
      await users().createUser(member);
      await orgs().changeOrg(change(org, 3, [{ kind: "addMember", userId: member.user.id, roles: ["ORG_USER_MANAGER"] }]));
      const again = await rejection(orgs().changeOrg(change(org, 4, [{ kind: "addMember", userId: member.user.id, roles: ["ORG_OWNER"] }])));
      expect(again).toMatchObject({ name: "UniqueViolation", kind: "member" });
      await orgs().changeOrg(change(org, 4, [{ kind: "changeMember", userId: member.user.id, roles: ["ORG_OWNER", "ORG_USER_MANAGER"] }]));
      expect((await orgs().listMembers(instanceId, org.id)).find((m) => m.userId === member.user.id)).toMatchObject({
        roles: ["ORG_OWNER", "ORG_USER_MANAGER"],
        changedAt: T0 + 4000,
      });
      await orgs().changeOrg(change(org, 5, [{ kind: "removeMember", userId: owner.id }]));
      expect((await orgs().listMembers(instanceId, org.id)).map((m) => m.userId)).toEqual([member.user.id]);
    });

    it("sets and removes the custom domain policy with the effective flag", async () => {
      const { instanceId, org } = await createOrg();
      const policy = { userLoginMustBeDomain: true, validateOrgDomains: true, smtpSenderAddressMatchesInstanceDomain: false };
      await orgs().changeOrg(change(org, 3, [{ kind: "setDomainPolicy", policy, effectiveMustBeDomain: true, reclaimUsernames: true }]));
      expect(await orgs().customDomainPolicy(instanceId, org.id)).toEqual(policy);
      expect((await orgs().getOrg(instanceId, org.id))?.userLoginMustBeDomain).toBe(true);
      await orgs().changeOrg(change(org, 4, [{ kind: "setDomainPolicy", policy: undefined, effectiveMustBeDomain: false, reclaimUsernames: true }]));
      expect(await orgs().customDomainPolicy(instanceId, org.id)).toBeUndefined();
      expect((await orgs().getOrg(instanceId, org.id))?.userLoginMustBeDomain).toBe(false);
    });

    it("reclaims usernames in the new scope, and refuses the policy when they collide there", async () => {
      const instanceId = ids("inst");
      const a = await createOrg(instanceId);
      const b = await createOrg(instanceId);
      const scoped = { userLoginMustBeDomain: true, validateOrgDomains: false, smtpSenderAddressMatchesInstanceDomain: false };
      await orgs().changeOrg(change(a.org, 3, [{ kind: "setDomainPolicy", policy: scoped, effectiveMustBeDomain: true, reclaimUsernames: true }]));
      // Usernames of a are claimed per organisation now: b may have the same one.
      const inA = newHuman({ instanceId, orgId: a.org.id, username: "Shared" });
      inA.uniques = [usernameClaim("Shared", a.org.id, true)];
      await users().createUser(inA);
      await users().createUser(newHuman({ instanceId, orgId: b.org.id, username: "shared" }));
      // Back to instance-wide usernames, "shared" would be taken twice: the change fails whole.
      const failure = await rejection(
        orgs().changeOrg(change(a.org, 4, [{ kind: "setDomainPolicy", policy: undefined, effectiveMustBeDomain: false, reclaimUsernames: true }])),
      );
      expect(failure).toMatchObject({ name: "UniqueViolation", kind: "username" });
      expect(await orgs().customDomainPolicy(instanceId, a.org.id)).toEqual(scoped);
      expect((await orgs().getOrg(instanceId, a.org.id))?.userLoginMustBeDomain).toBe(true);
      // The org-scoped claim is still held: a second "SHARED" in a is refused.
      const twin = newHuman({ instanceId, orgId: a.org.id, username: "SHARED" });
      twin.uniques = [usernameClaim("SHARED", a.org.id, true)];
      expect(await rejection(users().createUser(twin))).toMatchObject({ kind: "org_username" });
    });

    it("answers the organisation's sequence including events other writers appended (identity providers)", async () => {
      const { instanceId, org } = await createOrg();
      await createIdpStore(store()).createIdp(
        {
          instanceId,
          id: ids("idp"),
          orgId: org.id,
          type: "oidc",
          state: "ACTIVE",
          name: "idp",
          issuer: "https://issuer.example.test",
          clientId: "client",
          scopes: ["openid"],
          isIdTokenMapping: false,
          usePkce: false,
          options: { isLinkingAllowed: true, isCreationAllowed: true, isAutoCreation: false, isAutoUpdate: false, autoLinking: 0 },
          createdAt: T0 + 1,
          changedAt: T0 + 1,
          sequence: 4,
        },
        "sealed",
        { type: "org.idp.oidc.added", payload: {} },
        3,
        "c",
      );
      expect((await orgs().getOrg(instanceId, org.id))?.sequence).toBe(4);
      await orgs().changeOrg(change(org, 4, [{ kind: "removeMember", userId: ids("nobody") }]));
      expect((await orgs().getOrg(instanceId, org.id))?.sequence).toBe(5);
    });
  });

  describe("personal access tokens", () => {
    it("adds and removes tokens with the user's events; the digest is never listed", async () => {
      const { instanceId, org } = await createOrg();
      const machine = newMachine({ instanceId, orgId: org.id });
      await users().createUser(machine);
      const token = { id: ids("token"), userId: machine.user.id, expiresAt: T0 + 99_000, createdAt: T0 + 10 };
      await orgs().changeTokens({
        instanceId,
        userId: machine.user.id,
        expectedSequence: 1,
        event: { type: "user.personal.token.added", payload: {} },
        at: T0 + 10,
        creator: "c",
        add: { ...token, digest: "secret-digest" },
      });
      expect(await orgs().listTokens(instanceId, machine.user.id)).toEqual([token]);
      expect(await orgs().getUser(instanceId, machine.user.id)).toMatchObject({ sequence: 2, changedAt: T0 + 10 });
      expect(await users().lastSequence(instanceId, machine.user.id)).toBe(2);

      const stale = await rejection(
        orgs().changeTokens({
          instanceId,
          userId: machine.user.id,
          expectedSequence: 1,
          event: { type: "user.personal.token.added", payload: {} },
          at: T0 + 20,
          creator: "c",
          add: { id: ids("token"), userId: machine.user.id, expiresAt: T0 + 99_000, createdAt: T0 + 20, digest: "other" },
        }),
      );
      expect(stale).toMatchObject({ name: "UniqueViolation", kind: "sequence" });
      expect(await orgs().listTokens(instanceId, machine.user.id)).toEqual([token]);

      await orgs().changeTokens({
        instanceId,
        userId: machine.user.id,
        expectedSequence: 2,
        event: { type: "user.personal.token.removed", payload: {} },
        at: T0 + 30,
        creator: "c",
        removeId: token.id,
      });
      expect(await orgs().listTokens(instanceId, machine.user.id)).toEqual([]);
      expect(await orgs().getUser(instanceId, ids("nobody"))).toBeUndefined();
    });
  });
});
