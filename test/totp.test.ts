/**
 * TOTP import (v2 AddHumanUser `totp_secret`, ZITADEL's internal/command/user_v2_human.go) and the TOTP check of
 * CreateSession: the secret is stored sealed and active at once, the current RFC 6238 code signs
 * in, a wrong one is refused with ZITADEL's error and counted against the lockout policy's max OTP
 * attempts (internal/command/user_human_otp.go checkTOTP).
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { Secret, TOTP } from "otpauth";
import { describe, expect, it } from "vitest";
import { SESSIONS, V1, V2 } from "./helpers/clients.js";
import { expectCode, expectNotLeaked, expectOk, expectPgvError, expectZitadelError, pgvLength } from "./helpers/expectations.js";
import { GOOD_PASSWORD, RFC3339, uniqueName, useUserport, v2AddBody } from "./helpers/fixtures.js";

const up = useUserport();
const WRITERS = ["grpc-js", "connect-json-h1", "rest"] as const;

/** An authenticator app's view of a secret: SHA-1, 30-second steps, 6 digits. */
function authenticator(secret: string) {
  return new TOTP({ secret: Secret.fromBase32(secret), algorithm: "SHA1", digits: 6, period: 30 });
}

describe.each(WRITERS)("TOTP over %s", (transport) => {
  const call: ReturnType<typeof up.caller>["call"] = (method, request, options) => up.caller(transport).call(method, request, options);

  async function userWithTotp() {
    const secret = new Secret({ size: 20 }).base32;
    const result = await call(V2.addHumanUser, v2AddBody({ password: { password: GOOD_PASSWORD }, totpSecret: secret }));
    const { userId } = expectOk(result);
    expectNotLeaked(result, secret);
    return { userId: String(userId), secret };
  }

  it("imports the secret sealed and active: the current code signs in and is reported as a factor", async () => {
    const { userId, secret } = await userWithTotp();
    expect((await up.eventTypes(userId)).slice(-2)).toEqual(["user.human.mfa.otp.added", "user.human.mfa.otp.verified"]);
    const stored = await up.server.db.selectFrom("users").select("totp_secret").where("id", "=", userId).executeTakeFirstOrThrow();
    expect(stored.totp_secret).toEqual(expect.any(String));
    expect(stored.totp_secret).not.toContain(secret);

    const session = expectOk(
      await call(SESSIONS.createSession, {
        checks: { user: { userId }, password: { password: GOOD_PASSWORD }, totp: { code: authenticator(secret).generate() } },
      }),
    );
    const read = expectOk(await call(SESSIONS.getSession, { sessionId: session.sessionId }));
    const factors = (read.session as JsonObject).factors as JsonObject;
    expect(factors.totp).toEqual({ verifiedAt: expect.stringMatching(RFC3339) });
    expect(factors.password).toEqual({ verifiedAt: expect.stringMatching(RFC3339) });
    expect((await up.eventTypes(userId)).at(-1)).toBe("user.human.mfa.otp.check.succeeded");
    const user = await call(V2.getUserByID, { userId });
    expectNotLeaked(user, secret);
  });

  it("refuses a wrong code with EVENT-8isk2 and records the failure", async () => {
    const { userId, secret } = await userWithTotp();
    const now = Number(authenticator(secret).generate());
    const wrong = String((now + 500_000) % 1_000_000).padStart(6, "0");
    expectZitadelError(
      await call(SESSIONS.createSession, { checks: { user: { userId }, totp: { code: wrong } } }),
      Code.InvalidArgument,
      "EVENT-8isk2",
      "Invalid code",
    );
    expect((await up.eventTypes(userId)).at(-1)).toBe("user.human.mfa.otp.check.failed");
  });

  it("answers a TOTP check of a user without TOTP with COMMAND-3Mif9s", async () => {
    const { userId } = expectOk(await call(V2.addHumanUser, v2AddBody()));
    expectZitadelError(
      await call(SESSIONS.createSession, { checks: { user: { userId }, totp: { code: "123456" } } }),
      Code.FailedPrecondition,
      "COMMAND-3Mif9s",
      "OTP is not ready",
    );
  });

  /**
   * A user with a TOTP secret in a new organisation whose own lockout policy allows
   * `maxOtpAttempts` failed TOTP checks, as ZITADEL's checkTOTP counts them.
   */
  async function userUnderOtpPolicy(maxOtpAttempts: number) {
    const orgId = String(expectOk(await call(V1.addOrg, { name: uniqueName("org") })).id);
    expectOk(await call(V1.addCustomLockoutPolicy, { maxPasswordAttempts: 0, maxOtpAttempts }, { headers: { "x-zitadel-orgid": orgId } }));
    const secret = new Secret({ size: 20 }).base32;
    const body = v2AddBody({ organization: { orgId }, password: { password: GOOD_PASSWORD }, totpSecret: secret });
    const userId = String(expectOk(await call(V2.addHumanUser, body)).userId);
    const signIn = (code: string) => call(SESSIONS.createSession, { checks: { user: { userId }, totp: { code } } });
    const right = () => authenticator(secret).generate();
    // Half a million steps away from the current code, so outside the ±1 step window too.
    const wrong = () => String((Number(right()) + 500_000) % 1_000_000).padStart(6, "0");
    const state = async () => (expectOk(await call(V2.getUserByID, { userId })).user as JsonObject).state;
    return { userId, signIn, right, wrong, state };
  }

  /** ZITADEL answers a wrong code with EVENT-8isk2 alone: its ErrorDetail, no CredentialsCheckError. */
  const expectWrongCode = (result: Awaited<ReturnType<typeof call>>) => expectZitadelError(result, Code.InvalidArgument, "EVENT-8isk2", "Invalid code");

  it("locks the user on the org policy's max OTP attempts (2); the right code is then refused; an unlock counts from 0", async () => {
    const user = await userUnderOtpPolicy(2);
    expectWrongCode(await user.signIn(user.wrong()));
    expect(await user.state()).toBe("USER_STATE_ACTIVE");
    expectWrongCode(await user.signIn(user.wrong()));
    expect(await user.state()).toBe("USER_STATE_LOCKED");
    expect((await up.eventTypes(user.userId)).slice(-3)).toEqual(["user.human.mfa.otp.check.failed", "user.human.mfa.otp.check.failed", "user.locked"]);
    expectZitadelError(await user.signIn(user.right()), Code.FailedPrecondition, "SESSION-Gj4ko", "User is not active");

    expectOk(await call(V2.unlockUser, { userId: user.userId }));
    expectWrongCode(await user.signIn(user.wrong()));
    expect(await user.state()).toBe("USER_STATE_ACTIVE");
    expectOk(await user.signIn(user.right()));
    expect((await up.eventTypes(user.userId)).slice(-3)).toEqual(["user.unlocked", "user.human.mfa.otp.check.failed", "user.human.mfa.otp.check.succeeded"]);
  });

  it("resets the count on a right code, and counts OTP failures apart from password failures", async () => {
    const user = await userUnderOtpPolicy(2);
    expectWrongCode(await user.signIn(user.wrong()));
    expectOk(await user.signIn(user.right()));
    expectWrongCode(await user.signIn(user.wrong()));
    expect(await user.state()).toBe("USER_STATE_ACTIVE");
    // A wrong password is the password's count (the policy's 0 never locks on it), not the OTP's.
    const password = await call(SESSIONS.createSession, { checks: { user: { userId: user.userId }, password: { password: "wrong-Passw0rd!" } } });
    expect(expectCode(password, Code.InvalidArgument).credentialChecks).toEqual([{ id: "COMMAND-3M0fs", message: "Password is invalid", failedAttempts: 1 }]);
    expect(await user.state()).toBe("USER_STATE_ACTIVE");
    expectWrongCode(await user.signIn(user.wrong()));
    expect(await user.state()).toBe("USER_STATE_LOCKED");
  });

  it("refuses a secret that is not base32 when the user is created, and applies PGV's length", async () => {
    expectZitadelError(
      await call(V2.addHumanUser, v2AddBody({ totpSecret: "not base32 at all!" })),
      Code.InvalidArgument,
      "UP-TOTP1",
      "TOTP secret is not valid base32",
    );
    expectPgvError(await call(V2.addHumanUser, v2AddBody({ totpSecret: "" })), pgvLength("AddHumanUserRequest.TotpSecret", 1, 200));
  });
});
