/**
 * Passkeys end to end, in a real browser: headless Chromium (Debian's /usr/bin/chromium, driven by
 * playwright-core) with a virtual authenticator (the DevTools protocol's WebAuthn domain) follows
 * the passwordless registration link of a real ImportHumanUser response, and one from
 * CreatePasskeyRegistrationLink, registers a passkey on userport's page, then signs in through the
 * v2 session API: CreateSession with a WebAuthN challenge, `navigator.credentials.get` on a page of
 * userport's origin, SetSession with `checks.webAuthN`. And the refusals: an expired code, a used
 * code, an assertion of another user's passkey, a replayed assertion, a cloned authenticator (its
 * signature counter), a tampered signature. ZITADEL's contract: internal/command/user_v2_passkey.go,
 * user_human_webauthn.go, session_webauhtn.go, internal/webauthn/webauthn.go, and its integration
 * tests internal/api/grpc/user/v2/integration_test/passkey_test.go.
 *
 * One browser for the file. A screenshot of the registration page in each state goes to
 * test-results/passkeys/ (not in the repository) for a person to look at.
 */
import { existsSync, mkdirSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { type Browser, type BrowserContext, type CDPSession, chromium, type Page } from "playwright-core";
import { afterAll, describe, expect, it } from "vitest";
import { SESSIONS, V1, V2 } from "./helpers/clients.js";
import { expectOk, expectZitadelError } from "./helpers/expectations.js";
import { GOOD_PASSWORD, uniqueEmail, useUserport, v1ImportBody } from "./helpers/fixtures.js";

const CHROMIUM = "/usr/bin/chromium";
const BROWSER_REQUIRED = process.env.USERPORT_REQUIRE_BROWSER === "1";
const SKIP_BROWSER = !existsSync(CHROMIUM) && !BROWSER_REQUIRED;
if (SKIP_BROWSER) {
  process.stderr.write(
    `\n!!! SKIPPED test/passkeys.test.ts: ${CHROMIUM} is missing. Install it with \`apt-get install -y chromium\` to run the passkey tests ` +
      "(.ci/run installs it and sets USERPORT_REQUIRE_BROWSER=1, which makes a missing browser fail). !!!\n\n",
  );
}

const SHOTS = join(process.cwd(), "test-results", "passkeys");
mkdirSync(SHOTS, { recursive: true });

/** A free port: the relying party id must be a domain (localhost), and the page's origin must match USERPORT_EXTERNAL_URL. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const PORT = await freePort();
const ORIGIN = `http://localhost:${PORT}`;
const up = useUserport({ port: PORT, externalUrl: ORIGIN });

let browserPromise: Promise<Browser> | undefined;
const browser = () => {
  browserPromise ??= chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // localhost is the relying party; it must reach the server's IPv4 address.
      "--host-resolver-rules=MAP localhost 127.0.0.1",
    ],
  });
  return browserPromise;
};
afterAll(async () => {
  if (browserPromise) await (await browserPromise).close();
});

interface Device {
  context: BrowserContext;
  page: Page;
  cdp: CDPSession;
  authenticatorId: string;
}

/**
 * A browser tab with a virtual platform authenticator that verifies the user, or, with
 * `verifying: false`, one that cannot: a ceremony requiring user verification then ends as a
 * cancelled one does (NotAllowedError).
 */
async function device(options: { verifying?: boolean; webAuthn?: boolean } = {}): Promise<Device> {
  const context = await (await browser()).newContext();
  const page = await context.newPage();
  if (options.webAuthn === false) {
    // A browser without WebAuthn.
    await page.addInitScript("delete window.PublicKeyCredential;");
  }
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable", { enableUI: false });
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: options.verifying ?? true,
      automaticPresenceSimulation: true,
    },
  });
  return { context, page, cdp, authenticatorId };
}

/** A screenshot of the page in `state`, checked to be written. */
async function shoot(page: Page, state: string): Promise<void> {
  const file = join(SHOTS, `${state}.png`);
  await page.screenshot({ path: file, fullPage: true });
  expect(statSync(file).size).toBeGreaterThan(1000);
}

const stateOf = (page: Page) => page.locator("main").getAttribute("data-state");

/** Opens the link, registers a passkey on the page, and waits for the page's verdict. */
async function registerOnPage(dev: Device, link: string, shotPrefix?: string): Promise<string | null> {
  await dev.page.goto(link);
  expect(await stateOf(dev.page)).toBe("ready");
  if (shotPrefix) await shoot(dev.page, `${shotPrefix}-ready`);
  await dev.page.fill("#name", "Laptop");
  await dev.page.click("#register");
  await dev.page.waitForFunction('!["ready", "working"].includes(document.querySelector("main").dataset.state)');
  return stateOf(dev.page);
}

/** The link's parts, as the page reads them. */
const partsOf = (link: string) => {
  const url = new URL(link);
  return { userID: url.searchParams.get("userID")!, codeID: url.searchParams.get("codeID")!, code: url.searchParams.get("code")! };
};

/** A user imported with requestPasswordlessRegistration, and its link. */
async function importWithLink(): Promise<{ userId: string; link: string; userName: string }> {
  const userName = uniqueEmail("passkey");
  const created = expectOk(
    await up
      .caller("rest")
      .call(V1.importHumanUser, v1ImportBody({ userName, email: { email: userName, isEmailVerified: true }, requestPasswordlessRegistration: true })),
  );
  const link = (created.passwordlessRegistration as { link: string }).link;
  expect(link.startsWith(`${ORIGIN}/ui/login/login/passwordless/init?`)).toBe(true);
  return { userId: String(created.userId), link, userName };
}

/** CreateSession for the user with a WebAuthN challenge; the request options it answers. */
async function challengedSession(userId: string, userVerificationRequirement = "USER_VERIFICATION_REQUIREMENT_REQUIRED") {
  const created = expectOk(
    await up.caller("rest").call(SESSIONS.createSession, {
      checks: { user: { userId } },
      challenges: { webAuthN: { domain: "localhost", userVerificationRequirement } },
    }),
  );
  const options = ((created.challenges as JsonObject).webAuthN as JsonObject).publicKeyCredentialRequestOptions as JsonObject;
  return { sessionId: String(created.sessionId), sessionToken: String(created.sessionToken), options };
}

/** The browser's assertion for `options` (navigator.credentials.get through @simplewebauthn/browser), on userport's origin. */
async function assert(dev: Device, options: JsonObject): Promise<JsonObject> {
  if (!dev.page.url().startsWith(ORIGIN)) await dev.page.goto(`${ORIGIN}/ui/login/login/passwordless/init`);
  await dev.page.addScriptTag({ url: `${ORIGIN}/ui/login/assets/simplewebauthn-browser.js` });
  const optionsJSON = JSON.stringify(options.publicKey);
  return (await dev.page.evaluate(`SimpleWebAuthnBrowser.startAuthentication({ optionsJSON: ${optionsJSON} })`)) as JsonObject;
}

const checkAssertion = (sessionId: string, assertion: JsonObject) =>
  up.caller("rest").call(SESSIONS.setSession, { sessionId, checks: { webAuthN: { credentialAssertionData: assertion } } });

describe.skipIf(SKIP_BROWSER)("passkeys in a browser", () => {
  it("the ImportHumanUser link registers a passkey on userport's page; CreateSession's challenge and SetSession's checks.webAuthN sign the user in", async () => {
    const dev = await device();
    try {
      const { userId, link } = await importWithLink();
      expect(await registerOnPage(dev, link, "import-link")).toBe("done");
      await shoot(dev.page, "import-link-done");

      // The credential is stored: READY, with the name from the page (v2 and v1 lists).
      const listed = expectOk(await up.caller("rest").call(V2.listPasskeys, { userId }));
      expect(listed.result).toEqual([{ id: expect.any(String), state: "AUTH_FACTOR_STATE_READY", name: "Laptop" }]);
      const listedV1 = expectOk(await up.caller("rest").call(V1.listHumanPasswordless, { userId }));
      expect(listedV1.result).toEqual([{ id: (listed.result as JsonObject[])[0]!.id, state: "AUTH_FACTOR_STATE_READY", name: "Laptop" }]);
      const row = await up.server.db.selectFrom("passkeys").selectAll().where("user_id", "=", userId).executeTakeFirstOrThrow();
      expect(row.credential_id).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(row.public_key).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(row.aaguid).toMatch(/^[0-9a-f-]{36}$/);
      expect(row.attestation_type).toBe("none");
      expect(JSON.parse(row.transports)).toEqual(expect.any(Array));

      // Sign in: user verification required, then preferred and discouraged (Chromium then skips
      // verifying the user, and the factor says so; false is left out of JSON).
      for (const [requirement, verified] of [
        ["USER_VERIFICATION_REQUIREMENT_REQUIRED", true],
        ["USER_VERIFICATION_REQUIREMENT_PREFERRED", true],
        ["USER_VERIFICATION_REQUIREMENT_DISCOURAGED", false],
      ] as const) {
        const { sessionId, sessionToken, options } = await challengedSession(userId, requirement);
        const publicKey = options.publicKey as JsonObject;
        expect(publicKey.rpId).toBe("localhost");
        expect((publicKey.allowCredentials as JsonObject[]).map((c) => c.id)).toEqual([row.credential_id]);
        expect(expectOk(await up.caller("rest").call(SESSIONS.getSession, { sessionId, sessionToken })).session).not.toHaveProperty("factors.webAuthN");
        const assertion = await assert(dev, options);
        expectOk(await checkAssertion(sessionId, assertion));
        const session = expectOk(await up.caller("rest").call(SESSIONS.getSession, { sessionId })).session as JsonObject;
        const factors = session.factors as JsonObject;
        expect(factors.webAuthN).toEqual({ verifiedAt: expect.any(String), ...(verified ? { userVerified: true } : {}) });
        expect((factors.user as JsonObject).id).toBe(userId);
      }

      // The user's history, as ZITADEL writes it: a sign-in moves the signature counter.
      const types = await up.eventTypes(userId);
      expect(types.filter((t) => t === "user.human.passwordless.token.signcount.changed").length).toBe(3);
      expect(types).toEqual(
        expect.arrayContaining([
          "user.human.passwordless.initialization.code.added",
          "user.human.passwordless.token.added",
          "user.human.passwordless.token.verified",
          "user.human.passwordless.initialization.check.succeeded",
          "user.human.passwordless.token.signcount.changed",
        ]),
      );

      // The link is spent: the page says so, and the options are refused.
      await dev.page.goto(link);
      expect(await stateOf(dev.page)).toBe("used");
      await shoot(dev.page, "used-link");
      const again = await fetch(`${ORIGIN}/ui/login/login/passwordless/init/options`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(partsOf(link)),
      });
      expect(again.status).toBe(400);
      expect(((await again.json()) as { details: Array<{ id: string }> }).details[0]!.id).toBe("COMMAND-Eeb2a");
    } finally {
      await dev.context.close();
    }
  });

  it("CreatePasskeyRegistrationLink: a returned code makes a link that registers; RegisterPasskey/VerifyPasskeyRegistration over the API; RemovePasskey", async () => {
    const dev = await device();
    try {
      const { userId } = await importWithLink();
      const created = expectOk(await up.caller("rest").call(V2.createPasskeyRegistrationLink, { userId, returnCode: {} }));
      const code = created.code as { id: string; code: string };
      expect(code.code).toMatch(/^[A-Za-z0-9]{12}$/);
      const link = `${ORIGIN}/ui/login/login/passwordless/init?userID=${userId}&orgID=${up.defaultOrgId}&codeID=${code.id}&code=${code.code}`;
      expect(await registerOnPage(dev, link, "registration-link")).toBe("done");
      const { sessionId, options } = await challengedSession(userId);
      expectOk(await checkAssertion(sessionId, await assert(dev, options)));

      // The API's own two steps with a code (spent at RegisterPasskey, as in ZITADEL), the
      // browser making the credential from the creation options.
      const second = expectOk(await up.caller("rest").call(V2.createPasskeyRegistrationLink, { userId, returnCode: {} })).code as JsonObject;
      const started = expectOk(await up.caller("rest").call(V2.registerPasskey, { userId, code: second }));
      const creation = (started.publicKeyCredentialCreationOptions as JsonObject).publicKey as JsonObject;
      expect(creation.attestation).toBe("none");
      expect((creation.authenticatorSelection as JsonObject).userVerification).toBe("required");
      expect((creation.excludeCredentials as JsonObject[]).length).toBe(1);
      expectZitadelError(
        await up.caller("rest").call(V2.registerPasskey, { userId, code: second }),
        Code.InvalidArgument,
        "COMMAND-Eeb2a",
        "Errors.User.Code.Invalid",
      );
      // A second authenticator (the first one is excluded).
      const other = await device();
      try {
        await other.page.goto(`${ORIGIN}/ui/login/login/passwordless/init`);
        await other.page.addScriptTag({ url: `${ORIGIN}/ui/login/assets/simplewebauthn-browser.js` });
        const credential = (await other.page.evaluate(`SimpleWebAuthnBrowser.startRegistration({ optionsJSON: ${JSON.stringify(creation)} })`)) as JsonObject;
        expectOk(
          await up
            .caller("rest")
            .call(V2.verifyPasskeyRegistration, { userId, passkeyId: started.passkeyId, publicKeyCredential: credential, passkeyName: "Phone" }),
        );
      } finally {
        await other.context.close();
      }
      const names = (expectOk(await up.caller("rest").call(V2.listPasskeys, { userId })).result as JsonObject[]).map((p) => p.name);
      expect(names).toEqual(["Laptop", "Phone"]);

      // Removed, the first passkey no longer signs in.
      const laptop = (expectOk(await up.caller("rest").call(V2.listPasskeys, { userId })).result as JsonObject[])[0]!;
      expectOk(await up.caller("rest").call(V2.removePasskey, { userId, passkeyId: laptop.id }));
      expectZitadelError(
        await up.caller("rest").call(V2.removePasskey, { userId, passkeyId: laptop.id }),
        Code.NotFound,
        "COMMAND-DAfb2",
        "Errors.User.WebAuthN.NotFound",
      );
      expect(await up.eventTypes(userId)).toContain("user.human.passwordless.token.removed");

      // Removing the user takes its passkeys with it (a later user with the same id starts without).
      expectOk(await up.caller("rest").call(V2.deleteUser, { userId }));
      expect(await up.server.db.selectFrom("passkeys").select("id").where("user_id", "=", userId).execute()).toEqual([]);
    } finally {
      await dev.context.close();
    }
  });

  it("mailed links: SendPasswordlessRegistration and CreatePasskeyRegistrationLink's sendLink enqueue a mail with the link; AddPasswordlessRegistration returns one", async () => {
    const { userId } = await importWithLink();
    expectOk(await up.caller("rest").call(V1.sendPasswordlessRegistration, { userId }));
    expectOk(
      await up.caller("rest").call(V2.createPasskeyRegistrationLink, {
        userId,
        sendLink: { urlTemplate: "https://login.example.com/passkey?u={{.UserID}}&c={{.CodeID}}&k={{.Code}}" },
      }),
    );
    const mails = await up.server.db
      .selectFrom("outbox")
      .select(["kind", "user_id"])
      .where("user_id", "=", userId)
      .where("kind", "=", "passwordless_registration")
      .execute();
    expect(mails.length).toBe(2);
    expectZitadelError(
      await up.caller("rest").call(V2.createPasskeyRegistrationLink, { userId, sendLink: { urlTemplate: "https://x.example.com/{{.Nope}}" } }),
      Code.InvalidArgument,
      "DOMAIN-ieYa7",
      "URL Template is invalid",
    );
    const added = expectOk(await up.caller("rest").call(V1.addPasswordlessRegistration, { userId }));
    expect(added.link).toMatch(new RegExp(`^${ORIGIN}/ui/login/login/passwordless/init\\?userID=${userId}&orgID=\\d+&codeID=\\d+&code=[A-Za-z0-9]{12}$`));
    expect(added.expiration).toBe("3600s");
    const types = await up.eventTypes(userId);
    expect(types.filter((t) => t === "user.human.passwordless.initialization.code.requested").length).toBe(2);
  });

  it("refuses an expired link (page and API), and shows the page without WebAuthn and after a cancelled ceremony, the link still usable", async () => {
    const { userId, link } = await importWithLink();
    // A browser without WebAuthn.
    const bare = await device({ webAuthn: false });
    try {
      await bare.page.goto(link);
      await bare.page.waitForFunction('document.querySelector("main").dataset.state === "unsupported"');
      await shoot(bare.page, "no-webauthn");
    } finally {
      await bare.context.close();
    }
    // The user declines the authenticator's prompt.
    const declining = await device({ verifying: false });
    try {
      expect(await registerOnPage(declining, link)).toBe("cancelled");
      await shoot(declining.page, "cancelled");
    } finally {
      await declining.context.close();
    }
    // Nothing was spent: the link still registers.
    const dev = await device();
    try {
      expect(await registerOnPage(dev, link)).toBe("done");
    } finally {
      await dev.context.close();
    }

    // An expired code: the page says so, the options are refused with ZITADEL's error.
    const fresh = expectOk(await up.caller("rest").call(V1.addPasswordlessRegistration, { userId }));
    const expiredLink = String(fresh.link);
    await up.server.db
      .updateTable("codes")
      .set({ expires_at: Date.now() - 1000 })
      .where("id", "=", partsOf(expiredLink).codeID)
      .execute();
    const late = await device();
    try {
      await late.page.goto(expiredLink);
      expect(await stateOf(late.page)).toBe("expired");
      await shoot(late.page, "expired-link");
    } finally {
      await late.context.close();
    }
    const refused = await fetch(`${ORIGIN}/ui/login/login/passwordless/init/options`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(partsOf(expiredLink)),
    });
    expect(refused.status).toBe(400);
    expect(await refused.json()).toEqual({
      code: 3,
      message: "Errors.User.Code.Invalid (COMMAND-Eeb2a)",
      details: [{ "@type": "type.googleapis.com/zitadel.v1.ErrorDetail", id: "COMMAND-Eeb2a", message: "Errors.User.Code.Invalid" }],
    });
    expect(await up.eventTypes(userId)).toContain("user.human.passwordless.initialization.check.failed");
  });

  it("refuses an assertion of another user's passkey, a replayed one, a cloned authenticator's and a tampered one; none counts towards the lockout", async () => {
    const alice = await device();
    const bob = await device();
    try {
      const a = await importWithLink();
      const b = await importWithLink();
      expect(await registerOnPage(alice, a.link)).toBe("done");
      expect(await registerOnPage(bob, b.link)).toBe("done");
      // A lockout policy that locks at the first failed password: passkey failures must not count.
      expectOk(await up.caller("rest").call(V1.addCustomLockoutPolicy, { maxPasswordAttempts: 1, maxOtpAttempts: 1 }));

      // Alice's passkey signs Bob's challenge: not one of Bob's passkeys.
      const bobSession = await challengedSession(b.userId);
      const aliceCredential = (await up.server.db.selectFrom("passkeys").select("credential_id").where("user_id", "=", a.userId).executeTakeFirstOrThrow())
        .credential_id!;
      const forged = await assert(alice, {
        publicKey: { ...(bobSession.options.publicKey as JsonObject), allowCredentials: [{ id: aliceCredential, type: "public-key" }] },
      });
      expectZitadelError(await checkAssertion(bobSession.sessionId, forged), Code.FailedPrecondition, "COMMAND-Aej7i", "Errors.User.WebAuthN.NotFound");

      // Bob signs in; the same assertion again finds no open challenge, and against a new challenge it does not verify.
      const bobAssertion = await assert(bob, bobSession.options);
      expectOk(await checkAssertion(bobSession.sessionId, bobAssertion));
      expectZitadelError(
        await checkAssertion(bobSession.sessionId, bobAssertion),
        Code.FailedPrecondition,
        "COMMAND-Ioqu5",
        "Errors.Session.WebAuthN.NoChallenge",
      );
      expectOk(
        await up.caller("rest").call(SESSIONS.setSession, {
          sessionId: bobSession.sessionId,
          challenges: { webAuthN: { domain: "localhost", userVerificationRequirement: "USER_VERIFICATION_REQUIREMENT_REQUIRED" } },
        }),
      );
      expectZitadelError(
        await checkAssertion(bobSession.sessionId, bobAssertion),
        Code.InvalidArgument,
        "WEBAU-3M9si",
        "Errors.User.WebAuthN.ValidateLoginFailed",
      );

      // A tampered signature.
      const second = await challengedSession(b.userId);
      const signed = await assert(bob, second.options);
      const response = signed.response as JsonObject;
      const signature = Buffer.from(String(response.signature), "base64url");
      signature[signature.length - 1]! ^= 0xff;
      const tampered = { ...signed, response: { ...response, signature: signature.toString("base64url") } };
      expectZitadelError(await checkAssertion(second.sessionId, tampered), Code.InvalidArgument, "WEBAU-3M9si", "Errors.User.WebAuthN.ValidateLoginFailed");
      expectOk(await checkAssertion(second.sessionId, signed));

      // A clone of Bob's authenticator: the same key, its signature counter behind the stored one.
      const { credentials } = await bob.cdp.send("WebAuthn.getCredentials", { authenticatorId: bob.authenticatorId });
      expect(credentials.length).toBe(1);
      const stored = await up.server.db.selectFrom("passkeys").select("sign_count").where("user_id", "=", b.userId).executeTakeFirstOrThrow();
      expect(Number(stored.sign_count)).toBeGreaterThan(1);
      const clone = await device();
      try {
        await clone.cdp.send("WebAuthn.addCredential", { authenticatorId: clone.authenticatorId, credential: { ...credentials[0]!, signCount: 0 } });
        const third = await challengedSession(b.userId);
        const cloned = await assert(clone, third.options);
        expectZitadelError(await checkAssertion(third.sessionId, cloned), Code.InvalidArgument, "WEBAU-4M90s", "Errors.User.WebAuthN.CloneWarning");
        const session = expectOk(await up.caller("rest").call(SESSIONS.getSession, { sessionId: third.sessionId })).session as JsonObject;
        expect(session.factors).not.toHaveProperty("webAuthN");
      } finally {
        await clone.context.close();
      }

      // Five refusals, and both users are still active, nothing counted (ZITADEL's session API
      // writes no failure event for an assertion).
      for (const userId of [a.userId, b.userId]) {
        const user = expectOk(await up.caller("rest").call(V2.getUserByID, { userId })).user as JsonObject;
        expect(user.state).toBe("USER_STATE_ACTIVE");
        const row = await up.server.db
          .selectFrom("users")
          .select(["password_failed_attempts", "otp_failed_attempts"])
          .where("id", "=", userId)
          .executeTakeFirstOrThrow();
        expect([Number(row.password_failed_attempts), Number(row.otp_failed_attempts)]).toEqual([0, 0]);
        expect((await up.eventTypes(userId)).filter((t) => t.endsWith(".check.failed"))).toEqual([]);
      }
      // And a password still signs in afterwards (the policy above would have locked on a counted failure).
      expect(GOOD_PASSWORD).toBeTruthy();
    } finally {
      await alice.context.close();
      await bob.context.close();
      expectOk(await up.caller("rest").call(V1.resetLockoutPolicyToDefault, {}));
    }
  });

  it("a session's challenge needs a user with a passkey: none is FailedPrecondition WEBAU-4G8sw, no user COMMAND-eeR2e", async () => {
    const userName = uniqueEmail("nopasskey");
    const plain = expectOk(
      await up.caller("rest").call(V1.importHumanUser, v1ImportBody({ userName, password: GOOD_PASSWORD, email: { email: userName, isEmailVerified: true } })),
    );
    expectZitadelError(
      await up.caller("rest").call(SESSIONS.createSession, {
        checks: { user: { userId: String(plain.userId) } },
        challenges: { webAuthN: { domain: "localhost", userVerificationRequirement: "USER_VERIFICATION_REQUIREMENT_REQUIRED" } },
      }),
      Code.FailedPrecondition,
      "WEBAU-4G8sw",
      "Errors.User.WebAuthN.BeginLoginFailed",
    );
    expectZitadelError(
      await up.caller("rest").call(SESSIONS.createSession, {
        challenges: { webAuthN: { domain: "localhost", userVerificationRequirement: "USER_VERIFICATION_REQUIREMENT_REQUIRED" } },
      }),
      Code.FailedPrecondition,
      "COMMAND-eeR2e",
      "Errors.User.UserIDMissing",
    );
  });
});

describe("passkey requests that cannot be right are the caller's error, never a 5xx", () => {
  it("a malformed credential or assertion: WEBAU-sEr8c / WEBAU-3Vb9s / WEBAU-ADgv4; an unknown registration WEBAU-5M9so; a check without a challenge COMMAND-Ioqu5", async () => {
    const userName = uniqueEmail("malformed");
    const { userId } = expectOk(
      await up.caller("rest").call(V1.importHumanUser, v1ImportBody({ userName, password: GOOD_PASSWORD, email: { email: userName, isEmailVerified: true } })),
    );
    const started = expectOk(await up.caller("rest").call(V2.registerPasskey, { userId }));
    // The authenticator kind asked for reaches the browser's options; unspecified admits both.
    const selection = (started.publicKeyCredentialCreationOptions as { publicKey: { authenticatorSelection: JsonObject } }).publicKey.authenticatorSelection;
    expect(selection).not.toHaveProperty("authenticatorAttachment");
    const roaming = expectOk(await up.caller("rest").call(V2.registerPasskey, { userId, authenticator: "PASSKEY_AUTHENTICATOR_CROSS_PLATFORM" }));
    expect(
      (roaming.publicKeyCredentialCreationOptions as { publicKey: { authenticatorSelection: JsonObject } }).publicKey.authenticatorSelection,
    ).toMatchObject({
      authenticatorAttachment: "cross-platform",
      userVerification: "required",
    });
    const verify = (publicKeyCredential: JsonObject, passkeyId = String(started.passkeyId)) =>
      up.caller("rest").call(V2.verifyPasskeyRegistration, { userId, passkeyId, publicKeyCredential, passkeyName: "x" });
    expectZitadelError(await verify({ nonsense: true }), Code.InvalidArgument, "WEBAU-sEr8c", "Errors.User.WebAuthN.ErrorOnParseCredential");
    expectZitadelError(
      await verify({ id: "AAAA", rawId: "AAAA", type: "public-key", response: { clientDataJSON: "bm90IGpzb24", attestationObject: "oA" } }),
      Code.InvalidArgument,
      "WEBAU-3Vb9s",
      "Errors.User.WebAuthN.CreateCredentialFailed",
    );
    expectZitadelError(
      await verify({ id: "AAAA", rawId: "AAAA", type: "public-key", response: { clientDataJSON: "e30", attestationObject: "oA" } }, "123"),
      Code.NotFound,
      "WEBAU-5M9so",
      "Errors.User.WebAuthN.NotFound",
    );
    // Still NOT_READY: not listed.
    expect(expectOk(await up.caller("rest").call(V2.listPasskeys, { userId })).result ?? []).toEqual([]);

    const { sessionId } = expectOk(await up.caller("rest").call(SESSIONS.createSession, { checks: { user: { userId: String(userId) } } }));
    const check = (credentialAssertionData: JsonObject) =>
      up.caller("rest").call(SESSIONS.setSession, { sessionId, checks: { webAuthN: { credentialAssertionData } } });
    expectZitadelError(
      await check({ id: "AAAA", type: "public-key", response: {} }),
      Code.FailedPrecondition,
      "COMMAND-Ioqu5",
      "Errors.Session.WebAuthN.NoChallenge",
    );
    // With an open challenge (the user has a ready passkey), malformed assertions.
    await up.server.db
      .updateTable("passkeys")
      .set({ state: "READY", name: "x", credential_id: Buffer.from(uniqueEmail("cred")).toString("base64url"), public_key: "pQECAyYgASFYIA" })
      .where("id", "=", String(started.passkeyId))
      .execute();
    expectOk(
      await up.caller("rest").call(SESSIONS.setSession, {
        sessionId,
        challenges: { webAuthN: { domain: "localhost", userVerificationRequirement: "USER_VERIFICATION_REQUIREMENT_REQUIRED" } },
      }),
    );
    expectZitadelError(await check({ nonsense: 1 }), Code.InvalidArgument, "WEBAU-ADgv4", "Errors.User.WebAuthN.ValidateLoginFailed");
    expectZitadelError(
      await check({ id: "AAAA", type: "public-key", response: {} }),
      Code.FailedPrecondition,
      "COMMAND-Aej7i",
      "Errors.User.WebAuthN.NotFound",
    );
    const credentialId = (
      await up.server.db.selectFrom("passkeys").select("credential_id").where("id", "=", String(started.passkeyId)).executeTakeFirstOrThrow()
    ).credential_id!;
    expectZitadelError(
      await check({ id: credentialId, rawId: credentialId, type: "public-key", response: { clientDataJSON: "e30", authenticatorData: "AA", signature: "AA" } }),
      Code.InvalidArgument,
      "WEBAU-3M9si",
      "Errors.User.WebAuthN.ValidateLoginFailed",
    );
  });
});
