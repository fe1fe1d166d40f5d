/**
 * Passwords after creation — management v1 SetHumanPassword and SetHumanInitialPassword, user v2
 * SetPassword (current password, reset code, or permission) and PasswordReset (code returned or
 * mailed through the outbox) — with the complexity policy, single-use expiring codes and
 * `passwordChangeRequired` as GetUserByID reports it.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { createSecretBox } from "../src/domain/secrets.js";
import { loadMasterKey } from "../src/setup.js";
import { type CallOptions, SESSIONS, type UnaryMethod, V1, V2 } from "./helpers/clients.js";
import { expectCode, expectErrorId, expectNotLeaked, expectOk, expectPgvError, expectZitadelError, pgvLength } from "./helpers/expectations.js";
import { bcryptHash, type SeededCaller, seedScopedCaller, useUserport, v1ImportBody } from "./helpers/fixtures.js";

const up = useUserport();
const OLD = "Old-Passw0rd!";
const NEW = "N3w-Passw0rd!";
const WRITERS = ["grpc-js", "connect-json-h1", "rest"] as const;

async function importUser(extra: JsonObject = {}): Promise<string> {
  const { userId } = expectOk(await up.caller("rest").call(V1.importHumanUser, v1ImportBody({ hashedPassword: { value: bcryptHash(OLD) }, ...extra })));
  return String(userId);
}

const signIn = (userId: string, password: string) => up.caller("rest").call(SESSIONS.createSession, { checks: { user: { userId }, password: { password } } });

async function changeRequired(userId: string): Promise<boolean> {
  const { user } = expectOk(await up.caller("rest").call(V2.getUserByID, { userId })) as { user: { human: JsonObject } };
  return user.human.passwordChangeRequired === true;
}

describe.each(WRITERS)("over %s", (transport) => {
  const call = (method: UnaryMethod, request: JsonObject, options?: CallOptions) => up.caller(transport).call(method, request, options);
  let stranger: SeededCaller;
  beforeAll(async () => {
    stranger = await seedScopedCaller(up.server, undefined);
  });

  describe("management v1", () => {
    it("SetHumanPassword replaces the password, requires a change unless no_change_required, and never echoes it", async () => {
      const userId = await importUser();
      const result = await call(V1.setHumanPassword, { userId, password: NEW });
      expect(expectOk(result).details).toMatchObject({ resourceOwner: up.defaultOrgId });
      expectNotLeaked(result, NEW);
      expect((await up.eventTypes(userId)).at(-1)).toBe("user.human.password.changed");
      expect(await changeRequired(userId)).toBe(true);
      expectOk(await signIn(userId, NEW));
      expect(expectCode(await signIn(userId, OLD), Code.InvalidArgument).credentialChecks.map((c) => c.id)).toEqual(["COMMAND-3M0fs"]);

      expectOk(await call(V1.setHumanPassword, { userId, password: OLD, noChangeRequired: true }));
      expect(await changeRequired(userId)).toBe(false);
      expectOk(await signIn(userId, OLD));
    });

    it("SetHumanInitialPassword always requires a change at the next sign-in", async () => {
      const userId = await importUser();
      expectOk(await call(V1.setHumanInitialPassword, { userId, password: NEW }));
      expect(await changeRequired(userId)).toBe(true);
      expectOk(await signIn(userId, NEW));
    });

    it("checks the complexity policy, the user and the permission", async () => {
      const userId = await importUser();
      expectZitadelError(await call(V1.setHumanPassword, { userId, password: "Sh0rt!" }), Code.InvalidArgument, "COMMA-HuJf6", "Password is too short");
      expectZitadelError(
        await call(V1.setHumanPassword, { userId, password: "no-upper-1!" }),
        Code.InvalidArgument,
        "COMMA-VoaRj",
        "Password must contain upper case",
      );
      expectZitadelError(
        await call(V1.setHumanPassword, { userId: "424242", password: NEW }),
        Code.FailedPrecondition,
        "COMMAND-3M0fs",
        "User could not be found",
      );
      expectZitadelError(
        await call(V1.setHumanPassword, { userId, password: NEW }, { token: stranger.token }),
        Code.PermissionDenied,
        "AUTH-5mWD2",
        "No matching permissions found",
      );
      expectPgvError(await call(V1.setHumanPassword, { userId, password: "" }), pgvLength("SetHumanPasswordRequest.Password", 1, 200));
      expectOk(await signIn(userId, OLD));
    });
  });

  describe("user v2", () => {
    it("SetPassword with the current password works for anyone who knows it; a wrong one is COMMAND-3M0fs", async () => {
      const userId = await importUser();
      expectZitadelError(
        await call(V2.setPassword, { userId, newPassword: { password: NEW }, currentPassword: "Wrong-Passw0rd!" }, { token: stranger.token }),
        Code.InvalidArgument,
        "COMMAND-3M0fs",
        "Password is invalid",
      );
      expectOk(await call(V2.setPassword, { userId, newPassword: { password: NEW, changeRequired: true }, currentPassword: OLD }, { token: stranger.token }));
      expect(await changeRequired(userId)).toBe(true);
      expectOk(await signIn(userId, NEW));
    });

    it("SetPassword without a verification needs user.write on the user's organisation", async () => {
      const userId = await importUser();
      expectZitadelError(
        await call(V2.setPassword, { userId, newPassword: { password: NEW } }, { token: stranger.token }),
        Code.PermissionDenied,
        "AUTHZ-HKJD33",
        "Errors.PermissionDenied",
      );
      expectOk(await call(V2.setPassword, { userId, newPassword: { password: NEW } }));
      expect(await changeRequired(userId)).toBe(false);
      expectOk(await signIn(userId, NEW));
    });

    it("PasswordReset returns a code that SetPassword takes once; a wrong, used or expired code fails", async () => {
      const userId = await importUser();
      const reset = expectOk(await call(V2.passwordReset, { userId, returnCode: {} }));
      const code = String(reset.verificationCode);
      expect(code).toMatch(/^[A-Z0-9]{6}$/);
      expect((await up.eventTypes(userId)).at(-1)).toBe("user.human.password.code.added");
      const stored = await up.server.db
        .selectFrom("codes")
        .select(["sealed_code", "returned"])
        .where("user_id", "=", userId)
        .where("kind", "=", "password")
        .executeTakeFirstOrThrow();
      expect(stored.sealed_code).not.toContain(code);
      expect(stored.returned).toBe(1);

      const wrong = code === "AAAAAA" ? "BBBBBB" : "AAAAAA";
      expectZitadelError(
        await call(V2.setPassword, { userId, newPassword: { password: NEW }, verificationCode: wrong }, { token: stranger.token }),
        Code.InvalidArgument,
        "CODE-woT0xc",
        "Code is invalid",
      );
      expectOk(await call(V2.setPassword, { userId, newPassword: { password: NEW }, verificationCode: code }, { token: stranger.token }));
      expectOk(await signIn(userId, NEW));
      expectZitadelError(
        await call(V2.setPassword, { userId, newPassword: { password: OLD }, verificationCode: code }, { token: stranger.token }),
        Code.FailedPrecondition,
        "COMMAND-2M9fs",
        "Code not found",
      );

      const again = String(expectOk(await call(V2.passwordReset, { userId, returnCode: {} })).verificationCode);
      await up.server.db
        .updateTable("codes")
        .set({ expires_at: Date.now() - 1 })
        .where("user_id", "=", userId)
        .where("kind", "=", "password")
        .where("used_at", "is", null)
        .execute();
      expectZitadelError(
        await call(V2.setPassword, { userId, newPassword: { password: OLD }, verificationCode: again }),
        Code.FailedPrecondition,
        "CODE-QvUQ4P",
        "Code is expired",
      );
      expectPgvError(
        await call(V2.setPassword, { userId, newPassword: { password: OLD }, verificationCode: "X".repeat(21) }),
        pgvLength("SetPasswordRequest.VerificationCode", 1, 20),
      );
    });

    it("PasswordReset with send_link puts a mail with the rendered link in the outbox, in the same step", async () => {
      const userId = await importUser();
      const template = "https://login.example.com/reset?user={{.UserID}}&code={{.Code}}&org={{.OrgID}}";
      const reset = expectOk(await call(V2.passwordReset, { userId, sendLink: { notificationType: "NOTIFICATION_TYPE_Email", urlTemplate: template } }));
      expect(reset).not.toHaveProperty("verificationCode");
      const messages = await up.server.db.selectFrom("outbox").selectAll().where("user_id", "=", userId).where("kind", "=", "password_reset").execute();
      expect(messages).toHaveLength(1);
      const box = createSecretBox(loadMasterKey(undefined, up.server.dataDir));
      const body = JSON.parse(box.open(messages[0]!.sealed_body)) as { text: string };
      const code = /code=([A-Z0-9]{6})/.exec(body.text)?.[1];
      expect(body.text).toContain(`https://login.example.com/reset?user=${userId}&code=${code}&org=${up.defaultOrgId}`);
      expectOk(await call(V2.setPassword, { userId, newPassword: { password: NEW }, verificationCode: code! }, { token: stranger.token }));
      expectOk(await signIn(userId, NEW));
    });

    it("PasswordReset: an invalid template, an initial user, someone else's user", async () => {
      const userId = await importUser();
      expectErrorId(await call(V2.passwordReset, { userId, sendLink: { urlTemplate: "{{.Nope}}" } }), Code.InvalidArgument, "DOMAIN-ieYa7");
      expectZitadelError(
        await call(V2.passwordReset, { userId, returnCode: {} }, { token: stranger.token }),
        Code.PermissionDenied,
        "AUTHZ-HKJD33",
        "Errors.PermissionDenied",
      );
      const initial = await importUser({ email: { email: `init-${Date.now()}-${transport}@example.com`, isEmailVerified: false } });
      expectZitadelError(
        await call(V2.passwordReset, { userId: initial, returnCode: {} }),
        Code.FailedPrecondition,
        "COMMAND-2M9sd",
        "User is not yet initialized",
      );
    });
  });
});
