/**
 * Session tokens as bearer tokens: ZITADEL's APIs accept the token CreateSession returns in
 * `Authorization: Bearer …` and act as the session's user, with the user's own roles and the
 * "self" rules (internal/authz/repository/eventsourcing/eventstore/token_verifier.go
 * verifySessionToken and checkAuthentication; internal/api/grpc/session/v2/integration_test/
 * session_test.go Test_ZITADEL_API_success, Test_ZITADEL_API_missing_authentication,
 * Test_ZITADEL_API_session_not_found, Test_ZITADEL_API_session_expired).
 *
 * Refused: a session past its expiration (AUTHZ-EGDo3), one that checked no user or no
 * authenticating factor (AUTHZ-Kl3p0), and — as invalid tokens, UNAUTHENTICATED — a deleted
 * session's token, a token SetSession replaced, and the token of a user no longer active.
 * (ZITADEL answers a deleted session's token with the NotFound of its session lookup; userport
 * answers it as the unknown token it has become, which a client can tell from a missing session.)
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { SESSIONS, TRANSPORTS, V1, V2 } from "./helpers/clients.js";
import { expectCode, expectErrorId, expectOk, expectZitadelError } from "./helpers/expectations.js";
import { bcryptHash, createApiCaller, type ApiCaller, useUserport, v1ImportBody, v2AddBody } from "./helpers/fixtures.js";

let clockOffset = 0;
afterEach(() => {
  clockOffset = 0;
});
const up = useUserport({ now: () => Date.now() + clockOffset });

const PASSWORD = "Imported-Passw0rd!";

/** A human user of `orgId` (the default organisation when undefined) with PASSWORD. */
async function importUser(orgId?: string): Promise<string> {
  const body = v1ImportBody({ hashedPassword: { value: bcryptHash(PASSWORD, 4) } });
  const headers: Record<string, string> = orgId === undefined ? {} : { "x-zitadel-orgid": orgId };
  return String(expectOk(await up.caller("rest").call(V1.importHumanUser, body, { headers })).userId);
}

/** A session made by the administrator (a login client), with the given checks and lifetime. */
async function createSession(checks: JsonObject, lifetime?: string) {
  const created = expectOk(await up.caller("rest").call(SESSIONS.createSession, { checks, ...(lifetime === undefined ? {} : { lifetime }) }));
  return { sessionId: String(created.sessionId), sessionToken: String(created.sessionToken) };
}

const signIn = async (userId: string, lifetime?: string) => createSession({ user: { userId }, password: { password: PASSWORD } }, lifetime);

describe("a session token as a bearer token", () => {
  let other: ApiCaller;
  let otherOrgUser: string;

  beforeAll(async () => {
    other = await createApiCaller(up, "ORG_OWNER");
    otherOrgUser = await importUser(other.orgId);
  });

  describe.each(TRANSPORTS)("over %s", (transport) => {
    const call = (method: Parameters<ReturnType<typeof up.caller>["call"]>[0], request: JsonObject, token: string) =>
      up.caller(transport).call(method, request, { token });

    it("acts as an ordinary user: reads itself (v2 self rule), but not another organisation's user nor its own organisation's", async () => {
      const userId = await importUser();
      const neighbour = await importUser();
      const { sessionToken } = await signIn(userId);

      const self = expectOk(await call(V2.getUserByID, { userId }, sessionToken));
      expect((self.user as JsonObject).userId).toBe(userId);
      for (const target of [otherOrgUser, neighbour]) {
        expectZitadelError(await call(V2.getUserByID, { userId: target }, sessionToken), Code.PermissionDenied, "AUTHZ-HKJD33", "Errors.PermissionDenied");
      }
      // v1 needs user.read in the organisation, which the user does not hold.
      expectZitadelError(await call(V1.getUserByID, { id: userId }, sessionToken), Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
      // ListUsers shows the caller itself and nobody else.
      const listed = expectOk(await call(V2.listUsers, {}, sessionToken));
      expect((listed.result as JsonObject[]).map((u) => u.userId)).toEqual([userId]);
    });

    it("acts with the user's roles: an IAM_OWNER's session reads and changes any organisation's users, recorded as that user", async () => {
      const ownerId = await importUser();
      const { id: instanceId } = await up.server.db.selectFrom("instances").select("id").executeTakeFirstOrThrow();
      await up.server.db.insertInto("members").values({ instance_id: instanceId, org_id: "", user_id: ownerId, roles: "IAM_OWNER" }).execute();
      const { sessionToken } = await signIn(ownerId);

      const read = expectOk(await call(V2.getUserByID, { userId: otherOrgUser }, sessionToken));
      expect((read.user as JsonObject).userId).toBe(otherOrgUser);
      const v1 = await up.caller(transport).call(V1.getUserByID, { id: otherOrgUser }, { token: sessionToken, headers: { "x-zitadel-orgid": other.orgId } });
      expect((expectOk(v1).user as JsonObject).id).toBe(otherOrgUser);
      const created = expectOk(await up.caller(transport).call(V2.addHumanUser, v2AddBody({ organization: { orgId: other.orgId } }), { token: sessionToken }));
      const creator = await up.server.db.selectFrom("events").select("creator").where("aggregate_id", "=", String(created.userId)).executeTakeFirstOrThrow();
      expect(creator.creator).toBe(ownerId);
      // session.write (IAM_OWNER): it may sign users in itself.
      expectOk(await call(SESSIONS.createSession, { checks: { user: { userId: otherOrgUser } } }, sessionToken));
    });
  });

  describe.each(["grpc-js", "connect-json-h1", "grpc-web", "rest"] as const)("refusals over %s", (transport) => {
    const getSelf = (userId: string, token: string) => up.caller(transport).call(V2.getUserByID, { userId }, { token });

    it("refuses an expired session's token with AUTHZ-EGDo3", async () => {
      const userId = await importUser();
      const { sessionToken } = await signIn(userId, "60s");
      expectOk(await getSelf(userId, sessionToken));
      clockOffset = 2 * 60_000;
      expectZitadelError(await getSelf(userId, sessionToken), Code.PermissionDenied, "AUTHZ-EGDo3", "session expired");
    });

    it("refuses the token of a session without a checked user or authenticating factor with AUTHZ-Kl3p0", async () => {
      const userId = await importUser();
      const empty = await createSession({});
      const userOnly = await createSession({ user: { userId } });
      for (const { sessionToken } of [empty, userOnly]) {
        expectZitadelError(await getSelf(userId, sessionToken), Code.PermissionDenied, "AUTHZ-Kl3p0", "authentication required");
      }
      // The password check makes it a sign-in: SetSession's new token works.
      const set = expectOk(await up.caller("rest").call(SESSIONS.setSession, { sessionId: userOnly.sessionId, checks: { password: { password: PASSWORD } } }));
      expectOk(await getSelf(userId, String(set.sessionToken)));
      // The token it replaced is no token any more.
      expectErrorId(await getSelf(userId, userOnly.sessionToken), Code.Unauthenticated, "AUTH-Ws8Fe");
    });

    it("refuses a deleted session's token as an invalid token", async () => {
      const userId = await importUser();
      const { sessionId, sessionToken } = await signIn(userId);
      expectOk(await getSelf(userId, sessionToken));
      expectOk(await up.caller("rest").call(SESSIONS.deleteSession, { sessionId, sessionToken }));
      expectErrorId(await getSelf(userId, sessionToken), Code.Unauthenticated, "AUTH-Ws8Fe");
    });

    it("refuses the token of a user locked since, as for personal access tokens", async () => {
      const userId = await importUser();
      const { sessionToken } = await signIn(userId);
      expectOk(await getSelf(userId, sessionToken));
      expectOk(await up.caller("rest").call(V2.lockUser, { userId }));
      expectCode(await getSelf(userId, sessionToken), Code.Unauthenticated);
    });
  });
});
