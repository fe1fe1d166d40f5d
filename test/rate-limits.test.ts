/**
 * Credential and code checks are bounded per client address (at the edge) and per user (in the
 * domain): past the limit a request is RESOURCE_EXHAUSTED (HTTP 429) with a
 * `zitadel.v1.ErrorDetail`, on every protocol, and nothing is checked or recorded. The limits are
 * set low and the window long (an hour), so that no test depends on timing.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { parseRestResponse, SESSIONS, TRANSPORTS, V2 } from "./helpers/clients.js";
import { expectCode, expectOk, expectZitadelError } from "./helpers/expectations.js";
import { GOOD_PASSWORD, uniqueName, useUserport, v2AddBody } from "./helpers/fixtures.js";

const PER_SOURCE = "Too many requests from this client, try again later";
const PER_USER = "Too many attempts for this user, try again later";
const HOUR = 3600;

describe("per client address", () => {
  const up = useUserport({ rateLimitPerSource: 4, rateLimitPerUser: 0, rateLimitWindowSeconds: HOUR });

  it("the fifth credential check from one address is refused on every protocol and checks nothing; cheap calls go on", async () => {
    const username = uniqueName("source");
    const { userId } = expectOk(await up.caller("rest").call(V2.addHumanUser, v2AddBody({ username, password: { password: GOOD_PASSWORD } })));
    const signIn = { checks: { user: { loginName: username }, password: { password: GOOD_PASSWORD } } };
    // Four checks are within the budget, whatever the protocol.
    expectOk(await up.caller("rest").call(SESSIONS.createSession, signIn), 201);
    expectOk(await up.caller("grpc-js").call(SESSIONS.createSession, signIn));
    expectOk(await up.caller("connect-json-h1").call(SESSIONS.createSession, signIn));
    const last = expectOk(await up.caller("grpc-web").call(SESSIONS.createSession, signIn));

    for (const transport of TRANSPORTS) {
      expectZitadelError(await up.caller(transport).call(SESSIONS.createSession, signIn), Code.ResourceExhausted, "UP-RATE1", PER_SOURCE);
    }
    const setSession = { sessionId: last.sessionId, checks: { password: { password: GOOD_PASSWORD } } };
    expectZitadelError(await up.caller("grpc-js").call(SESSIONS.setSession, setSession), Code.ResourceExhausted, "UP-RATE1", PER_SOURCE);
    expectZitadelError(await up.caller("rest").call(V2.verifyEmail, { userId, verificationCode: "ABCDEF" }), Code.ResourceExhausted, "UP-RATE1", PER_SOURCE);
    expectZitadelError(
      await up.caller("grpc-js").call(V2.setPassword, { userId, newPassword: { password: `${GOOD_PASSWORD}2` }, currentPassword: GOOD_PASSWORD }),
      Code.ResourceExhausted,
      "UP-RATE1",
      PER_SOURCE,
    );
    // The refused requests did nothing: four checks recorded, the password unchanged.
    const events = await up.eventTypes(String(userId));
    expect(events.filter((type) => type === "user.human.password.check.succeeded")).toHaveLength(4);
    expect(events).not.toContain("user.human.password.changed");

    // The login routes share the address's budget; they answer in ZITADEL's REST shape.
    for (const path of ["/ui/login/user/init", "/ui/login/mail/verification"]) {
      const res = await parseRestResponse(
        await fetch(`${up.server.url}${path}`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ userID: String(userId), code: "ABCDEF", password: GOOD_PASSWORD }),
        }),
      );
      expectZitadelError(res, Code.ResourceExhausted, "UP-RATE1", PER_SOURCE);
    }
    const form = await fetch(`${up.server.url}/ui/login/user/init`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ userID: String(userId), code: "ABCDEF" }).toString(),
    });
    expect(form.status).toBe(429);

    // What checks no credential is not limited: a session without checks, a read, a new user.
    expectOk(await up.caller("grpc-js").call(SESSIONS.createSession, { checks: { user: { userId } } }));
    expectOk(await up.caller("rest").call(V2.getUserByID, { userId }));
    expectOk(await up.caller("connect-json-h1").call(V2.addHumanUser, v2AddBody()));
  });
});

describe("per user", () => {
  const up = useUserport({ rateLimitPerSource: 0, rateLimitPerUser: 3, rateLimitWindowSeconds: HOUR });

  async function addUser(extra: JsonObject = {}) {
    const username = uniqueName("per-user");
    const { userId } = expectOk(await up.caller("rest").call(V2.addHumanUser, v2AddBody({ username, password: { password: GOOD_PASSWORD }, ...extra })));
    return { userId: String(userId), username };
  }

  it("the fourth password check of one user is refused over REST and gRPC, even with the right password; other users go on", async () => {
    const target = await addUser();
    const signIn = (password: string) => ({ checks: { user: { loginName: target.username }, password: { password } } });
    for (const transport of ["grpc-js", "rest", "connect-binary-h2"] as const) {
      expectCode(await up.caller(transport).call(SESSIONS.createSession, signIn("Wr0ng-Passw0rd!")), Code.InvalidArgument);
    }
    expectZitadelError(await up.caller("rest").call(SESSIONS.createSession, signIn(GOOD_PASSWORD)), Code.ResourceExhausted, "UP-RATE2", PER_USER);
    expectZitadelError(await up.caller("grpc-js").call(SESSIONS.createSession, signIn(GOOD_PASSWORD)), Code.ResourceExhausted, "UP-RATE2", PER_USER);
    // SetPassword with the current password counts against the same user's budget.
    expectZitadelError(
      await up.caller("grpc-js").call(V2.setPassword, {
        userId: target.userId,
        newPassword: { password: `${GOOD_PASSWORD}2` },
        currentPassword: GOOD_PASSWORD,
      }),
      Code.ResourceExhausted,
      "UP-RATE2",
      PER_USER,
    );
    const events = await up.eventTypes(target.userId);
    expect(events.filter((type) => type === "user.human.password.check.failed")).toHaveLength(3);
    expect(events).not.toContain("user.human.password.check.succeeded");

    // The limit is the user's, not the address's.
    const other = await addUser();
    expectOk(
      await up.caller("rest").call(SESSIONS.createSession, { checks: { user: { loginName: other.username }, password: { password: GOOD_PASSWORD } } }),
      201,
    );
  });

  it("code checks count too: the fourth VerifyEmail of one user is refused and records no failure", async () => {
    const target = await addUser({ email: { email: `${uniqueName("code")}@example.com`, returnCode: {} } });
    for (const transport of ["rest", "grpc-js", "grpc-web"] as const) {
      expectZitadelError(
        await up.caller(transport).call(V2.verifyEmail, { userId: target.userId, verificationCode: "WRONG1" }),
        Code.InvalidArgument,
        "COMMAND-eis9R",
        "Code is invalid",
      );
    }
    expectZitadelError(
      await up.caller("rest").call(V2.verifyEmail, { userId: target.userId, verificationCode: "WRONG1" }),
      Code.ResourceExhausted,
      "UP-RATE2",
      PER_USER,
    );
    const events = await up.eventTypes(target.userId);
    expect(events.filter((type) => type === "user.human.email.verification.failed")).toHaveLength(3);
  });
});
