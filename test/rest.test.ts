/**
 * The grpc-gateway style REST API as a plain HTTP client sees it (ZITADEL's internal/api/grpc/server/gateway.go and the google.api.http options of its protos):
 * ZITADEL's documented ImportHumanUser body verbatim, protojson input and output rules, the
 * gateway's error bodies and statuses, and what must never come back (secrets).
 */
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { parseRestResponse, V1, V2 } from "./helpers/clients.js";
import { expectCode, expectNotLeaked, expectOk, expectZitadelError } from "./helpers/expectations.js";
import { bcryptHash, GOOD_PASSWORD, RFC3339, uniqueEmail, uniqueName, USER_ID, useUserport, v1ImportBody, v2AddBody } from "./helpers/fixtures.js";

const up = useUserport();

interface RestInit {
  method?: string;
  /** JSON-encoded unless `raw` is given. */
  body?: unknown;
  raw?: string;
  contentType?: string;
  token?: string | null;
  headers?: Record<string, string>;
}

/** A plain fetch against the server, as curl would send it. */
async function rest(path: string, init: RestInit = {}, base = up.server.url) {
  const headers: Record<string, string> = { ...init.headers };
  const token = init.token === undefined ? up.server.token : init.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const body = init.raw ?? (init.body === undefined ? undefined : JSON.stringify(init.body));
  if (body !== undefined) headers["content-type"] = init.contentType ?? "application/json";
  const response = await fetch(base + path, { method: init.method ?? (body === undefined ? "GET" : "POST"), headers, body });
  return { response, result: await parseRestResponse(response.clone()), text: await response.text() };
}

/** Paths of fields holding a zero value (protojson omits them: no EmitUnpopulated). */
function zeroValuedFields(value: JsonValue, path = "$"): string[] {
  if (value === "" || value === false || value === 0 || value === null) return [path];
  if (Array.isArray(value)) return value.length === 0 ? [path] : value.flatMap((v, i) => zeroValuedFields(v, `${path}[${i}]`));
  if (typeof value === "object") return Object.entries(value).flatMap(([k, v]) => zeroValuedFields(v, `${path}.${k}`));
  return [];
}

/** The gateway's error body for a non-ZITADEL error: `{code, message, details: []}`. */
function expectGatewayError(text: string, status: number, actualStatus: number, code: Code) {
  expect(actualStatus).toBe(status);
  const body = JSON.parse(text) as JsonObject;
  expect(Object.keys(body).sort()).toEqual(["code", "details", "message"]);
  expect(body.code).toBe(code);
  expect(body.message).toEqual(expect.any(String));
  expect(body.details).toEqual([]);
  return body;
}

describe("ZITADEL's ImportHumanUser reference request, verbatim", () => {
  const hash = bcryptHash("Minnie's-Passw0rd");
  const reference = {
    userName: "minnie-mouse",
    profile: {
      firstName: "Minnie",
      lastName: "Mouse",
      nickName: "Mini",
      displayName: "Minnie Mouse",
      preferredLanguage: "en",
      gender: "GENDER_FEMALE",
    },
    email: { email: "minnie@mouse.com", isEmailVerified: true },
    phone: { phone: "+41 71 000 00 00", isPhoneVerified: true },
    hashedPassword: { value: hash },
    passwordChangeRequired: true,
    requestPasswordlessRegistration: true,
    otpCode: "string",
  };
  let userId = "";

  it("imports with 200: userId, details and a passwordless registration link, zero values omitted", async () => {
    expect(hash).toMatch(/^\$2a\$10\$[./A-Za-z0-9]{53}$/);
    const { response, result, text } = await rest("/management/v1/users/human/_import", { body: reference });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    const res = expectOk(result);
    expect(Object.keys(res).sort()).toEqual(["details", "passwordlessRegistration", "userId"]);
    expect(res.userId).toMatch(USER_ID);
    userId = res.userId as string;
    expect(res.details).toEqual({
      sequence: "4",
      creationDate: expect.stringMatching(RFC3339),
      changeDate: expect.stringMatching(RFC3339),
      resourceOwner: up.defaultOrgId,
    });
    expect(res.passwordlessRegistration).toEqual({
      link: expect.stringMatching(
        new RegExp(`^https?://[^/?#]+/ui/login/login/passwordless/init\\?userID=${userId}&orgID=${up.defaultOrgId}&codeID=\\d+&code=[A-Za-z0-9]{12}$`),
      ),
      lifetime: "3600s",
      expiration: "3600s",
    });
    expect(zeroValuedFields(res)).toEqual([]);
    expect(text).not.toContain(hash);
    expect(await up.eventTypes(userId)).toEqual([
      "user.human.added",
      "user.human.email.verified",
      "user.human.phone.verified",
      "user.human.passwordless.initialization.code.added",
    ]);
  });

  it("reads back over GET /management/v1/users/{id}: ACTIVE, login names, profile, E.164 phone", async () => {
    const { response, result, text } = await rest(`/management/v1/users/${userId}`);
    expect(response.status).toBe(200);
    const { user } = expectOk(result) as { user: JsonObject };
    expect(user).toEqual({
      id: userId,
      // The phone's verification (event 3) dates the user; the passwordless code (4) does not,
      // as in ZITADEL's users projection (internal/query/projection/user.go).
      details: {
        sequence: "3",
        creationDate: expect.stringMatching(RFC3339),
        changeDate: expect.stringMatching(RFC3339),
        resourceOwner: up.defaultOrgId,
      },
      state: "USER_STATE_ACTIVE",
      userName: "minnie-mouse",
      loginNames: ["minnie-mouse"],
      preferredLoginName: "minnie-mouse",
      human: {
        profile: {
          firstName: "Minnie",
          lastName: "Mouse",
          nickName: "Mini",
          displayName: "Minnie Mouse",
          preferredLanguage: "en",
          gender: "GENDER_FEMALE",
        },
        email: { email: "minnie@mouse.com", isEmailVerified: true },
        phone: { phone: "+41710000000", isPhoneVerified: true },
        passwordChanged: expect.stringMatching(RFC3339),
      },
    });
    expect(zeroValuedFields(user)).toEqual([]);
    expect(text).not.toContain(hash);
  });

  it("drops passwordChangeRequired for the imported hash, as ZITADEL does (GET /v2/users/{user_id})", async () => {
    const { response, result } = await rest(`/v2/users/${userId}`);
    expect(response.status).toBe(200);
    const { user } = expectOk(result) as { user: { human: JsonObject } };
    expect(user.human.passwordChangeRequired).toBeUndefined();
  });

  it("answers the same body again with 409 V3-DKcYh in the gateway's error shape", async () => {
    const { response, text } = await rest("/management/v1/users/human/_import", { body: reference });
    expect(response.status).toBe(409);
    expect(JSON.parse(text)).toEqual({
      code: 6,
      message: "User already exists (V3-DKcYh)",
      details: [{ "@type": "type.googleapis.com/zitadel.v1.ErrorDetail", id: "V3-DKcYh", message: "User already exists" }],
    });
  });
});

describe("protojson input", () => {
  it("accepts the proto (snake_case) field names", async () => {
    const userName = uniqueName("snake");
    const email = uniqueEmail("snake");
    const { result } = await rest("/management/v1/users/human/_import", {
      body: {
        user_name: userName,
        profile: { first_name: "Snake", last_name: "Case", nick_name: "sc", preferred_language: "de" },
        email: { email, is_email_verified: true },
        hashed_password: { value: bcryptHash("x", 4) },
      },
    });
    const { userId, details } = expectOk(result) as { userId: string; details: JsonObject };
    expect(details.sequence).toBe("2");
    const { user } = expectOk((await rest(`/management/v1/users/${userId}`)).result) as { user: JsonObject };
    expect(user).toMatchObject({
      state: "USER_STATE_ACTIVE",
      userName,
      human: {
        profile: { firstName: "Snake", lastName: "Case", nickName: "sc", preferredLanguage: "de" },
        email: { email, isEmailVerified: true },
      },
    });
  });

  it("accepts snake_case on v2 too (given_name, is_verified, hashed_password.change_required)", async () => {
    const { response, result } = await rest("/v2/users/human", {
      body: {
        username: uniqueName("v2snake"),
        profile: { given_name: "Snake", family_name: "Case" },
        email: { email: uniqueEmail(), is_verified: true },
        hashed_password: { hash: bcryptHash("x", 4), change_required: true },
      },
    });
    expect(response.status).toBe(201);
    const { userId } = expectOk(result) as { userId: string };
    const { user } = expectOk((await rest(`/v2/users/${userId}`)).result) as { user: { human: JsonObject } };
    expect(user.human).toMatchObject({ profile: { givenName: "Snake", familyName: "Case" }, passwordChangeRequired: true });
  });

  it("ignores unknown fields, at the top and nested", async () => {
    const { result } = await rest("/management/v1/users/human/_import", {
      body: { ...v1ImportBody(), notAField: 1, profile: { firstName: "Un", lastName: "Known", favouriteColour: "blue" } },
    });
    expect(expectOk(result).userId).toMatch(USER_ID);
  });

  it("accepts an enum as its number", async () => {
    const { result } = await rest("/management/v1/users/human/_import", {
      body: v1ImportBody({ profile: { firstName: "Enum", lastName: "Number", gender: 1 } }),
    });
    const { userId } = expectOk(result) as { userId: string };
    const { user } = expectOk((await rest(`/management/v1/users/${userId}`)).result) as { user: { human: { profile: JsonObject } } };
    expect(user.human.profile.gender).toBe("GENDER_FEMALE");
  });

  it("writes 64-bit integers as strings (details.sequence)", async () => {
    const { text } = await rest("/management/v1/users/human/_import", { body: v1ImportBody() });
    expect(text).toMatch(/"sequence":"\d+"/);
  });

  it("answers a wrong JSON type with 400 code 3 naming the field", async () => {
    const { response, text } = await rest("/management/v1/users/human/_import", { body: { ...v1ImportBody(), userName: 123 } });
    const body = expectGatewayError(text, 400, response.status, Code.InvalidArgument);
    expect(body.message).toMatch(/user_?name/i);
  });

  it("names a mistyped password field but never echoes its value", async () => {
    const { response, text } = await rest("/management/v1/users/human/_import", { body: { ...v1ImportBody(), password: 987654321 } });
    const body = expectGatewayError(text, 400, response.status, Code.InvalidArgument);
    expect(body.message).toMatch(/password/i);
    expect(text).not.toContain("987654321");
  });

  it("answers malformed JSON with 400 code 3, without echoing the body", async () => {
    const { response, text } = await rest("/management/v1/users/human/_import", {
      raw: `{"userName":"x","password":"${GOOD_PASSWORD}" oops`,
    });
    expectGatewayError(text, 400, response.status, Code.InvalidArgument);
    expect(text).not.toContain(GOOD_PASSWORD);
  });

  it.each(["[]", '"a string"', "42"])("answers the JSON non-object %s with 400 code 3", async (raw) => {
    const { response, text } = await rest("/management/v1/users/human/_import", { raw });
    expectGatewayError(text, 400, response.status, Code.InvalidArgument);
  });

  it("answers a text/plain body with a 4xx in the gateway's error shape", async () => {
    const { response, text } = await rest("/management/v1/users/human/_import", {
      raw: JSON.stringify(v1ImportBody()),
      contentType: "text/plain",
    });
    expect(response.status).toBeGreaterThanOrEqual(400);
    expect(response.status).toBeLessThan(500);
    const body = JSON.parse(text) as JsonObject;
    expect(Object.keys(body).sort()).toEqual(["code", "details", "message"]);
    expect(body.code).toBe(Code.InvalidArgument);
  });
});

describe("routes", () => {
  it("answers an unknown route with 404 code 5", async () => {
    const { response, text } = await rest("/management/v1/no-such-thing");
    expectGatewayError(text, 404, response.status, Code.NotFound);
  });

  it.each([
    ["PUT", "/management/v1/users/human/_import"],
    ["PUT", "/management/v1/users/human"],
    ["PATCH", "/v2/users/human"],
  ])("answers %s %s (a known path) with 405 code 12", async (method, path) => {
    const { response, text } = await rest(path, { method, body: {} });
    expectGatewayError(text, 405, response.status, Code.Unimplemented);
  });

  it("answers v2 AddHumanUser with 201 and v1 creates with 200", async () => {
    expect((await rest("/v2/users/human", { body: v2AddBody() })).response.status).toBe(201);
    expect((await rest("/management/v1/users/human", { body: { ...v1ImportBody(), initialPassword: GOOD_PASSWORD } })).response.status).toBe(200);
  });

  it("answers a missing token with 401 in the gateway's error shape", async () => {
    const { response, result } = await rest("/management/v1/users/human/_import", { body: v1ImportBody(), token: null });
    expect(response.status).toBe(401);
    expectCode(result, Code.Unauthenticated);
  });

  it("passes a v2 AddHumanUser id through the path to GetUserByID", async () => {
    const userId = uniqueName("path.id_1");
    expectOk((await rest("/v2/users/human", { body: v2AddBody({ userId }) })).result);
    const { user } = expectOk((await rest(`/v2/users/${encodeURIComponent(userId)}`)).result) as { user: JsonObject };
    expect(user.userId).toBe(userId);
  });

  it("answers GET /v1 of a nonexistent user with 404 QUERY-Dfbg2", async () => {
    expectZitadelError((await rest("/management/v1/users/1")).result, Code.NotFound, "QUERY-Dfbg2", "User could not be found");
  });
});

describe("secrets", () => {
  it("never returns a plaintext password: not on create, not on read, not in errors", async () => {
    const created = await rest("/management/v1/users/human/_import", { body: v1ImportBody({ password: GOOD_PASSWORD }) });
    expectNotLeaked(created.result, GOOD_PASSWORD);
    const userId = expectOk(created.result).userId as string;
    for (const path of [`/management/v1/users/${userId}`, `/v2/users/${userId}`]) {
      const read = await rest(path);
      expect(read.response.status).toBe(200);
      expect(read.text).not.toContain(GOOD_PASSWORD);
      expect(read.text).not.toMatch(/\$2[aby]?\$/);
    }
    const weak = "weakpass";
    const rejected = await rest("/v2/users/human", { body: v2AddBody({ password: { password: weak } }) });
    expectCode(rejected.result, Code.InvalidArgument);
    expect(rejected.text).not.toContain(weak);
  });

  it("never returns an imported hash, even when it is rejected", async () => {
    const argon = "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
    const rejected = await rest("/management/v1/users/human/_import", { body: v1ImportBody({ hashedPassword: { value: argon } }) });
    expectCode(rejected.result, Code.InvalidArgument);
    expect(rejected.text).not.toContain("RdescudvJCsgt3ub");
  });
});

describe("body size limit (bodyLimitBytes: 1024)", () => {
  const small = useUserport({ bodyLimitBytes: 1024 });
  const oversized = () => v1ImportBody({ profile: { firstName: "Big", lastName: "Body", nickName: "n".repeat(150) }, otpCode: "x".repeat(2000) });

  it("accepts a body under the limit", async () => {
    expectOk((await rest("/management/v1/users/human/_import", { body: v1ImportBody(), token: small.server.token }, small.server.url)).result);
  });

  it("answers a REST body over the limit with 413 in the gateway's error shape", async () => {
    const { response, text } = await rest("/management/v1/users/human/_import", { body: oversized(), token: small.server.token }, small.server.url);
    expect(response.status).toBe(413);
    const body = JSON.parse(text) as JsonObject;
    expect(Object.keys(body).sort()).toEqual(["code", "details", "message"]);
    expect(body.code).toBe(Code.ResourceExhausted);
  });

  it.each(["grpc-js", "connect-json-h1", "connect-binary-h2"] as const)(
    "answers an RPC message over the limit over %s with RESOURCE_EXHAUSTED",
    async (transport) => {
      expectCode(await small.caller(transport).call(V1.importHumanUser, oversized()), Code.ResourceExhausted);
      expectOk(await small.caller(transport).call(V2.addHumanUser, v2AddBody()));
    },
  );
});
