/**
 * Session service v2 — CreateSession, GetSession, SetSession, DeleteSession, ListSessions — with
 * user and password checks: ZITADEL's errors (ZITADEL's internal/command/session.go, user_human_password.go), the failed-attempt
 * count, the lockout policy, and the rehash of an imported hash on the first sign-in.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { type CallResult, SESSIONS, type TransportName, V1, V2 } from "./helpers/clients.js";
import { expectCode, expectNotLeaked, expectOk, expectPgvError, expectZitadelError, pgvEmbedded, pgvLength } from "./helpers/expectations.js";
import { bcryptHash, RFC3339, seedScopedCaller, type SeededCaller, uniqueName, useUserport, v1ImportBody } from "./helpers/fixtures.js";

const up = useUserport();
const PASSWORD = "Imported-Passw0rd!";

/** The transports every write is tested over; gRPC-Web joins for the reads. */
const WRITERS = ["grpc-js", "connect-json-h1", "rest"] as const satisfies readonly TransportName[];
const READERS = [...WRITERS, "grpc-web"] as const satisfies readonly TransportName[];

async function importUser(extra: JsonObject = {}, withPassword = true): Promise<{ userId: string; userName: string }> {
  const body = v1ImportBody({ ...(withPassword ? { hashedPassword: { value: bcryptHash(PASSWORD) } } : {}), ...extra });
  const { userId } = expectOk(await up.caller("rest").call(V1.importHumanUser, body));
  return { userId: String(userId), userName: String(body.userName) };
}

async function storedUser(userId: string) {
  return up.server.db.selectFrom("users").select(["password_hash", "state", "password_failed_attempts"]).where("id", "=", userId).executeTakeFirstOrThrow();
}

function expectWrongPassword(result: CallResult, failedAttempts: number): void {
  const error = expectCode(result, Code.InvalidArgument);
  expect(error.message).toBe("Password is invalid (COMMAND-3M0fs)");
  // ZITADEL answers a failed check with a CredentialsCheckError instead of the ErrorDetail.
  expect(error.detailTypes).toEqual(["zitadel.v1.CredentialsCheckError"]);
  expect(error.credentialChecks).toEqual([{ id: "COMMAND-3M0fs", message: "Password is invalid", failedAttempts }]);
}

describe.each(WRITERS)("CreateSession over %s", (transport) => {
  const call = (request: JsonObject, token?: string) => up.caller(transport).call(SESSIONS.createSession, request, token === undefined ? {} : { token });

  it("signs an imported user in by login name, rehashes the bcrypt-10 hash to the configured cost, and reads the session back", async () => {
    const { userId, userName } = await importUser();
    const before = await storedUser(userId);
    expect(before.password_hash).toMatch(/^\$2a\$10\$/);

    const result = await call({ checks: { user: { loginName: userName.toUpperCase() }, password: { password: PASSWORD } } });
    const created = expectOk(result, 201);
    expect(created.sessionId).toMatch(/^\d+$/);
    expect(String(created.sessionToken).length).toBeGreaterThan(20);
    expect(created.details).toMatchObject({ sequence: expect.any(String), changeDate: expect.stringMatching(RFC3339) });

    // The stored hash is now bcrypt at the server's cost (4 in tests), written with the check.
    const after = await storedUser(userId);
    expect(after.password_hash).toMatch(/^\$2b\$04\$/);
    expect(after.password_failed_attempts).toBe(0);
    expect((await up.eventTypes(userId)).slice(-2)).toEqual(["user.human.password.hash.updated", "user.human.password.check.succeeded"]);
    expect(await up.eventTypes(String(created.sessionId))).toEqual(["session.added", "session.user.checked", "session.password.checked", "session.token.set"]);
    // The token is stored only as a digest.
    const row = await up.server.db.selectFrom("sessions").select("token_digest").where("id", "=", String(created.sessionId)).executeTakeFirstOrThrow();
    expect(row.token_digest).not.toContain(String(created.sessionToken));
    expectNotLeaked(result, PASSWORD, before.password_hash!, after.password_hash!);

    const read = expectOk(await up.caller(transport).call(SESSIONS.getSession, { sessionId: created.sessionId, sessionToken: created.sessionToken }));
    const session = read.session as JsonObject;
    expect(session.id).toBe(created.sessionId);
    expect(session.factors).toEqual({
      user: {
        verifiedAt: expect.stringMatching(RFC3339),
        id: userId,
        loginName: userName,
        displayName: "Minnie Mouse",
        organizationId: up.defaultOrgId,
      },
      password: { verifiedAt: expect.stringMatching(RFC3339) },
    });
    expectNotLeaked(result, PASSWORD);

    // Signing in again keeps the upgraded hash as it is.
    expectOk(await call({ checks: { user: { userId }, password: { password: PASSWORD } } }));
    expect((await storedUser(userId)).password_hash).toBe(after.password_hash);
    expect((await up.eventTypes(userId)).at(-1)).toBe("user.human.password.check.succeeded");
  });

  it("answers a wrong password with COMMAND-3M0fs and the failed attempts so far, records the failure and creates no session", async () => {
    const { userId } = await importUser();
    const sessionsBefore = await up.server.db.selectFrom("sessions").select("id").execute();
    expectWrongPassword(await call({ checks: { user: { userId }, password: { password: "wrong-Passw0rd!" } } }), 1);
    expectWrongPassword(await call({ checks: { user: { userId }, password: { password: "Wrong-again-1!" } } }), 2);
    expect((await storedUser(userId)).password_failed_attempts).toBe(2);
    expect((await up.eventTypes(userId)).slice(-2)).toEqual(["user.human.password.check.failed", "user.human.password.check.failed"]);
    // Lockout is off by default, as in ZITADEL: the user stays active.
    expect((await storedUser(userId)).state).toBe("ACTIVE");
    expect(await up.server.db.selectFrom("sessions").select("id").execute()).toHaveLength(sessionsBefore.length);
    // A success resets the count.
    expectOk(await call({ checks: { user: { userId }, password: { password: PASSWORD } } }));
    expect((await storedUser(userId)).password_failed_attempts).toBe(0);
    expectWrongPassword(await call({ checks: { user: { userId }, password: { password: "wrong-Passw0rd!" } } }), 1);
  });

  it("answers COMMAND-WEf3t for a user without a password", async () => {
    const { userId } = await importUser({ requestPasswordlessRegistration: true }, false);
    expectZitadelError(
      await call({ checks: { user: { userId }, password: { password: PASSWORD } } }),
      Code.FailedPrecondition,
      "COMMAND-WEf3t",
      "User has not set a password",
    );
  });

  it("answers an unknown user (by id or login name) with QUERY-Dfbg2, after the same password verification", async () => {
    const unknown: JsonObject[] = [{ userId: "424242424242424242" }, { loginName: uniqueName("nobody") }];
    for (const user of unknown) {
      expectZitadelError(await call({ checks: { user, password: { password: PASSWORD } } }), Code.NotFound, "QUERY-Dfbg2", "User could not be found");
    }
  });

  it("refuses inactive and locked users with SESSION-Gj4ko, and initial users at the password check with COMMAND-M9dse", async () => {
    const inactive = await importUser();
    expectOk(await up.caller("rest").call(V1.deactivateUser, { id: inactive.userId }));
    const locked = await importUser();
    expectOk(await up.caller("rest").call(V1.lockUser, { id: locked.userId }));
    for (const { userId } of [inactive, locked]) {
      expectZitadelError(
        await call({ checks: { user: { userId }, password: { password: PASSWORD } } }),
        Code.FailedPrecondition,
        "SESSION-Gj4ko",
        "User is not active",
      );
    }
    // An unverified email makes a v1 import INITIAL (ZITADEL's internal/command/user_human.go ImportHuman).
    const initial = await importUser({ email: { email: `${uniqueName("init")}@example.com`, isEmailVerified: false } });
    expect((await storedUser(initial.userId)).state).toBe("INITIAL");
    expectZitadelError(
      await call({ checks: { user: { userId: initial.userId }, password: { password: PASSWORD } } }),
      Code.FailedPrecondition,
      "COMMAND-M9dse",
      "User is not yet initialized",
    );
  });

  it("needs a user check before a password check (COMMAND-Sfw3f)", async () => {
    expectZitadelError(await call({ checks: { password: { password: PASSWORD } } }), Code.FailedPrecondition, "COMMAND-Sfw3f", "User ID missing");
  });

  it("applies PGV's rules to the checks", async () => {
    expectPgvError(
      await call({ checks: { user: { userId: "" } } }),
      pgvEmbedded("CreateSessionRequest.Checks", pgvEmbedded("Checks.User", pgvLength("CheckUser.UserId", 1, 200))),
    );
    expectPgvError(
      await call({ checks: { user: { userId: "1" }, totp: { code: "12345" } } }),
      pgvEmbedded("CreateSessionRequest.Checks", pgvEmbedded("Checks.Totp", "invalid CheckTOTP.Code: value length must be 6 runes")),
    );
    expectPgvError(await call({ lifetime: "0s" }), "invalid CreateSessionRequest.Lifetime: value must be greater than 0s");
  });

  it("refuses callers without session.write (AUTHZ-HKJD33)", async () => {
    const viewer = await seedScopedCaller(up.server, "ORG_OWNER");
    const { userId } = await importUser();
    expectZitadelError(
      await call({ checks: { user: { userId }, password: { password: PASSWORD } } }, viewer.token),
      Code.PermissionDenied,
      "AUTHZ-HKJD33",
      "Errors.PermissionDenied",
    );
    // Nothing was checked: no failure and no success was recorded.
    expect((await up.eventTypes(userId)).at(-1)).not.toMatch(/password\.check/);
  });
});

describe("the lockout policy", () => {
  const locking = useUserport({ maxPasswordAttempts: 2 });

  it.each(WRITERS)("locks the user on the failure that reaches the maximum, in the same transaction (%s)", async (transport) => {
    const body = v1ImportBody({ hashedPassword: { value: bcryptHash(PASSWORD) } });
    const { userId } = expectOk(await locking.caller("rest").call(V1.importHumanUser, body));
    const call = (password: string) => locking.caller(transport).call(SESSIONS.createSession, { checks: { user: { userId }, password: { password } } });
    expectWrongPassword(await call("wrong-Passw0rd!"), 1);
    expectWrongPassword(await call("wrong-Passw0rd!"), 2);
    expect((await locking.eventTypes(String(userId))).slice(-2)).toEqual(["user.human.password.check.failed", "user.locked"]);
    const user = expectOk(await locking.caller(transport).call(V2.getUserByID, { userId }));
    expect((user.user as JsonObject).state).toBe("USER_STATE_LOCKED");
    // Even the right password no longer signs in; unlocking lets it in again.
    expectZitadelError(await call(PASSWORD), Code.FailedPrecondition, "SESSION-Gj4ko", "User is not active");
    expectOk(await locking.caller("rest").call(V1.unlockUser, { id: userId }));
    expectOk(await call(PASSWORD));
  });

  // ZITADEL's password write model sets PasswordCheckFailedCount to 0 on user.unlocked.
  it.each([
    ["v1 UnlockUser over grpc-js", "grpc-js", (userId: string) => [V1.unlockUser, { id: userId }] as const],
    ["v2 UnlockUser over REST", "rest", (userId: string) => [V2.unlockUser, { userId }] as const],
    ["v2 UnlockUser over Connect", "connect-json-h1", (userId: string) => [V2.unlockUser, { userId }] as const],
  ] as const)("unlocking resets the failed password checks: the next wrong password counts 1 and does not lock (%s)", async (_, transport, unlock) => {
    const body = v1ImportBody({ hashedPassword: { value: bcryptHash(PASSWORD) } });
    const userId = String(expectOk(await locking.caller("rest").call(V1.importHumanUser, body)).userId);
    const wrong = () => locking.caller(transport).call(SESSIONS.createSession, { checks: { user: { userId }, password: { password: "wrong-Passw0rd!" } } });
    const state = async () => (expectOk(await locking.caller(transport).call(V2.getUserByID, { userId })).user as JsonObject).state;
    expectWrongPassword(await wrong(), 1);
    expectWrongPassword(await wrong(), 2);
    expect(await state()).toBe("USER_STATE_LOCKED");

    const [method, request] = unlock(userId);
    expectOk(await locking.caller(transport).call(method, request));
    const unlocked = await locking.server.db
      .selectFrom("users")
      .select(["state", "password_failed_attempts"])
      .where("id", "=", userId)
      .executeTakeFirstOrThrow();
    expect(unlocked).toEqual({ state: "ACTIVE", password_failed_attempts: 0 });

    expectWrongPassword(await wrong(), 1);
    expect(await state()).toBe("USER_STATE_ACTIVE");
    // The count goes on from there: the maximum locks again, not earlier.
    expectWrongPassword(await wrong(), 2);
    expect(await state()).toBe("USER_STATE_LOCKED");
  });
});

describe("reading and ending sessions", () => {
  let created: { sessionId: string; sessionToken: string; userId: string };
  let stranger: SeededCaller;
  let orgOwner: SeededCaller;

  beforeAll(async () => {
    const { userId } = await importUser();
    const result = expectOk(
      await up.caller("rest").call(SESSIONS.createSession, {
        checks: { user: { userId }, password: { password: PASSWORD } },
        metadata: { device: Buffer.from("laptop").toString("base64") },
        userAgent: { fingerprintId: "fp-1", description: "test agent" },
        lifetime: "3600s",
      }),
    );
    created = { sessionId: String(result.sessionId), sessionToken: String(result.sessionToken), userId };
    stranger = await seedScopedCaller(up.server, undefined);
    orgOwner = await seedScopedCaller(up.server, "ORG_OWNER", up.defaultOrgId);
  });

  it.each(READERS)("GetSession: the creator reads without the token, others with it (%s)", async (transport) => {
    const get = (request: JsonObject, token?: string) => up.caller(transport).call(SESSIONS.getSession, request, token === undefined ? {} : { token });
    const own = expectOk(await get({ sessionId: created.sessionId }));
    const session = own.session as JsonObject;
    expect(session.metadata).toEqual({ device: Buffer.from("laptop").toString("base64") });
    expect(session.userAgent).toEqual({ fingerprintId: "fp-1", description: "test agent" });
    expect(session.expirationDate).toMatch(RFC3339);
    expectOk(await get({ sessionId: created.sessionId, sessionToken: created.sessionToken }, stranger.token));
    // session.read on the user's organisation is enough, too.
    expectOk(await get({ sessionId: created.sessionId }, orgOwner.token));
    expectZitadelError(await get({ sessionId: created.sessionId }, stranger.token), Code.PermissionDenied, "AUTHZ-HKJD33", "Errors.PermissionDenied");
    expectZitadelError(
      await get({ sessionId: created.sessionId, sessionToken: "not-the-token" }, stranger.token),
      Code.PermissionDenied,
      "COMMAND-sGr42",
      "Errors.Session.Token.Invalid",
    );
    expectZitadelError(await get({ sessionId: "4242" }), Code.NotFound, "QUERY-SFeaa", "Session does not exist");
    expectPgvError(await get({ sessionId: "" }), pgvLength("GetSessionRequest.SessionId", 1, 200));
  });

  it.each(READERS)("ListSessions finds the session by user id and by id (%s)", async (transport) => {
    const list = expectOk(await up.caller(transport).call(SESSIONS.listSessions, { queries: [{ userIdQuery: { id: created.userId } }] }));
    expect(list.details).toMatchObject({ totalResult: "1" });
    expect((list.sessions as JsonObject[]).map((s) => s.id)).toEqual([created.sessionId]);
    const none = expectOk(
      await up.caller(transport).call(SESSIONS.listSessions, { queries: [{ idsQuery: { ids: [created.sessionId] } }] }, { token: stranger.token }),
    );
    expect(none.sessions ?? []).toEqual([]);
  });

  it.each(WRITERS)("SetSession checks the password again and replaces the token (%s)", async (transport) => {
    const { userId } = await importUser();
    const first = expectOk(await up.caller("rest").call(SESSIONS.createSession, { checks: { user: { userId } } }));
    const read = expectOk(await up.caller("rest").call(SESSIONS.getSession, { sessionId: first.sessionId }));
    expect((read.session as JsonObject).factors).not.toHaveProperty("password");
    expectWrongPassword(
      await up.caller(transport).call(SESSIONS.setSession, { sessionId: first.sessionId, checks: { password: { password: "nope-Passw0rd1" } } }),
      1,
    );
    const set = expectOk(await up.caller(transport).call(SESSIONS.setSession, { sessionId: first.sessionId, checks: { password: { password: PASSWORD } } }));
    expect(set.sessionToken).not.toBe(first.sessionToken);
    const again = expectOk(
      await up.caller("rest").call(SESSIONS.getSession, { sessionId: first.sessionId, sessionToken: set.sessionToken }, { token: stranger.token }),
    );
    expect((again.session as JsonObject).factors).toHaveProperty("password.verifiedAt");
    expectZitadelError(
      await up.caller("rest").call(SESSIONS.getSession, { sessionId: first.sessionId, sessionToken: first.sessionToken }, { token: stranger.token }),
      Code.PermissionDenied,
      "COMMAND-sGr42",
      "Errors.Session.Token.Invalid",
    );
  });

  it.each(WRITERS)("DeleteSession ends the session; it is not found afterwards (%s)", async (transport) => {
    const { userId } = await importUser();
    const session = expectOk(await up.caller("rest").call(SESSIONS.createSession, { checks: { user: { userId }, password: { password: PASSWORD } } }));
    expectZitadelError(
      await up.caller(transport).call(SESSIONS.deleteSession, { sessionId: session.sessionId }, { token: stranger.token }),
      Code.PermissionDenied,
      "AUTHZ-HKJD33",
      "Errors.PermissionDenied",
    );
    const deleted = expectOk(
      await up.caller(transport).call(SESSIONS.deleteSession, { sessionId: session.sessionId, sessionToken: session.sessionToken }, { token: stranger.token }),
    );
    expect(deleted.details).toMatchObject({ changeDate: expect.stringMatching(RFC3339) });
    expectZitadelError(
      await up.caller(transport).call(SESSIONS.getSession, { sessionId: session.sessionId }),
      Code.NotFound,
      "QUERY-SFeaa",
      "Session does not exist",
    );
  });
});
