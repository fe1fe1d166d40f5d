/**
 * PingOne's Platform API on userport (src/pingone): the seed pages' examples (PingOne docs
 * "Create User", "Import user"), Terraform's pingone_user sequence (terraform-provider-pingone
 * internal/service/sso/resource_user.go), the Go SDK's behaviours (pingone-go-sdk-v2
 * management/api_users.go, api_utils_pagination_ext.go), replayed over HTTP; the same users
 * are then read and signed in through ZITADEL's APIs over gRPC.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { SESSIONS, V1, V2 } from "./helpers/clients.js";
import { expectCode, expectOk } from "./helpers/expectations.js";
import { createApiCaller, uniqueName, useUserport } from "./helpers/fixtures.js";
import { EXTERNAL_URL, ISO_MS, MEDIA, PingOneClient, type PingOneResponse, ssha512, UUID } from "./helpers/pingone.js";

const up = useUserport({ externalUrl: EXTERNAL_URL, passwordVerifiers: ["ssha"] });
let p1: PingOneClient;
let envId = "";
let defaultPopulation = "";
let users = "";

function expectPingOneError(response: PingOneResponse, status: number, code: string, detailCode?: string, target?: string) {
  expect(response.status, response.raw).toBe(status);
  expect(response.contentType).toMatch(/^application\/json/);
  const body = response.body!;
  expect(body.id).toMatch(UUID);
  expect(body.code).toBe(code);
  expect(typeof body.message).toBe("string");
  expect(String(body.message)).not.toMatch(/at .*\.(ts|js):\d+|SQLITE|postgres|Error:/i);
  if (detailCode !== undefined) {
    const details = body.details as Array<Record<string, unknown>>;
    expect(details[0]).toMatchObject({ code: detailCode, ...(target !== undefined ? { target } : {}) });
    expect(typeof details[0]!.message).toBe("string");
  }
  return body;
}

async function userCount(): Promise<number> {
  const row = await up.server.db
    .selectFrom("users")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

beforeAll(async () => {
  p1 = new PingOneClient(up.server.url, up.server.token);
  const environments = await p1.get("/v1/environments");
  expect(environments.status).toBe(200);
  envId = String((environments.body!._embedded as { environments: Array<{ id: string }> }).environments[0]!.id);
  users = `/v1/environments/${envId}/users`;
  const populations = await p1.get(`/v1/environments/${envId}/populations`);
  defaultPopulation = String((populations.body!._embedded as { populations: Array<{ id: string; default: boolean }> }).populations.find((p) => p.default)!.id);
});

describe("environments", () => {
  it("lists the one environment (the instance) with a UUID id and reads it by that id and by the instance id", async () => {
    expect(envId).toMatch(UUID);
    const read = await p1.get(`/v1/environments/${envId}`);
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ id: envId, createdAt: expect.stringMatching(ISO_MS) });
    expect((read.body!._links as { self: { href: string } }).self.href).toBe(`${EXTERNAL_URL}/v1/environments/${envId}`);
    const instance = await up.server.db.selectFrom("instances").select("id").executeTakeFirstOrThrow();
    expect((await p1.get(`/v1/environments/${instance.id}`)).body).toMatchObject({ id: envId });
  });

  it("answers an unknown environment with 404 NOT_FOUND, as the Go SDK's create retry and Terraform's missing-environment check expect", async () => {
    const other = "0b1e8f52-93a1-4a3c-9d36-1f1f2b6c7e10";
    expectPingOneError(await p1.get(`/v1/environments/${other}`), 404, "NOT_FOUND");
    expectPingOneError(await p1.post(`/v1/environments/${other}/users`, { username: uniqueName() }), 404, "NOT_FOUND");
  });

  it("refuses a missing or wrong token with 401 ACCESS_FAILED / INVALID_TOKEN", async () => {
    expectPingOneError(await new PingOneClient(up.server.url, null).get(users), 401, "ACCESS_FAILED", "INVALID_TOKEN");
    expectPingOneError(await new PingOneClient(up.server.url, "not-a-token").get(users), 401, "ACCESS_FAILED", "INVALID_TOKEN");
  });
});

describe("Create User (PingOne docs example)", () => {
  it("returns 201 with the full user; the custom attribute `locales` once defined in the schema, `department` dropped", async () => {
    const schemas = await p1.get(`/v1/environments/${envId}/schemas`);
    expect(schemas.status).toBe(200);
    const schemaId = String((schemas.body!._embedded as { schemas: Array<{ id: string; name: string }> }).schemas[0]!.id);
    const attribute = await p1.post(`/v1/environments/${envId}/schemas/${schemaId}/attributes`, {
      name: "locales",
      displayName: "Locales",
      type: "STRING",
      multiValued: true,
      enabled: true,
    });
    expect(attribute.status, attribute.raw).toBe(201);
    expect(attribute.body!.id).toMatch(UUID);
    // The schema refuses a second attribute whose name differs only in case.
    expectPingOneError(
      await p1.post(`/v1/environments/${envId}/schemas/${schemaId}/attributes`, { name: "Locales", type: "STRING", enabled: true }),
      400,
      "INVALID_DATA",
      "UNIQUENESS_VIOLATION",
    );

    const username = uniqueName("marysample");
    const created = await p1.post(users, {
      email: "marysample@example.com",
      name: { given: "Mary", family: "Sample" },
      population: { id: defaultPopulation },
      username,
      department: "engineering",
      locales: ["Sydney", "London"],
    });
    expect(created.status, created.raw).toBe(201);
    const user = created.body!;
    expect(user.id).toMatch(UUID);
    expect(user).toMatchObject({
      environment: { id: envId },
      account: { canAuthenticate: true, status: "OK" },
      email: "marysample@example.com",
      enabled: true,
      identityProvider: { type: "PING_ONE" },
      lifecycle: { status: "ACCOUNT_OK" },
      mfaEnabled: false,
      name: { given: "Mary", family: "Sample" },
      population: { id: defaultPopulation },
      username,
      verifyStatus: "NOT_INITIATED",
      locales: ["Sydney", "London"],
    });
    expect(user.createdAt).toMatch(ISO_MS);
    expect(user.updatedAt).toMatch(ISO_MS);
    expect(user).not.toHaveProperty("department");
    expect(user).not.toHaveProperty("password");
    const links = user._links as Record<string, { href: string }>;
    expect(links.self!.href).toBe(`${EXTERNAL_URL}/v1/environments/${envId}/users/${user.id}`);
    expect(links.population!.href).toBe(`${EXTERNAL_URL}/v1/environments/${envId}/populations/${defaultPopulation}`);
    for (const name of ["password", "password.reset", "password.set", "password.check", "password.recover"]) {
      expect(links[name]!.href).toBe(`${EXTERNAL_URL}/v1/environments/${envId}/users/${user.id}/password`);
    }
    expect(links["account.sendVerificationCode"]!.href).toBe(links.self!.href);

    // The same user through ZITADEL's v2 API over gRPC, its extra attributes as metadata.
    const read = expectOk(await up.caller("grpc-js").call(V2.getUserByID, { userId: String(user.id) }));
    expect(read.user).toMatchObject({
      userId: user.id,
      username,
      human: { profile: { givenName: "Mary", familyName: "Sample" }, email: { email: "marysample@example.com" } },
    });
    const metadata = expectOk(
      await up.caller("grpc-js").call(V1.listUserMetadata, { id: String(user.id) }, { headers: { "x-zitadel-orgid": defaultPopulation } }),
    );
    const entries = (metadata.result as Array<{ key: string; value: string }>).map((entry) => [entry.key, Buffer.from(entry.value, "base64").toString()]);
    expect(entries).toContainEqual(["pingone.locales", JSON.stringify(["Sydney", "London"])]);
    expect(entries.map(([key]) => key)).not.toContain("pingone.department");
  });

  it("puts a user without population.id into the default population", async () => {
    const created = await p1.post(users, { username: uniqueName(), email: "a@example.com" });
    expect(created.status, created.raw).toBe(201);
    expect(created.body!.population).toEqual({ id: defaultPopulation });
  });

  it("ignores read-only attributes in the body (the Go SDK's empty email, Terraform's account, the import tool's enabled)", async () => {
    const created = await p1.post(users, {
      username: uniqueName(),
      email: "",
      enabled: false,
      account: { canAuthenticate: true, status: "OK" },
      id: "11111111-1111-4111-8111-111111111111",
      _links: { self: { href: "x" } },
      createdAt: "2001-01-01T00:00:00.000Z",
    });
    expect(created.status, created.raw).toBe(201);
    expect(created.body!.id).not.toBe("11111111-1111-4111-8111-111111111111");
    expect(created.body!.enabled).toBe(true);
    expect(created.body).not.toHaveProperty("email");
  });
});

describe("Import user with a pre-encoded password", () => {
  it("imports {SSHA512}, signs in through ZITADEL's CreateSession over gRPC, and the hash is upgraded on that first sign-in", async () => {
    const username = uniqueName("imported");
    const password = "Sample-Passw0rd!";
    const hash = ssha512(password);
    const created = await p1.post(
      users,
      {
        email: "imported@example.com",
        name: { given: "Imp", family: "Orted" },
        population: { id: defaultPopulation },
        username,
        lifecycle: { status: "ACCOUNT_OK" },
        password: { value: hash, forceChange: false },
      },
      MEDIA.import,
    );
    expect(created.status, created.raw).toBe(201);
    expect(created.raw).not.toContain(hash.slice(9, 30));
    const userId = String(created.body!.id);
    const stored = await up.server.db.selectFrom("users").select("password_hash").where("id", "=", userId).executeTakeFirstOrThrow();
    expect(stored.password_hash).toBe(hash);

    const session = await up.caller("grpc-js").call(SESSIONS.createSession, {
      checks: { user: { loginName: username.toUpperCase() }, password: { password } },
    });
    expectOk(session, 201);
    const upgraded = await up.server.db.selectFrom("users").select("password_hash").where("id", "=", userId).executeTakeFirstOrThrow();
    expect(upgraded.password_hash).toMatch(/^\$2b\$04\$/);
    expect(await up.eventTypes(userId)).toContain("user.human.password.hash.updated");

    const wrong = await up.caller("grpc-js").call(SESSIONS.createSession, {
      checks: { user: { loginName: username }, password: { password: "not-it" } },
    });
    expectCode(wrong, Code.InvalidArgument);
  });

  it("requires population.id on import and refuses an unknown population, writing nothing", async () => {
    const before = await userCount();
    expectPingOneError(await p1.post(users, { username: uniqueName() }, MEDIA.import), 400, "INVALID_DATA", "REQUIRED_VALUE", "population.id");
    expectPingOneError(
      await p1.post(users, { username: uniqueName(), population: { id: "5a3c5a9e-6a51-4f43-b1c5-4e9b8a5f7d11" } }, MEDIA.import),
      400,
      "INVALID_DATA",
      "INVALID_VALUE",
      "population.id",
    );
    expect(await userCount()).toBe(before);
  });

  it("refuses an encoding the hash registry does not read, and a cleartext password the policy refuses, in PingOne's shape", async () => {
    const before = await userCount();
    const unknown = await p1.post(
      users,
      { username: uniqueName(), population: { id: defaultPopulation }, password: { value: "{NOPE}c2VjcmV0", forceChange: false } },
      MEDIA.import,
    );
    expectPingOneError(unknown, 400, "INVALID_DATA", "INVALID_VALUE", "password");
    const weak = await p1.post(users, { username: uniqueName(), population: { id: defaultPopulation }, password: { value: "short" } }, MEDIA.import);
    const body = expectPingOneError(weak, 400, "INVALID_DATA", "INVALID_VALUE", "password");
    expect((body.details as Array<{ innerError: { unsatisfiedRequirements: string[] } }>)[0]!.innerError.unsatisfiedRequirements).toEqual(["length"]);
    expect(weak.raw).not.toContain('"short"');
    expect(await userCount()).toBe(before);
  });
});

describe("Terraform's pingone_user sequence", () => {
  it("imports, sets enabled and mfaEnabled, locks, moves population, reads, deletes (204) and then reads 404", async () => {
    const username = uniqueName("tf");
    const created = await p1.post(
      users,
      { username, email: "tf@example.com", population: { id: defaultPopulation }, account: { canAuthenticate: true, status: "OK" } },
      `${MEDIA.import}; charset=UTF-8`,
    );
    expect(created.status, created.raw).toBe(201);
    const userId = String(created.body!.id);
    const user = `${users}/${userId}`;

    const disabled = await p1.put(`${user}/enabled`, { enabled: false });
    expect(disabled.status).toBe(200);
    expect(disabled.body).toMatchObject({ enabled: false });
    expect((await p1.get(`${user}/enabled`)).body).toMatchObject({ enabled: false });
    expect((await up.caller("grpc-js").call(V2.getUserByID, { userId })).ok && true).toBe(true);
    const v2 = expectOk(await up.caller("grpc-js").call(V2.getUserByID, { userId }));
    expect((v2.user as JsonObject).state).toBe("USER_STATE_INACTIVE");
    expect((await p1.put(`${user}/enabled`, { enabled: true })).body).toMatchObject({ enabled: true });

    const mfa = await p1.put(`${user}/mfaEnabled`, { mfaEnabled: true });
    expect(mfa.status).toBe(200);
    expect(mfa.body).toMatchObject({ mfaEnabled: true });

    const locked = await p1.post(user, "", MEDIA.lock);
    expect(locked.status, locked.raw).toBe(200);
    expect(locked.body).toMatchObject({ account: { status: "LOCKED", canAuthenticate: false } });
    const unlocked = await p1.post(user, "", MEDIA.unlock);
    expect(unlocked.body).toMatchObject({ account: { status: "OK", canAuthenticate: true } });

    const population = await p1.post(`/v1/environments/${envId}/populations`, { name: uniqueName("pop"), description: "Terraform" });
    expect(population.status, population.raw).toBe(201);
    const popId = String(population.body!.id);
    expect(popId).toMatch(UUID);
    const moved = await p1.put(`${user}/population`, { id: popId });
    expect(moved.status, moved.raw).toBe(200);
    expect(moved.body).toMatchObject({ id: popId });

    const read = await p1.get(user);
    expect(read.body).toMatchObject({ id: userId, username, mfaEnabled: true, enabled: true, population: { id: popId }, account: { status: "OK" } });
    // ZITADEL sees the population as the user's organisation.
    const v1 = expectOk(await up.caller("grpc-js").call(V1.getUserByID, { id: userId }, { headers: { "x-zitadel-orgid": popId } }));
    expect((v1.user as JsonObject).id).toBe(userId);

    const removed = await p1.delete(user);
    expect(removed.status).toBe(204);
    expect(removed.raw).toBe("");
    expectPingOneError(await p1.get(user), 404, "NOT_FOUND");
    // The population is empty again: Terraform's destroy deletes it.
    expect((await p1.delete(`/v1/environments/${envId}/populations/${popId}`)).status).toBe(204);
    expectPingOneError(await p1.get(`/v1/environments/${envId}/populations/${popId}`), 404, "NOT_FOUND");
  });
});

describe("PUT and PATCH", () => {
  it("PUT replaces (attributes left out are cleared), PATCH merges and null clears; both visible through ZITADEL", async () => {
    const created = await p1.post(users, {
      username: uniqueName("put"),
      email: "put@example.com",
      name: { given: "Put", family: "Tester", middle: "M" },
      title: "Engineer",
      address: { locality: "Zürich", countryCode: "CH" },
      timezone: "Europe/Zurich",
    });
    expect(created.status, created.raw).toBe(201);
    const user = `${users}/${created.body!.id}`;
    const renamed = uniqueName("renamed");
    const put = await p1.put(user, { username: renamed, email: "new@example.com", name: { given: "New", family: "Name" }, title: "Lead" });
    expect(put.status, put.raw).toBe(200);
    expect(put.body).toMatchObject({ username: renamed, email: "new@example.com", name: { given: "New", family: "Name" }, title: "Lead" });
    expect(put.body).not.toHaveProperty("address");
    expect(put.body).not.toHaveProperty("timezone");
    expect(put.body!.name as object).not.toHaveProperty("middle");

    const patched = await p1.patch(user, { title: null, nickname: "Nick", address: { region: "ZH" } });
    expect(patched.status, patched.raw).toBe(200);
    expect(patched.body).toMatchObject({ username: renamed, nickname: "Nick", address: { region: "ZH" }, name: { given: "New" } });
    expect(patched.body).not.toHaveProperty("title");

    const v2 = expectOk(await up.caller("grpc-js").call(V2.getUserByID, { userId: String(created.body!.id) }));
    expect(v2.user).toMatchObject({ username: renamed, human: { profile: { givenName: "New", nickName: "Nick" }, email: { email: "new@example.com" } } });
  });
});

describe("usernames", () => {
  it("refuses a username differing only in case with 400 INVALID_DATA / UNIQUENESS_VIOLATION, writing nothing", async () => {
    const username = uniqueName("Dup");
    expect((await p1.post(users, { username })).status).toBe(201);
    const before = await userCount();
    expectPingOneError(await p1.post(users, { username: username.toUpperCase() }), 400, "INVALID_DATA", "UNIQUENESS_VIOLATION", "username");
    expect(await userCount()).toBe(before);
  });

  it("lets exactly one of many concurrent creates of one username win", async () => {
    const username = uniqueName("race");
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        p1.post(users, { username: i % 2 === 0 ? username : username.toUpperCase() }, i % 3 === 0 ? MEDIA.json : `${MEDIA.json}; charset=UTF-8`),
      ),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    for (const loser of results.filter((r) => r.status !== 201)) expectPingOneError(loser, 400, "INVALID_DATA", "UNIQUENESS_VIOLATION", "username");
  });
});

describe("bad input", () => {
  it("answers an unknown media type with 415 INVALID_REQUEST, and malformed JSON with 400, in PingOne's shape", async () => {
    expectPingOneError(await p1.post(users, { username: uniqueName() }, "text/plain"), 415, "INVALID_REQUEST");
    expectPingOneError(await p1.post(users, { username: uniqueName() }, "application/vnd.pingidentity.nope+json"), 415, "INVALID_REQUEST");
    expectPingOneError(await p1.post(users, '{"username": ', MEDIA.json), 400, "INVALID_DATA", "INVALID_VALUE", "body");
    expectPingOneError(await p1.post(users, "[1,2]", MEDIA.json), 400, "INVALID_DATA");
    expectPingOneError(await p1.post(users, { email: "x@example.com" }), 400, "INVALID_DATA", "REQUIRED_VALUE", "username");
    expectPingOneError(await p1.post(users, { username: uniqueName(), timezone: "not a zone" }), 400, "INVALID_DATA", "INVALID_VALUE", "timezone");
  });

  it("answers an oversized body with 413 in PingOne's shape, and an unsupported method with 405", async () => {
    const huge = JSON.stringify({ username: uniqueName(), title: "x".repeat(5 * 1024 * 1024) });
    expectPingOneError(await p1.post(users, huge), 413, "INVALID_REQUEST");
    expectPingOneError(await p1.request("PATCH", `/v1/environments/${envId}/populations`, {}), 405, "INVALID_REQUEST");
  });
});

describe("listing users", () => {
  it("filters with Terraform's upper-case AND/OR and parentheses, id eq, and pages with absolute next links", async () => {
    const prefix = uniqueName("list");
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const created = await p1.post(users, { username: `${prefix}-${i}`, name: { given: "Lister", family: `F${i}` } });
      ids.push(String(created.body!.id));
    }
    const filter = `((username eq "${prefix}-1") OR (username eq "${prefix.toUpperCase()}-2")) AND ((population.id eq "${defaultPopulation}"))`;
    const filtered = await p1.get(`${users}?filter=${encodeURIComponent(filter)}`);
    expect(filtered.status, filtered.raw).toBe(200);
    const found = (filtered.body!._embedded as { users: Array<{ id: string }> }).users.map((u) => u.id).sort();
    expect(found).toEqual([ids[1], ids[2]].sort());
    const byId = await p1.get(`${users}?filter=${encodeURIComponent(`id eq "${ids[3]}"`)}`);
    expect((byId.body!._embedded as { users: Array<{ id: string }> }).users.map((u) => u.id)).toEqual([ids[3]]);

    // Page by 2 through the five: follow _links.next until it is gone.
    const seen: string[] = [];
    let next: string | undefined = `${users}?filter=${encodeURIComponent(`username sw "${prefix}"`)}&limit=2`;
    let pages = 0;
    while (next) {
      const page = await p1.get(next);
      expect(page.status, page.raw).toBe(200);
      expect(page.body!.size).toBe((page.body!._embedded as { users: unknown[] }).users.length);
      expect(page.body!.count).toBe(5);
      seen.push(...(page.body!._embedded as { users: Array<{ id: string }> }).users.map((u) => u.id));
      const links = page.body!._links as Record<string, { href: string }>;
      next = links.next?.href;
      if (next) expect(next.startsWith(`${EXTERNAL_URL}/v1/environments/${envId}/users?`)).toBe(true);
      pages++;
    }
    expect(pages).toBe(3);
    expect(seen.sort()).toEqual([...ids].sort());
  });

  it("answers an unsupported attribute, operator or syntax with 400 INVALID_DATA / INVALID_FILTER", async () => {
    for (const filter of ["title pr", 'username gt "a"', 'lastSignOn.at eq "x"', '(username eq "a"', 'username eq "a" xor', "username eq a"]) {
      const body = expectPingOneError(await p1.get(`${users}?filter=${encodeURIComponent(filter)}`), 400, "INVALID_DATA", "INVALID_FILTER", "filter");
      expect((body.details as Array<{ innerError: { supportedAttributes: string[] } }>)[0]!.innerError.supportedAttributes).toContain("username");
    }
    expectPingOneError(await p1.get(`${users}?cursor=%%%`), 400, "INVALID_DATA", "INVALID_VALUE", "cursor");
    expectPingOneError(await p1.get(`${users}?limit=0`), 400, "INVALID_DATA", "OUT_OF_RANGE", "limit");
  });

  it("matches no one for memberOfGroups[id eq …] (there are no groups)", async () => {
    const page = await p1.get(`${users}?filter=${encodeURIComponent('memberOfGroups[id eq "g1"] and name.family eq "demo"')}`);
    expect(page.status, page.raw).toBe(200);
    expect(page.body!.size).toBe(0);
  });
});

describe("populations", () => {
  it("a removed population no longer passes ZITADEL's organisation check (x-zitadel-orgid): PERMISSION_DENIED, and no user is made in it", async () => {
    const created = await p1.post(`/v1/environments/${envId}/populations`, { name: uniqueName("Gone") });
    const popId = String(created.body!.id);
    const inPopulation = { headers: { "x-zitadel-orgid": popId } };
    // Seen once by ZITADEL's API, so any cache of existing organisations knows it.
    expectOk(await up.caller("grpc-js").call(V1.getMyOrg, {}, inPopulation));
    expect((await p1.delete(`/v1/environments/${envId}/populations/${popId}`)).status).toBe(204);
    for (const transport of ["grpc-js", "rest"] as const) {
      const error = expectCode(
        await up
          .caller(transport)
          .call(
            V1.addHumanUser,
            { userName: uniqueName("orphan"), profile: { firstName: "O", lastName: "Rphan" }, email: { email: "o@example.com" } },
            inPopulation,
          ),
        Code.PermissionDenied,
      );
      expect(error.message).toContain("Organisation doesn't exist");
    }
    const orphans = await up.server.db.selectFrom("users").select("id").where("org_id", "=", popId).execute();
    expect(orphans).toEqual([]);
  });

  it("creates (UUID id) a population that ZITADEL sees as an organisation, lists it by name sw, counts users, refuses to delete the default or a populated one", async () => {
    const name = uniqueName("Pop");
    const created = await p1.post(`/v1/environments/${envId}/populations`, { name, description: "Sales" });
    expect(created.status, created.raw).toBe(201);
    expect(created.body).toMatchObject({ name, description: "Sales", userCount: 0, default: false, environment: { id: envId } });
    const popId = String(created.body!.id);
    expect(popId).toMatch(UUID);
    const org = expectOk(await up.caller("grpc-js").call(V1.getMyOrg, {}, { headers: { "x-zitadel-orgid": popId } }));
    expect((org.org as JsonObject).name).toBe(name);

    const listed = await p1.get(`/v1/environments/${envId}/populations?filter=${encodeURIComponent(`name sw "${name.slice(0, 8)}"`)}`);
    expect((listed.body!._embedded as { populations: Array<{ id: string }> }).populations.map((p) => p.id)).toContain(popId);

    expect((await p1.post(users, { username: uniqueName(), population: { id: popId } })).status).toBe(201);
    expect((await p1.get(`/v1/environments/${envId}/populations/${popId}`)).body).toMatchObject({ userCount: 1 });
    const populated = expectPingOneError(await p1.delete(`/v1/environments/${envId}/populations/${popId}`), 400, "REQUEST_FAILED");
    expect(String(populated.message)).toMatch(/^The request could not be completed/);
    expectPingOneError(await p1.delete(`/v1/environments/${envId}/populations/${defaultPopulation}`), 400, "REQUEST_FAILED", "CONSTRAINT_VIOLATION");

    const duplicate = await p1.post(`/v1/environments/${envId}/populations`, { name });
    expectPingOneError(duplicate, 400, "INVALID_DATA", "UNIQUENESS_VIOLATION");
  });
});

describe("permissions (ZITADEL's roles on the population's organisation)", () => {
  it("lets an ORG_USER_MANAGER of one population manage its users only", async () => {
    const manager = await createApiCaller(up, "ORG_USER_MANAGER");
    const scoped = new PingOneClient(up.server.url, manager.token);
    const own = await scoped.post(users, { username: uniqueName(), population: { id: manager.orgId } });
    expect(own.status, own.raw).toBe(201);
    expectPingOneError(
      await scoped.post(users, { username: uniqueName(), population: { id: defaultPopulation } }),
      403,
      "ACCESS_FAILED",
      "INSUFFICIENT_PERMISSIONS",
    );
    const other = await p1.post(users, { username: uniqueName() });
    expectPingOneError(await scoped.get(`${users}/${other.body!.id}`), 404, "NOT_FOUND");
    const listed = await scoped.get(users);
    const listedIds = (listed.body!._embedded as { users: Array<{ id: string; population: { id: string } }> }).users;
    expect(listedIds.every((u) => u.population.id === manager.orgId)).toBe(true);
    expectPingOneError(await scoped.post(`/v1/environments/${envId}/populations`, { name: uniqueName() }), 403, "ACCESS_FAILED");
  });
});
