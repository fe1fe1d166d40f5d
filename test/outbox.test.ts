/**
 * The outbox: every code that must be sent becomes a message in the same transaction as the user
 * it belongs to (ZITADEL's internal/command/user_human_init.go, user_v2_human.go), its body sealed at rest; a returned code is not sent;
 * an invalid `url_template` fails the request with ZITADEL's errors and writes nothing.
 * Delivery over SMTP is tested in mail-delivery.test.ts.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { V1, V2 } from "./helpers/clients.js";
import { expectOk, expectZitadelError } from "./helpers/expectations.js";
import { bcryptHash, GOOD_PASSWORD, uniqueEmail, useUserport, v1AddBody, v1ImportBody, v2AddBody } from "./helpers/fixtures.js";

// No SMTP is configured: the messages stay in the outbox, where this test reads them.
const up = useUserport();

async function outboxOf(userId: string) {
  return up.server.db.selectFrom("outbox").selectAll().where("user_id", "=", userId).orderBy("kind").execute();
}

async function userCount(email: string) {
  const row = await up.server.db
    .selectFrom("users")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("email", "=", email)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

describe("outbox", () => {
  it("v1 import with an unverified email enqueues the init mail to the user's address, body sealed, unsent", async () => {
    const email = uniqueEmail("init");
    const body = v1ImportBody({ email: { email, isEmailVerified: false }, hashedPassword: { value: bcryptHash(GOOD_PASSWORD, 4) } });
    const { userId } = expectOk(await up.caller("rest").call(V1.importHumanUser, body));
    const [message, ...rest] = await outboxOf(userId as string);
    expect(rest).toEqual([]);
    expect(message).toMatchObject({
      kind: "init",
      channel: "email",
      recipient: email,
      deliverable: 1,
      subject: "Initialize User",
      attempts: 0,
      sent_at: null,
      last_error: null,
    });
    // Sealed: base64 of IV, tag and ciphertext, no readable text, link or code.
    expect(message!.sealed_body).toMatch(/^[A-Za-z0-9+/]+=*$/);
    expect(message!.sealed_body).not.toContain("init");
  });

  it("v1 import with a verified email and a password enqueues nothing; with a German user the subject is German", async () => {
    const quiet = expectOk(await up.caller("grpc-js").call(V1.importHumanUser, v1ImportBody({ password: GOOD_PASSWORD })));
    expect(await outboxOf(quiet.userId as string)).toEqual([]);
    const german = v1ImportBody({
      profile: { firstName: "Heidi", lastName: "Muster", preferredLanguage: "de-CH" },
      email: { email: uniqueEmail("heidi"), isEmailVerified: false },
    });
    const { userId } = expectOk(await up.caller("connect-json-h1").call(V1.importHumanUser, german));
    expect((await outboxOf(userId as string)).map((m) => m.subject)).toEqual(["Benutzer initialisieren"]);
  });

  it("v1 AddHumanUser: init mail when there is no password; an unverified phone is an SMS kept undeliverable", async () => {
    const body = v1AddBody({ phone: { phone: "+41 71 000 00 00", isPhoneVerified: false } });
    const { userId } = expectOk(await up.caller("connect-grpc").call(V1.addHumanUser, body));
    const messages = await outboxOf(userId as string);
    expect(messages.map((m) => [m.kind, m.channel, m.recipient, m.deliverable])).toEqual([
      ["init", "email", (body.email as JsonObject).email, 1],
      ["phone_verification", "sms", "+41710000000", 0],
    ]);
  });

  it("v2 AddHumanUser: send_code enqueues the verification mail, return_code and is_verified do not", async () => {
    const t = up.caller("connect-json-h1");
    const sent = expectOk(await t.call(V2.addHumanUser, v2AddBody({ email: { email: uniqueEmail("send"), sendCode: {} } })));
    expect((await outboxOf(sent.userId as string)).map((m) => m.kind)).toEqual(["email_verification"]);
    const noChoice = expectOk(await t.call(V2.addHumanUser, v2AddBody({ email: { email: uniqueEmail("default") } })));
    expect((await outboxOf(noChoice.userId as string)).map((m) => m.kind)).toEqual(["email_verification"]);
    const returned = expectOk(await t.call(V2.addHumanUser, v2AddBody({ email: { email: uniqueEmail("ret"), returnCode: {} } })));
    expect(returned.emailCode).toMatch(/^[A-Z0-9]{6}$/);
    expect(await outboxOf(returned.userId as string)).toEqual([]);
    const verified = expectOk(await t.call(V2.addHumanUser, v2AddBody()));
    expect(await outboxOf(verified.userId as string)).toEqual([]);
  });

  describe.each(["grpc-js", "connect-json-h1", "rest"] as const)("invalid url_template over %s", (transport) => {
    it.each([
      ["unclosed action", "https://example.com/verify?code={{.Code", "DOMAIN-oGh5e"],
      ["empty action", "https://example.com/verify?code={{}}", "DOMAIN-oGh5e"],
      ["unknown field", "https://example.com/verify?user={{.UserID}}&code={{.InvalidField}}", "DOMAIN-ieYa7"],
    ])("%s is InvalidArgument %s and creates no user", async (_name, urlTemplate, id) => {
      const email = uniqueEmail("tmpl");
      const res = await up.caller(transport).call(V2.addHumanUser, v2AddBody({ email: { email, sendCode: { urlTemplate } } }));
      expectZitadelError(res, Code.InvalidArgument, id, "URL Template is invalid");
      expect(await userCount(email)).toBe(0);
    });
  });
});
