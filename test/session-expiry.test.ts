/**
 * Ended sessions: what ZITADEL lets one do with a session that is past its lifetime or was
 * deleted, on the server's injectable clock (no sleeping).
 *
 * - SetSession: ZITADEL's SessionWriteModel.CheckNotInvalidated (internal/command/session_model.go,
 *   called by updateSession in internal/command/session.go) refuses a terminated session with
 *   COMMAND-Hewfq and an expired one with COMMAND-Hkl3d, before any check runs; nothing is written
 *   (internal/api/grpc/session/v2/integration_test/session_test.go TestServer_SetSession_expired).
 * - DeleteSession: terminateSession (internal/command/session.go) checks the token or permission,
 *   then leaves a session that is no longer active as it is and succeeds
 *   (TestServer_DeleteSession_expired).
 * - GetSession and ListSessions: ZITADEL's SessionByID and SearchSessions (internal/query/session.go)
 *   do not look at the expiration; the session shows with its expiration date in the past, and
 *   ListSessions' expirationDateQuery (internal/api/grpc/session/v2/query.go
 *   expirationDateQueryToQuery) is how a client lists the live ones.
 * - ListSessions' creatorQuery with an empty id is GRPC-x8n24uh, a userAgentQuery without a
 *   fingerprint id (a token carries no user agent) GRPC-x8n23uh (sessionQueryToQuery, same file).
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { SESSIONS, type TransportName, V1 } from "./helpers/clients.js";
import { expectOk, expectZitadelError } from "./helpers/expectations.js";
import { bcryptHash, useUserport, v1ImportBody } from "./helpers/fixtures.js";

let clockOffset = 0;
afterEach(() => {
  clockOffset = 0;
});
const up = useUserport({ now: () => Date.now() + clockOffset });
const serverNow = () => Date.now() + clockOffset;

const PASSWORD = "Imported-Passw0rd!";
const WRITERS = ["grpc-js", "connect-json-h1", "rest"] as const satisfies readonly TransportName[];
const READERS = [...WRITERS, "grpc-web"] as const satisfies readonly TransportName[];

async function importUser(): Promise<string> {
  const body = v1ImportBody({ hashedPassword: { value: bcryptHash(PASSWORD, 4) } });
  return String(expectOk(await up.caller("rest").call(V1.importHumanUser, body)).userId);
}

/** A session of a new user with a checked password and the given lifetime (none when undefined). */
async function createSession(lifetime?: string) {
  const userId = await importUser();
  const created = expectOk(
    await up.caller("rest").call(SESSIONS.createSession, {
      checks: { user: { userId }, password: { password: PASSWORD } },
      ...(lifetime === undefined ? {} : { lifetime }),
    }),
  );
  return { userId, sessionId: String(created.sessionId), sessionToken: String(created.sessionToken) };
}

async function storedSession(sessionId: string) {
  return up.server.db
    .selectFrom("sessions")
    .select(["expires_at", "terminated", "sequence", "token_digest", "password_checked_at"])
    .where("id", "=", sessionId)
    .executeTakeFirstOrThrow();
}

describe.each(WRITERS)("SetSession on an ended session over %s", (transport) => {
  const set = (request: JsonObject) => up.caller(transport).call(SESSIONS.setSession, request);

  it("extends a live session, but refuses an expired one with COMMAND-Hkl3d and writes nothing", async () => {
    const { userId, sessionId } = await createSession("60s");
    // Alive: the lifetime can be set again (and is counted from now).
    expectOk(await set({ sessionId, lifetime: "60s" }));

    clockOffset = 2 * 60_000;
    const before = await storedSession(sessionId);
    const userEvents = await up.eventTypes(userId);
    const requests: JsonObject[] = [
      { sessionId, lifetime: "3600s" },
      { sessionId, checks: { password: { password: PASSWORD } } },
      { sessionId, metadata: { late: Buffer.from("x").toString("base64") } },
    ];
    for (const request of requests) {
      expectZitadelError(await set(request), Code.FailedPrecondition, "COMMAND-Hkl3d", "Errors.Session.Expired");
    }
    // Neither the session (not its lifetime, not its token) nor the user (no password check) changed.
    expect(await storedSession(sessionId)).toEqual(before);
    expect(await up.eventTypes(userId)).toEqual(userEvents);
    expect((await up.eventTypes(sessionId)).at(-1)).toBe("session.token.set");
  });

  it("refuses a deleted session with COMMAND-Hewfq", async () => {
    const { sessionId, sessionToken } = await createSession();
    expectOk(await up.caller("rest").call(SESSIONS.deleteSession, { sessionId, sessionToken }));
    const before = await storedSession(sessionId);
    expectZitadelError(await set({ sessionId, lifetime: "3600s" }), Code.FailedPrecondition, "COMMAND-Hewfq", "Errors.Session.Terminated");
    expect(await storedSession(sessionId)).toEqual(before);
  });
});

describe.each(WRITERS)("DeleteSession of an ended session over %s", (transport) => {
  const del = (request: JsonObject) => up.caller(transport).call(SESSIONS.deleteSession, request);

  it("succeeds for an expired session with its token, writing nothing; a wrong token is still refused", async () => {
    const { sessionId, sessionToken } = await createSession("60s");
    clockOffset = 2 * 60_000;
    expectZitadelError(await del({ sessionId, sessionToken: "not-the-token" }), Code.PermissionDenied, "COMMAND-sGr42", "Errors.Session.Token.Invalid");
    const before = await storedSession(sessionId);
    const deleted = expectOk(await del({ sessionId, sessionToken }));
    expect(deleted.details).toMatchObject({ sequence: String(before.sequence) });
    expect(await storedSession(sessionId)).toEqual(before);
    expect(await up.eventTypes(sessionId)).not.toContain("session.terminated");
  });

  it("succeeds again for a deleted session, writing no second termination", async () => {
    const { sessionId, sessionToken } = await createSession();
    expectOk(await del({ sessionId, sessionToken }));
    expectOk(await del({ sessionId, sessionToken }));
    expect((await up.eventTypes(sessionId)).filter((type) => type === "session.terminated")).toHaveLength(1);
    expectZitadelError(await up.caller(transport).call(SESSIONS.getSession, { sessionId }), Code.NotFound, "QUERY-SFeaa", "Session does not exist");
  });
});

describe.each(READERS)("reading expired sessions over %s", (transport) => {
  it("GetSession shows an expired session with its expiration date in the past, as ZITADEL's SessionByID does", async () => {
    const { sessionId, sessionToken } = await createSession("60s");
    clockOffset = 2 * 60_000;
    const read = expectOk(await up.caller(transport).call(SESSIONS.getSession, { sessionId, sessionToken }));
    const session = read.session as JsonObject;
    expect(session.id).toBe(sessionId);
    expect(Date.parse(String(session.expirationDate))).toBeLessThan(serverNow());
  });

  it("ListSessions' expirationDateQuery GREATER than now lists the live sessions only, those without a lifetime included", async () => {
    const expired = await createSession("60s");
    const { userId } = expired;
    // Two more sessions of the same user: one that never expires, one that lives an hour.
    const forever = expectOk(await up.caller("rest").call(SESSIONS.createSession, { checks: { user: { userId } } }));
    const hour = expectOk(await up.caller("rest").call(SESSIONS.createSession, { checks: { user: { userId } }, lifetime: "3600s" }));
    clockOffset = 2 * 60_000;
    const list = (queries: JsonObject[]) => up.caller(transport).call(SESSIONS.listSessions, { queries: [{ userIdQuery: { id: userId } }, ...queries] });
    const ids = (result: JsonObject) => ((result.sessions as JsonObject[] | undefined) ?? []).map((s) => s.id).sort();
    const now = new Date(serverNow()).toISOString();

    const live = expectOk(await list([{ expirationDateQuery: { expirationDate: now, method: "TIMESTAMP_QUERY_METHOD_GREATER" } }]));
    expect(ids(live)).toEqual([String(forever.sessionId), String(hour.sessionId)].sort());
    const ended = expectOk(await list([{ expirationDateQuery: { expirationDate: now, method: "TIMESTAMP_QUERY_METHOD_LESS" } }]));
    expect(ids(ended)).toEqual([expired.sessionId]);
    // Without the query, ZITADEL lists all three.
    expect(ids(expectOk(await list([])))).toHaveLength(3);
  });
});

describe.each(READERS)("ListSessions' creatorQuery over %s", (transport) => {
  it("answers an empty creator id with GRPC-x8n24uh; an unset one means the caller", async () => {
    const { sessionId } = await createSession();
    const list = (creatorQuery: JsonObject) =>
      up.caller(transport).call(SESSIONS.listSessions, { queries: [{ creatorQuery }, { idsQuery: { ids: [sessionId] } }] });
    expectZitadelError(await list({ id: "" }), Code.InvalidArgument, "GRPC-x8n24uh", "List.Query.Invalid");
    // The administrator created the session, so "the caller" finds it.
    const mine = expectOk(await list({}));
    expect((mine.sessions as JsonObject[]).map((s) => s.id)).toEqual([sessionId]);
  });

  it("answers a userAgentQuery without a fingerprint id with GRPC-x8n23uh: a token carries no user agent", async () => {
    for (const userAgentQuery of [{ fingerprintId: "" }, {}] as JsonObject[]) {
      const result = await up.caller(transport).call(SESSIONS.listSessions, { queries: [{ userAgentQuery }] });
      expectZitadelError(result, Code.InvalidArgument, "GRPC-x8n23uh", "List.Query.Invalid");
    }
  });
});
