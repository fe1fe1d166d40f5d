/**
 * Shared set-up for the API tests: one userport per test file with a caller per transport,
 * unique names, request bodies, and peeks into the server's store (through its query builder, so
 * on either SQL dialect) for facts a client cannot see (the default organisation, the events written).
 */
import { createHash, randomBytes } from "node:crypto";
import type { JsonObject } from "@bufbuild/protobuf";
import bcrypt from "bcrypt";
import { afterAll, beforeAll } from "vitest";
import type { Config } from "../../src/config.js";
import { type Caller, createCallers, type TransportName, V1 } from "./clients.js";
import { startTestServer, type TestServer } from "./server.js";

export interface Userport {
  readonly server: TestServer;
  caller(name: TransportName): Caller;
  /** The organisation created at the first start, read from the database. */
  readonly defaultOrgId: string;
  /** Event types written for a user, in order, read from the database. */
  eventTypes(userId: string): Promise<string[]>;
}

/** Starts one server for the calling test file (beforeAll) and disposes it afterwards. */
export function useUserport(overrides: Partial<Config> = {}): Userport {
  let server: TestServer | undefined;
  let callers: Map<TransportName, Caller> | undefined;
  let defaultOrgId = "";
  beforeAll(async () => {
    server = await startTestServer(overrides);
    callers = createCallers(server.url, server.token, server.inProcessTransport());
    defaultOrgId = (await server.db.selectFrom("instances").select("default_org_id").executeTakeFirstOrThrow()).default_org_id;
  });
  afterAll(async () => {
    for (const caller of callers?.values() ?? []) caller.close();
    await server?.dispose();
  });
  return {
    get server() {
      if (!server) throw new Error("the server is not started yet");
      return server;
    },
    caller(name) {
      const caller = callers?.get(name);
      if (!caller) throw new Error(`no caller ${name}`);
      return caller;
    },
    get defaultOrgId() {
      return defaultOrgId;
    },
    async eventTypes(userId) {
      const rows = await server!.db.selectFrom("events").select("type").where("aggregate_id", "=", userId).orderBy("sequence").execute();
      return rows.map((row) => row.type);
    },
  };
}

let counter = 0;
/** A username no other test uses, e.g. "minnie-lx2k9a-7-3f0a". */
export function uniqueName(prefix = "user"): string {
  counter++;
  return `${prefix}-${Date.now().toString(36)}-${counter}-${randomBytes(2).toString("hex")}`;
}

/** A unique email address; local part keeps the prefix for readable failures. */
export function uniqueEmail(prefix = "user"): string {
  return `${uniqueName(prefix)}@example.com`;
}

/** A plaintext password meeting ZITADEL's default complexity policy. */
export const GOOD_PASSWORD = "Secr3t-Passw0rd!";

/** A real bcrypt hash (cost 10, `$2a$`) of `password`, as another system would export it. */
export function bcryptHash(password: string, cost = 10): string {
  return bcrypt.hashSync(password, bcrypt.genSaltSync(cost, "a"));
}

/** A minimal valid v1 ImportHumanUser body; `extra` replaces top-level fields. */
export function v1ImportBody(extra: JsonObject = {}): JsonObject {
  return {
    userName: uniqueName("import"),
    profile: { firstName: "Minnie", lastName: "Mouse" },
    email: { email: uniqueEmail("minnie"), isEmailVerified: true },
    ...extra,
  };
}

/** A minimal valid v1 AddHumanUser body; `extra` replaces top-level fields. */
export function v1AddBody(extra: JsonObject = {}): JsonObject {
  return {
    userName: uniqueName("add"),
    profile: { firstName: "Mickey", lastName: "Mouse" },
    email: { email: uniqueEmail("mickey"), isEmailVerified: true },
    ...extra,
  };
}

/** A minimal valid v2 AddHumanUser body; `extra` replaces top-level fields. */
export function v2AddBody(extra: JsonObject = {}): JsonObject {
  return {
    username: uniqueName("v2"),
    profile: { givenName: "Donald", familyName: "Duck" },
    email: { email: uniqueEmail("donald"), isVerified: true },
    ...extra,
  };
}

/** An RFC 3339 timestamp as protojson writes it. */
export const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3}|\.\d{6}|\.\d{9})?Z$/;
/** A Sonyflake-like id: a decimal string of about 18 digits (ZITADEL's internal/id/sonyflake.go). */
export const USER_ID = /^\d{15,20}$/;

/** A service user written straight into a running server's store, with its bearer token. */
export interface SeededCaller {
  orgId: string;
  userId: string;
  userName: string;
  token: string;
}

/**
 * Organisations and service users cannot be created over the API yet, so tests write them into
 * the server's store, the way the first start writes the administrator: a service user holding
 * `role` (none when undefined) in `orgId`, or in a new organisation when no `orgId` is given.
 */
export async function seedScopedCaller(server: TestServer, role: string | undefined, orgId?: string): Promise<SeededCaller> {
  const { db } = server;
  const { id: instanceId } = await db.selectFrom("instances").select("id").executeTakeFirstOrThrow();
  const suffix = randomBytes(4).toString("hex");
  const now = Date.now();
  const org = orgId ?? `org-${suffix}`;
  if (orgId === undefined) {
    await db
      .insertInto("orgs")
      .values({ instance_id: instanceId, id: org, name: `Org ${suffix}`, created_at: now })
      .execute();
  }
  const userId = `svc-${suffix}`;
  const userName = `svc-${suffix}`;
  const token = randomBytes(32).toString("base64url");
  await db
    .insertInto("users")
    .values({
      instance_id: instanceId,
      id: userId,
      org_id: org,
      type: "machine",
      state: "ACTIVE",
      username: userName,
      given_name: "",
      family_name: "",
      nick_name: "",
      display_name: "",
      preferred_language: "",
      gender: 0,
      email: "",
      email_verified: 0,
      phone: "",
      phone_verified: 0,
      password_hash: null,
      password_change_required: 0,
      password_changed_at: null,
      machine_name: "svc",
      machine_description: "",
      created_at: now,
      changed_at: now,
      sequence: 1,
      username_lower: userName,
      given_name_lower: "",
      family_name_lower: "",
      nick_name_lower: "",
      display_name_lower: "",
      email_lower: "",
    })
    .execute();
  if (role) await db.insertInto("members").values({ instance_id: instanceId, org_id: org, user_id: userId, roles: role }).execute();
  await db
    .insertInto("personal_access_tokens")
    .values({
      instance_id: instanceId,
      id: `pat-${suffix}`,
      user_id: userId,
      digest: createHash("sha256").update(token).digest("hex"),
      expires_at: now + 3_600_000,
      created_at: now,
    })
    .execute();
  return { orgId: org, userId, userName, token };
}

/** A caller made through the API: an organisation, a machine user in it with `role`, and its token. */
export interface ApiCaller {
  orgId: string;
  orgName: string;
  userId: string;
  userName: string;
  token: string;
}

/**
 * Creates, as the administrator and over the API (Connect JSON), a new organisation, a machine
 * user in it holding `role` (none when undefined) and a personal access token for it: the way an
 * operator delegates user management. `orgId` puts the user into an existing organisation.
 */
export async function createApiCaller(up: Userport, role: string | undefined, orgId?: string): Promise<ApiCaller> {
  const admin = up.caller("connect-json-h1");
  const ok = async (result: Promise<import("./clients.js").CallResult>) => {
    const settled = await result;
    if (!settled.ok) throw new Error(`set-up call failed: ${JSON.stringify(settled.error)}`);
    return settled.json;
  };
  const orgName = uniqueName("org");
  const org = orgId ?? String((await ok(admin.call(V1.addOrg, { name: orgName }))).id);
  const headers = { "x-zitadel-orgid": org };
  const userName = uniqueName("svc");
  const userId = String((await ok(admin.call(V1.addMachineUser, { userName, name: "service" }, { headers }))).userId);
  if (role) await ok(admin.call(V1.addOrgMember, { userId, roles: [role] }, { headers }));
  const token = String((await ok(admin.call(V1.addPersonalAccessToken, { userId }, { headers }))).token);
  return { orgId: org, orgName, userId, userName, token };
}
