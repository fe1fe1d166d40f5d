/**
 * Codes from the mail to the verification: an imported INITIAL user finishes its initialisation
 * with the code from its init mail; v2 VerifyEmail, ResendEmailCode, SetEmail and the phone RPCs
 * with ZITADEL's errors (internal/command/user_v2_email.go, user_v2_phone.go,
 * user_human_init.go). Codes are single use and expire (ZITADEL's generators, §4.1): the server's
 * clock is moved forward instead of waiting.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { type CallOptions, parseRestResponse, V1, V2 } from "./helpers/clients.js";
import { expectOk, expectPgvError, expectZitadelError } from "./helpers/expectations.js";
import { GOOD_PASSWORD, seedScopedCaller, uniqueEmail, useUserport, v1ImportBody, v2AddBody } from "./helpers/fixtures.js";
import { codeIn, linkIn, startMailbox } from "./helpers/mailbox.js";

const mailbox = await startMailbox();
afterAll(() => mailbox.stop());

let clockOffset = 0;
afterEach(() => {
  clockOffset = 0;
});
const HOUR = 3_600_000;

const up = useUserport({
  smtpUrl: mailbox.url,
  smtpFrom: "noreply@userport.test",
  outboxPollMs: 50,
  smtpRetryBaseMs: 50,
  smtpRetryMaxMs: 200,
  now: () => Date.now() + clockOffset,
});

async function user(userId: string) {
  const res = expectOk(await up.caller("grpc-web").call(V2.getUserByID, { userId }));
  return res.user as JsonObject & { state: string; human: { email: JsonObject; phone: JsonObject } };
}

/** Posts to the init link's target as a script would: JSON in, ZITADEL's REST shapes out. */
async function postInit(fields: Record<string, string>) {
  return parseRestResponse(
    await fetch(`${up.server.url}/ui/login/user/init`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(fields),
    }),
  );
}

/** Posts the init form as a browser does. */
function postInitForm(fields: Record<string, string>) {
  return fetch(`${up.server.url}/ui/login/user/init`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields).toString(),
  });
}

async function importInitial() {
  const email = uniqueEmail("init");
  const body = v1ImportBody({ email: { email, isEmailVerified: false } });
  const { userId } = expectOk(await up.caller("rest").call(V1.importHumanUser, body));
  const mail = await mailbox.waitFor(email);
  return { userId: userId as string, email, mail, code: codeIn(mail) };
}

async function addWithMailedCode() {
  const email = uniqueEmail("verify");
  const { userId } = expectOk(await up.caller("connect-json-h1").call(V2.addHumanUser, v2AddBody({ email: { email, sendCode: {} } })));
  const mail = await mailbox.waitFor(email);
  return { userId: userId as string, email, code: codeIn(mail) };
}

describe("the init code flow (ZITADEL's login step behind the init mail's link)", () => {
  it("an imported user gets the init mail, follows its link with the code, sets a password and becomes ACTIVE with a verified email", async () => {
    const { userId, mail, code } = await importInitial();
    expect((await user(userId)).state).toBe("USER_STATE_INITIAL");

    // The link opens a form that carries the user and the code.
    const page = await fetch(linkIn(mail).href.replace(linkIn(mail).origin, up.server.url));
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain(`name="userID" value="${userId}"`);
    expect(html).toContain(`name="code" value="${code}"`);

    const res = await postInitForm({ userID: userId, code, password: GOOD_PASSWORD, passwordconfirm: GOOD_PASSWORD });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain("Your user is initialized.");
    const after = await user(userId);
    expect(after.state).toBe("USER_STATE_ACTIVE");
    expect(after.human.email.isVerified).toBe(true);
    expect((await up.eventTypes(userId)).slice(-3)).toEqual([
      "user.human.initialization.check.succeeded",
      "user.human.email.verified",
      "user.human.password.changed",
    ]);
    const row = await up.server.db.selectFrom("users").select(["password_hash"]).where("id", "=", userId).executeTakeFirstOrThrow();
    expect(row.password_hash).toMatch(/^\$2[aby]\$04\$/);

    // Single use: the code is spent; ZITADEL then has no init code for the user.
    expectZitadelError(await postInit({ userID: userId, code }), Code.NotFound, "COMMAND-mmn5f", "Code not found");
  });

  it("a wrong code is COMMAND-11v6G and recorded (check.failed); the user stays INITIAL and the right code still works", async () => {
    const { userId, code } = await importInitial();
    const wrong = code === "AAAAAA" ? "BBBBBB" : "AAAAAA";
    const res = await postInit({ userID: userId, code: wrong, password: GOOD_PASSWORD });
    expectZitadelError(res, Code.InvalidArgument, "COMMAND-11v6G", "Code is invalid");
    expect(JSON.stringify(res)).not.toContain(code);
    expect((await up.eventTypes(userId)).at(-1)).toBe("user.human.initialization.check.failed");
    expect((await user(userId)).state).toBe("USER_STATE_INITIAL");
    const done = expectOk(await postInit({ userID: userId, code, password: GOOD_PASSWORD }), 200);
    expect(done.details).toMatchObject({ resourceOwner: up.defaultOrgId });
    expect((await user(userId)).state).toBe("USER_STATE_ACTIVE");
  });

  it("an init code expires after 72 hours (COMMAND-11v6G); a new one from ResendHumanInitialization works", async () => {
    const { userId, email, code } = await importInitial();
    clockOffset = 72 * HOUR + 60_000;
    expectZitadelError(await postInit({ userID: userId, code }), Code.InvalidArgument, "COMMAND-11v6G", "Code is invalid");
    expectOk(await up.caller("grpc-js").call(V1.resendHumanInitialization, { userId }));
    await until(() => mailbox.to(email).length === 2);
    const fresh = codeIn(mailbox.to(email)[1]!);
    expectOk(await postInit({ userID: userId, code: fresh, password: GOOD_PASSWORD }));
    expect((await user(userId)).state).toBe("USER_STATE_ACTIVE");
  });

  it("refuses an empty code, an unknown user, another organisation, a weak password and a mismatched confirmation", async () => {
    const { userId, code } = await importInitial();
    expectZitadelError(await postInit({ userID: userId, code: "" }), Code.InvalidArgument, "COMMAND-44G8s", "Code is empty");
    expectZitadelError(await postInit({ userID: "", code }), Code.InvalidArgument, "COMMAND-mkM9f", "User ID missing");
    expectZitadelError(await postInit({ userID: "4711", code }), Code.NotFound, "COMMAND-mmn5f", "Code not found");
    expectZitadelError(await postInit({ userID: userId, orgID: "other-org", code }), Code.NotFound, "COMMAND-mmn5f", "Code not found");
    expectZitadelError(await postInit({ userID: userId, code, password: "short" }), Code.InvalidArgument, "COMMA-HuJf6", "Password is too short");
    const mismatch = await postInit({ userID: userId, code, password: GOOD_PASSWORD, passwordconfirm: "other" });
    expect(mismatch.ok).toBe(false);
    expect((await user(userId)).state).toBe("USER_STATE_INITIAL");
  });
});

describe.each(["grpc-js", "connect-json-h1", "rest"] as const)("v2 email verification over %s", (transport) => {
  const call = (method: (typeof V2)[keyof typeof V2], body: JsonObject, options?: CallOptions) => up.caller(transport).call(method, body, options);

  it("VerifyEmail with the code from the mail verifies the email; the code then fails (COMMAND-eis9R)", async () => {
    const { userId, code } = await addWithMailedCode();
    expect((await user(userId)).human.email.isVerified).toBeUndefined();
    const res = expectOk(await call(V2.verifyEmail, { userId, verificationCode: code }));
    expect(res.details).toMatchObject({ resourceOwner: up.defaultOrgId });
    expect((await user(userId)).human.email.isVerified).toBe(true);
    expect((await up.eventTypes(userId)).at(-1)).toBe("user.human.email.verified");
    expectZitadelError(await call(V2.verifyEmail, { userId, verificationCode: code }), Code.InvalidArgument, "COMMAND-eis9R", "Code is invalid");
  });

  it("a wrong code is COMMAND-eis9R and recorded; an expired one (after 1 hour) too", async () => {
    const { userId, code } = await addWithMailedCode();
    const wrong = code === "AAAAAA" ? "BBBBBB" : "AAAAAA";
    expectZitadelError(await call(V2.verifyEmail, { userId, verificationCode: wrong }), Code.InvalidArgument, "COMMAND-eis9R", "Code is invalid");
    expect((await up.eventTypes(userId)).at(-1)).toBe("user.human.email.verification.failed");
    clockOffset = HOUR + 60_000;
    expectZitadelError(await call(V2.verifyEmail, { userId, verificationCode: code }), Code.InvalidArgument, "COMMAND-eis9R", "Code is invalid");
    clockOffset = 0;
    expectOk(await call(V2.verifyEmail, { userId, verificationCode: code }));
  });

  it("ResendEmailCode return_code: a new code replaces the old one; once verified there is nothing to resend (EMAIL-5w5ilin4yt)", async () => {
    const { userId, code } = await addWithMailedCode();
    const resent = expectOk(await call(V2.resendEmailCode, { userId, returnCode: {} }));
    const fresh = resent.verificationCode as string;
    expect(fresh).toMatch(/^[A-Z0-9]{6}$/);
    if (fresh !== code) {
      expectZitadelError(await call(V2.verifyEmail, { userId, verificationCode: code }), Code.InvalidArgument, "COMMAND-eis9R", "Code is invalid");
    }
    expectOk(await call(V2.verifyEmail, { userId, verificationCode: fresh }));
    expectZitadelError(await call(V2.resendEmailCode, { userId, returnCode: {} }), Code.FailedPrecondition, "EMAIL-5w5ilin4yt", "Code is empty");
  });

  it("ResendEmailCode send_code with a url_template mails a link from the template; an invalid template is DOMAIN-oGh5e", async () => {
    const { userId, email } = await addWithMailedCode();
    const urlTemplate = "https://app.example.com/v?u={{.UserID}}&c={{.Code}}";
    expectOk(await call(V2.resendEmailCode, { userId, sendCode: { urlTemplate } }));
    await until(() => mailbox.to(email).length === 2);
    const mail = mailbox.to(email)[1]!;
    expect(linkIn(mail).href).toBe(`https://app.example.com/v?u=${userId}&c=${codeIn(mail)}`);
    expectZitadelError(
      await call(V2.resendEmailCode, { userId, sendCode: { urlTemplate: "https://x/{{.Code" } }),
      Code.InvalidArgument,
      "DOMAIN-oGh5e",
      "URL Template is invalid",
    );
    expectOk(await call(V2.verifyEmail, { userId, verificationCode: codeIn(mail) }));
  });

  it("SetEmail: a new address gets a mail with a new code; the same address is COMMAND-Uch5e; is_verified needs no code", async () => {
    const { userId } = await addWithMailedCode();
    const next = uniqueEmail("changed");
    expectOk(await call(V2.setEmail, { userId, email: next, sendCode: {} }));
    const mail = await mailbox.waitFor(next);
    expect((await user(userId)).human.email).toEqual({ email: next });
    expectOk(await call(V2.verifyEmail, { userId, verificationCode: codeIn(mail) }));
    expectZitadelError(await call(V2.setEmail, { userId, email: next, returnCode: {} }), Code.FailedPrecondition, "COMMAND-Uch5e", "Email not changed");
    const verified = uniqueEmail("verified");
    expectOk(await call(V2.setEmail, { userId, email: verified, isVerified: true }));
    expect((await user(userId)).human.email).toEqual({ email: verified, isVerified: true });
    expectPgvError(
      await call(V2.setEmail, { userId, email: uniqueEmail("x"), isVerified: false }),
      "invalid SetEmailRequest.IsVerified: value must equal true",
    );
  });

  it("an INITIAL user must finish initialisation first (COMMAND-uz0Uu); an unknown user is COMMAND-ieJ2e", async () => {
    const { userId, code } = await importInitial();
    expectZitadelError(await call(V2.verifyEmail, { userId, verificationCode: code }), Code.FailedPrecondition, "COMMAND-uz0Uu", "User is not yet initialized");
    expectZitadelError(await call(V2.resendEmailCode, { userId }), Code.FailedPrecondition, "COMMAND-uz0Uu", "User is not yet initialized");
    expectZitadelError(await call(V2.verifyEmail, { userId: "4711", verificationCode: "ABCDEF" }), Code.NotFound, "COMMAND-ieJ2e", "Email not found");
    expectPgvError(
      await call(V2.verifyEmail, { userId, verificationCode: "" }),
      "invalid VerifyEmailRequest.VerificationCode: value length must be between 1 and 20 runes, inclusive",
    );
  });

  it("permissions: a caller without user.write cannot resend or set (AUTHZ-HKJD33) but may verify with the code, as in ZITADEL", async () => {
    const { userId, code } = await addWithMailedCode();
    const stranger = await seedScopedCaller(up.server, undefined);
    const as = { token: stranger.token };
    expectZitadelError(await call(V2.resendEmailCode, { userId, returnCode: {} }, as), Code.PermissionDenied, "AUTHZ-HKJD33", "Errors.PermissionDenied");
    expectZitadelError(
      await call(V2.setEmail, { userId, email: uniqueEmail("x"), returnCode: {} }, as),
      Code.PermissionDenied,
      "AUTHZ-HKJD33",
      "Errors.PermissionDenied",
    );
    expectOk(await call(V2.verifyEmail, { userId, verificationCode: code }, as));
    const anonymous = await call(V2.verifyEmail, { userId, verificationCode: code }, { token: null });
    expect(anonymous.ok ? 0 : anonymous.error.code).toBe(Code.Unauthenticated);
  });
});

describe.each(["grpc-js", "connect-json-h1", "rest"] as const)("v2 phone verification over %s", (transport) => {
  const call = (method: (typeof V2)[keyof typeof V2], body: JsonObject) => up.caller(transport).call(method, body);

  it("SetPhone return_code, VerifyPhone; ResendPhoneCode; the SMS of send_code stays in the outbox, undeliverable", async () => {
    const { userId } = expectOk(await call(V2.addHumanUser, v2AddBody()));
    const set = expectOk(await call(V2.setPhone, { userId, phone: "+41 79 123 45 67", returnCode: {} }));
    const code = set.verificationCode as string;
    expect(code).toMatch(/^[A-Z0-9]{6}$/);
    expect((await user(userId as string)).human.phone).toEqual({ phone: "+41791234567" });
    const resent = expectOk(await call(V2.resendPhoneCode, { userId, returnCode: {} }));
    expectOk(await call(V2.verifyPhone, { userId, verificationCode: resent.verificationCode as string }));
    expect((await user(userId as string)).human.phone).toEqual({ phone: "+41791234567", isVerified: true });
    expectZitadelError(
      await call(V2.verifyPhone, { userId, verificationCode: resent.verificationCode as string }),
      Code.InvalidArgument,
      "COMMAND-eis9R",
      "Code is invalid",
    );
    expectZitadelError(await call(V2.resendPhoneCode, { userId }), Code.FailedPrecondition, "PHONE-5xrra88eq8", "Code is empty");

    expectOk(await call(V2.setPhone, { userId, phone: "+41 79 765 43 21", sendCode: {} }));
    const sms = await up.server.db
      .selectFrom("outbox")
      .select(["channel", "recipient", "deliverable", "sent_at"])
      .where("user_id", "=", userId as string)
      .where("kind", "=", "phone_verification")
      .execute();
    expect(sms).toEqual([{ channel: "sms", recipient: "+41797654321", deliverable: 0, sent_at: null }]);
  });
});

async function until(check: () => boolean) {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 20));
}
