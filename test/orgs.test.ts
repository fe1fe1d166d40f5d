import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import type { JsonObject } from "@bufbuild/protobuf";
import { type TransportName, type UnaryMethod, V1, V2 } from "./helpers/clients.js";
import { expectCode, expectNotLeaked, expectOk, expectPgvError, expectZitadelError, pgvLength } from "./helpers/expectations.js";
import { type ApiCaller, createApiCaller, RFC3339, uniqueName, USER_ID, useUserport, v1ImportBody } from "./helpers/fixtures.js";

/** Writes over gRPC (grpc-js), Connect JSON and REST; reads also over gRPC-Web. */
const WRITERS: TransportName[] = ["grpc-js", "connect-json-h1", "rest"];
const READERS: TransportName[] = [...WRITERS, "grpc-web"];

describe("organisations", () => {
  const up = useUserport();

  describe.each(WRITERS)("AddOrg and GetMyOrg over %s", (transport) => {
    it("creates an organisation with its generated domain and makes the caller its ORG_OWNER", async () => {
      const name = `Acme ${uniqueName("corp")}`;
      const added = expectOk(await up.caller(transport).call(V1.addOrg, { name }));
      expect(added.id).toMatch(USER_ID);
      const details = added.details as Record<string, string>;
      expect(details).toMatchObject({ sequence: "5", resourceOwner: added.id });
      expect(details.creationDate).toMatch(RFC3339);
      const headers = { "x-zitadel-orgid": String(added.id) };
      const mine = expectOk(await up.caller(transport).call(V1.getMyOrg, {}, { headers }));
      const expectedDomain = `${name.replaceAll(" ", "-").toLowerCase()}.localhost`; // the host of USERPORT_EXTERNAL_URL (default http://localhost:<port>)
      expect(mine.org).toMatchObject({ id: added.id, name, state: "ORG_STATE_ACTIVE", primaryDomain: expectedDomain });
      const members = expectOk(await up.caller(transport).call(V1.listOrgMembers, {}, { headers }));
      expect(members.result).toEqual([expect.objectContaining({ roles: ["ORG_OWNER"], preferredLoginName: "userport-admin" })]);
      const domains = expectOk(await up.caller(transport).call(V1.listOrgDomains, {}, { headers }));
      expect(domains.result).toEqual([expect.objectContaining({ orgId: added.id, domainName: expectedDomain, isVerified: true, isPrimary: true })]);
    });

    it("refuses an empty name (PGV) and a blank one (ORG-mruNY)", async () => {
      expectPgvError(await up.caller(transport).call(V1.addOrg, { name: "" }), pgvLength("AddOrgRequest.Name", 1, 200));
      expectZitadelError(await up.caller(transport).call(V1.addOrg, { name: "   " }), Code.InvalidArgument, "ORG-mruNY", "Errors.Invalid.Argument");
    });

    it("refuses a name without a letter or digit for the domain (ORG-RrfXY)", async () => {
      const result = await up.caller(transport).call(V1.addOrg, { name: "!!!" });
      expectZitadelError(result, Code.InvalidArgument, "ORG-RrfXY", "Errors.Org.Domain.EmptyString");
    });

    it("refuses a name that is taken, whatever its case (V3-DKcYh)", async () => {
      const name = uniqueName("Taken");
      expectOk(await up.caller(transport).call(V1.addOrg, { name }));
      const again = await up.caller(transport).call(V1.addOrg, { name: name.toUpperCase() });
      expectZitadelError(again, Code.AlreadyExists, "V3-DKcYh", "Organisation's name already taken");
    });
  });

  describe.each(READERS)("GetMyOrg over %s", (transport) => {
    it("returns the caller's own organisation without x-zitadel-orgid", async () => {
      const mine = expectOk(await up.caller(transport).call(V1.getMyOrg, {}));
      expect(mine.org).toMatchObject({ id: up.defaultOrgId, name: "Default", state: "ORG_STATE_ACTIVE" });
    });
  });

  describe.each(WRITERS)("permissions over %s", (transport) => {
    let manager: ApiCaller;
    let viewer: ApiCaller;
    beforeAll(async () => {
      manager = await createApiCaller(up, "ORG_USER_MANAGER");
      viewer = await createApiCaller(up, "ORG_OWNER_VIEWER");
    });

    it("lets only instance roles create organisations (org.create, AUTH-5mWD2)", async () => {
      const result = await up.caller(transport).call(V1.addOrg, { name: uniqueName("nope") }, { token: manager.token });
      expectZitadelError(result, Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
    });

    it("lets a viewer read its organisation but not change its members or domains", async () => {
      const mine = expectOk(await up.caller(transport).call(V1.getMyOrg, {}, { token: viewer.token }));
      expect((mine.org as { id: string }).id).toBe(viewer.orgId);
      const attempts: Array<[UnaryMethod, JsonObject]> = [
        [V1.addOrgMember, { userId: viewer.userId, roles: ["ORG_OWNER"] }],
        [V1.removeOrgMember, { userId: viewer.userId }],
        [V1.addOrgDomain, { domain: `${uniqueName("d")}.example.com` }],
      ];
      for (const [method, body] of attempts) {
        const result = await up.caller(transport).call(method, body, { token: viewer.token });
        expectZitadelError(result, Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
      }
    });

    it("denies a user manager the members of its organisation (org.member.read)", async () => {
      const result = await up.caller(transport).call(V1.listOrgMembers, {}, { token: manager.token });
      expectZitadelError(result, Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
    });
  });
});

describe("machine users and personal access tokens", () => {
  // The server's clock, moved forward past a token's expiry instead of waiting for it.
  let clockOffset = 0;
  const up = useUserport({ now: () => Date.now() + clockOffset });

  describe.each(WRITERS)("over %s", (transport) => {
    let owner: ApiCaller;
    beforeAll(async () => {
      owner = await createApiCaller(up, "ORG_OWNER");
    });

    it("creates a machine user that reads as one", async () => {
      const userName = uniqueName("robot");
      const added = expectOk(await up.caller(transport).call(V1.addMachineUser, { userName, name: "Robot", description: "builds" }, { token: owner.token }));
      expect(added.userId).toMatch(USER_ID);
      expect(added.details).toMatchObject({ sequence: "1", resourceOwner: owner.orgId });
      const read = expectOk(await up.caller(transport).call(V1.getUserByID, { id: added.userId! }, { token: owner.token }));
      expect(read.user).toMatchObject({
        id: added.userId,
        state: "USER_STATE_ACTIVE",
        userName,
        loginNames: [userName],
        preferredLoginName: userName,
        machine: { name: "Robot", description: "builds" },
      });
      expect(await up.eventTypes(String(added.userId))).toEqual(["user.machine.added"]);
    });

    it("validates machine users as ZITADEL does", async () => {
      const call = (body: Record<string, string>) =>
        up.caller(transport).call(V1.addMachineUser, { userName: uniqueName("m"), name: "M", ...body }, { token: owner.token });
      expectPgvError(await call({ userName: "" }), pgvLength("AddMachineUserRequest.UserName", 1, 200));
      expectPgvError(await call({ name: "" }), pgvLength("AddMachineUserRequest.Name", 1, 200));
      expectPgvError(await call({ description: "x".repeat(501) }), pgvLength("AddMachineUserRequest.Description", 0, 500));
      expectZitadelError(await call({ name: "  " }), Code.InvalidArgument, "COMMAND-bs9Ds", "Errors.User.Invalid");
      const taken = uniqueName("taken");
      expectOk(await call({ userName: taken }));
      expectZitadelError(await call({ userName: taken.toUpperCase() }), Code.AlreadyExists, "V3-DKcYh", "User already exists");
    });

    it("issues a token that works at once, lists it without its value, and removes it at once", async () => {
      const robot = expectOk(await up.caller(transport).call(V1.addMachineUser, { userName: uniqueName("bot"), name: "Bot" }, { token: owner.token }));
      const userId = String(robot.userId);
      expectOk(await up.caller(transport).call(V1.addOrgMember, { userId, roles: ["ORG_OWNER_VIEWER"] }, { token: owner.token }));
      const expirationDate = new Date(Date.now() + 86_400_000).toISOString();
      const added = await up.caller(transport).call(V1.addPersonalAccessToken, { userId, expirationDate }, { token: owner.token });
      const pat = expectOk(added);
      expect(pat.tokenId).toMatch(USER_ID);
      expect(String(pat.token).length).toBeGreaterThanOrEqual(40);
      expect(pat.details).toMatchObject({ sequence: "2", resourceOwner: owner.orgId });
      const token = String(pat.token);

      // The new token authenticates at once, with the roles of its user.
      const mine = expectOk(await up.caller(transport).call(V1.getMyOrg, {}, { token }));
      expect((mine.org as { id: string }).id).toBe(owner.orgId);

      const listed = expectOk(await up.caller(transport).call(V1.listPersonalAccessTokens, { userId }, { token: owner.token }));
      expect(listed.details).toMatchObject({ totalResult: "1" });
      expect(listed.result).toEqual([expect.objectContaining({ id: pat.tokenId, expirationDate: expect.stringMatching(RFC3339) })]);
      expectNotLeaked(await up.caller(transport).call(V1.listPersonalAccessTokens, { userId }, { token: owner.token }), token);
      const stored = await up.server.db.selectFrom("personal_access_tokens").select("digest").where("id", "=", String(pat.tokenId)).execute();
      expect(stored).toHaveLength(1);
      expect(stored[0]!.digest).not.toContain(token);

      const removed = await up.caller(transport).call(V1.removePersonalAccessToken, { userId, tokenId: String(pat.tokenId) }, { token: owner.token });
      expect(expectOk(removed).details).toMatchObject({ sequence: "3", resourceOwner: owner.orgId });
      expectCode(await up.caller(transport).call(V1.getMyOrg, {}, { token }), Code.Unauthenticated);
      expect(await up.eventTypes(userId)).toEqual(["user.machine.added", "user.personal.access.token.added", "user.personal.access.token.removed"]);
    });

    it("refuses tokens for humans (COMMAND-Df2f1), unknown users (COMMAND-Dggw2) and past expirations (DOMAIN-dv3t5)", async () => {
      const human = expectOk(await up.caller(transport).call(V1.importHumanUser, v1ImportBody(), { token: owner.token }));
      const call = (body: Record<string, string>) => up.caller(transport).call(V1.addPersonalAccessToken, body, { token: owner.token });
      expectZitadelError(await call({ userId: String(human.userId) }), Code.FailedPrecondition, "COMMAND-Df2f1", "Errors.User.WrongType");
      expectZitadelError(await call({ userId: "no-such-user" }), Code.FailedPrecondition, "COMMAND-Dggw2", "User could not be found");
      const robot = expectOk(await up.caller(transport).call(V1.addMachineUser, { userName: uniqueName("old"), name: "Old" }, { token: owner.token }));
      const past = await call({ userId: String(robot.userId), expirationDate: "2001-01-01T00:00:00Z" });
      expectZitadelError(past, Code.InvalidArgument, "DOMAIN-dv3t5", "Errors.AuthNKey.ExpireBeforeNow");
      const unknown = await up.caller(transport).call(V1.removePersonalAccessToken, { userId: String(robot.userId), tokenId: "123" }, { token: owner.token });
      expectZitadelError(unknown, Code.NotFound, "COMMAND-4m77G", "Errors.User.PAT.NotFound");
    });

    it("ends an expired token's access (UNAUTHENTICATED)", async () => {
      const robot = expectOk(await up.caller(transport).call(V1.addMachineUser, { userName: uniqueName("brief"), name: "Brief" }, { token: owner.token }));
      const inAMinute = new Date(Date.now() + 60_000).toISOString();
      const pat = expectOk(
        await up.caller(transport).call(V1.addPersonalAccessToken, { userId: String(robot.userId), expirationDate: inAMinute }, { token: owner.token }),
      );
      const read = () => up.caller(transport).call(V2.getUserByID, { userId: String(robot.userId) }, { token: String(pat.token) });
      expectOk(await read());
      clockOffset = 61_000;
      try {
        expectCode(await read(), Code.Unauthenticated);
      } finally {
        clockOffset = 0;
      }
    });
  });
});

describe("members", () => {
  const up = useUserport();
  const orgEventCount = async (orgId: string) =>
    Number(
      (
        await up.server.db
          .selectFrom("events")
          .select((eb) => eb.fn.countAll().as("n"))
          .where("aggregate_id", "=", orgId)
          .executeTakeFirstOrThrow()
      ).n,
    );

  describe.each(WRITERS)("over %s", (transport) => {
    let owner: ApiCaller;
    beforeAll(async () => {
      owner = await createApiCaller(up, "ORG_OWNER");
    });

    it("grants roles that take effect at once and ends them at once when removed", async () => {
      const helper = await createApiCaller(up, undefined, owner.orgId);
      // Without a role the helper may not even read users.
      const denied = await up.caller(transport).call(V1.importHumanUser, v1ImportBody(), { token: helper.token });
      expectZitadelError(denied, Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");

      const added = await up.caller(transport).call(V1.addOrgMember, { userId: helper.userId, roles: ["ORG_USER_MANAGER"] }, { token: owner.token });
      expect(expectOk(added).details).toMatchObject({ resourceOwner: owner.orgId });
      expectOk(await up.caller(transport).call(V1.importHumanUser, v1ImportBody(), { token: helper.token }));
      const members = expectOk(
        await up.caller(transport).call(V1.listOrgMembers, { queries: [{ userIdQuery: { userId: helper.userId } }] }, { token: owner.token }),
      );
      expect(members.result).toEqual([expect.objectContaining({ userId: helper.userId, roles: ["ORG_USER_MANAGER"], preferredLoginName: helper.userName })]);

      expectOk(await up.caller(transport).call(V1.removeOrgMember, { userId: helper.userId }, { token: owner.token }));
      const after = await up.caller(transport).call(V1.importHumanUser, v1ImportBody(), { token: helper.token });
      expectZitadelError(after, Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
    });

    it("refuses no roles (ORG-4Mlfs), unknown or instance roles (Org-4N8es), twice the same member (ORG-poWwe) and unknown users; removing a non-member changes nothing", async () => {
      const helper = await createApiCaller(up, "ORG_OWNER_VIEWER", owner.orgId);
      const add = (roles: string[], userId = helper.userId) => up.caller(transport).call(V1.addOrgMember, { userId, roles }, { token: owner.token });
      expectZitadelError(await add(["ORG_GOD"]), Code.InvalidArgument, "Org-4N8es", "Errors.Org.MemberInvalid");
      expectZitadelError(await add(["IAM_OWNER"]), Code.InvalidArgument, "Org-4N8es", "Errors.Org.MemberInvalid");
      expectZitadelError(await add([]), Code.InvalidArgument, "ORG-4Mlfs", "Errors.Invalid.Argument");
      expectZitadelError(await add(["ORG_OWNER"]), Code.AlreadyExists, "ORG-poWwe", "Member already exists");
      expectZitadelError(await add(["ORG_OWNER"], "no-such-user"), Code.FailedPrecondition, "ORG-GoXOn", "User could not be found");
      const eventsBefore = await orgEventCount(owner.orgId);
      expectOk(await up.caller(transport).call(V1.removeOrgMember, { userId: "no-such-user" }, { token: owner.token }));
      expect(await orgEventCount(owner.orgId)).toBe(eventsBefore);
      expectPgvError(await add(["ORG_OWNER"], ""), pgvLength("AddOrgMemberRequest.UserId", 1, 200));
    });

    it("does not let an organisation make a user of another organisation its member", async () => {
      const stranger = await createApiCaller(up, undefined);
      const result = await up.caller(transport).call(V1.addOrgMember, { userId: stranger.userId, roles: ["ORG_OWNER"] }, { token: owner.token });
      expectZitadelError(result, Code.FailedPrecondition, "ORG-GoXOn", "User could not be found");
    });
  });

  describe.each(WRITERS)("UpdateOrgMember over %s", (transport) => {
    let owner: ApiCaller;
    beforeAll(async () => {
      owner = await createApiCaller(up, "ORG_OWNER");
    });

    it("replaces a member's roles, which take effect at once", async () => {
      const helper = await createApiCaller(up, "ORG_OWNER_VIEWER", owner.orgId);
      const update = (roles: string[]) => up.caller(transport).call(V1.updateOrgMember, { userId: helper.userId, roles }, { token: owner.token });
      const write = () => up.caller(transport).call(V1.importHumanUser, v1ImportBody(), { token: helper.token });
      expectZitadelError(await write(), Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");

      const eventsBefore = (await up.eventTypes(owner.orgId)).length;
      const updated = expectOk(await update(["ORG_USER_MANAGER"]));
      expect(updated.details).toMatchObject({ sequence: String(eventsBefore + 1), resourceOwner: owner.orgId });
      expect((await up.eventTypes(owner.orgId)).at(-1)).toBe("org.member.changed");
      expectOk(await write());
      const listed = expectOk(
        await up.caller(transport).call(V1.listOrgMembers, { queries: [{ userIdQuery: { userId: helper.userId } }] }, { token: owner.token }),
      );
      expect(listed.result).toEqual([expect.objectContaining({ userId: helper.userId, roles: ["ORG_USER_MANAGER"] })]);

      // The same roles again change nothing, and succeed, as in ZITADEL.
      const again = expectOk(await update(["ORG_USER_MANAGER"]));
      expect(again.details).toMatchObject({ sequence: String(eventsBefore + 1), resourceOwner: owner.orgId });
      expect(await up.eventTypes(owner.orgId)).toHaveLength(eventsBefore + 1);

      // Replaced, not added to: back to reading only.
      expectOk(await update(["ORG_OWNER_VIEWER"]));
      expectZitadelError(await write(), Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
      expectOk(await up.caller(transport).call(V1.getMyOrg, {}, { token: helper.token }));
    });

    it("refuses no roles (Org-LiaZi), unknown or instance roles (IAM-m9fG8) and non-members (Org-D8JxR)", async () => {
      const helper = await createApiCaller(up, "ORG_OWNER_VIEWER", owner.orgId);
      const update = (roles: string[], userId = helper.userId) => up.caller(transport).call(V1.updateOrgMember, { userId, roles }, { token: owner.token });
      expectZitadelError(await update([]), Code.InvalidArgument, "Org-LiaZi", "Errors.Org.MemberInvalid");
      expectZitadelError(await update(["ORG_GOD"]), Code.InvalidArgument, "IAM-m9fG8", "Errors.Org.MemberInvalid");
      expectZitadelError(await update(["ORG_OWNER", "IAM_OWNER"]), Code.InvalidArgument, "IAM-m9fG8", "Errors.Org.MemberInvalid");
      expectZitadelError(await update(["ORG_OWNER"], "no-such-user"), Code.NotFound, "Org-D8JxR", "Errors.NotFound");
      // A user of the organisation that is no member is not found either.
      const plain = await createApiCaller(up, undefined, owner.orgId);
      expectZitadelError(await update(["ORG_OWNER"], plain.userId), Code.NotFound, "Org-D8JxR", "Errors.NotFound");
      expectPgvError(await update(["ORG_OWNER"], "x".repeat(201)), pgvLength("UpdateOrgMemberRequest.UserId", 1, 200));
      const listed = expectOk(
        await up.caller(transport).call(V1.listOrgMembers, { queries: [{ userIdQuery: { userId: helper.userId } }] }, { token: owner.token }),
      );
      expect(listed.result).toEqual([expect.objectContaining({ roles: ["ORG_OWNER_VIEWER"] })]);
    });

    it("needs org.member.write (AUTH-5mWD2)", async () => {
      const helper = await createApiCaller(up, "ORG_OWNER_VIEWER", owner.orgId);
      for (const role of ["ORG_USER_MANAGER", "ORG_OWNER_VIEWER"]) {
        const caller = await createApiCaller(up, role, owner.orgId);
        const denied = await up.caller(transport).call(V1.updateOrgMember, { userId: helper.userId, roles: ["ORG_OWNER"] }, { token: caller.token });
        expectZitadelError(denied, Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
      }
      // Not even for itself.
      const self = await up.caller(transport).call(V1.updateOrgMember, { userId: helper.userId, roles: ["ORG_OWNER"] }, { token: helper.token });
      expectZitadelError(self, Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
    });
  });
});
