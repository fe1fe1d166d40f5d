/**
 * The links userport hands out lead somewhere: the email verification link of the verification
 * mail (ZITADEL's login path `/ui/login/mail/verification`, internal/api/ui/login/router.go and
 * mail_verify_handler.go, checked with the v1 command's ids from
 * internal/command/user_human_email.go VerifyHumanEmail), and the passwordless registration link
 * of ImportHumanUser (`/ui/login/login/passwordless/init`), which leads to the passkey
 * registration page (the ceremony itself is test/passkeys.test.ts, in a browser). And the init step checks the code before it hashes a password
 * (internal/command/user_human_init.go HumanVerifyInitCode verifies first), so a wrong code costs
 * no bcrypt hash.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, describe, expect, it } from "vitest";
import { parseRestResponse, V1, V2 } from "./helpers/clients.js";
import { expectOk, expectZitadelError } from "./helpers/expectations.js";
import { GOOD_PASSWORD, uniqueEmail, useUserport, v1ImportBody, v2AddBody } from "./helpers/fixtures.js";
import { codeIn, linkIn, startMailbox } from "./helpers/mailbox.js";

const mailbox = await startMailbox();
afterAll(() => mailbox.stop());

const up = useUserport({ smtpUrl: mailbox.url, smtpFrom: "noreply@userport.test", outboxPollMs: 50 });

/** A link as served by the test server (links carry USERPORT_EXTERNAL_URL's origin). */
const onServer = (link: URL) => `${up.server.url}${link.pathname}${link.search}`;

async function emailOf(userId: string) {
  const res = expectOk(await up.caller("grpc-js").call(V2.getUserByID, { userId }));
  return (res.user as JsonObject & { human: { email: { email: string; isVerified?: boolean } } }).human.email;
}

async function addWithMailedCode() {
  const email = uniqueEmail("link");
  const { userId } = expectOk(await up.caller("rest").call(V2.addHumanUser, v2AddBody({ email: { email, sendCode: {} } })));
  const mail = await mailbox.waitFor(email);
  return { userId: userId as string, mail, code: codeIn(mail) };
}

/** Posts the verification form as a script would: JSON in, ZITADEL's REST shapes out. */
async function postVerification(fields: Record<string, string>) {
  return parseRestResponse(
    await fetch(`${up.server.url}/ui/login/mail/verification`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(fields),
    }),
  );
}

describe("the email verification link of the verification mail", () => {
  it("opens a form with the code (verifying nothing yet); posting it verifies the email, once", async () => {
    const { userId, mail, code } = await addWithMailedCode();
    const link = linkIn(mail);
    expect(link.pathname).toBe("/ui/login/mail/verification");
    expect(link.searchParams.get("userID")).toBe(userId);
    expect(link.searchParams.get("code")).toBe(code);
    expect(link.searchParams.get("orgID")).toBe(up.defaultOrgId);

    const page = await fetch(onServer(link));
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(page.headers.get("cache-control")).toBe("no-store");
    expect(page.headers.get("referrer-policy")).toBe("no-referrer");
    const html = await page.text();
    expect(html).toContain('<form method="post" action="/ui/login/mail/verification">');
    expect(html).toContain(`name="userID" value="${userId}"`);
    expect(html).toContain(`name="code" value="${code}"`);
    // A mail scanner following the link must not spend the code.
    expect((await emailOf(userId)).isVerified ?? false).toBe(false);

    // The form, as a browser posts it.
    const done = await fetch(`${up.server.url}/ui/login/mail/verification`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ userID: userId, orgID: up.defaultOrgId, code }).toString(),
    });
    expect(done.status).toBe(200);
    expect(done.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await done.text()).toContain("Your email address is verified.");
    expect((await emailOf(userId)).isVerified).toBe(true);
    expect((await up.eventTypes(userId)).at(-1)).toBe("user.human.email.verified");

    // Single use: the spent code is gone, as ZITADEL's VerifyHumanEmail finds no code.
    expectZitadelError(await postVerification({ userID: userId, code }), Code.NotFound, "COMMAND-3n8ud", "Code not found");
  });

  it("a wrong code is COMMAND-Gdsgs and recorded (verification.failed); the right code still works afterwards", async () => {
    const { userId, code } = await addWithMailedCode();
    const wrong = code === "AAAAAA" ? "BBBBBB" : "AAAAAA";
    const res = await postVerification({ userID: userId, code: wrong });
    expectZitadelError(res, Code.InvalidArgument, "COMMAND-Gdsgs", "Code is invalid");
    expect(JSON.stringify(res)).not.toContain(code);
    expect((await up.eventTypes(userId)).at(-1)).toBe("user.human.email.verification.failed");
    expect((await emailOf(userId)).isVerified ?? false).toBe(false);

    const done = expectOk(await postVerification({ userID: userId, code, orgID: up.defaultOrgId }), 200);
    expect(done.details).toMatchObject({ resourceOwner: up.defaultOrgId });
    expect((await emailOf(userId)).isVerified).toBe(true);
  });

  it("refuses a missing user id, an empty code, an unknown user and another organisation with ZITADEL's ids; the form shows the error", async () => {
    const { userId, code } = await addWithMailedCode();
    expectZitadelError(await postVerification({ userID: "", code }), Code.InvalidArgument, "COMMAND-4M0ds", "User ID missing");
    expectZitadelError(await postVerification({ userID: userId, code: "" }), Code.InvalidArgument, "COMMAND-çm0ds", "Code is empty");
    expectZitadelError(await postVerification({ userID: "4711", code }), Code.NotFound, "COMMAND-3n8ud", "Code not found");
    expectZitadelError(await postVerification({ userID: userId, orgID: "other-org", code }), Code.NotFound, "COMMAND-3n8ud", "Code not found");
    const form = await fetch(`${up.server.url}/ui/login/mail/verification`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ userID: userId, code: "WRONG1" }).toString(),
    });
    expect(form.status).toBe(400);
    expect(form.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await form.text()).toContain("Code is invalid (COMMAND-Gdsgs)");
    expect((await emailOf(userId)).isVerified ?? false).toBe(false);
  });
});

describe("the passwordless registration link of ImportHumanUser", () => {
  it("leads to the passkey registration page (200, HTML, its scripts from userport itself), without the code in the page", async () => {
    const created = expectOk(
      await up.caller("rest").call(V1.importHumanUser, v1ImportBody({ password: GOOD_PASSWORD, requestPasswordlessRegistration: true })),
    );
    const link = new URL((created.passwordlessRegistration as { link: string }).link);
    expect(link.pathname).toBe("/ui/login/login/passwordless/init");
    const code = link.searchParams.get("code")!;
    expect(code).toMatch(/^[A-Za-z0-9]{12}$/);

    const page = await fetch(onServer(link));
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(page.headers.get("cache-control")).toBe("no-store");
    expect(page.headers.get("referrer-policy")).toBe("no-referrer");
    const html = await page.text();
    expect(html).toContain('<button id="register"');
    expect(html).toContain('data-state="ready"');
    expect(html).not.toContain(code);
    // No third-party requests: every script the page loads is userport's own.
    const sources = [...html.matchAll(/<script[^>]*src="([^"]+)"/g)].map((m) => m[1]!);
    expect(sources.length).toBe(2);
    for (const source of sources) {
      expect(source.startsWith("/ui/login/assets/")).toBe(true);
      const script = await fetch(`${up.server.url}${source}`);
      expect(script.status).toBe(200);
      expect(script.headers.get("content-type")).toMatch(/^text\/javascript/);
    }

    // A wrong code shows why the link cannot be used, and spends nothing.
    link.searchParams.set("code", "WRONGWRONG12");
    const wrong = await fetch(onServer(link));
    expect(wrong.status).toBe(400);
    const refused = await wrong.text();
    expect(refused).toContain('data-state="invalid"');
    expect(refused).not.toContain("<button");
  });
});

describe("the init step hashes a password only for the right code", () => {
  async function importInitial() {
    const email = uniqueEmail("init-hash");
    const { userId } = expectOk(await up.caller("rest").call(V1.importHumanUser, v1ImportBody({ email: { email, isEmailVerified: false } })));
    return { userId: userId as string, code: codeIn(await mailbox.waitFor(email)) };
  }
  const postInit = async (fields: Record<string, string>) =>
    parseRestResponse(
      await fetch(`${up.server.url}/ui/login/user/init`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(fields),
      }),
    );

  it("a wrong code, an unknown user or a spent code cost no hash; the right code costs one", async () => {
    const { userId, code } = await importInitial();
    const wrong = code === "AAAAAA" ? "BBBBBB" : "AAAAAA";
    const before = up.server.passwordHashes();
    expectZitadelError(await postInit({ userID: userId, code: wrong, password: GOOD_PASSWORD }), Code.InvalidArgument, "COMMAND-11v6G", "Code is invalid");
    expectZitadelError(await postInit({ userID: "4711", code, password: GOOD_PASSWORD }), Code.NotFound, "COMMAND-mmn5f", "Code not found");
    expect(up.server.passwordHashes()).toBe(before);

    expectOk(await postInit({ userID: userId, code, password: GOOD_PASSWORD }), 200);
    expect(up.server.passwordHashes()).toBe(before + 1);
    expectZitadelError(await postInit({ userID: userId, code, password: GOOD_PASSWORD }), Code.NotFound, "COMMAND-mmn5f", "Code not found");
    expect(up.server.passwordHashes()).toBe(before + 1);
  });
});
