/**
 * PingOne's LDAP gateways and external passwords (PingOne docs "Create LDAP Gateway", "Create User
 * Import External Password", "Update Password (Set Gateway)"; the Go SDK's GatewayTypeLDAP), against
 * a real OpenLDAP server (test/helpers/slapd.ts) holding {SSHA} and {CRYPT} passwords: the check of
 * PingOne's password endpoint and of ZITADEL's v2 CreateSession both go to the directory for a user
 * whose password is EXTERNAL; passwordAuthority PING_ONE captures it at the first success.
 */
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: PingOne's ${identifier} and ${ldapAttributes.…} placeholders are data here
import { Code } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { SESSIONS } from "./helpers/clients.js";
import { expectCode, expectOk } from "./helpers/expectations.js";
import { createApiCaller, uniqueName, useUserport } from "./helpers/fixtures.js";
import { EXTERNAL_URL, MEDIA, PingOneClient, type PingOneResponse, UUID } from "./helpers/pingone.js";
import { freePort } from "./helpers/process.js";
import { createLdapDirectory } from "../src/ldap/directory.js";
import { PEOPLE, SERVICE_DN, SERVICE_PASSWORD, SUFFIX, Slapd, slapdAvailable } from "./helpers/slapd.js";

const CHECK = "application/vnd.pingidentity.password.check+json";
const PEOPLE_LDAP = [
  { uid: "jdoe", password: "Jdoe-Ldap-1!", mail: "jdoe@example.com", employeeNumber: "1001" },
  { uid: "crypto", password: "Crypt-Ldap-2!", scheme: "CRYPT" as const },
  { uid: "capture2", password: "Capture-Ldap-2!" },
  { uid: "locky", password: "Locky-Ldap-3!" },
  { uid: "downy", password: "Downy-Ldap-4!" },
  { uid: "ann", password: "Ann-Ldap-5!", mail: "shared@example.com" },
  { uid: "bob", password: "Bob-Ldap-6!", mail: "shared@example.com" },
  { uid: "other", password: "Other-Ldap-7!", ou: `ou=others,${SUFFIX}` },
  { uid: "jit1", password: "Jit-Ldap-1!", mail: "jit1@example.com", givenName: "Jay", sn: "Eyeti", employeeNumber: "7001" },
  { uid: "jit2", password: "Jit-Ldap-2!", mail: "jit2@example.com", sn: "Second" },
  { uid: "jit3", password: "Jit-Ldap-3!", mail: "jit3@example.com", sn: "Third" },
];

describe.skipIf(!slapdAvailable())("LDAP gateways and external passwords (real slapd)", () => {
  const up = useUserport({ externalUrl: EXTERNAL_URL, maxPasswordAttempts: 3, ldapTimeoutMs: 1500 });
  let slapd: Slapd;
  let p1: PingOneClient;
  let env = "";
  let users = "";
  let gateways = "";

  beforeAll(async () => {
    slapd = await Slapd.start(PEOPLE_LDAP);
    p1 = new PingOneClient(up.server.url, up.server.token);
    env = String(((await p1.get("/v1/environments")).body!._embedded as { environments: Array<{ id: string }> }).environments[0]!.id);
    users = `/v1/environments/${env}/users`;
    gateways = `/v1/environments/${env}/gateways`;
  });
  afterAll(async () => {
    await slapd?.dispose();
  });

  /** PingOne's "Create LDAP Gateway" example body, pointed at the test directory. */
  function gatewayBody(extra: Record<string, unknown> = {}, userTypes?: unknown[]) {
    return {
      name: uniqueName("gateway"),
      description: "Test directory",
      type: "LDAP",
      enabled: true,
      vendor: "LDAPv3-compliant Directory Server",
      bindDN: SERVICE_DN,
      bindPassword: SERVICE_PASSWORD,
      connectionSecurity: "None",
      serversHostAndPort: [slapd.hostAndPort],
      // Legacy keys of the docs' examples, which the SDK does not model: ignored.
      searchBaseDN: SUFFIX,
      userCorrelationFilterPattern: "(|(uid=$username$)(mail=$username$))",
      userTypes: userTypes ?? [
        { name: "Migrating", passwordAuthority: "PING_ONE", searchBaseDn: PEOPLE, orderedCorrelationAttributes: ["uid", "mail"], allowPasswordChanges: false },
        { name: "Staying", passwordAuthority: "LDAP", searchBaseDn: PEOPLE, orderedCorrelationAttributes: ["uid"] },
      ],
      ...extra,
    };
  }

  async function createGateway(extra: Record<string, unknown> = {}, userTypes?: unknown[]) {
    const created = await p1.post(gateways, gatewayBody(extra, userTypes));
    expect(created.status, created.raw).toBe(201);
    const types = created.body!.userTypes as Array<{ id: string; name: string }>;
    return { id: String(created.body!.id), migrating: types[0]!.id, staying: types[1]?.id ?? "", body: created.body! };
  }

  async function importExternal(gateway: { id: string }, userTypeId: string, correlationAttributes: Record<string, string>) {
    const created = await p1.post(
      users,
      {
        username: uniqueName("ext"),
        population: { id: up.defaultOrgId },
        password: { external: { gateway: { id: gateway.id, type: "LDAP", userType: { id: userTypeId }, correlationAttributes } } },
      },
      MEDIA.import,
    );
    expect(created.status, created.raw).toBe(201);
    const id = String(created.body!.id);
    return { id, path: `${users}/${id}/password`, created };
  }

  function expectError(response: PingOneResponse, status: number, code: string) {
    expect(response.status, response.raw).toBe(status);
    expect(response.body!.id).toMatch(UUID);
    expect(response.body!.code).toBe(code);
    return response.body!;
  }

  const storedHash = async (userId: string) =>
    (await up.server.db.selectFrom("users").select("password_hash").where("id", "=", userId).executeTakeFirstOrThrow()).password_hash;
  const signIn = (userId: string, password: string) =>
    up.caller("grpc-js").call(SESSIONS.createSession, { checks: { user: { userId }, password: { password } } });

  describe("gateways", () => {
    it("creates an LDAP gateway with server-assigned user type ids and never returns or stores the bind password in the clear", async () => {
      const gateway = await createGateway();
      expect(gateway.id).toMatch(UUID);
      expect(gateway.migrating).toMatch(UUID);
      expect(gateway.staying).toMatch(UUID);
      expect(gateway.body).toMatchObject({
        environment: { id: env },
        type: "LDAP",
        enabled: true,
        bindDN: SERVICE_DN,
        connectionSecurity: "None",
        serversHostAndPort: [slapd.hostAndPort],
        validateTlsCertificates: true,
        _links: { self: { href: `${EXTERNAL_URL}${gateways}/${gateway.id}` } },
      });
      expect(gateway.body).not.toHaveProperty("bindPassword");
      expect(gateway.body).not.toHaveProperty("userCorrelationFilterPattern");
      const read = await p1.get(`${gateways}/${gateway.id}`);
      expect(read.status).toBe(200);
      expect(read.raw).not.toContain(SERVICE_PASSWORD);
      const listed = await p1.get(gateways);
      expect((listed.body!._embedded as { gateways: Array<{ id: string }> }).gateways.map((g) => g.id)).toContain(gateway.id);
      expect(listed.raw).not.toContain(SERVICE_PASSWORD);
      const row = await up.server.db.selectFrom("directory_objects").selectAll().where("id", "=", gateway.id).executeTakeFirstOrThrow();
      expect(row.body).not.toContain(SERVICE_PASSWORD);
      expect(row.sealed_secret).toBeTruthy();
      expect(row.sealed_secret).not.toContain(SERVICE_PASSWORD);
    });

    it("PUT without bindPassword keeps the stored one (Terraform sends it from its state, PingOne never returns it); user type ids sent back are kept", async () => {
      const gateway = await createGateway();
      const { bindPassword: _omitted, ...body } = gatewayBody({ name: String(gateway.body.name), description: "renamed" }, [
        { id: gateway.migrating, name: "Migrating", passwordAuthority: "PING_ONE", searchBaseDn: PEOPLE, orderedCorrelationAttributes: ["uid"] },
      ]);
      const put = await p1.put(`${gateways}/${gateway.id}`, body);
      expect(put.status, put.raw).toBe(200);
      expect(put.body).toMatchObject({ description: "renamed", userTypes: [{ id: gateway.migrating }] });
      // The kept bind password still binds: a user of the gateway signs in.
      const user = await importExternal(gateway, gateway.migrating, { uid: "crypto" });
      expect((await p1.post(user.path, { password: "Crypt-Ldap-2!" }, CHECK)).status).toBe(200);
      expect((await p1.delete(`${gateways}/${gateway.id}`)).status).toBe(204);
      expect((await p1.get(`${gateways}/${gateway.id}`)).status).toBe(404);
    });

    it("refuses gateways it cannot serve with PingOne's INVALID_DATA, naming the attribute, and writes nothing", async () => {
      const before = (await p1.get(gateways)).body!.count;
      const cases: Array<[Record<string, unknown>, string, string]> = [
        [{ type: "RADIUS" }, "type", "INVALID_VALUE"],
        [{ bindPassword: undefined }, "bindPassword", "REQUIRED_VALUE"],
        [{ serversHostAndPort: [] }, "serversHostAndPort", "REQUIRED_VALUE"],
        [{ serversHostAndPort: ["ldap.example.com"] }, "serversHostAndPort", "INVALID_VALUE"],
        [{ connectionSecurity: "SSL" }, "connectionSecurity", "INVALID_VALUE"],
        [
          { userTypes: [{ name: "x", passwordAuthority: "SOMEWHERE", searchBaseDn: PEOPLE, orderedCorrelationAttributes: ["uid"] }] },
          "userTypes[0].passwordAuthority",
          "INVALID_VALUE",
        ],
        [
          { userTypes: [{ name: "x", passwordAuthority: "LDAP", searchBaseDn: PEOPLE, orderedCorrelationAttributes: ["uid)(cn=*"] }] },
          "userTypes[0].orderedCorrelationAttributes",
          "INVALID_VALUE",
        ],
      ];
      for (const [extra, target, detail] of cases) {
        const response = await p1.post(gateways, gatewayBody(extra));
        const body = expectError(response, 400, "INVALID_DATA");
        expect(body.details, JSON.stringify(extra)).toEqual([expect.objectContaining({ code: detail, target })]);
      }
      expect((await p1.get(gateways)).body!.count).toBe(before);
    });

    it("needs iam.policy.read and iam.policy.write of an instance role: an organisation owner gets 403, no token 401", async () => {
      const owner = await createApiCaller(up, "ORG_OWNER");
      const scoped = new PingOneClient(up.server.url, owner.token);
      expectError(await scoped.post(gateways, gatewayBody()), 403, "ACCESS_FAILED");
      expectError(await scoped.get(gateways), 403, "ACCESS_FAILED");
      expectError(await new PingOneClient(up.server.url, null).post(gateways, gatewayBody()), 401, "ACCESS_FAILED");
    });
  });

  describe("import with password.external.gateway", () => {
    it("answers 201 with the user, whose password status is EXTERNAL and whose link the password state shows", async () => {
      const gateway = await createGateway();
      const user = await importExternal(gateway, gateway.migrating, { uid: "jdoe" });
      expect(user.created.raw).not.toContain("correlationAttributes");
      const state = await p1.get(user.path);
      expect(state.status).toBe(200);
      expect(state.body).toMatchObject({
        status: "EXTERNAL",
        gateway: { id: gateway.id, type: "LDAP", userType: { id: gateway.migrating }, correlationAttributes: { uid: "jdoe" } },
      });
      expect(await storedHash(user.id)).toBeNull();
    });

    it("refuses an unknown gateway, an unknown user type, correlation attributes the user type does not use, and a value with a gateway", async () => {
      const gateway = await createGateway();
      const attempt = (gatewayObject: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
        p1.post(
          users,
          { username: uniqueName("bad"), population: { id: up.defaultOrgId }, password: { external: { gateway: gatewayObject }, ...extra } },
          MEDIA.import,
        );
      const cases: Array<[PingOneResponse, string]> = [
        [
          await attempt({ id: crypto.randomUUID(), userType: { id: gateway.migrating }, correlationAttributes: { uid: "jdoe" } }),
          "password.external.gateway.id",
        ],
        [
          await attempt({ id: gateway.id, userType: { id: crypto.randomUUID() }, correlationAttributes: { uid: "jdoe" } }),
          "password.external.gateway.userType.id",
        ],
        [
          await attempt({ id: gateway.id, userType: { id: gateway.staying }, correlationAttributes: { mail: "jdoe@example.com" } }),
          "password.external.gateway.correlationAttributes",
        ],
        [await attempt({ id: gateway.id, userType: { id: gateway.migrating } }), "password.external.gateway.correlationAttributes"],
        [
          await attempt({ id: gateway.id, userType: { id: gateway.migrating }, correlationAttributes: { uid: "jdoe" } }, { value: "Some-Passw0rd!" }),
          "password.value",
        ],
      ];
      for (const [response, target] of cases) {
        const body = expectError(response, 400, "INVALID_DATA");
        expect((body.details as Array<{ target: string }>)[0]!.target).toBe(target);
      }
    });
  });

  describe("passwordAuthority PING_ONE: checked against LDAP once, then captured", () => {
    it("PingOne's check: a wrong password counts, the right one is captured (bcrypt, an event, status OK), later checks work with the directory down", async () => {
      const gateway = await createGateway();
      const user = await importExternal(gateway, gateway.migrating, { uid: "jdoe" });
      const wrong = expectError(await p1.post(user.path, { password: "not-the-ldap-one" }, CHECK), 400, "INVALID_DATA");
      expect((wrong.details as Array<Record<string, unknown>>)[0]).toMatchObject({
        code: "INVALID_VALUE",
        target: "password",
        innerError: { failuresRemaining: 2 },
      });
      expect(await storedHash(user.id)).toBeNull();

      const checked = await p1.post(user.path, { password: "Jdoe-Ldap-1!" }, CHECK);
      expect(checked.status, checked.raw).toBe(200);
      expect(checked.body).toMatchObject({ status: "OK" });
      expect(checked.raw).not.toContain("Jdoe-Ldap-1!");
      expect(await storedHash(user.id)).toMatch(/^\$2b\$04\$/);
      const events = await up.eventTypes(user.id);
      expect(events.slice(-2)).toEqual(["user.human.password.external.captured", "user.human.password.check.succeeded"]);

      await slapd.stop();
      try {
        expect((await p1.post(user.path, { password: "Jdoe-Ldap-1!" }, CHECK)).status).toBe(200);
        expectOk(await signIn(user.id, "Jdoe-Ldap-1!"));
        // The wrong one is now refused by the captured hash, without the directory.
        expectError(await p1.post(user.path, { password: "not-the-ldap-one" }, CHECK), 400, "INVALID_DATA");
      } finally {
        await slapd.run();
      }
    });

    it("ZITADEL's CreateSession: the first sign-in is checked against LDAP and captures the password; the session has the password factor", async () => {
      const gateway = await createGateway();
      const user = await importExternal(gateway, gateway.migrating, { uid: "capture2" });
      expectCode(await signIn(user.id, "Capture-Ldap-2?"), Code.InvalidArgument);
      const session = expectOk(await signIn(user.id, "Capture-Ldap-2!"));
      expect(session.sessionId).toBeTruthy();
      expect(await storedHash(user.id)).toMatch(/^\$2b\$04\$/);
      expect(await up.eventTypes(user.id)).toContain("user.human.password.external.captured");
      expect((await p1.get(user.path)).body).toMatchObject({ status: "OK" });
    });
  });

  describe("passwordAuthority LDAP: never stored", () => {
    it("a {CRYPT} password is checked by the directory on every sign-in, through both APIs, and never stored", async () => {
      const gateway = await createGateway();
      const user = await importExternal(gateway, gateway.staying, { uid: "crypto" });
      expect((await p1.post(user.path, { password: "Crypt-Ldap-2!" }, CHECK)).status).toBe(200);
      expectOk(await signIn(user.id, "Crypt-Ldap-2!"));
      expectCode(await signIn(user.id, "Crypt-Ldap-2"), Code.InvalidArgument);
      expect(await storedHash(user.id)).toBeNull();
      expect(await up.eventTypes(user.id)).not.toContain("user.human.password.external.captured");
      expect((await p1.get(user.path)).body).toMatchObject({ status: "EXTERNAL" });
      // Without the directory there is no decision: 503, and nothing counted.
      await slapd.stop();
      try {
        const down = expectError(await p1.post(user.path, { password: "Crypt-Ldap-2!" }, CHECK), 503, "REQUEST_FAILED");
        expect(String(down.message)).toMatch(/could not be reached/);
      } finally {
        await slapd.run();
      }
    });

    it("wrong passwords count towards ZITADEL's lockout policy: the third locks the user, and then even the right one is refused", async () => {
      const gateway = await createGateway();
      const user = await importExternal(gateway, gateway.staying, { uid: "locky" });
      expectCode(await signIn(user.id, "wrong-1"), Code.InvalidArgument);
      expectError(await p1.post(user.path, { password: "wrong-2" }, CHECK), 400, "INVALID_DATA");
      const third = expectError(await p1.post(user.path, { password: "wrong-3" }, CHECK), 400, "INVALID_DATA");
      expect((third.details as Array<Record<string, unknown>>)[0]!.innerError).toEqual({ failuresRemaining: 0 });
      expect((await p1.get(user.path)).body).toMatchObject({ status: "PASSWORD_LOCKED_OUT" });
      expectError(await p1.post(user.path, { password: "Locky-Ldap-3!" }, CHECK), 400, "INVALID_DATA");
      expectCode(await signIn(user.id, "Locky-Ldap-3!"), Code.FailedPrecondition);
    });
  });

  describe("a directory that is down, hung or misconfigured fails closed and counts nothing", () => {
    it("down: 503 on PingOne's check and UNAVAILABLE on CreateSession, with a clear message; the failure count is untouched", async () => {
      const gateway = await createGateway();
      const user = await importExternal(gateway, gateway.staying, { uid: "downy" });
      await slapd.stop();
      try {
        const down = expectError(await p1.post(user.path, { password: "Downy-Ldap-4!" }, CHECK), 503, "REQUEST_FAILED");
        expect(String(down.message)).toContain(slapd.hostAndPort);
        expect(String(down.message)).not.toContain(SERVICE_PASSWORD);
        const session = expectCode(await signIn(user.id, "Downy-Ldap-4!"), Code.Unavailable);
        expect(session.message).toMatch(/LDAP directory could not be reached/);
        expectCode(await signIn(user.id, "wrong"), Code.Unavailable);
      } finally {
        await slapd.run();
      }
      // None of the three attempts counted: the first real failure leaves 2 of 3.
      const wrong = expectError(await p1.post(user.path, { password: "wrong" }, CHECK), 400, "INVALID_DATA");
      expect((wrong.details as Array<Record<string, unknown>>)[0]!.innerError).toEqual({ failuresRemaining: 2 });
      expect((await p1.post(user.path, { password: "Downy-Ldap-4!" }, CHECK)).status).toBe(200);
    });

    it("hung (slapd stopped with SIGSTOP): the check gives up with 503 while the server keeps answering other requests", async () => {
      const gateway = await createGateway();
      const user = await importExternal(gateway, gateway.staying, { uid: "downy" });
      slapd.pause();
      try {
        const order: string[] = [];
        const check = p1.post(user.path, { password: "Downy-Ldap-4!" }, CHECK).then((response) => {
          order.push("check");
          return response;
        });
        // Asked after the check: answered while the check still waits on the directory.
        const other = await p1.get(`/v1/environments/${env}`);
        order.push("other");
        expect(other.status).toBe(200);
        const hung = expectError(await check, 503, "REQUEST_FAILED");
        expect(String(hung.message)).toMatch(/within 1500 ms/);
        expect(order).toEqual(["other", "check"]);
      } finally {
        slapd.resume();
      }
      expect((await p1.post(user.path, { password: "Downy-Ldap-4!" }, CHECK)).status).toBe(200);
    });

    it("servers are tried in order: a dead first server is passed over", async () => {
      const dead = `127.0.0.1:${await freePort()}`;
      const gateway = await createGateway({ serversHostAndPort: [dead, slapd.hostAndPort] });
      const user = await importExternal(gateway, gateway.staying, { uid: "crypto" });
      expect((await p1.post(user.path, { password: "Crypt-Ldap-2!" }, CHECK)).status).toBe(200);
      expectOk(await signIn(user.id, "Crypt-Ldap-2!"));
    });

    it("a refused bindDN/bindPassword is REQUEST_FAILED (400) saying so, and not a wrong password", async () => {
      const gateway = await createGateway({ bindPassword: "not-the-service-password" });
      const user = await importExternal(gateway, gateway.staying, { uid: "crypto" });
      const refused = expectError(await p1.post(user.path, { password: "Crypt-Ldap-2!" }, CHECK), 400, "REQUEST_FAILED");
      expect(String(refused.message)).toMatch(/refused the gateway's bindDN and bindPassword/);
      expect(refused.message).not.toContain("not-the-service-password");
      expectCode(await signIn(user.id, "Crypt-Ldap-2!"), Code.FailedPrecondition);
      expect((await p1.get(user.path)).body).toMatchObject({ status: "EXTERNAL" });
    });
  });

  describe("finding the entry", () => {
    it("escapes correlation values: `jdo*` and `*)(uid=*` match no entry instead of jdoe's or everyone's (no sign-in with jdoe's password)", async () => {
      const gateway = await createGateway();
      for (const value of ["jdo*", "*)(uid=*", "*"]) {
        const user = await importExternal(gateway, gateway.staying, { uid: value });
        const response = expectError(await p1.post(user.path, { password: "Jdoe-Ldap-1!" }, CHECK), 400, "REQUEST_FAILED");
        expect(String(response.message), value).toMatch(/No directory entry/);
        expectCode(await signIn(user.id, "Jdoe-Ldap-1!"), Code.FailedPrecondition);
      }
    });

    it("correlation attributes matching several entries are refused; attributes are tried in the user type's order", async () => {
      const gateway = await createGateway({}, [
        { name: "By mail", passwordAuthority: "LDAP", searchBaseDn: PEOPLE, orderedCorrelationAttributes: ["mail", "uid"] },
        { name: "By employee number", passwordAuthority: "LDAP", searchBaseDn: PEOPLE, orderedCorrelationAttributes: ["employeeNumber", "uid"] },
      ]);
      const shared = await importExternal(gateway, gateway.migrating, { mail: "shared@example.com" });
      const ambiguous = expectError(await p1.post(shared.path, { password: "Ann-Ldap-5!" }, CHECK), 400, "REQUEST_FAILED");
      expect(String(ambiguous.message)).toMatch(/Several directory entries/);
      // employeeNumber finds nothing for this value, uid then finds jdoe.
      const fallback = await importExternal(gateway, gateway.staying, { employeeNumber: "9999", uid: "jdoe" });
      expect((await p1.post(fallback.path, { password: "Jdoe-Ldap-1!" }, CHECK)).status).toBe(200);
      // An entry outside the user type's searchBaseDn is not found.
      const outside = await importExternal(gateway, gateway.staying, { uid: "other" });
      expectError(await p1.post(outside.path, { password: "Other-Ldap-7!" }, CHECK), 400, "REQUEST_FAILED");
    });
  });

  describe("Set Gateway (PUT …/password, password.setGateway+json) on an existing user", () => {
    const SET_GATEWAY = "application/vnd.pingidentity.password.setGateway+json";

    it("to an LDAP-authority user type: the stored password is deleted, status EXTERNAL, and sign-ins go to the directory", async () => {
      const gateway = await createGateway();
      const created = await p1.post(
        users,
        { username: uniqueName("relink"), population: { id: up.defaultOrgId }, password: { value: "Old-Stored-Passw0rd!", forceChange: false } },
        MEDIA.import,
      );
      expect(created.status, created.raw).toBe(201);
      const userId = String(created.body!.id);
      const path = `${users}/${userId}/password`;
      expect(await storedHash(userId)).not.toBeNull();
      const linked = await p1.put(path, { id: gateway.id, userType: { id: gateway.staying }, correlationAttributes: { uid: "crypto" } }, SET_GATEWAY);
      expect(linked.status, linked.raw).toBe(200);
      expect(linked.body).toMatchObject({
        status: "EXTERNAL",
        gateway: { id: gateway.id, userType: { id: gateway.staying }, correlationAttributes: { uid: "crypto" } },
      });
      expect(await storedHash(userId)).toBeNull();
      expect(await up.eventTypes(userId)).toContain("user.human.password.external.linked");
      expectError(await p1.post(path, { password: "Old-Stored-Passw0rd!" }, CHECK), 400, "INVALID_DATA");
      expect((await p1.post(path, { password: "Crypt-Ldap-2!" }, CHECK)).status).toBe(200);
      expectOk(await signIn(userId, "Crypt-Ldap-2!"));
      expect(await storedHash(userId)).toBeNull();
    });

    it("to a PING_ONE user type for a user without a password (the docs' nested form): captured at the next sign-in", async () => {
      const gateway = await createGateway();
      const created = await p1.post(users, { username: uniqueName("relink"), population: { id: up.defaultOrgId } }, MEDIA.json);
      expect(created.status, created.raw).toBe(201);
      const userId = String(created.body!.id);
      const path = `${users}/${userId}/password`;
      expect((await p1.get(path)).body).toMatchObject({ status: "NO_PASSWORD" });
      const nested = { password: { external: { gateway: { id: gateway.id, userType: { id: gateway.migrating }, correlationAttributes: { uid: "jdoe" } } } } };
      const linked = await p1.put(path, nested, SET_GATEWAY);
      expect(linked.status, linked.raw).toBe(200);
      expect(linked.body).toMatchObject({ status: "EXTERNAL" });
      expectOk(await signIn(userId, "Jdoe-Ldap-1!"));
      expect(await storedHash(userId)).toMatch(/^\$2b\$04\$/);
      expect((await p1.get(path)).body).toMatchObject({ status: "OK" });
    });

    it("refuses an unknown gateway, an unknown user type and missing correlation attributes with INVALID_DATA, writing nothing", async () => {
      const gateway = await createGateway();
      const created = await p1.post(users, { username: uniqueName("relink"), population: { id: up.defaultOrgId } }, MEDIA.json);
      const userId = String(created.body!.id);
      const path = `${users}/${userId}/password`;
      const before = await up.eventTypes(userId);
      const cases: Array<[Record<string, unknown>, string]> = [
        [
          { id: "6f1f3a4e-0c5b-4d2e-9a51-3f0e8b7c2d19", userType: { id: gateway.staying }, correlationAttributes: { uid: "jdoe" } },
          "password.external.gateway.id",
        ],
        [
          { id: gateway.id, userType: { id: "6f1f3a4e-0c5b-4d2e-9a51-3f0e8b7c2d19" }, correlationAttributes: { uid: "jdoe" } },
          "password.external.gateway.userType.id",
        ],
        [{ id: gateway.id, userType: { id: gateway.staying } }, "password.external.gateway.correlationAttributes"],
      ];
      for (const [body, target] of cases) {
        const refused = expectError(await p1.put(path, body, SET_GATEWAY), 400, "INVALID_DATA");
        expect((refused.details as Array<{ target: string }>)[0]!.target).toBe(target);
      }
      expect(await up.eventTypes(userId)).toEqual(before);
      expect((await p1.get(path)).body).toMatchObject({ status: "NO_PASSWORD" });
    });
  });

  describe("newUserLookup: just-in-time migration of users the directory knows", () => {
    const lookupType = (authority: "PING_ONE" | "LDAP", populationId: string, extra: Record<string, unknown> = {}) => ({
      name: `JIT ${authority}`,
      passwordAuthority: authority,
      searchBaseDn: PEOPLE,
      orderedCorrelationAttributes: ["uid"],
      newUserLookup: {
        ldapFilterPattern: "(|(uid=${identifier})(mail=${identifier}))",
        population: { id: populationId },
        attributeMappings: [
          { name: "username", value: "${ldapAttributes.uid}" },
          { name: "email", value: "${ldapAttributes.mail}" },
          { name: "name.given", value: "${ldapAttributes.givenName}" },
          { name: "name.family", value: "${ldapAttributes.sn}" },
          { name: "title", value: "Employee ${ldapAttributes.employeeNumber}" },
        ],
        ...extra,
      },
    });
    const byLoginName = (loginName: string, password: string) =>
      up.caller("grpc-js").call(SESSIONS.createSession, { checks: { user: { loginName }, password: { password } } });
    async function findByUsername(username: string) {
      const listed = await p1.get(`${users}?filter=${encodeURIComponent(`username eq "${username}"`)}`);
      expect(listed.status, listed.raw).toBe(200);
      return (listed.body!._embedded as { users: Array<Record<string, unknown>> }).users;
    }
    // Gateways with a newUserLookup are all consulted for an unknown login name: each test removes its own.
    const lookups: string[] = [];
    afterEach(async () => {
      for (const id of lookups.splice(0)) expect((await p1.delete(`${gateways}/${id}`)).status).toBe(204);
    });
    async function lookupGateway(userType: Record<string, unknown>) {
      const gateway = await createGateway({}, [userType]);
      lookups.push(gateway.id);
      return gateway;
    }
    async function newPopulation() {
      const created = await p1.post(`/v1/environments/${env}/populations`, { name: uniqueName("jit-pop") });
      expect(created.status, created.raw).toBe(201);
      return String(created.body!.id);
    }

    it("CreateSession by an unknown login name that the filter finds: a wrong password (or an injected filter value) creates nothing; the right one creates the user in the population with the mapped attributes, captures the password and signs it in", async () => {
      const population = await newPopulation();
      const gateway = await lookupGateway(lookupType("PING_ONE", population));
      // A wrong password: as for any unknown login name, and nobody created.
      expectCode(await byLoginName("jit1@example.com", "Jit-Ldap-1?"), Code.NotFound);
      // Filter values are escaped: `jit*` and `*)(uid=jit1` find no entry, so jit1's password signs nobody in.
      for (const injected of ["jit*", "*)(uid=jit1", "*"]) expectCode(await byLoginName(injected, "Jit-Ldap-1!"), Code.NotFound);
      expect(await findByUsername("jit1")).toEqual([]);

      // Signed in by its mail (the filter's second alternative): created with the mapped attributes.
      const session = expectOk(await byLoginName("jit1@example.com", "Jit-Ldap-1!"));
      expect(session.sessionId).toBeTruthy();
      const [created] = await findByUsername("jit1");
      expect(created).toMatchObject({
        username: "jit1",
        email: "jit1@example.com",
        name: { given: "Jay", family: "Eyeti" },
        title: "Employee 7001",
        population: { id: population },
      });
      const userId = String(created!.id);
      // Linked to the gateway by the user type's correlation attribute, and captured (PING_ONE).
      expect(await storedHash(userId)).toMatch(/^\$2b\$04\$/);
      const state = await p1.get(`${users}/${userId}/password`);
      expect(state.body).toMatchObject({ status: "OK" });
      expect(await up.eventTypes(userId)).toEqual(
        expect.arrayContaining(["user.human.added", "user.human.password.external.captured", "user.human.password.check.succeeded"]),
      );
      const creator = await up.server.db
        .selectFrom("events")
        .select("creator")
        .where("aggregate_id", "=", userId)
        .orderBy("sequence")
        .executeTakeFirstOrThrow();
      expect(creator.creator).toBe(gateway.id);
      // Later sign-ins are the known user's, through both APIs, the directory no longer needed.
      await slapd.stop();
      try {
        expectOk(await byLoginName("jit1", "Jit-Ldap-1!"));
        expect((await p1.post(`${users}/${userId}/password`, { password: "Jit-Ldap-1!" }, CHECK)).status).toBe(200);
      } finally {
        await slapd.run();
      }
      expect(await findByUsername("jit1")).toHaveLength(1);
    });

    it("passwordAuthority LDAP: the created user's password stays in the directory (EXTERNAL), checked there by PingOne's check; attributes the entry lacks are left out", async () => {
      const population = await newPopulation();
      await lookupGateway(lookupType("LDAP", population));
      expectOk(await byLoginName("jit2", "Jit-Ldap-2!"));
      const [created] = await findByUsername("jit2");
      expect(created).toMatchObject({ username: "jit2", name: { family: "Second" }, population: { id: population } });
      expect(created!.title).toBeUndefined();
      expect((created!.name as Record<string, unknown>).given).toBeUndefined();
      const userId = String(created!.id);
      expect(await storedHash(userId)).toBeNull();
      const path = `${users}/${userId}/password`;
      expect((await p1.get(path)).body).toMatchObject({ status: "EXTERNAL", gateway: { correlationAttributes: { uid: "jit2" } } });
      expect((await p1.post(path, { password: "Jit-Ldap-2!" }, CHECK)).status).toBe(200);
      expectError(await p1.post(path, { password: "Jit-Ldap-2?" }, CHECK), 400, "INVALID_DATA");
    });

    it("a directory that is down fails the lookup closed (UNAVAILABLE, nothing created), and an unknown name with the directory up is NOT_FOUND", async () => {
      const population = await newPopulation();
      await lookupGateway(lookupType("LDAP", population));
      expectCode(await byLoginName("nobody-in-ldap", "Whatever-1!"), Code.NotFound);
      await slapd.stop();
      try {
        expectCode(await byLoginName("nobody-in-ldap", "Whatever-1!"), Code.Unavailable);
      } finally {
        await slapd.run();
      }
      expect(await findByUsername("nobody-in-ldap")).toEqual([]);
    });

    it("two first sign-ins at once create one user and both sign in", async () => {
      const population = await newPopulation();
      await lookupGateway(lookupType("LDAP", population));
      const [first, second] = await Promise.all([byLoginName("jit3", "Jit-Ldap-3!"), byLoginName("jit3@example.com", "Jit-Ldap-3!")]);
      expectOk(first);
      expectOk(second);
      expect(await findByUsername("jit3")).toHaveLength(1);
    });

    it("refuses a newUserLookup it cannot use with INVALID_DATA naming the attribute: no ${identifier}, not a filter, no username mapping, an unknown population", async () => {
      const population = await newPopulation();
      const cases: Array<[Record<string, unknown>, string]> = [
        [{ ldapFilterPattern: "(uid=jdoe)" }, "userTypes[0].newUserLookup.ldapFilterPattern"],
        [{ ldapFilterPattern: "(uid=${identifier}" }, "userTypes[0].newUserLookup.ldapFilterPattern"],
        [{ attributeMappings: [{ name: "email", value: "${ldapAttributes.mail}" }] }, "userTypes[0].newUserLookup.attributeMappings"],
        [{ population: { id: "6f1f3a4e-0c5b-4d2e-9a51-3f0e8b7c2d19" } }, "userTypes[0].newUserLookup.population.id"],
      ];
      for (const [extra, target] of cases) {
        const before = (await p1.get(gateways)).body!.count;
        const refused = expectError(await p1.post(gateways, gatewayBody({}, [lookupType("LDAP", population, extra)])), 400, "INVALID_DATA");
        expect((refused.details as Array<{ target: string }>)[0]!.target, JSON.stringify(extra)).toBe(target);
        expect((await p1.get(gateways)).body!.count).toBe(before);
      }
    });
  });

  describe("kept connections (src/ldap/directory.ts)", () => {
    /** slapd's counts (cn=Monitor) from `before` to now, less what reading them costs (1 connection, 4 searches). */
    async function since(before: { binds: number; searches: number; connections: number }) {
      const now = await slapd.operations();
      return { binds: now.binds - before.binds, searches: now.searches - before.searches, connections: now.connections - before.connections };
    }

    it("the gateway binds once per kept connection, not per check: ten sequential checks (one a wrong password) are one gateway bind, ten searches and ten user binds over two connections", async () => {
      const gateway = await createGateway();
      const user = await importExternal(gateway, gateway.staying, { uid: "crypto" });
      const before = await slapd.operations();
      for (let i = 0; i < 10; i++) {
        const response = await p1.post(user.path, { password: i === 4 ? "Crypt-Ldap-2?" : "Crypt-Ldap-2!" }, CHECK);
        expect(response.status, `check ${i}: ${response.raw}`).toBe(i === 4 ? 400 : 200);
      }
      // One bind as the gateway on the search connection, then one user bind per check on the bind connection.
      expect(await since(before)).toEqual({ binds: 11, searches: 10, connections: 2 });
      // CreateSession uses the same kept connections.
      const again = await slapd.operations();
      expectOk(await signIn(user.id, "Crypt-Ldap-2!"));
      expect(await since(again)).toEqual({ binds: 1, searches: 1, connections: 0 });
    });

    it("connections the directory closed (a restart) are not used again unbound: the next check opens new ones and binds as the gateway first", async () => {
      const gateway = await createGateway();
      const user = await importExternal(gateway, gateway.staying, { uid: "crypto" });
      expect((await p1.post(user.path, { password: "Crypt-Ldap-2!" }, CHECK)).status).toBe(200);
      await slapd.stop();
      await slapd.run();
      const before = await slapd.operations();
      expect((await p1.post(user.path, { password: "Crypt-Ldap-2!" }, CHECK)).status).toBe(200);
      // The search would fail unbound (entries are readable by bound users only): the gateway bound again.
      expect(await since(before)).toEqual({ binds: 2, searches: 1, connections: 2 });
      expect((await p1.post(user.path, { password: "wrong" }, CHECK)).status).toBe(400);
    });

    it("kept connections unused for idleMs are closed, and the next check opens new ones (src/ldap/directory.ts on a directory of its own)", async () => {
      const own = await Slapd.start([{ uid: "idler", password: "Idler-Ldap-1!" }]);
      const directory = createLdapDirectory({ timeoutMs: 2000, idleMs: 200 });
      try {
        const connection = {
          key: "test/idle/1",
          servers: [own.hostAndPort],
          security: "None" as const,
          validateTlsCertificates: true,
          bindDn: SERVICE_DN,
          bindPassword: SERVICE_PASSWORD,
        };
        const lookup = { baseDn: PEOPLE, correlation: [["uid", "idler"]] as Array<[string, string]> };
        const baseline = (await own.operations()).open;
        expect(await directory.verify(connection, lookup, "Idler-Ldap-1!")).toBe("match");
        expect((await own.operations()).open).toBe(baseline + 2);
        let open = baseline + 2;
        for (let waited = 0; waited < 50 && open > baseline; waited++) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          open = (await own.operations()).open;
        }
        expect(open).toBe(baseline);
        expect(await directory.verify(connection, lookup, "Idler-Ldap-1?")).toBe("mismatch");
        expect(await directory.verify(connection, lookup, "Idler-Ldap-1!")).toBe("match");
      } finally {
        await directory.close();
        await own.dispose();
      }
    });

    it("a changed gateway (PUT) gets new connections with its new settings: the old bindPassword is not used again", async () => {
      const gateway = await createGateway();
      const user = await importExternal(gateway, gateway.staying, { uid: "crypto" });
      expect((await p1.post(user.path, { password: "Crypt-Ldap-2!" }, CHECK)).status).toBe(200);
      const { id: _id, userTypes, ...rest } = gateway.body as Record<string, unknown>;
      const changed = await p1.put(`${gateways}/${gateway.id}`, { ...rest, userTypes, bindPassword: "not-the-service-password" });
      expect(changed.status, changed.raw).toBe(200);
      const refused = expectError(await p1.post(user.path, { password: "Crypt-Ldap-2!" }, CHECK), 400, "REQUEST_FAILED");
      expect(String(refused.message)).toMatch(/refused the gateway's bindDN and bindPassword/);
    });
  });

  describe("connection security", () => {
    it("TLS and StartTLS with the directory's self-signed certificate: refused while certificates are validated, used when validateTlsCertificates is false", async () => {
      const tlsValidated = await createGateway({ connectionSecurity: "TLS", serversHostAndPort: [slapd.tlsHostAndPort] });
      const refused = await importExternal(tlsValidated, tlsValidated.staying, { uid: "crypto" });
      const tlsError = expectError(await p1.post(refused.path, { password: "Crypt-Ldap-2!" }, CHECK), 400, "REQUEST_FAILED");
      expect(String(tlsError.message)).toMatch(/refused TLS/);
      expectCode(await signIn(refused.id, "Crypt-Ldap-2!"), Code.FailedPrecondition);

      const startTlsValidated = await createGateway({ connectionSecurity: "StartTLS" });
      const refusedStartTls = await importExternal(startTlsValidated, startTlsValidated.staying, { uid: "crypto" });
      expectError(await p1.post(refusedStartTls.path, { password: "Crypt-Ldap-2!" }, CHECK), 400, "REQUEST_FAILED");

      for (const [security, server] of [
        ["TLS", slapd.tlsHostAndPort],
        ["StartTLS", slapd.hostAndPort],
      ] as const) {
        const gateway = await createGateway({ connectionSecurity: security, serversHostAndPort: [server], validateTlsCertificates: false });
        const user = await importExternal(gateway, gateway.staying, { uid: "crypto" });
        expect((await p1.post(user.path, { password: "Crypt-Ldap-2!" }, CHECK)).status, security).toBe(200);
        expectOk(await signIn(user.id, "Crypt-Ldap-2!"));
        expectCode(await signIn(user.id, "Crypt-Ldap-3!"), Code.InvalidArgument);
      }
    });
  });
});
