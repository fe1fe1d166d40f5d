/**
 * Users, roles and the wire shape of reads, as ZITADEL answers them, over every transport:
 * - v2 CreateUser gives a machine without a username its id as username
 *   (internal/api/grpc/user/v2/machine.go: AddMachineWithUsernameToIDFallback);
 * - v1 AddMachineUser takes a caller-chosen `user_id` and refuses one already taken
 *   (internal/command/user_machine.go AddMachineCommand: COMMAND-k2una);
 * - every organisation role of ZITADEL's default role set (cmd/defaults.yaml
 *   InternalAuthZ.RolePermissionMappings) can be granted, with its permissions;
 * - v2 reads leave the human's own userId, state, username and login names empty
 *   (internal/api/grpc/user/v2/query.go humanToPb), sessions without a user agent have none
 *   (internal/api/grpc/session/v2 userAgentToPb), and a password change leaves the details of user
 *   reads as they were (internal/query/projection/user.go reduceHumanPasswordChanged).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import SQLite from "better-sqlite3";
import { Kysely, Migrator, SqliteDialect } from "kysely";
import { beforeAll, describe, expect, it } from "vitest";
import { migrations } from "../src/store/migrations.js";
import { type CallOptions, SESSIONS, TRANSPORTS, type UnaryMethod, V1, V2 } from "./helpers/clients.js";
import { expectOk, expectPgvError, expectZitadelError, pgvLength } from "./helpers/expectations.js";
import { type ApiCaller, bcryptHash, createApiCaller, RFC3339, uniqueName, USER_ID, useUserport, v1ImportBody, v2AddBody } from "./helpers/fixtures.js";

const up = useUserport();
const PASSWORD = "Old-Passw0rd!";

/** The org roles of ZITADEL's default role set (cmd/defaults.yaml InternalAuthZ.RolePermissionMappings). */
const ZITADEL_ORG_ROLES = [
  "ORG_OWNER",
  "ORG_USER_MANAGER",
  "ORG_OWNER_VIEWER",
  "ORG_SETTINGS_MANAGER",
  "ORG_USER_PERMISSION_EDITOR",
  "ORG_PROJECT_PERMISSION_EDITOR",
  "ORG_PROJECT_CREATOR",
  "ORG_ADMIN_IMPERSONATOR",
  "ORG_END_USER_IMPERSONATOR",
  "ORG_USER_SELF_MANAGER",
];

describe.each(TRANSPORTS)("over %s", (transport) => {
  const call = (method: UnaryMethod, request: JsonObject, options?: CallOptions) => up.caller(transport).call(method, request, options);
  const readV2 = async (userId: string) => expectOk(await call(V2.getUserByID, { userId }));
  const readV1 = async (id: string) => expectOk(await call(V1.getUserByID, { id })).user as JsonObject;

  describe("v2 CreateUser of a machine without a username", () => {
    it("uses the generated id as the username, as ZITADEL's AddMachineWithUsernameToIDFallback", async () => {
      const res = expectOk(await call(V2.createUser, { organizationId: up.defaultOrgId, machine: { name: "Robot" } }));
      expect(res.id).toMatch(USER_ID);
      const { user } = await readV2(String(res.id));
      expect(user).toMatchObject({ userId: res.id, username: res.id, preferredLoginName: res.id, machine: { name: "Robot" } });
      const events = await up.server.db.selectFrom("events").select(["type", "payload"]).where("aggregate_id", "=", String(res.id)).execute();
      expect(events.map((e) => [e.type, JSON.parse(e.payload).userName])).toEqual([["user.machine.added", res.id]]);
    });

    it("uses a caller-chosen id as the username; a username set but empty is still PGV's error", async () => {
      const userId = uniqueName("robot-id");
      expectOk(await call(V2.createUser, { organizationId: up.defaultOrgId, userId, machine: { name: "Robot" } }));
      expect((await readV1(userId)).userName).toBe(userId);
      const empty = await call(V2.createUser, { organizationId: up.defaultOrgId, username: "", machine: { name: "Robot" } });
      expectPgvError(empty, pgvLength("CreateUserRequest.Username", 1, 200));
    });
  });

  describe("v1 AddMachineUser with a chosen user_id", () => {
    it("creates the user under that id, and refuses it once taken (COMMAND-k2una) without writing anything", async () => {
      const userId = uniqueName("svc-id");
      const userName = uniqueName("svc");
      const res = expectOk(await call(V1.addMachineUser, { userName, name: "Service", userId }));
      expect(res.userId).toBe(userId);
      expect(res.details).toMatchObject({ sequence: "1", resourceOwner: up.defaultOrgId });
      expect(await readV1(userId)).toMatchObject({ id: userId, userName, machine: { name: "Service" } });

      const other = uniqueName("svc");
      const again = await call(V1.addMachineUser, { userName: other, name: "Other", userId });
      expectZitadelError(again, Code.FailedPrecondition, "COMMAND-k2una", "Errors.User.AlreadyExisting");
      // The username of the refused request is still free, and the user keeps its one event.
      expect(await up.eventTypes(userId)).toEqual(["user.machine.added"]);
      expect(expectOk(await call(V1.addMachineUser, { userName: other, name: "Other" })).userId).toMatch(USER_ID);
    });

    it("refuses an empty user_id (PGV min_len 1) and one over 200 characters", async () => {
      const empty = await call(V1.addMachineUser, { userName: uniqueName("svc"), name: "S", userId: "" });
      expectPgvError(empty, pgvLength("AddMachineUserRequest.UserId", 1, 200));
      const long = await call(V1.addMachineUser, { userName: uniqueName("svc"), name: "S", userId: "1".repeat(201) });
      expectPgvError(long, pgvLength("AddMachineUserRequest.UserId", 1, 200));
    });

    it("takes the id of a removed user again, its history continuing", async () => {
      const userId = uniqueName("reused-id");
      expectOk(await call(V1.addMachineUser, { userName: uniqueName("svc"), name: "First", userId }));
      expectOk(await call(V1.removeUser, { id: userId }));
      const res = expectOk(await call(V1.addMachineUser, { userName: uniqueName("svc"), name: "Second", userId }));
      expect(res.details).toMatchObject({ sequence: "3" });
      expect(await up.eventTypes(userId)).toEqual(["user.machine.added", "user.removed", "user.machine.added"]);
    });
  });

  describe("ZITADEL's default organisation roles", () => {
    let owner: ApiCaller;
    beforeAll(async () => {
      owner = await createApiCaller(up, "ORG_OWNER");
    });

    it("grants every organisation role of the default set with AddOrgMember and UpdateOrgMember", async () => {
      const member = await createApiCaller(up, undefined, owner.orgId);
      expectOk(await call(V1.addOrgMember, { userId: member.userId, roles: ZITADEL_ORG_ROLES }, { token: owner.token }));
      const listed = expectOk(await call(V1.listOrgMembers, { queries: [{ userIdQuery: { userId: member.userId } }] }, { token: owner.token }));
      expect(listed.result).toEqual([expect.objectContaining({ userId: member.userId, roles: ZITADEL_ORG_ROLES })]);
      const impersonators = ["ORG_ADMIN_IMPERSONATOR", "ORG_END_USER_IMPERSONATOR", "ORG_USER_SELF_MANAGER"];
      expectOk(await call(V1.updateOrgMember, { userId: member.userId, roles: impersonators }, { token: owner.token }));
      const updated = expectOk(await call(V1.listOrgMembers, { queries: [{ userIdQuery: { userId: member.userId } }] }, { token: owner.token }));
      expect(updated.result).toEqual([expect.objectContaining({ roles: impersonators })]);
    });

    it("gives each role ZITADEL's permissions: policy.read for the self manager and project creator, user.read for the permission editors", async () => {
      const holder = async (role: string) => (await createApiCaller(up, role, owner.orgId)).token;
      const selfManager = await holder("ORG_USER_SELF_MANAGER");
      expectOk(await call(V1.getDomainPolicy, {}, { token: selfManager }));
      expectZitadelError(await call(V1.listUsers, {}, { token: selfManager }), Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
      const projectCreator = await holder("ORG_PROJECT_CREATOR");
      expectOk(await call(V1.getDomainPolicy, {}, { token: projectCreator }));
      const projectEditor = await holder("ORG_PROJECT_PERMISSION_EDITOR");
      expect(((expectOk(await call(V1.listUsers, {}, { token: projectEditor })).result as JsonObject[]) ?? []).length).toBeGreaterThan(0);
      expectOk(await call(V1.getDomainPolicy, {}, { token: await holder("ORG_USER_PERMISSION_EDITOR") }));
      // Impersonation is not served: the impersonator roles open none of userport's calls.
      for (const role of ["ORG_ADMIN_IMPERSONATOR", "ORG_END_USER_IMPERSONATOR"]) {
        const token = await holder(role);
        expectZitadelError(await call(V1.getDomainPolicy, {}, { token }), Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
      }
    });
  });

  describe("the wire shape of reads", () => {
    it("v2 GetUserByID and ListUsers leave the human's own userId, state, username and login names empty", async () => {
      const body = v2AddBody();
      const { userId } = expectOk(await call(V2.addHumanUser, body));
      const { user } = (await readV2(String(userId))) as { user: JsonObject };
      expect(user).toMatchObject({ userId, state: "USER_STATE_ACTIVE", username: body.username, loginNames: [body.username] });
      const human = user.human as JsonObject;
      expect(human).toMatchObject({ profile: { givenName: "Donald" } });
      for (const key of ["userId", "state", "username", "loginNames", "preferredLoginName"]) expect(human).not.toHaveProperty(key);
      const listed = expectOk(await call(V2.listUsers, { queries: [{ inUserIdsQuery: { userIds: [String(userId)] } }] }));
      const [found] = listed.result as JsonObject[];
      expect(found).toMatchObject({ userId, username: body.username });
      for (const key of ["userId", "state", "username", "loginNames", "preferredLoginName"]) {
        expect(found!.human as JsonObject).not.toHaveProperty(key);
      }
    });

    it("a session created without a user agent has none; one created with it keeps it", async () => {
      const { userId } = expectOk(await call(V1.importHumanUser, v1ImportBody({ hashedPassword: { value: bcryptHash(PASSWORD) } })));
      const bare = expectOk(await call(SESSIONS.createSession, { checks: { user: { userId } } }));
      const read = expectOk(await call(SESSIONS.getSession, { sessionId: bare.sessionId })).session as JsonObject;
      expect(read.id).toBe(bare.sessionId);
      expect(read).not.toHaveProperty("userAgent");
      const withAgent = expectOk(await call(SESSIONS.createSession, { checks: { user: { userId } }, userAgent: { description: "cli" } }));
      const agent = expectOk(await call(SESSIONS.getSession, { sessionId: withAgent.sessionId })).session as JsonObject;
      expect(agent.userAgent).toEqual({ description: "cli" });
    });

    it("a password change (v1 and v2) leaves the sequence and change date of user reads, and answers with its own", async () => {
      const { userId } = expectOk(await call(V1.importHumanUser, v1ImportBody({ hashedPassword: { value: bcryptHash(PASSWORD) } })));
      const id = String(userId);
      const before = (await readV1(id)).details as JsonObject;
      const beforeV2 = (await readV2(id)).details as JsonObject;
      expect(beforeV2).toMatchObject({ sequence: before.sequence, changeDate: before.changeDate });
      const eventsBefore = (await up.eventTypes(id)).length;
      expect(Number(before.sequence)).toBe(eventsBefore);

      const v1 = expectOk(await call(V1.setHumanPassword, { userId: id, password: "N3w-Passw0rd!", noChangeRequired: true }));
      expect((v1.details as JsonObject).sequence).toBe(String(eventsBefore + 1));
      const v2 = expectOk(await call(V2.setPassword, { userId: id, newPassword: { password: "N3w-Passw0rd!2" }, currentPassword: "N3w-Passw0rd!" }));
      expect((v2.details as JsonObject).sequence).toBe(String(eventsBefore + 2));
      expect((v2.details as JsonObject).changeDate).toMatch(RFC3339);
      expect((await up.eventTypes(id)).slice(-2)).toEqual(["user.human.password.changed", "user.human.password.changed"]);

      const after = await readV1(id);
      expect(after.details).toEqual(before);
      expect((after.human as JsonObject).passwordChanged).toMatch(RFC3339);
      const afterV2 = await readV2(id);
      expect(afterV2.details).toEqual(beforeV2);
      expect((afterV2.user as JsonObject).details).toEqual((await readV2(id)).details);
      const listed = expectOk(
        await call(V1.listUsers, { queries: [{ userNameQuery: { userName: String(after.userName), method: "TEXT_QUERY_METHOD_EQUALS" } }] }),
      );
      expect((listed.result as JsonObject[])[0]!.details).toEqual(before);

      // A change ZITADEL's projection dates the user by (a lock) moves the read details again.
      const locked = expectOk(await call(V1.lockUser, { id }));
      expect((locked.details as JsonObject).sequence).toBe(String(eventsBefore + 3));
      expect(((await readV1(id)).details as JsonObject).sequence).toBe(String(eventsBefore + 3));
    });
  });
});

describe("migration 0013_user_read_details", () => {
  it("dates existing users by their last event ZITADEL's users projection reduces, not by a later password change", async () => {
    const dir = mkdtempSync(join(tmpdir(), "userport-migration-"));
    const raw = new SQLite(join(dir, "userport.sqlite"));
    const db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: raw }) });
    try {
      const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations("sqlite") } });
      expect((await migrator.migrateTo("0010_otp_failed_attempts")).error).toBeUndefined();
      const insertUser = raw.prepare(
        `INSERT INTO users (instance_id, id, org_id, type, state, username, given_name, family_name, nick_name, display_name,
           preferred_language, gender, email, email_verified, phone, phone_verified, password_hash, password_change_required,
           password_changed_at, machine_name, machine_description, created_at, changed_at, sequence, username_lower,
           given_name_lower, family_name_lower, nick_name_lower, display_name_lower, email_lower)
         VALUES ('i', ?, 'o', 'human', 'ACTIVE', ?, 'G', 'F', '', 'G F', 'und', 0, 'e@x.org', 1, '', 0, NULL, 0, NULL, '', '',
           100, ?, ?, ?, 'g', 'f', '', 'g f', 'e@x.org')`,
      );
      insertUser.run("changed", "changed", 300, 3, "changed");
      insertUser.run("bare", "bare", 100, 1, "bare");
      const insertEvent = raw.prepare(
        "INSERT INTO events (instance_id, aggregate_type, aggregate_id, sequence, type, payload, creator, created_at) VALUES ('i', 'user', ?, ?, ?, '{}', 'x', ?)",
      );
      insertEvent.run("changed", 1, "user.human.added", 100);
      insertEvent.run("changed", 2, "user.human.email.verified", 200);
      insertEvent.run("changed", 3, "user.human.password.changed", 300);
      expect((await migrator.migrateToLatest()).error).toBeUndefined();

      const row = (id: string) => raw.prepare("SELECT sequence, changed_at, details_sequence, details_changed_at FROM users WHERE id = ?").get(id);
      expect(row("changed")).toEqual({ sequence: 3, changed_at: 300, details_sequence: 2, details_changed_at: 200 });
      // No events (written around the store): reads fall back to the user's own sequence and date.
      expect(row("bare")).toEqual({ sequence: 1, changed_at: 100, details_sequence: null, details_changed_at: null });
    } finally {
      await db.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
