import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { ADMIN, SESSIONS, type TransportName, type UnaryMethod, V1, V2 } from "./helpers/clients.js";
import { expectOk, expectPgvError, expectZitadelError, pgvLength } from "./helpers/expectations.js";
import { type ApiCaller, createApiCaller, uniqueName, useUserport, v1ImportBody, v2AddBody } from "./helpers/fixtures.js";

/** Writes over gRPC (grpc-js), Connect JSON and REST; reads also over gRPC-Web. */
const WRITERS: TransportName[] = ["grpc-js", "connect-json-h1", "rest"];

/** The generated domain of an organisation: its name, lower-cased, under the instance's host. */
const generatedDomain = (name: string) => `${name.toLowerCase()}.localhost`;

describe("org domains and the domain policy", () => {
  const up = useUserport();
  const admin = (transport: TransportName) => up.caller(transport);
  const inOrg = (orgId: string) => ({ headers: { "x-zitadel-orgid": orgId } });

  describe.each(WRITERS)("domains over %s", (transport) => {
    let owner: ApiCaller;
    beforeAll(async () => {
      owner = await createApiCaller(up, "ORG_OWNER");
    });

    it("adds domains verified (validation is off by default), lists them and sets the primary one", async () => {
      const domain = `${uniqueName("acme")}.example.com`;
      const added = expectOk(await up.caller(transport).call(V1.addOrgDomain, { domain: domain.toUpperCase() }, { token: owner.token }));
      expect(added.details).toMatchObject({ resourceOwner: owner.orgId });
      const listed = expectOk(
        await up
          .caller(transport)
          .call(V1.listOrgDomains, { queries: [{ domainNameQuery: { name: domain, method: "TEXT_QUERY_METHOD_EQUALS" } }] }, { token: owner.token }),
      );
      expect(listed.details).toMatchObject({ totalResult: "1" });
      // protojson leaves false out: the new domain is verified, not primary.
      expect(listed.result).toEqual([expect.objectContaining({ domainName: domain, isVerified: true })]);
      expect((listed.result as JsonObject[])[0]).not.toHaveProperty("isPrimary");

      expectOk(await up.caller(transport).call(V1.setPrimaryOrgDomain, { domain }, { token: owner.token }));
      const mine = expectOk(await up.caller(transport).call(V1.getMyOrg, {}, { token: owner.token }));
      expect((mine.org as { primaryDomain: string }).primaryDomain).toBe(domain);
      const all = expectOk(await up.caller(transport).call(V1.listOrgDomains, {}, { token: owner.token }));
      expect((all.result as Array<{ isPrimary: boolean }>).filter((d) => d.isPrimary)).toHaveLength(1);
    });

    it("refuses a domain twice (V2-e1wse), another organisation's verified domain (V3-DKcYh) and empty ones", async () => {
      const domain = `${uniqueName("dup")}.example.com`;
      expectOk(await up.caller(transport).call(V1.addOrgDomain, { domain }, { token: owner.token }));
      const twice = await up.caller(transport).call(V1.addOrgDomain, { domain }, { token: owner.token });
      expectZitadelError(twice, Code.AlreadyExists, "V2-e1wse", "Errors.Already.Exists");
      const other = await createApiCaller(up, "ORG_OWNER");
      const taken = await up.caller(transport).call(V1.addOrgDomain, { domain }, { token: other.token });
      expectZitadelError(taken, Code.AlreadyExists, "V3-DKcYh", "Domain already exists");
      expectPgvError(await up.caller(transport).call(V1.addOrgDomain, { domain: "" }, { token: owner.token }), pgvLength("AddOrgDomainRequest.Domain", 1, 200));
      expectZitadelError(
        await up.caller(transport).call(V1.addOrgDomain, { domain: "   " }, { token: owner.token }),
        Code.InvalidArgument,
        "ORG-r3h4J",
        "Errors.Invalid.Argument",
      );
    });

    it("sets only a known (ORG-GDfA3), verified (ORG-Ggd32) domain as primary", async () => {
      const unknown = await up.caller(transport).call(V1.setPrimaryOrgDomain, { domain: "nowhere.example.com" }, { token: owner.token });
      expectZitadelError(unknown, Code.NotFound, "ORG-GDfA3", "Domain doesn't exist on organization");
      const blank = await up.caller(transport).call(V1.setPrimaryOrgDomain, { domain: "   " }, { token: owner.token });
      expectZitadelError(blank, Code.InvalidArgument, "ORG-SsDG2", "Invalid domain");
      // With validation required, an added domain stays unverified (there is no validation yet).
      const strict = await createApiCaller(up, "ORG_OWNER");
      expectOk(await admin(transport).call(ADMIN.addCustomDomainPolicy, { orgId: strict.orgId, validateOrgDomains: true }));
      const domain = `${uniqueName("strict")}.example.com`;
      expectOk(await up.caller(transport).call(V1.addOrgDomain, { domain }, { token: strict.token }));
      const listed = expectOk(await up.caller(transport).call(V1.listOrgDomains, {}, { token: strict.token }));
      const strictDomain = (listed.result as JsonObject[]).find((d) => d.domainName === domain);
      expect(strictDomain).toBeDefined();
      expect(strictDomain).not.toHaveProperty("isVerified");
      const result = await up.caller(transport).call(V1.setPrimaryOrgDomain, { domain }, { token: strict.token });
      expectZitadelError(result, Code.FailedPrecondition, "ORG-Ggd32", "Domain is not verified");
    });
  });

  describe.each(WRITERS)("RemoveOrgDomain over %s", (transport) => {
    it("removes a domain: its login names end at once, searches stop finding them, and a verified domain is released", async () => {
      const scoped = await createApiCaller(up, "ORG_OWNER");
      const other = await createApiCaller(up, "ORG_OWNER");
      expectOk(await admin(transport).call(ADMIN.addCustomDomainPolicy, { orgId: scoped.orgId, userLoginMustBeDomain: true }));
      const domain = `${uniqueName("gone")}.example.com`;
      expectOk(await up.caller(transport).call(V1.addOrgDomain, { domain }, { token: scoped.token }));
      const userName = uniqueName("lin");
      const created = expectOk(await up.caller(transport).call(V1.importHumanUser, v1ImportBody({ userName }), { token: scoped.token }));
      const userId = String(created.userId);
      const byLoginName = async (loginName: string) => {
        const query = { queries: [{ loginNameQuery: { loginName, method: "TEXT_QUERY_METHOD_EQUALS" } }] };
        const v1 = expectOk(await up.caller(transport).call(V1.listUsers, query, { token: scoped.token }));
        const v2 = expectOk(await up.caller(transport).call(V2.listUsers, query, { token: scoped.token }));
        return [v1, v2].map((result) => ((result.result as Array<{ id?: string; userId?: string }> | undefined) ?? []).map((u) => u.id ?? u.userId));
      };
      expect(await byLoginName(`${userName}@${domain}`)).toEqual([[userId], [userId]]);
      // Also taken by another organisation's usernames while verified (COMMAND-SFd21).
      const reserved = await up.caller(transport).call(V1.importHumanUser, v1ImportBody({ userName: `${uniqueName("x")}@${domain}` }), { token: other.token });
      expectZitadelError(reserved, Code.InvalidArgument, "COMMAND-SFd21", "Domain is already reserved and cannot be used");
      const session = (loginName: string) => admin(transport).call(SESSIONS.createSession, { checks: { user: { loginName } } });
      expectOk(await session(`${userName}@${domain}`));
      const sequenceBefore = (await up.eventTypes(scoped.orgId)).length;

      // The domain as clients may spell it: case does not matter, as for AddOrgDomain.
      const removed = expectOk(await up.caller(transport).call(V1.removeOrgDomain, { domain: domain.toUpperCase() }, { token: scoped.token }));
      expect(removed.details).toMatchObject({ sequence: String(sequenceBefore + 1), resourceOwner: scoped.orgId });
      expect((await up.eventTypes(scoped.orgId)).at(-1)).toBe("org.domain.removed");

      const primary = generatedDomain(scoped.orgName);
      const read = expectOk(await up.caller(transport).call(V1.getUserByID, { id: userId }, { token: scoped.token }));
      expect(read.user).toMatchObject({ loginNames: [`${userName}@${primary}`], preferredLoginName: `${userName}@${primary}` });
      expect(await byLoginName(`${userName}@${domain}`)).toEqual([[], []]);
      expect(await byLoginName(`${userName}@${primary}`)).toEqual([[userId], [userId]]);
      expectZitadelError(await session(`${userName}@${domain}`), Code.NotFound, "QUERY-Dfbg2", "User could not be found");
      expectOk(await session(`${userName}@${primary}`));
      const domains = expectOk(await up.caller(transport).call(V1.listOrgDomains, {}, { token: scoped.token }));
      expect((domains.result as JsonObject[]).map((d) => d.domainName)).toEqual([primary]);

      // Released: another organisation may use it in usernames, add it and have it verified.
      expectOk(await up.caller(transport).call(V1.importHumanUser, v1ImportBody({ userName: `${uniqueName("y")}@${domain}` }), { token: other.token }));
      expectOk(await up.caller(transport).call(V1.addOrgDomain, { domain }, { token: other.token }));
      const theirs = expectOk(await up.caller(transport).call(V1.listOrgDomains, {}, { token: other.token }));
      expect(theirs.result).toEqual(expect.arrayContaining([expect.objectContaining({ domainName: domain, isVerified: true })]));
      const resolved = expectOk(await up.caller(transport).call(V2.addHumanUser, v2AddBody({ organization: { orgDomain: domain } })));
      expect(resolved.details).toMatchObject({ resourceOwner: other.orgId });
    });

    it("removes an unverified domain, which claimed nothing", async () => {
      const strict = await createApiCaller(up, "ORG_OWNER");
      expectOk(await admin(transport).call(ADMIN.addCustomDomainPolicy, { orgId: strict.orgId, validateOrgDomains: true }));
      const domain = `${uniqueName("pending")}.example.com`;
      expectOk(await up.caller(transport).call(V1.addOrgDomain, { domain }, { token: strict.token }));
      expectOk(await up.caller(transport).call(V1.removeOrgDomain, { domain }, { token: strict.token }));
      const domains = expectOk(await up.caller(transport).call(V1.listOrgDomains, {}, { token: strict.token }));
      expect((domains.result as JsonObject[]).map((d) => d.domainName)).toEqual([generatedDomain(strict.orgName)]);
      // And the organisation may add it again.
      expectOk(await up.caller(transport).call(V1.addOrgDomain, { domain }, { token: strict.token }));
    });

    it("refuses the primary domain (ORG-Sjdi3), an unknown one (ORG-GDfA3), a blank one (ORG-SJsK3) and a long one (PGV)", async () => {
      const owner = await createApiCaller(up, "ORG_OWNER");
      const remove = (domain: string) => up.caller(transport).call(V1.removeOrgDomain, { domain }, { token: owner.token });
      const primary = await remove(generatedDomain(owner.orgName));
      expectZitadelError(primary, Code.FailedPrecondition, "ORG-Sjdi3", "Primary domain must not be deleted");
      expectZitadelError(await remove("nowhere.example.com"), Code.NotFound, "ORG-GDfA3", "Domain doesn't exist on organization");
      // Another organisation's domain is not this one's.
      const other = await createApiCaller(up, "ORG_OWNER");
      expectZitadelError(await remove(generatedDomain(other.orgName)), Code.NotFound, "ORG-GDfA3", "Domain doesn't exist on organization");
      expectZitadelError(await remove("   "), Code.InvalidArgument, "ORG-SJsK3", "Invalid domain");
      expectPgvError(await remove("x".repeat(201)), pgvLength("RemoveOrgDomainRequest.Domain", 1, 200));
      const mine = expectOk(await up.caller(transport).call(V1.getMyOrg, {}, { token: owner.token }));
      expect((mine.org as { primaryDomain: string }).primaryDomain).toBe(generatedDomain(owner.orgName));
    });

    it("needs org.write (AUTH-5mWD2)", async () => {
      const owner = await createApiCaller(up, "ORG_OWNER");
      const domain = `${uniqueName("kept")}.example.com`;
      expectOk(await up.caller(transport).call(V1.addOrgDomain, { domain }, { token: owner.token }));
      for (const role of ["ORG_USER_MANAGER", "ORG_OWNER_VIEWER"]) {
        const caller = await createApiCaller(up, role, owner.orgId);
        const denied = await up.caller(transport).call(V1.removeOrgDomain, { domain }, { token: caller.token });
        expectZitadelError(denied, Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
      }
      const domains = expectOk(await up.caller(transport).call(V1.listOrgDomains, {}, { token: owner.token }));
      expect((domains.result as JsonObject[]).map((d) => d.domainName)).toContain(domain);
    });
  });

  describe.each(WRITERS)("the default policy over %s", (transport) => {
    let a: ApiCaller;
    let b: ApiCaller;
    beforeAll(async () => {
      a = await createApiCaller(up, "ORG_OWNER");
      b = await createApiCaller(up, "ORG_OWNER");
    });

    it("reads as the default through management and admin", async () => {
      const policy = expectOk(await up.caller(transport).call(V1.getDomainPolicy, {}, { token: a.token })).policy;
      expect(policy).toMatchObject({ isDefault: true });
      expect(policy).not.toHaveProperty("userLoginMustBeDomain");
      const viaAdmin = expectOk(await admin(transport).call(ADMIN.getCustomDomainPolicy, { orgId: a.orgId })).policy;
      expect(viaAdmin).toMatchObject({ isDefault: true });
    });

    it("keeps usernames unique across organisations, with bare login names", async () => {
      const userName = uniqueName("shared");
      const created = expectOk(await up.caller(transport).call(V1.importHumanUser, v1ImportBody({ userName }), { token: a.token }));
      const read = expectOk(await up.caller(transport).call(V1.getUserByID, { id: created.userId! }, { token: a.token }));
      expect(read.user).toMatchObject({ loginNames: [userName], preferredLoginName: userName });
      const elsewhere = await up.caller(transport).call(V1.importHumanUser, v1ImportBody({ userName }), { token: b.token });
      expectZitadelError(elsewhere, Code.AlreadyExists, "V3-DKcYh", "User already exists");
    });

    it("refuses a username ending in another organisation's verified domain (COMMAND-SFd21), not in its own", async () => {
      const domainOfA = generatedDomain(a.orgName);
      const inB = await up.caller(transport).call(V1.importHumanUser, v1ImportBody({ userName: `${uniqueName("x")}@${domainOfA}` }), { token: b.token });
      expectZitadelError(inB, Code.InvalidArgument, "COMMAND-SFd21", "Domain is already reserved and cannot be used");
      const machine = await up
        .caller(transport)
        .call(V1.addMachineUser, { userName: `${uniqueName("m")}@${domainOfA.toUpperCase()}`, name: "M" }, { token: b.token });
      expectZitadelError(machine, Code.InvalidArgument, "COMMAND-SFd21", "Domain is already reserved and cannot be used");
      const v2 = await up.caller(transport).call(V2.addHumanUser, v2AddBody({ username: `${uniqueName("v")}@${domainOfA}` }), { token: b.token });
      expectZitadelError(v2, Code.InvalidArgument, "COMMAND-SFd21", "Domain is already reserved and cannot be used");
      expectOk(await up.caller(transport).call(V1.importHumanUser, v1ImportBody({ userName: `${uniqueName("own")}@${domainOfA}` }), { token: a.token }));
      // An unverified domain reserves nothing.
      expectOk(
        await up.caller(transport).call(V1.importHumanUser, v1ImportBody({ userName: `${uniqueName("free")}@unclaimed.example.com` }), { token: b.token }),
      );
    });
  });

  describe.each(WRITERS)("userLoginMustBeDomain over %s", (transport) => {
    let scoped: ApiCaller;
    let other: ApiCaller;
    let extraDomain: string;
    beforeAll(async () => {
      scoped = await createApiCaller(up, "ORG_OWNER");
      other = await createApiCaller(up, "ORG_OWNER");
      extraDomain = `${uniqueName("corp")}.example.com`;
      expectOk(await up.caller("connect-json-h1").call(V1.addOrgDomain, { domain: extraDomain }, { token: scoped.token }));
      const added = await admin(transport).call(ADMIN.addCustomDomainPolicy, { orgId: scoped.orgId, userLoginMustBeDomain: true });
      expect(expectOk(added).details).toMatchObject({ resourceOwner: scoped.orgId });
    });

    it("reads as the organisation's own policy", async () => {
      const policy = expectOk(await up.caller(transport).call(V1.getDomainPolicy, {}, { token: scoped.token })).policy;
      expect(policy).toMatchObject({ userLoginMustBeDomain: true, details: { resourceOwner: scoped.orgId } });
      expect(policy).not.toHaveProperty("isDefault");
    });

    it("gives login names username@<each verified domain>, the primary one preferred", async () => {
      const userName = uniqueName("ada");
      const created = expectOk(await up.caller(transport).call(V1.importHumanUser, v1ImportBody({ userName }), { token: scoped.token }));
      const primary = generatedDomain(scoped.orgName);
      const expected = [`${userName}@${extraDomain}`, `${userName}@${primary}`].sort();
      const v1 = expectOk(await up.caller(transport).call(V1.getUserByID, { id: created.userId! }, { token: scoped.token }));
      expect(v1.user).toMatchObject({ userName, preferredLoginName: `${userName}@${primary}` });
      expect([...(v1.user as { loginNames: string[] }).loginNames].sort()).toEqual(expected);
      const members = expectOk(
        await up.caller(transport).call(V1.listOrgMembers, { queries: [{ userIdQuery: { userId: scoped.userId } }] }, { token: scoped.token }),
      );
      expect(members.result).toEqual([expect.objectContaining({ preferredLoginName: `${scoped.userName}@${primary}` })]);
      const v2 = expectOk(await up.caller(transport).call(V2.getUserByID, { userId: String(created.userId) }, { token: scoped.token }));
      expect(v2.user).toMatchObject({ username: userName, preferredLoginName: `${userName}@${primary}` });
      expect([...(v2.user as { loginNames: string[] }).loginNames].sort()).toEqual(expected);
    });

    it("makes usernames unique per organisation", async () => {
      const userName = uniqueName("dup");
      expectOk(await up.caller(transport).call(V1.importHumanUser, v1ImportBody({ userName }), { token: scoped.token }));
      // The same username in an organisation with instance-wide usernames is another claim.
      expectOk(await up.caller(transport).call(V1.importHumanUser, v1ImportBody({ userName }), { token: other.token }));
      const again = await up.caller(transport).call(V1.importHumanUser, v1ImportBody({ userName: userName.toUpperCase() }), { token: scoped.token });
      expectZitadelError(again, Code.AlreadyExists, "V3-DKcYh", "User already exists");
      const unique = expectOk(await up.caller(transport).call(V1.isUserUnique, { userName }, { token: scoped.token }));
      expect(unique.isUnique ?? false).toBe(false);
      const fresh = expectOk(await up.caller(transport).call(V1.isUserUnique, { userName: uniqueName("nobody") }, { token: scoped.token }));
      expect(fresh.isUnique).toBe(true);
    });

    it("finds users by their login names (ListUsers v1 and v2)", async () => {
      const userName = uniqueName("grace");
      const created = expectOk(await up.caller(transport).call(V1.importHumanUser, v1ImportBody({ userName }), { token: scoped.token }));
      const search = async (loginName: string, method: string) => {
        const query = { queries: [{ loginNameQuery: { loginName, method } }] };
        const v1 = expectOk(await up.caller(transport).call(V1.listUsers, query, { token: scoped.token }));
        const v2 = expectOk(await up.caller(transport).call(V2.listUsers, query, { token: scoped.token }));
        const ids = (result: JsonObject) => ((result.result as Array<{ id?: string; userId?: string }> | undefined) ?? []).map((u) => u.id ?? u.userId);
        expect(ids(v2)).toEqual(ids(v1));
        return ids(v1);
      };
      expect(await search(`${userName}@${extraDomain}`, "TEXT_QUERY_METHOD_EQUALS")).toEqual([created.userId]);
      expect(await search(`${userName}@${extraDomain}`.toUpperCase(), "TEXT_QUERY_METHOD_EQUALS_IGNORE_CASE")).toEqual([created.userId]);
      expect(await search(`${userName}@${extraDomain}`.toUpperCase(), "TEXT_QUERY_METHOD_EQUALS")).toEqual([]);
      expect(await search(`${userName}@`, "TEXT_QUERY_METHOD_STARTS_WITH")).toEqual([created.userId]);
      expect(await search(`${userName}@${extraDomain.slice(0, 5)}`, "TEXT_QUERY_METHOD_CONTAINS")).toEqual([created.userId]);
      // The bare username is no login name in such an organisation.
      expect(await search(userName, "TEXT_QUERY_METHOD_EQUALS")).toEqual([]);
    });

    it("claims every username anew when the policy changes, and refuses a change that would collide (V3-DKcYh)", async () => {
      const org = await createApiCaller(up, "ORG_OWNER");
      const userName = uniqueName("clash");
      expectOk(await admin(transport).call(ADMIN.addCustomDomainPolicy, { orgId: org.orgId, userLoginMustBeDomain: true }));
      const mine = expectOk(await up.caller(transport).call(V1.importHumanUser, v1ImportBody({ userName }), { token: org.token }));
      expectOk(await up.caller(transport).call(V1.importHumanUser, v1ImportBody({ userName }), { token: other.token }));
      const back = await admin(transport).call(ADMIN.updateCustomDomainPolicy, { orgId: org.orgId, userLoginMustBeDomain: false });
      expectZitadelError(back, Code.AlreadyExists, "V3-DKcYh", "User already exists");
      expectOk(await up.caller(transport).call(V1.removeUser, { id: String(mine.userId) }, { token: org.token }));
      expectOk(await admin(transport).call(ADMIN.updateCustomDomainPolicy, { orgId: org.orgId, userLoginMustBeDomain: false }));
      // Now instance-wide again: the other organisation's user holds the name.
      const taken = await up.caller(transport).call(V1.importHumanUser, v1ImportBody({ userName }), { token: org.token });
      expectZitadelError(taken, Code.AlreadyExists, "V3-DKcYh", "User already exists");
      const claims = await up.server.db.selectFrom("unique_constraints").select("kind").where("value", "like", `%${userName}`).execute();
      expect(claims.map((c) => c.kind)).toEqual(["username"]);
    });
  });

  describe.each(WRITERS)("custom policy RPCs over %s", (transport) => {
    it("adds, updates and resets a policy with ZITADEL's errors", async () => {
      const org = await createApiCaller(up, "ORG_OWNER");
      const call = (method: UnaryMethod, body: JsonObject) => admin(transport).call(method, { orgId: org.orgId, ...body });
      expectZitadelError(
        await call(ADMIN.updateCustomDomainPolicy, { validateOrgDomains: true }),
        Code.NotFound,
        "ORG-2N9sd",
        "Errors.Org.DomainPolicy.NotFound",
      );
      expectZitadelError(await call(ADMIN.resetCustomDomainPolicyToDefault, {}), Code.NotFound, "ORG-Dvsh3", "Errors.Org.DomainPolicy.NotFound");
      expectOk(await call(ADMIN.addCustomDomainPolicy, { validateOrgDomains: true }));
      expectZitadelError(await call(ADMIN.addCustomDomainPolicy, {}), Code.AlreadyExists, "ORG-1M8ds", "Errors.Org.DomainPolicy.AlreadyExists");
      expectZitadelError(
        await call(ADMIN.updateCustomDomainPolicy, { validateOrgDomains: true }),
        Code.FailedPrecondition,
        "ORG-3M9ds",
        "Errors.Org.LabelPolicy.NotChanged",
      );
      expectOk(await call(ADMIN.updateCustomDomainPolicy, { smtpSenderAddressMatchesInstanceDomain: true }));
      const read = expectOk(await call(ADMIN.getCustomDomainPolicy, {})).policy;
      expect(read).toMatchObject({ smtpSenderAddressMatchesInstanceDomain: true });
      expect(read).not.toHaveProperty("validateOrgDomains");
      expectOk(await call(ADMIN.resetCustomDomainPolicyToDefault, {}));
      expect(expectOk(await call(ADMIN.getCustomDomainPolicy, {})).policy).toMatchObject({ isDefault: true });
    });

    it("is for instance roles only (AUTH-5mWD2), and names an existing organisation (AUTH-Bs7Ds)", async () => {
      const owner = await createApiCaller(up, "ORG_OWNER");
      const denied = await up.caller(transport).call(ADMIN.addCustomDomainPolicy, { orgId: owner.orgId, userLoginMustBeDomain: true }, { token: owner.token });
      expectZitadelError(denied, Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
      const missing = await admin(transport).call(ADMIN.getCustomDomainPolicy, { orgId: "no-such-org" });
      expectZitadelError(missing, Code.PermissionDenied, "AUTH-Bs7Ds", "Organisation doesn't exist");
    });
  });

  // A write: gRPC-Web covers the reads (GetMyOrg below).
  describe.each(WRITERS)("v2 organization.org_domain over %s", (transport) => {
    it("resolves a verified domain to its organisation, and refuses an unknown one (AUTH-Bs7Ds)", async () => {
      const org = await createApiCaller(up, "ORG_OWNER");
      const created = expectOk(
        await up.caller(transport).call(V2.addHumanUser, v2AddBody({ organization: { orgDomain: generatedDomain(org.orgName).toUpperCase() } })),
      );
      expect(created.details).toMatchObject({ resourceOwner: org.orgId });
      const unknown = await up.caller(transport).call(V2.addHumanUser, v2AddBody({ organization: { orgDomain: "nowhere.example.com" } }));
      expectZitadelError(unknown, Code.PermissionDenied, "AUTH-Bs7Ds", "Organisation doesn't exist");
    });
  });

  it("answers GetMyOrg's primary domain and login names over gRPC-Web", async () => {
    const org = await createApiCaller(up, "ORG_OWNER");
    const mine = expectOk(await up.caller("grpc-web").call(V1.getMyOrg, {}, inOrg(org.orgId)));
    expect((mine.org as { primaryDomain: string }).primaryDomain).toBe(generatedDomain(org.orgName));
  });
});
