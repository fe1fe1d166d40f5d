/**
 * The UserReadStore contract (src/domain/ports.ts) as the user queries rely on it
 * (src/domain/user-queries.ts, user-details.ts): searches within a scope of organisations, with
 * ZITADEL's text methods, filters, sort orders and pages (the total counting every match), the
 * uniqueness check, the owner of a (removed) user, a user's events and the editors behind them.
 */
import { beforeAll, describe, expect, it } from "vitest";
import type { UserFilter, UserSearch } from "../../src/domain/user-queries.js";
import type { NewUser } from "../../src/domain/ports.js";
import { usernameClaim } from "../../src/domain/users.js";
import { createOrgStore } from "../../src/store/org-store.js";
import { createUserSearch } from "../../src/store/user-search.js";
import { createUserStore } from "../../src/store/user-store.js";
import { T0, ids, newHuman, newMachine, newOrg, storesUnderTest, useStore } from "../helpers/stores.js";

describe.each(storesUnderTest)("UserReadStore on %s", (kind) => {
  const store = useStore(kind);
  const reads = () => createUserSearch(store());
  const users = () => createUserStore(store());

  // One instance with two organisations and a handful of users, shared by the search tests.
  const instanceId = ids("inst");
  let orgA = "";
  let orgB = "";
  const people: Record<string, NewUser> = {};

  function human(orgId: string, username: string, profile: { givenName: string; familyName: string; email: string; phone?: string }, at: number) {
    const creation = newHuman({ instanceId, orgId, username });
    creation.user.human!.profile = {
      ...creation.user.human!.profile,
      givenName: profile.givenName,
      familyName: profile.familyName,
      displayName: `${profile.givenName} ${profile.familyName}`,
    };
    creation.user.human!.email.address = profile.email;
    creation.user.human!.phone.number = profile.phone ?? "";
    creation.user.createdAt = creation.user.changedAt = at;
    return creation;
  }

  beforeAll(async () => {
    for (const name of ["a", "b"]) {
      const { org, domain } = newOrg(instanceId);
      await createOrgStore(store()).createOrg({
        org,
        domain,
        owner: { userId: ids("u"), roles: [] },
        events: [{ type: "org.added", payload: {} }],
        creator: "c",
      });
      if (name === "a") orgA = org.id;
      else orgB = org.id;
    }
    people.ada = human(orgA, "Ada.Lovelace", { givenName: "Ada", familyName: "Lovelace", email: "Ada@Example.com", phone: "+41790000001" }, T0 + 1);
    people.grace = human(orgA, "grace_hopper", { givenName: "Grace", familyName: "Hopper", email: "grace@example.com" }, T0 + 2);
    people.ozgur = human(orgA, "Özgür", { givenName: "Özgür", familyName: "Ärger", email: "oz@example.org" }, T0 + 3);
    people.percent = human(orgB, "100%done", { givenName: "Per", familyName: "Cent", email: "per@example.org" }, T0 + 4);
    people.svc = newMachine({ instanceId, orgId: orgB, username: "svc-build" });
    people.svc.user.createdAt = people.svc.user.changedAt = T0 + 5;
    for (const creation of Object.values(people)) await users().createUser(creation);
    await users().changeUser({
      instanceId,
      userId: people.grace!.user.id,
      expectedSequence: 1,
      event: { type: "user.deactivated", payload: {} },
      at: T0 + 10,
      creator: people.svc!.user.id,
      state: "INACTIVE",
    });
  });

  const search = (overrides: Partial<UserSearch>): UserSearch => ({
    instanceId,
    orgIds: "all",
    filters: [],
    sort: "id",
    asc: true,
    offset: 0,
    limit: 100,
    ...overrides,
  });
  const names = async (overrides: Partial<UserSearch>) => (await reads().searchUsers(search(overrides))).users.map((u) => u.username);
  const text = (field: Extract<UserFilter, { kind: "text" }>["field"], method: Extract<UserFilter, { kind: "text" }>["method"], value: string): UserFilter => ({
    kind: "text",
    field,
    method,
    value,
  });
  const sorted = (list: string[]) => [...list].sort();

  describe("searchUsers", () => {
    it("lists the users of the organisations in scope, every organisation, or none", async () => {
      expect(sorted(await names({ orgIds: [orgA] }))).toEqual(sorted(["Ada.Lovelace", "grace_hopper", "Özgür"]));
      expect(sorted(await names({ orgIds: [orgA, orgB] }))).toHaveLength(5);
      expect(await names({ orgIds: "all" })).toHaveLength(5);
      expect(await names({ orgIds: [] })).toEqual([]);
      expect(await names({ orgIds: [orgB], alsoUserId: people.ada!.user.id })).toHaveLength(3);
      expect(await names({ instanceId: ids("inst") })).toEqual([]);
    });

    it("answers users with their details and login names", async () => {
      const { users: found } = await reads().searchUsers(search({ filters: [{ kind: "ids", ids: [people.ada!.user.id] }] }));
      expect(found).toMatchObject([
        {
          id: people.ada!.user.id,
          orgId: orgA,
          type: "human",
          state: "ACTIVE",
          human: { profile: { givenName: "Ada", familyName: "Lovelace" }, email: { address: "Ada@Example.com" } },
          loginNames: ["Ada.Lovelace"],
          preferredLoginName: "Ada.Lovelace",
        },
      ]);
    });

    it("matches text with each of ZITADEL's methods, case-sensitively or not", async () => {
      expect(await names({ filters: [text("username", "equals", "ada.lovelace")] })).toEqual([]);
      expect(await names({ filters: [text("username", "equals", "Ada.Lovelace")] })).toEqual(["Ada.Lovelace"]);
      expect(await names({ filters: [text("username", "equalsIgnoreCase", "ADA.LOVELACE")] })).toEqual(["Ada.Lovelace"]);
      expect(await names({ filters: [text("givenName", "startsWith", "gr")] })).toEqual([]);
      expect(await names({ filters: [text("givenName", "startsWithIgnoreCase", "gr")] })).toEqual(["grace_hopper"]);
      expect(await names({ filters: [text("familyName", "contains", "opp")] })).toEqual(["grace_hopper"]);
      expect(await names({ filters: [text("familyName", "contains", "OPP")] })).toEqual([]);
      expect(await names({ filters: [text("familyName", "containsIgnoreCase", "OPP")] })).toEqual(["grace_hopper"]);
      expect(sorted(await names({ filters: [text("email", "endsWith", ".org")] }))).toEqual(sorted(["Özgür", "100%done"]));
      expect(await names({ filters: [text("email", "endsWith", "EXAMPLE.COM")] })).toEqual([]);
      expect(sorted(await names({ filters: [text("email", "endsWithIgnoreCase", "EXAMPLE.COM")] }))).toEqual(sorted(["Ada.Lovelace", "grace_hopper"]));
      expect(await names({ filters: [text("phone", "equals", "+41790000001")] })).toEqual(["Ada.Lovelace"]);
      expect(await names({ filters: [text("displayName", "equalsIgnoreCase", "per cent")] })).toEqual(["100%done"]);
    });

    it("folds non-ASCII letters when ignoring case, on both dialects alike", async () => {
      expect(await names({ filters: [text("username", "equalsIgnoreCase", "öZGÜR")] })).toEqual(["Özgür"]);
      expect(await names({ filters: [text("familyName", "startsWithIgnoreCase", "är")] })).toEqual(["Özgür"]);
      expect(await names({ filters: [text("familyName", "containsIgnoreCase", "RGE")] })).toEqual(["Özgür"]);
      expect(await names({ filters: [text("givenName", "startsWith", "öz")] })).toEqual([]);
    });

    it("takes LIKE wildcards in a value literally", async () => {
      expect(await names({ filters: [text("username", "containsIgnoreCase", "%")] })).toEqual(["100%done"]);
      expect(await names({ filters: [text("username", "containsIgnoreCase", "_")] })).toEqual(["grace_hopper"]);
      expect(await names({ filters: [text("username", "endsWithIgnoreCase", "_hopper")] })).toEqual(["grace_hopper"]);
      expect(await names({ filters: [text("username", "startsWithIgnoreCase", "100%")] })).toEqual(["100%done"]);
    });

    it("filters by state, type, ids, exact emails and organisation, combined with and, or and not", async () => {
      expect(await names({ filters: [{ kind: "state", state: "INACTIVE" }] })).toEqual(["grace_hopper"]);
      expect(await names({ filters: [{ kind: "state", state: undefined }] })).toEqual([]);
      expect(await names({ filters: [{ kind: "type", type: "machine" }] })).toEqual(["svc-build"]);
      expect(await names({ filters: [{ kind: "ids", ids: [] }] })).toEqual([]);
      expect(await names({ filters: [{ kind: "emails", emails: ["ada@example.com"] }] })).toEqual([]);
      expect(await names({ filters: [{ kind: "emails", emails: ["Ada@Example.com", "grace@example.com"] }], sort: "username" })).toEqual([
        "Ada.Lovelace",
        "grace_hopper",
      ]);
      expect(sorted(await names({ filters: [{ kind: "org", orgId: orgB }] }))).toEqual(sorted(["100%done", "svc-build"]));
      const or: UserFilter = {
        kind: "or",
        filters: [
          { kind: "type", type: "machine" },
          { kind: "state", state: "INACTIVE" },
        ],
      };
      expect(sorted(await names({ filters: [or] }))).toEqual(sorted(["grace_hopper", "svc-build"]));
      expect(
        await names({
          filters: [
            {
              kind: "and",
              filters: [
                { kind: "org", orgId: orgA },
                { kind: "not", filter: { kind: "state", state: "ACTIVE" } },
              ],
            },
          ],
        }),
      ).toEqual(["grace_hopper"]);
      expect(await names({ filters: [{ kind: "or", filters: [] }] })).toEqual([]);
      expect(await names({ filters: [{ kind: "and", filters: [] }] })).toHaveLength(5);
    });

    it("sorts by a field either way, case-insensitively, and pages with the total of every match", async () => {
      expect(await names({ sort: "username", asc: true })).toEqual(["100%done", "Ada.Lovelace", "grace_hopper", "svc-build", "Özgür"]);
      expect(await names({ sort: "createdAt", asc: false })).toEqual(["svc-build", "100%done", "Özgür", "grace_hopper", "Ada.Lovelace"]);
      // ZITADEL's state numbers: active 1 before inactive 2; ties keep the id order.
      expect((await names({ sort: "state", asc: false }))[0]).toBe("grace_hopper");
      const page = await reads().searchUsers(search({ sort: "createdAt", offset: 1, limit: 2 }));
      expect(page.total).toBe(5);
      expect(page.users.map((u) => u.username)).toEqual(["grace_hopper", "Özgür"]);
      expect(await reads().searchUsers(search({ offset: 10, limit: 2 }))).toEqual({ users: [], total: 5 });
      expect((await reads().searchUsers(search({ filters: [{ kind: "type", type: "human" }], limit: 1 }))).total).toBe(4);
    });

    it("finds users by login name: the username, or username@domain where the organisation requires domain login names", async () => {
      const scopedInstance = ids("inst");
      const { org, domain } = newOrg(scopedInstance);
      const orgs = createOrgStore(store());
      await orgs.createOrg({ org, domain, owner: { userId: ids("u"), roles: [] }, events: [{ type: "org.added", payload: {} }], creator: "c" });
      await orgs.changeOrg({
        instanceId: scopedInstance,
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
        at: T0,
        creator: "c",
      });
      const scoped = newHuman({ instanceId: scopedInstance, orgId: org.id, username: "Linus" });
      scoped.uniques = [usernameClaim("Linus", org.id, true)];
      await users().createUser(scoped);
      const find = async (method: Extract<UserFilter, { kind: "text" }>["method"], value: string) =>
        (await reads().searchUsers(search({ instanceId: scopedInstance, filters: [text("loginName", method, value)] }))).users.map((u) => u.id);
      expect(await find("equalsIgnoreCase", `linus@${domain.domain}`)).toEqual([scoped.user.id]);
      expect(await find("equals", `Linus@${domain.domain}`)).toEqual([scoped.user.id]);
      expect(await find("equals", `linus@${domain.domain}`)).toEqual([]);
      // The bare username is not a login name of such a user.
      expect(await find("equalsIgnoreCase", "linus")).toEqual([]);
      expect(await find("endsWithIgnoreCase", `@${domain.domain.toUpperCase()}`)).toEqual([scoped.user.id]);
      expect(await find("startsWith", "Linus@")).toEqual([scoped.user.id]);
    });
  });

  describe("userExists", () => {
    it("checks the username case-insensitively and the email exactly, leaving out blank criteria", async () => {
      expect(await reads().userExists(instanceId, { username: "ADA.LOVELACE", email: "" })).toBe(true);
      expect(await reads().userExists(instanceId, { username: "", email: "Ada@Example.com" })).toBe(true);
      expect(await reads().userExists(instanceId, { username: "", email: "ada@example.com" })).toBe(false);
      expect(await reads().userExists(instanceId, { username: "ada.lovelace", email: "Ada@Example.com" })).toBe(true);
      expect(await reads().userExists(instanceId, { username: "ada.lovelace", email: "grace@example.com" })).toBe(false);
      expect(await reads().userExists(instanceId, { username: "nobody", email: "" })).toBe(false);
      expect(await reads().userExists(instanceId, { username: "Ada.Lovelace", email: "" }, orgB)).toBe(false);
      expect(await reads().userExists(instanceId, { username: "Ada.Lovelace", email: "" }, orgA)).toBe(true);
      expect(await reads().userExists(ids("inst"), { username: "Ada.Lovelace", email: "" })).toBe(false);
    });
  });

  describe("ownerOf, userEvents and editors", () => {
    it("answers a user's organisation, also after its removal, and nothing for a user that never was", async () => {
      const own = ids("inst");
      const gone = newMachine({ instanceId: own, orgId: ids("org") });
      await users().createUser(gone);
      expect(await reads().ownerOf(own, gone.user.id)).toBe(gone.user.orgId);
      await users().changeUser({
        instanceId: own,
        userId: gone.user.id,
        expectedSequence: 1,
        event: { type: "user.removed", payload: {} },
        at: T0 + 1,
        creator: "c",
        state: "removed",
      });
      expect(await reads().ownerOf(own, gone.user.id)).toBe(gone.user.orgId);
      expect(await reads().ownerOf(own, ids("nobody"))).toBeUndefined();
    });

    it("pages a user's events after a sequence, either way", async () => {
      const own = ids("inst");
      const creation = newMachine({ instanceId: own, orgId: ids("org") });
      await users().createUser(creation);
      for (let sequence = 1; sequence <= 3; sequence++) {
        await users().changeUser({
          instanceId: own,
          userId: creation.user.id,
          expectedSequence: sequence,
          event: { type: sequence % 2 ? "user.deactivated" : "user.reactivated", payload: {} },
          at: T0 + sequence,
          creator: `editor-${sequence}`,
          state: sequence % 2 ? "INACTIVE" : "ACTIVE",
        });
      }
      const events = await reads().userEvents(own, creation.user.id, { after: 0, limit: 10, asc: true });
      expect(events).toEqual([
        { sequence: 1, type: "user.machine.added", creator: "creator-1", createdAt: T0 },
        { sequence: 2, type: "user.deactivated", creator: "editor-1", createdAt: T0 + 1 },
        { sequence: 3, type: "user.reactivated", creator: "editor-2", createdAt: T0 + 2 },
        { sequence: 4, type: "user.deactivated", creator: "editor-3", createdAt: T0 + 3 },
      ]);
      expect((await reads().userEvents(own, creation.user.id, { after: 1, limit: 2, asc: true })).map((e) => e.sequence)).toEqual([2, 3]);
      expect((await reads().userEvents(own, creation.user.id, { after: 1, limit: 2, asc: false })).map((e) => e.sequence)).toEqual([4, 3]);
      expect(await reads().userEvents(own, ids("nobody"), { after: 0, limit: 10, asc: true })).toEqual([]);
    });

    it("names existing editors: a human by display name, a machine by its name", async () => {
      const editors = await reads().editors(instanceId, [people.ada!.user.id, people.svc!.user.id, "system", ids("gone")]);
      expect(Object.fromEntries(editors)).toEqual({
        [people.ada!.user.id]: { displayName: "Ada Lovelace", preferredLoginName: "Ada.Lovelace" },
        [people.svc!.user.id]: { displayName: "a service", preferredLoginName: "svc-build" },
      });
      expect((await reads().editors(instanceId, [])).size).toBe(0);
    });
  });
});
