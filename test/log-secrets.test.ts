/**
 * No secret reaches a log line, at any level. `userport serve` runs as its own process at info,
 * debug and trace (debug and trace log every request); the test then walks every route that
 * carries a secret (the session token in `GET /v2/sessions/{id}?sessionToken=…`, the init,
 * email verification and passwordless codes in the links of mails and of ImportHumanUser, the
 * bearer token, passwords in bodies, a malformed body holding a password, a code in the query of
 * a route that does not exist) and searches everything the process wrote for each secret in
 * plain, base64, hex and URL-encoded form.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { redactUrl } from "../src/edge/log-redaction.js";
import { createCallers, SESSIONS } from "./helpers/clients.js";
import { dropTestDatabase, testDatabaseUrl } from "./helpers/database.js";
import { expectOk } from "./helpers/expectations.js";
import { uniqueEmail, uniqueName } from "./helpers/fixtures.js";
import { codeIn, linkIn, startMailbox } from "./helpers/mailbox.js";
import { freePort, type Served, serveProcess } from "./helpers/process.js";

const mailbox = await startMailbox();
afterAll(() => mailbox.stop());

/** Every form a secret could take in a log line. */
function encodings(secret: string): string[] {
  const bytes = Buffer.from(secret, "utf8");
  return [
    secret,
    bytes.toString("base64"),
    bytes.toString("base64url"),
    bytes.toString("hex"),
    bytes.toString("hex").toUpperCase(),
    encodeURIComponent(secret),
    new URLSearchParams({ s: secret }).toString().slice(2),
  ];
}

async function json(response: Response): Promise<Record<string, unknown>> {
  const text = await response.text();
  if (!response.ok) throw new Error(`HTTP ${response.status}: ${text}`);
  return JSON.parse(text) as Record<string, unknown>;
}

/**
 * Calls every secret-carrying route of the server at `url`; returns the secrets it used or got,
 * by name. Each step checks it really did what it stands for, so no secret goes unexercised.
 */
async function exerciseSecrets(url: string, token: string): Promise<Record<string, string>> {
  const secrets: Record<string, string> = { bearerToken: token };
  const auth = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  const post = (path: string, body: unknown, headers: Record<string, string> = auth) =>
    fetch(`${url}${path}`, { method: "POST", headers, body: JSON.stringify(body) });
  const local = (link: URL) => `${url}${link.pathname}${link.search}`;

  // A password in an import body, and the passwordless registration link's code.
  secrets.importPassword = "Imp0rted-Passw0rd!";
  const userName = uniqueName("logs");
  const imported = await json(
    await post("/management/v1/users/human/_import", {
      userName,
      profile: { firstName: "Log", lastName: "Reader" },
      email: { email: uniqueEmail("logs"), isEmailVerified: true },
      password: secrets.importPassword,
      requestPasswordlessRegistration: true,
    }),
  );
  const passwordless = new URL((imported.passwordlessRegistration as { link: string }).link);
  secrets.passwordlessCode = passwordless.searchParams.get("code")!;
  expect((await fetch(local(passwordless))).status).toBe(200);

  // The init link's code, the init form's password.
  const initEmail = uniqueEmail("logs-init");
  const initial = await json(
    await post("/management/v1/users/human/_import", {
      userName: uniqueName("logs-init"),
      profile: { firstName: "Log", lastName: "Init" },
      email: { email: initEmail, isEmailVerified: false },
    }),
  );
  const initMail = await mailbox.waitFor(initEmail);
  secrets.initCode = codeIn(initMail);
  expect((await fetch(local(linkIn(initMail)))).status).toBe(200);
  secrets.initPassword = "Init1al-Passw0rd!";
  const initialized = await post(
    "/ui/login/user/init",
    { userID: initial.userId, code: secrets.initCode, password: secrets.initPassword },
    { "content-type": "application/json" },
  );
  expect(initialized.status).toBe(200);

  // The email verification link's code, followed and posted as a browser does.
  const verifyEmail = uniqueEmail("logs-verify");
  const added = await json(
    await post("/v2/users/human", {
      username: uniqueName("logs-verify"),
      profile: { givenName: "Log", familyName: "Verify" },
      email: { email: verifyEmail, sendCode: {} },
    }),
  );
  const verifyMail = await mailbox.waitFor(verifyEmail);
  secrets.emailCode = codeIn(verifyMail);
  const verifyLink = linkIn(verifyMail);
  expect(verifyLink.searchParams.get("code")).toBe(secrets.emailCode);
  expect((await fetch(local(verifyLink))).status).toBe(200);
  const verified = await fetch(`${url}/ui/login/mail/verification`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ userID: String(added.userId), code: secrets.emailCode }).toString(),
  });
  expect(verified.status).toBe(200);

  // A session token in a query string (REST), and one answered over gRPC.
  const session = await json(await post("/v2/sessions", { checks: { user: { loginName: userName }, password: { password: secrets.importPassword } } }));
  secrets.sessionToken = String(session.sessionToken);
  const read = await fetch(`${url}/v2/sessions/${String(session.sessionId)}?sessionToken=${encodeURIComponent(secrets.sessionToken)}`, {
    headers: auth,
  });
  expect(read.status).toBe(200);
  const grpc = createCallers(url, token).get("grpc-js")!;
  try {
    const overGrpc = expectOk(
      await grpc.call(SESSIONS.createSession, { checks: { user: { userId: String(initial.userId) }, password: { password: secrets.initPassword } } }),
    );
    secrets.grpcSessionToken = String(overGrpc.sessionToken);
    expectOk(await grpc.call(SESSIONS.getSession, { sessionId: String(overGrpc.sessionId), sessionToken: secrets.grpcSessionToken }));
  } finally {
    grpc.close();
  }

  // A malformed body holding a password, and a code in the query of a route that is not served.
  secrets.malformedPassword = "Malf0rmed-Passw0rd!";
  const malformed = await fetch(`${url}/v2/sessions`, {
    method: "POST",
    headers: auth,
    body: `{"checks": {"password": {"password": "${secrets.malformedPassword}"}`,
  });
  expect(malformed.status).toBe(400);
  secrets.resetCode = "R3SETC0DE";
  expect((await fetch(`${url}/ui/login/password/init?userID=1&code=${secrets.resetCode}`)).status).toBe(404);
  return secrets;
}

describe.each(["info", "debug", "trace"])("secrets in the log at level %s", (level) => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  it("no session token, code, bearer token or password appears in any form", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "userport-logs-"));
    cleanup.push(async () => {
      await dropTestDatabase(dataDir);
      rmSync(dataDir, { recursive: true, force: true });
    });
    const port = await freePort();
    const databaseUrl = await testDatabaseUrl(dataDir);
    const served: Served = await serveProcess(port, {
      USERPORT_DATA_DIR: dataDir,
      ...(databaseUrl ? { USERPORT_DATABASE_URL: databaseUrl } : {}),
      USERPORT_BCRYPT_COST: "4",
      USERPORT_LOG_LEVEL: level,
      USERPORT_EXTERNAL_URL: `http://127.0.0.1:${port}`,
      USERPORT_SMTP_URL: mailbox.url,
      USERPORT_OUTBOX_POLL_MS: "50",
    });
    cleanup.push(() => served.child.kill("SIGKILL"));
    const token = readFileSync(join(dataDir, "admin.pat"), "utf8").trim();

    const secrets = await exerciseSecrets(served.url, token);
    served.child.kill("SIGTERM");
    expect(await served.exited).toBe(0);
    const log = served.output();

    if (level !== "info") {
      // The requests are logged at this level, with their paths and their secrets redacted: the
      // search below looks at lines that had every chance to hold the secrets.
      expect(log).toContain("incoming request");
      expect(log).toContain("/ui/login/mail/verification?");
      expect(log).toMatch(/"url":"\/v2\/sessions\/\d+\?sessionToken=\[REDACTED\]"/);
      expect(log).toMatch(/"url":"\/ui\/login\/login\/passwordless\/init\?userID=\d+&orgID=\d+&codeID=\[REDACTED\]&code=\[REDACTED\]"/);
    }
    for (const [name, secret] of Object.entries(secrets)) {
      expect(secret.length, name).toBeGreaterThanOrEqual(6);
      for (const form of encodings(secret)) expect(log.includes(form), `${name} (${form}) in the ${level} log`).toBe(false);
    }
  });
});

describe("the URL as the request log writes it", () => {
  it("keeps paths and harmless parameters, and redacts secret ones however their names are written", () => {
    expect(redactUrl("/v2/users/123")).toBe("/v2/users/123");
    expect(redactUrl("/v2/sessions/1?sessionToken=abc")).toBe("/v2/sessions/1?sessionToken=[REDACTED]");
    expect(redactUrl("/v2/sessions/1?session_token=abc&x=1")).toBe("/v2/sessions/1?session_token=[REDACTED]&x=1");
    // A percent-encoded name is decoded before it is judged; a malformed one is judged as it is.
    expect(redactUrl("/p?session%54oken=abc&co%64e=def")).toBe("/p?session%54oken=[REDACTED]&co%64e=[REDACTED]");
    expect(redactUrl("/p?code%ZZ=abc")).toBe("/p?code%ZZ=[REDACTED]");
    expect(redactUrl("/p?userID=1&code&orgID=2")).toBe("/p?userID=1&code=[REDACTED]&orgID=2");
    expect(redactUrl("/p?Password=a&api_key=b&client_secret=c&message=d&encoding=json")).toBe(
      "/p?Password=[REDACTED]&api_key=[REDACTED]&client_secret=[REDACTED]&message=[REDACTED]&encoding=json",
    );
  });
});
