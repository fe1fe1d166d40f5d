/**
 * Mail over real SMTP: userport's dispatcher delivers the outbox to an SMTP server running in this
 * process (with AUTH), and the tests read the mails as a user would. Delivery is at least once and
 * survives a refusing server, a server that is down, and a restart of userport.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JsonObject } from "@bufbuild/protobuf";
import { afterAll, describe, expect, it } from "vitest";
import { createCallers, V1, V2 } from "./helpers/clients.js";
import { expectOk } from "./helpers/expectations.js";
import { bcryptHash, GOOD_PASSWORD, uniqueEmail, useUserport, v1ImportBody, v2AddBody } from "./helpers/fixtures.js";
import { codeIn, linkIn, startMailbox } from "./helpers/mailbox.js";
import { startTestServer } from "./helpers/server.js";

const mailbox = await startMailbox();
afterAll(() => mailbox.stop());

const FROM = "noreply@userport.test";
const EXTERNAL = "https://id.userport.test";
/** Fast retries, so that a refused or failed delivery is tried again within the test. */
const SMTP = { smtpUrl: mailbox.url, smtpFrom: FROM, outboxPollMs: 50, smtpRetryBaseMs: 50, smtpRetryMaxMs: 200 };
const up = useUserport({ ...SMTP, externalUrl: EXTERNAL });

async function outboxRow(userId: string) {
  return up.server.db.selectFrom("outbox").selectAll().where("user_id", "=", userId).executeTakeFirstOrThrow();
}

async function until(check: () => Promise<boolean>) {
  while (!(await check())) await new Promise((resolve) => setTimeout(resolve, 20));
}

function importUnverified(extra: JsonObject = {}) {
  const email = uniqueEmail("mail");
  return {
    email,
    body: v1ImportBody({ email: { email, isEmailVerified: false }, hashedPassword: { value: bcryptHash(GOOD_PASSWORD, 4) }, ...extra }),
  };
}

describe("mail delivery over SMTP", () => {
  it("an imported user with an unverified email gets the init mail with its code and the login link; sent once, marked sent", async () => {
    const { email, body } = importUnverified();
    const { userId } = expectOk(await up.caller("rest").call(V1.importHumanUser, body));
    const mail = await mailbox.waitFor(email);
    expect(mail.from).toBe(FROM);
    expect(mail.to).toEqual([email]);
    expect(mail.subject).toBe("Initialize User");
    const code = codeIn(mail);
    expect(code).toMatch(/^[A-Z0-9]{6}$/);
    const link = linkIn(mail);
    expect(link.origin + link.pathname).toBe(`${EXTERNAL}/ui/login/user/init`);
    expect(Object.fromEntries(link.searchParams)).toEqual({
      userID: userId,
      loginname: body.userName,
      code,
      orgID: up.defaultOrgId,
      passwordset: "true",
    });

    await until(async () => (await outboxRow(userId as string)).sent_at !== null);
    const row = await outboxRow(userId as string);
    expect(row).toMatchObject({ attempts: 0, last_error: null, claim_token: null });
    expect(row.sealed_body).not.toContain(code);
    expect(mailbox.to(email)).toHaveLength(1);
  });

  it("v2 send_code with a url_template: the verification mail links to the rendered template", async () => {
    const email = uniqueEmail("tmpl");
    const urlTemplate = "https://app.example.com/verify?user={{.UserID}}&org={{ .OrgID }}&code={{.Code}}&name={{.LoginName}}";
    const body = v2AddBody({ email: { email, sendCode: { urlTemplate } } });
    const { userId } = expectOk(await up.caller("grpc-js").call(V2.addHumanUser, body));
    const mail = await mailbox.waitFor(email);
    expect(mail.subject).toBe("Verify email");
    const code = codeIn(mail);
    expect(linkIn(mail).href).toBe(`https://app.example.com/verify?user=${userId}&org=${up.defaultOrgId}&code=${code}&name=${body.username}`);
  });

  it("the user's preferred language picks the texts (German)", async () => {
    const email = uniqueEmail("de");
    const body = v2AddBody({
      profile: { givenName: "Jürg", familyName: "Müller", preferredLanguage: "de" },
      email: { email, sendCode: {} },
    });
    expectOk(await up.caller("connect-json-h1").call(V2.addHumanUser, body));
    const mail = await mailbox.waitFor(email);
    expect(mail.subject).toBe("E-Mail verifizieren");
    expect(mail.text).toContain("Hallo Jürg Müller,");
    expect(linkIn(mail).pathname).toBe("/ui/login/mail/verification");
  });

  it("a server refusing with 451 twice: retried with backoff, the mail arrives exactly once, the failures are recorded without the code", async () => {
    mailbox.refuseNext(2);
    const refusedBefore = mailbox.refused;
    const { email, body } = importUnverified();
    const { userId } = expectOk(await up.caller("connect-grpc").call(V1.importHumanUser, body));
    const mail = await mailbox.waitFor(email);
    expect(mailbox.refused - refusedBefore).toBe(2);
    await until(async () => (await outboxRow(userId as string)).sent_at !== null);
    const row = await outboxRow(userId as string);
    expect(row.attempts).toBe(2);
    expect(row.last_error).toMatch(/451/);
    expect(row.last_error).not.toContain(codeIn(mail));
    expect(mailbox.to(email)).toHaveLength(1);
  });

  it("the SMTP server down: delivery fails and is retried; once the server is back the mail arrives exactly once", async () => {
    await mailbox.stop();
    const { email, body } = importUnverified();
    let userId: string;
    try {
      userId = expectOk(await up.caller("rest").call(V1.importHumanUser, body)).userId as string;
      await until(async () => (await outboxRow(userId)).attempts >= 2);
      const failed = await outboxRow(userId);
      expect(failed.sent_at).toBeNull();
      expect(failed.last_error).toMatch(/^(ESOCKET|ECONNECTION)/); // refused connection
    } finally {
      await mailbox.start();
    }
    await mailbox.waitFor(email);
    await until(async () => (await outboxRow(userId as string)).sent_at !== null);
    expect(mailbox.to(email)).toHaveLength(1);
  });
});

describe("mail across a restart of userport", () => {
  it("messages enqueued while SMTP was not configured are delivered by the next run", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "userport-mail-restart-"));
    try {
      const first = await startTestServer({ dataDir });
      const emails = [uniqueEmail("restart"), uniqueEmail("restart")];
      const callers = createCallers(first.url, first.token);
      for (const email of emails) {
        const body = v1ImportBody({ email: { email, isEmailVerified: false } });
        expectOk(await callers.get("rest")!.call(V1.importHumanUser, body));
      }
      for (const caller of callers.values()) caller.close();
      const pending = await first.db.selectFrom("outbox").select("id").where("sent_at", "is", null).execute();
      expect(pending).toHaveLength(2);
      await first.close();
      expect(emails.flatMap((email) => mailbox.to(email))).toEqual([]);

      const second = await startTestServer({ dataDir, ...SMTP });
      try {
        for (const email of emails) expect(codeIn(await mailbox.waitFor(email))).toMatch(/^[A-Z0-9]{6}$/);
        await until(async () => (await second.db.selectFrom("outbox").select("id").where("sent_at", "is", null).execute()).length === 0);
        expect(emails.map((email) => mailbox.to(email).length)).toEqual([1, 1]);
      } finally {
        await second.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
