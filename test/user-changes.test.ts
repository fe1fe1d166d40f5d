/**
 * Changes of existing users beyond their state — management v1 UpdateUserName and
 * ResendHumanInitialization — and user v2 CreateUser, through gRPC (grpc-js), Connect (JSON) and
 * REST, against ZITADEL's documented behaviour (ZITADEL's internal/command/user.go,
 * user_human_init.go, internal/api/grpc/user/v2/user.go, internal/repository/user/).
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { type CallOptions, type TransportName, V1, V2 } from "./helpers/clients.js";
import { expectOk, expectPgvError, expectZitadelError, pgvEmbedded, pgvLength } from "./helpers/expectations.js";
import {
  bcryptHash,
  RFC3339,
  type SeededCaller,
  seedScopedCaller,
  uniqueEmail,
  uniqueName,
  USER_ID,
  useUserport,
  v1ImportBody,
  v2AddBody,
} from "./helpers/fixtures.js";

const up = useUserport();
const HASH = bcryptHash("imported-Passw0rd!");
const WRITE_TRANSPORTS = ["grpc-js", "connect-json-h1", "rest"] as const satisfies readonly TransportName[];

let viewer: SeededCaller;
let nobody: SeededCaller;
let otherOrg: SeededCaller;
beforeAll(async () => {
  viewer = await seedScopedCaller(up.server, "ORG_OWNER_VIEWER");
  nobody = await seedScopedCaller(up.server, undefined);
  otherOrg = await seedScopedCaller(up.server, "ORG_OWNER");
});

describe.each(WRITE_TRANSPORTS)("over %s", (transport) => {
  const call = (method: Parameters<ReturnType<typeof up.caller>["call"]>[0], body: JsonObject, options?: CallOptions) =>
    up.caller(transport).call(method, body, options);

  /** An imported user: ACTIVE (verified email and a password) or INITIAL (neither). */
  async function importUser(state: "ACTIVE" | "INITIAL", extra: JsonObject = {}, options?: CallOptions) {
    const body = state === "ACTIVE" ? v1ImportBody({ hashedPassword: { value: HASH }, ...extra }) : v1ImportBody(extra);
    if (state === "INITIAL") (body.email as JsonObject).isEmailVerified = false;
    const res = expectOk(await call(V1.importHumanUser, body, options));
    return { id: res.userId as string, userName: body.userName as string, sequence: Number((res.details as JsonObject).sequence) };
  }

  const getV1 = async (id: string, options?: CallOptions) => expectOk(await call(V1.getUserByID, { id }, options)).user as JsonObject;
  const eventKeys = async (userId: string) =>
    ((expectOk(await call(V1.listUserChanges, { userId, query: { asc: true } })).result as JsonObject[]) ?? []).map(
      (change) => (change.eventType as JsonObject).key,
    );
  const userNameQuery = (userName: string) => ({ userNameQuery: { userName, method: "TEXT_QUERY_METHOD_EQUALS" } });
  const listByName = async (userName: string) =>
    ((expectOk(await call(V1.listUsers, { queries: [userNameQuery(userName)] })).result as JsonObject[]) ?? []).map((u) => u.id);

  describe("UpdateUserName", () => {
    it("renames the user: the new name is read, searched and taken, the old one is free at once", async () => {
      const user = await importUser("ACTIVE");
      const renamed = uniqueName("renamed");
      const res = expectOk(await call(V1.updateUserName, { userId: user.id, userName: renamed }), 200);
      expect(Object.keys(res)).toEqual(["details"]);
      const details = res.details as JsonObject;
      expect(Object.keys(details).sort()).toEqual(["changeDate", "resourceOwner", "sequence"]);
      expect(details).toMatchObject({ sequence: String(user.sequence + 1), resourceOwner: up.defaultOrgId });
      expect(details.changeDate).toMatch(RFC3339);

      const read = await getV1(user.id);
      expect(read.userName).toBe(renamed);
      expect(read.preferredLoginName).toBe(renamed);
      expect((read.details as JsonObject).sequence).toBe(String(user.sequence + 1));
      expect(await listByName(renamed)).toEqual([user.id]);
      expect(await listByName(user.userName)).toEqual([]);
      expect(expectOk(await call(V1.isUserUnique, { userName: user.userName })).isUnique).toBe(true);
      expect(expectOk(await call(V1.isUserUnique, { userName: renamed.toUpperCase() })).isUnique ?? false).toBe(false);

      // The old name can be taken by another user at once; the new one cannot.
      await importUser("ACTIVE", { userName: user.userName });
      const taken = await call(V1.importHumanUser, v1ImportBody({ userName: renamed.toUpperCase() }));
      expectZitadelError(taken, Code.AlreadyExists, "V3-DKcYh", "User already exists");
      expect((await eventKeys(user.id)).at(-1)).toBe("EventTypes.user.username.changed");
    });

    it("changes only the case of a name, and trims it", async () => {
      const user = await importUser("ACTIVE");
      const upper = user.userName.toUpperCase();
      expectOk(await call(V1.updateUserName, { userId: user.id, userName: `  ${upper} ` }));
      expect((await getV1(user.id)).userName).toBe(upper);
    });

    it("refuses a name another user holds, in any case (V3-DKcYh), and keeps both names", async () => {
      const user = await importUser("ACTIVE");
      const other = await importUser("ACTIVE");
      const result = await call(V1.updateUserName, { userId: user.id, userName: other.userName.toUpperCase() });
      expectZitadelError(result, Code.AlreadyExists, "V3-DKcYh", "User already exists");
      expect((await getV1(user.id)).userName).toBe(user.userName);
      expect(await listByName(user.userName)).toEqual([user.id]);
    });

    it("refuses the unchanged name (COMMAND-6m9gs)", async () => {
      const user = await importUser("ACTIVE");
      const result = await call(V1.updateUserName, { userId: user.id, userName: user.userName });
      expectZitadelError(result, Code.FailedPrecondition, "COMMAND-6m9gs", "Username not changed");
    });

    it("refuses a blank name (COMMAND-2N9fs)", async () => {
      const user = await importUser("ACTIVE");
      expectZitadelError(await call(V1.updateUserName, { userId: user.id, userName: "   " }), Code.InvalidArgument, "COMMAND-2N9fs", "ID missing");
    });

    it("does not find an unknown user, or one of another organisation (COMMAND-5N9ds)", async () => {
      const user = await importUser("ACTIVE");
      for (const [id, options] of [
        ["no-such-user", undefined],
        [user.id, { token: otherOrg.token }],
      ] as const) {
        const result = await call(V1.updateUserName, { userId: id, userName: uniqueName("x") }, options);
        expectZitadelError(result, Code.NotFound, "COMMAND-5N9ds", "User could not be found");
      }
    });

    it("denies a caller without user.write (AUTH-5mWD2)", async () => {
      const user = await importUser("ACTIVE");
      const result = await call(V1.updateUserName, { userId: user.id, userName: uniqueName("x") }, { token: viewer.token });
      expectZitadelError(result, Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
    });

    it.skipIf(transport === "rest")("requires a user id and a name (PGV)", async () => {
      expectPgvError(await call(V1.updateUserName, { userId: "", userName: "x" }), pgvLength("UpdateUserNameRequest.UserId", 1, 200));
      expectPgvError(await call(V1.updateUserName, { userId: "1", userName: "" }), pgvLength("UpdateUserNameRequest.UserName", 1, 200));
    });
  });

  describe("ResendHumanInitialization", () => {
    const initCodes = async (userId: string) =>
      up.server.db.selectFrom("codes").select(["id", "sealed_code"]).where("user_id", "=", userId).where("kind", "=", "init").execute();

    it("replaces the init code of a user in state INITIAL with a new one", async () => {
      const user = await importUser("INITIAL");
      const [before] = await initCodes(user.id);
      const res = expectOk(await call(V1.resendHumanInitialization, { userId: user.id }), 200);
      expect(res.details).toMatchObject({ sequence: String(user.sequence + 1), resourceOwner: up.defaultOrgId });
      const after = await initCodes(user.id);
      expect(after).toHaveLength(1);
      expect(after[0]!.id).not.toBe(before!.id);
      expect(await eventKeys(user.id)).toEqual([
        "EventTypes.user.human.added",
        "EventTypes.user.human.initialization.code.added",
        "EventTypes.user.human.initialization.code.added",
      ]);
      expect((await getV1(user.id)).state).toBe("USER_STATE_INITIAL");
    });

    it("sets a new email first, unverified", async () => {
      const user = await importUser("INITIAL");
      const email = uniqueEmail("resent");
      const res = expectOk(await call(V1.resendHumanInitialization, { userId: user.id, email }));
      expect(res.details).toMatchObject({ sequence: String(user.sequence + 2) });
      const human = (await getV1(user.id)).human as JsonObject;
      expect(human.email).toEqual({ email });
      expect((await eventKeys(user.id)).slice(-2)).toEqual(["EventTypes.user.human.email.changed", "EventTypes.user.human.initialization.code.added"]);
      // The new code goes out by mail to the new address, sealed in the outbox like the first one.
      const mails = await up.server.db.selectFrom("outbox").select(["kind", "recipient"]).where("user_id", "=", user.id).orderBy("created_at").execute();
      expect(mails.map((mail) => mail.kind)).toEqual(["init", "init"]);
      expect(mails.at(-1)!.recipient).toBe(email);
      const found = expectOk(await call(V1.listUsers, { queries: [{ emailQuery: { emailAddress: email, method: "TEXT_QUERY_METHOD_EQUALS_IGNORE_CASE" } }] }));
      expect((found.result as JsonObject[]).map((u) => u.id)).toEqual([user.id]);
    });

    it("refuses a user that is not in state INITIAL (COMMAND-2M9sd)", async () => {
      const user = await importUser("ACTIVE");
      const result = await call(V1.resendHumanInitialization, { userId: user.id });
      expectZitadelError(result, Code.FailedPrecondition, "COMMAND-2M9sd", "User is already initialized");
    });

    it("does not find an unknown user, or one of another organisation (COMMAND-2M9df)", async () => {
      const user = await importUser("INITIAL");
      for (const [id, options] of [
        ["no-such-user", undefined],
        [user.id, { token: otherOrg.token }],
      ] as const) {
        const result = await call(V1.resendHumanInitialization, { userId: id }, options);
        expectZitadelError(result, Code.NotFound, "COMMAND-2M9df", "User could not be found");
      }
    });

    it("refuses an invalid new email (EMAIL-599BI), changing nothing", async () => {
      const user = await importUser("INITIAL");
      const result = await call(V1.resendHumanInitialization, { userId: user.id, email: "Bob <bob@example.com>" });
      expectZitadelError(result, Code.InvalidArgument, "EMAIL-599BI", "Email is invalid");
      expect(await initCodes(user.id)).toHaveLength(1);
    });

    it("denies a caller without user.write (AUTH-5mWD2)", async () => {
      const user = await importUser("INITIAL");
      const result = await call(V1.resendHumanInitialization, { userId: user.id }, { token: viewer.token });
      expectZitadelError(result, Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
    });
  });

  describe("user v2 CreateUser", () => {
    const humanOf = (body: JsonObject) => {
      const { username, ...human } = body;
      return { username, human };
    };

    it("creates an active human in the given organisation", async () => {
      const body = v2AddBody();
      const res = expectOk(await call(V2.createUser, { organizationId: otherOrg.orgId, ...humanOf(body) }), 200);
      expect(Object.keys(res).sort()).toEqual(["creationDate", "id"]);
      expect(res.id).toMatch(USER_ID);
      expect(res.creationDate).toMatch(RFC3339);
      const read = expectOk(await call(V2.getUserByID, { userId: res.id as string })).user as JsonObject;
      expect(read).toMatchObject({ username: body.username, state: "USER_STATE_ACTIVE" });
      expect((read.details as JsonObject).resourceOwner).toBe(otherOrg.orgId);
      expect(await eventKeys(res.id as string)).toEqual([]); // another organisation's history is not in ours
    });

    it("returns the email code on request, defaults the username to the email, and takes a chosen id", async () => {
      const email = uniqueEmail("created");
      const userId = uniqueName("chosen-id");
      const res = expectOk(
        await call(V2.createUser, {
          organizationId: up.defaultOrgId,
          userId,
          human: { profile: { givenName: "Daisy", familyName: "Duck" }, email: { email, returnCode: {} } },
        }),
      );
      expect(res.id).toBe(userId);
      expect(res.emailCode).toMatch(/^[A-Z0-9]{6}$/);
      expect((await getV1(userId)).userName).toBe(email);
      const again = await call(V2.createUser, { organizationId: up.defaultOrgId, userId, ...humanOf(v2AddBody()) });
      expectZitadelError(again, Code.FailedPrecondition, "COMMAND-7yiox1isql", "Errors.User.AlreadyExisting");
    });

    it("refuses a username another user holds (V3-DKcYh)", async () => {
      const user = await importUser("ACTIVE");
      const result = await call(V2.createUser, { organizationId: up.defaultOrgId, ...humanOf(v2AddBody({ username: user.userName })) });
      expectZitadelError(result, Code.AlreadyExists, "V3-DKcYh", "User already exists");
    });

    it("validates the human as AddHumanUser does", async () => {
      const body = humanOf(v2AddBody({ profile: { givenName: " ", familyName: "Duck" } }));
      const result = await call(V2.createUser, { organizationId: up.defaultOrgId, ...body });
      expectZitadelError(result, Code.InvalidArgument, "USER-UCej2", "Given name in profile is empty");
    });

    it("denies a caller without user.write on the organisation (AUTHZ-HKJD33), and one without any role (AUTH-5mWD2)", async () => {
      const body = { organizationId: viewer.orgId, ...humanOf(v2AddBody()) };
      expectZitadelError(await call(V2.createUser, body, { token: viewer.token }), Code.PermissionDenied, "AUTHZ-HKJD33", "Errors.PermissionDenied");
      const other = { organizationId: up.defaultOrgId, ...humanOf(v2AddBody()) };
      expectZitadelError(await call(V2.createUser, other, { token: otherOrg.token }), Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
      const own = { organizationId: nobody.orgId, ...humanOf(v2AddBody()) };
      expectZitadelError(await call(V2.createUser, own, { token: nobody.token }), Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
    });

    it("refuses an organisation that does not exist (AUTH-Bs7Ds)", async () => {
      const result = await call(V2.createUser, { organizationId: "no-such-org", ...humanOf(v2AddBody()) });
      expectZitadelError(result, Code.PermissionDenied, "AUTH-Bs7Ds", "Organisation doesn't exist");
    });

    it("creates a machine user with a chosen id, active at once", async () => {
      const username = uniqueName("robot");
      const userId = uniqueName("robot-id");
      const res = expectOk(
        await call(V2.createUser, { organizationId: up.defaultOrgId, userId, username, machine: { name: "Robot", description: "builds things" } }),
      );
      expect(res).toEqual({ id: userId, creationDate: expect.stringMatching(RFC3339) });
      const read = expectOk(await call(V2.getUserByID, { userId })).user as JsonObject;
      expect(read).toMatchObject({ username, state: "USER_STATE_ACTIVE", machine: { name: "Robot", description: "builds things" } });
      expect(await eventKeys(userId)).toEqual(["EventTypes.user.machine.added"]);
      const again = await call(V2.createUser, { organizationId: up.defaultOrgId, userId, username: uniqueName("r"), machine: { name: "R" } });
      // ZITADEL's AddMachineCommand (internal/command/user_machine.go) refuses a taken id with its own key.
      expectZitadelError(again, Code.FailedPrecondition, "COMMAND-k2una", "Errors.User.AlreadyExisting");
      const taken = await call(V2.createUser, { organizationId: up.defaultOrgId, username: username.toUpperCase(), machine: { name: "R" } });
      expectZitadelError(taken, Code.AlreadyExists, "V3-DKcYh", "User already exists");
    });

    it("names a machine without a username after its id (AddMachineWithUsernameToIDFallback) and requires a name (PGV)", async () => {
      const noName = expectOk(await call(V2.createUser, { organizationId: up.defaultOrgId, machine: { name: "Robot" } }));
      expect((await getV1(String(noName.id))).userName).toBe(noName.id);
      const empty = await call(V2.createUser, { organizationId: up.defaultOrgId, username: uniqueName("r"), machine: { name: "" } });
      expectPgvError(empty, pgvEmbedded("CreateUserRequest.Machine", pgvLength("CreateUserRequest_Machine.Name", 1, 200)));
    });

    it("requires the organisation and a user type (PGV)", async () => {
      expectPgvError(await call(V2.createUser, { ...humanOf(v2AddBody()) }), pgvLength("CreateUserRequest.OrganizationId", 1, 200));
      expectPgvError(await call(V2.createUser, { organizationId: up.defaultOrgId }), "invalid CreateUserRequest.UserType: value is required");
      const noProfile = await call(V2.createUser, { organizationId: up.defaultOrgId, human: { email: { email: uniqueEmail() } } });
      expectPgvError(noProfile, pgvEmbedded("CreateUserRequest.Human", "invalid CreateUserRequest_Human.Profile: value is required"));
    });
  });
});
