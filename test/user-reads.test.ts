/**
 * User reads and searches — management v1 ListUsers, IsUserUnique and ListUserChanges; user v2
 * ListUsers — through every transport, against ZITADEL's documented behaviour (ZITADEL's
 * internal/query/user.go, internal/api/grpc/management/user.go): every query kind and text method, the combinators, paging and sorting, totals,
 * organisation scoping and permissions. Then the store's side: the search plans use indexes, and
 * migration 0002 folds the keys of rows written before it.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import SQLite from "better-sqlite3";
import { Kysely, Migrator, SqliteDialect } from "kysely";
import { beforeAll, describe, expect, it } from "vitest";
import type { TextField, TextMethod, UserSearch } from "../src/domain/user-queries.js";
import pg from "pg";
import { type Db, openSqlite } from "../src/store/db.js";
import { migrations } from "../src/store/migrations.js";
import { openPostgres } from "../src/store/postgres.js";
import type { Database } from "../src/store/schema.js";
import { TEXT_SQL, userSearchStatement } from "../src/store/user-search.js";
import { type CallOptions, type CallResult, IN_PROCESS, type TransportName, type UnaryMethod, V1, V2 } from "./helpers/clients.js";
import { expectOk, expectPgvError, expectZitadelError, pgvEmbedded, pgvLength } from "./helpers/expectations.js";
import type { TestServer } from "./helpers/server.js";
import { dropTestDatabase, testDatabaseUrl, testPostgresUrl } from "./helpers/database.js";
import { bcryptHash, RFC3339, type SeededCaller, seedScopedCaller, useUserport } from "./helpers/fixtures.js";

const up = useUserport();
const HASH = bcryptHash("imported-Passw0rd!");

/** Calls an RPC over a transport; over REST through ZITADEL's routes (their google.api.http options). */
const call = (transport: TransportName, method: UnaryMethod, request: JsonObject, options?: CallOptions): Promise<CallResult> =>
  up.caller(transport).call(method, request, options);

// ------------------------------------------------------------------ fixtures

/** Every fixture name carries this run's prefix, so that searches can be narrowed to them. */
const P = `rq${randomBytes(3).toString("hex")}`;

interface Fixture {
  id: string;
  userName: string;
}
const users: Record<"alice" | "bob" | "carol" | "dave" | "emile" | "other", Fixture> = {} as never;
/** In the default organisation, in the order of their folded usernames. */
const MINE = ["alice", "bob", "carol", "dave", "emile"] as const;
const ids = (...names: Array<keyof typeof users>) => names.map((name) => users[name].id);

let orgB = "";
/** ORG_USER_MANAGER and ORG_OWNER_VIEWER of organisation B; a service user without any role. */
let manager: SeededCaller;
let viewer: SeededCaller;
let nobody: SeededCaller;
let admin: { id: string; userName: string };
const BULK = 101;

/** Organisations and service users are written straight into the store (see seedScopedCaller). */
async function seed(server: TestServer) {
  manager = await seedScopedCaller(server, "ORG_USER_MANAGER");
  orgB = manager.orgId;
  viewer = await seedScopedCaller(server, "ORG_OWNER_VIEWER", orgB);
  nobody = await seedScopedCaller(server, undefined);
  admin = await server.db
    .selectFrom("users as u")
    .innerJoin("members as m", "m.user_id", "u.id")
    .select(["u.id", "u.username as userName"])
    .where("m.roles", "=", "IAM_OWNER")
    .executeTakeFirstOrThrow();
}

async function importUser(body: JsonObject, options: CallOptions = {}): Promise<Fixture> {
  const created = expectOk(await up.caller("connect-json-h1").call(V1.importHumanUser, body, options));
  return { id: String(created.userId), userName: String(body.userName) };
}

beforeAll(async () => {
  await seed(up.server);
  const hashed = { hashedPassword: { value: HASH } };
  users.alice = await importUser({
    userName: `${P}.Alice`,
    profile: { firstName: "Alice", lastName: "Liddell", nickName: "Ali", displayName: "Alice Liddell" },
    email: { email: `Alice.${P}@Example.com`, isEmailVerified: true },
    phone: { phone: "+41 79 111 11 11", isPhoneVerified: true },
    ...hashed,
  });
  // No password: INITIAL.
  users.bob = await importUser({
    userName: `${P}.bob`,
    profile: { firstName: "Bob", lastName: "Builder", nickName: "Bobby" },
    email: { email: `bob.${P}@example.org`, isEmailVerified: true },
  });
  users.carol = await importUser({
    userName: `${P}.carol_x`,
    profile: { firstName: "Carol", lastName: "Liddell" },
    email: { email: `carol.${P}@example.com`, isEmailVerified: true },
    ...hashed,
  });
  users.dave = await importUser({
    userName: `${P}.dave%x`,
    profile: { firstName: "Dave", lastName: "Davis" },
    email: { email: `dave.${P}@example.com`, isEmailVerified: true },
    ...hashed,
  });
  users.emile = await importUser({
    userName: `${P}.Émile`,
    profile: { firstName: "Émile", lastName: "Zola" },
    email: { email: `emile.${P}@example.com`, isEmailVerified: true },
    ...hashed,
  });
  users.other = await importUser(
    {
      userName: `${P}.alice-other`,
      profile: { firstName: "Alice", lastName: "Other" },
      email: { email: `alice.${P}@other.example`, isEmailVerified: true },
      ...hashed,
    },
    { headers: { "x-zitadel-orgid": orgB } },
  );
  expectOk(await up.caller("connect-json-h1").call(V1.lockUser, { id: users.carol.id }));
  expectOk(await up.caller("connect-json-h1").call(V1.deactivateUser, { id: users.dave.id }));
  // More users than v2's default page, named apart from the ones above.
  for (let i = 0; i < BULK; i += 25) {
    await Promise.all(
      Array.from({ length: Math.min(25, BULK - i) }, (_, j) =>
        importUser({
          userName: `bulk.${P}.${i + j}`,
          profile: { firstName: "Bulk", lastName: `No ${i + j}` },
          email: { email: `bulk${i + j}.${P}@example.com`, isEmailVerified: true },
          ...hashed,
        }),
      ),
    );
  }
});

// ------------------------------------------------------------------ helpers

const text = (kind: string, field: string, value: string, method = "TEXT_QUERY_METHOD_EQUALS"): JsonObject => ({
  [kind]: { [field]: value, method },
});
const userName = (value: string, method?: string) => text("userNameQuery", "userName", value, method);
/** The fixtures of the default organisation (and, for v2, organisation B's one). */
const mine = userName(`${P}.`, "TEXT_QUERY_METHOD_STARTS_WITH");
const byName = { sortingColumn: "USER_FIELD_NAME_USER_NAME", query: { asc: true } };

interface Listed {
  ids: string[];
  total: number;
  json: JsonObject;
}

function listed(json: JsonObject, idField: "id" | "userId"): Listed {
  const result = (json.result ?? []) as JsonObject[];
  const details = json.details as { totalResult?: string };
  return { ids: result.map((user) => String(user[idField])), total: Number(details.totalResult ?? 0), json };
}

// ------------------------------------------------------------------ the RPCs, per transport

// The query semantics are the domain's: they run once in process (the server's own handlers,
// authorisation and validation, through Connect's router transport) and once over REST, whose
// query parameters and routes are their own; the wire shape of reads over every transport is
// test/users-wire.test.ts's.
describe.each([IN_PROCESS, "rest"] as const)("user reads over %s", (transport) => {
  const listV1 = async (queries: JsonValue[], extra: JsonObject = byName, options?: CallOptions) =>
    listed(expectOk(await call(transport, V1.listUsers, { queries, ...extra }, options)), "id");
  const listV2 = async (queries: JsonValue[], extra: JsonObject = byName, options?: CallOptions) =>
    listed(expectOk(await call(transport, V2.listUsers, { queries, ...extra }, options)), "userId");

  describe("management v1 ListUsers", () => {
    it("lists the users of the organisation with ZITADEL's user object and list details", async () => {
      const { ids: found, total, json } = await listV1([mine]);
      expect(found).toEqual(ids(...MINE));
      expect(total).toBe(5);
      const details = json.details as JsonObject;
      expect(details.viewTimestamp).toMatch(RFC3339);
      const alice = (json.result as JsonObject[])[0]!;
      expect(alice).toMatchObject({
        id: users.alice.id,
        state: "USER_STATE_ACTIVE",
        userName: `${P}.Alice`,
        loginNames: [`${P}.Alice`],
        preferredLoginName: `${P}.Alice`,
        human: {
          profile: { firstName: "Alice", lastName: "Liddell", nickName: "Ali", displayName: "Alice Liddell" },
          email: { email: `Alice.${P}@Example.com`, isEmailVerified: true },
          phone: { phone: "+41791111111", isPhoneVerified: true },
        },
        details: { sequence: "3", resourceOwner: up.defaultOrgId },
      });
    });

    it.each([
      ["TEXT_QUERY_METHOD_EQUALS", `${P}.Alice`, ["alice"]],
      ["TEXT_QUERY_METHOD_EQUALS", `${P}.alice`, []],
      ["TEXT_QUERY_METHOD_EQUALS_IGNORE_CASE", `${P.toUpperCase()}.ALICE`, ["alice"]],
      ["TEXT_QUERY_METHOD_EQUALS_IGNORE_CASE", `${P}.ÉMILE`, ["emile"]],
      ["TEXT_QUERY_METHOD_STARTS_WITH", `${P}.A`, ["alice"]],
      ["TEXT_QUERY_METHOD_STARTS_WITH", `${P}.a`, []],
      ["TEXT_QUERY_METHOD_STARTS_WITH_IGNORE_CASE", `${P}.a`, ["alice"]],
      ["TEXT_QUERY_METHOD_STARTS_WITH_IGNORE_CASE", `${P}.é`, ["emile"]],
      ["TEXT_QUERY_METHOD_CONTAINS", "Alic", ["alice"]],
      ["TEXT_QUERY_METHOD_CONTAINS", "alic", []],
      // LIKE's wildcards in the value are literal characters.
      ["TEXT_QUERY_METHOD_CONTAINS", "_", ["carol"]],
      ["TEXT_QUERY_METHOD_CONTAINS_IGNORE_CASE", "ALIC", ["alice"]],
      ["TEXT_QUERY_METHOD_CONTAINS_IGNORE_CASE", "%", ["dave"]],
      ["TEXT_QUERY_METHOD_CONTAINS_IGNORE_CASE", "_", ["carol"]],
      ["TEXT_QUERY_METHOD_ENDS_WITH", "Émile", ["emile"]],
      ["TEXT_QUERY_METHOD_ENDS_WITH", "émile", []],
      ["TEXT_QUERY_METHOD_ENDS_WITH_IGNORE_CASE", "ÉMILE", ["emile"]],
      ["TEXT_QUERY_METHOD_ENDS_WITH_IGNORE_CASE", "%X", ["dave"]],
    ] as const)("compares usernames with %s %j", async (method, value, expected) => {
      const { ids: found, total } = await listV1([mine, userName(value, method)]);
      expect(found).toEqual(ids(...expected));
      expect(total).toBe(expected.length);
    });

    it.each([
      ["firstNameQuery", "firstName", "Alice", "TEXT_QUERY_METHOD_EQUALS", ["alice"]],
      ["lastNameQuery", "lastName", "liddell", "TEXT_QUERY_METHOD_EQUALS_IGNORE_CASE", ["alice", "carol"]],
      ["nickNameQuery", "nickName", "bob", "TEXT_QUERY_METHOD_STARTS_WITH_IGNORE_CASE", ["bob"]],
      ["displayNameQuery", "displayName", "bob builder", "TEXT_QUERY_METHOD_EQUALS_IGNORE_CASE", ["bob"]],
      ["displayNameQuery", "displayName", "Liddell", "TEXT_QUERY_METHOD_ENDS_WITH", ["alice", "carol"]],
      ["emailQuery", "emailAddress", `alice.${P}@example.com`, "TEXT_QUERY_METHOD_EQUALS", []],
      ["emailQuery", "emailAddress", `alice.${P}@example.com`, "TEXT_QUERY_METHOD_EQUALS_IGNORE_CASE", ["alice"]],
      ["emailQuery", "emailAddress", "@example.com", "TEXT_QUERY_METHOD_CONTAINS", ["carol", "dave", "emile"]],
      ["loginNameQuery", "loginName", `${P}.bob`, "TEXT_QUERY_METHOD_EQUALS", ["bob"]],
    ] as const)("searches %s %j with %s", async (kind, field, value, method, expected) => {
      const { ids: found } = await listV1([mine, text(kind, field, value, method)]);
      expect(found).toEqual(ids(...expected));
    });

    it.each([
      ["USER_STATE_ACTIVE", ["alice", "emile"]],
      ["USER_STATE_INITIAL", ["bob"]],
      ["USER_STATE_LOCKED", ["carol"]],
      ["USER_STATE_INACTIVE", ["dave"]],
      ["USER_STATE_DELETED", []],
    ] as const)("searches by state %s", async (state, expected) => {
      const { ids: found } = await listV1([mine, { stateQuery: { state } }]);
      expect(found).toEqual(ids(...expected));
    });

    it("searches by type: humans, and the machine users of the organisation", async () => {
      expect((await listV1([mine, { typeQuery: { type: "TYPE_HUMAN" } }])).ids).toEqual(ids(...MINE));
      expect((await listV1([mine, { typeQuery: { type: "TYPE_MACHINE" } }])).ids).toEqual([]);
      expect((await listV1([{ typeQuery: { type: "TYPE_MACHINE" } }])).ids).toEqual([admin.id]);
    });

    it("searches by user ids and by exact email addresses, within the organisation", async () => {
      const byIds = await listV1([{ inUserIdsQuery: { userIds: [...ids("alice", "carol", "other"), "no-such-user"] } }]);
      expect(byIds.ids).toEqual(ids("alice", "carol"));
      expect((await listV1([{ inUserIdsQuery: { userIds: [] } }])).ids).toEqual([]);
      const emails = [`Alice.${P}@Example.com`, `bob.${P}@example.org`, `CAROL.${P}@example.com`, `alice.${P}@other.example`];
      expect((await listV1([{ inUserEmailsQuery: { userEmails: emails } }])).ids).toEqual(ids("alice", "bob"));
    });

    it("combines queries with or, and, not, nested", async () => {
      const or = { orQuery: { queries: [userName(`${P}.Alice`), text("emailQuery", "emailAddress", `bob.${P}@example.org`)] } };
      expect((await listV1([or])).ids).toEqual(ids("alice", "bob"));
      const and = { andQuery: { queries: [text("lastNameQuery", "lastName", "Liddell"), { stateQuery: { state: "USER_STATE_LOCKED" } }] } };
      expect((await listV1([and])).ids).toEqual(ids("carol"));
      const not = { notQuery: { query: { stateQuery: { state: "USER_STATE_ACTIVE" } } } };
      expect((await listV1([mine, not])).ids).toEqual(ids("bob", "carol", "dave"));
      const nested = { notQuery: { query: { orQuery: { queries: [and, { andQuery: { queries: [not] } }] } } } };
      expect((await listV1([mine, nested])).ids).toEqual(ids("alice", "emile"));
      // An empty AND holds for everyone, an empty OR for no one.
      expect((await listV1([mine, { andQuery: { queries: [] } }])).ids).toEqual(ids(...MINE));
      expect((await listV1([mine, { orQuery: { queries: [] } }])).ids).toEqual([]);
    });

    it("pages with offset and limit, counting every match in the total", async () => {
      const page = (offset: number, limit: number) => listV1([mine], { ...byName, query: { asc: true, offset: String(offset), limit } });
      expect(await page(0, 2)).toMatchObject({ ids: ids("alice", "bob"), total: 5 });
      expect(await page(2, 2)).toMatchObject({ ids: ids("carol", "dave"), total: 5 });
      expect(await page(4, 2)).toMatchObject({ ids: ids("emile"), total: 5 });
      expect(await page(10, 2)).toMatchObject({ ids: [], total: 5 });
    });

    it("sorts by each UserFieldName, ascending or (by default) descending, ties by id", async () => {
      const sorted = async (sortingColumn: string, asc: boolean) => (await listV1([mine], { sortingColumn, query: { asc } })).ids;
      const liddells = ids("alice", "carol").sort();
      expect(await sorted("USER_FIELD_NAME_USER_NAME", true)).toEqual(ids(...MINE));
      expect(await sorted("USER_FIELD_NAME_USER_NAME", false)).toEqual(ids(...MINE).reverse());
      expect(await sorted("USER_FIELD_NAME_FIRST_NAME", true)).toEqual(ids("alice", "bob", "carol", "dave", "emile"));
      expect(await sorted("USER_FIELD_NAME_LAST_NAME", true)).toEqual([...ids("bob", "dave"), ...liddells, ...ids("emile")]);
      expect(await sorted("USER_FIELD_NAME_NICK_NAME", true)).toEqual([...ids("carol", "dave", "emile").sort(), ...ids("alice", "bob")]);
      expect(await sorted("USER_FIELD_NAME_DISPLAY_NAME", true)).toEqual(ids("alice", "bob", "carol", "dave", "emile"));
      expect(await sorted("USER_FIELD_NAME_EMAIL", true)).toEqual(ids("alice", "bob", "carol", "dave", "emile"));
      // ZITADEL's state numbers: active 1, inactive 2, locked 4, initial 6.
      expect(await sorted("USER_FIELD_NAME_STATE", true)).toEqual([...ids("alice", "emile").sort(), ...ids("dave", "carol", "bob")]);
      expect(await sorted("USER_FIELD_NAME_TYPE", true)).toEqual(ids(...MINE).sort());
      // Unspecified sorts by id; ids rise with creation.
      expect(await sorted("USER_FIELD_NAME_UNSPECIFIED", true)).toEqual(ids(...MINE).sort());
      expect((await listV1([mine], {})).ids).toEqual(
        ids(...MINE)
          .sort()
          .reverse(),
      );
    });

    it("uses v1's default limit, which is the maximum of 1000, and refuses more (QUERY-4M0fs)", async () => {
      const bulk = userName(`bulk.${P}.`, "TEXT_QUERY_METHOD_STARTS_WITH");
      expect(await listV1([bulk], {})).toMatchObject({ total: BULK });
      expect((await listV1([bulk], {})).ids).toHaveLength(BULK);
      expect((await listV1([bulk], { query: { limit: 1000 } })).ids).toHaveLength(BULK);
      const tooMany = await call(transport, V1.listUsers, { queries: [bulk], query: { limit: 1001 } });
      expectZitadelError(tooMany, Code.InvalidArgument, "QUERY-4M0fs", "Limit exceeded");
    });

    it("lists another organisation's users with x-zitadel-orgid, never mixing organisations", async () => {
      expect((await listV1([mine], byName, { headers: { "x-zitadel-orgid": orgB } })).ids).toEqual(ids("other"));
      expect((await listV1([text("firstNameQuery", "firstName", "Alice")])).ids).toEqual(ids("alice"));
    });

    it("scopes an organisation's user manager and viewer to their organisation", async () => {
      for (const caller of [manager, viewer]) {
        const own = await listV1([], byName, { token: caller.token });
        expect(own.ids.sort()).toEqual([users.other.id, manager.userId, viewer.userId].sort());
        expect(own.total).toBe(3);
        const elsewhere = await call(transport, V1.listUsers, { queries: [mine] }, { token: caller.token, headers: { "x-zitadel-orgid": up.defaultOrgId } });
        expectZitadelError(elsewhere, Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
      }
    });

    it("denies a caller without user.read (AUTH-5mWD2)", async () => {
      const result = await call(transport, V1.listUsers, { queries: [mine] }, { token: nobody.token });
      expectZitadelError(result, Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
    });

    it("checks the queries as ZITADEL's PGV rules and its conversion do", async () => {
      const pgv = (queries: JsonValue[]) => call(transport, V1.listUsers, { queries });
      expectPgvError(await pgv([{}]), pgvEmbedded("ListUsersRequest.Queries[0]", "invalid SearchQuery.Query: value is required"));
      expectPgvError(
        await pgv([mine, userName("x".repeat(201))]),
        pgvEmbedded("ListUsersRequest.Queries[1]", pgvEmbedded("SearchQuery.UserNameQuery", pgvLength("UserNameQuery.UserName", 0, 200))),
      );
      expectPgvError(
        await pgv([{ orQuery: { queries: [mine, { notQuery: { query: {} } }] } }]),
        pgvEmbedded(
          "ListUsersRequest.Queries[0]",
          pgvEmbedded(
            "SearchQuery.OrQuery",
            pgvEmbedded(
              "OrQuery.Queries[1]",
              pgvEmbedded("SearchQuery.NotQuery", pgvEmbedded("NotQuery.Query", "invalid SearchQuery.Query: value is required")),
            ),
          ),
        ),
      );
      expectPgvError(
        await pgv([{ userNameQuery: { userName: "x", method: 99 } }]),
        pgvEmbedded(
          "ListUsersRequest.Queries[0]",
          pgvEmbedded("SearchQuery.UserNameQuery", "invalid UserNameQuery.Method: value must be one of the defined enum values"),
        ),
      );
      // A NotQuery without a query passes PGV but not ZITADEL's conversion, whose key has no text.
      expectZitadelError(await pgv([{ notQuery: {} }]), Code.InvalidArgument, "GRPC-vR9nC", "List.Query.Invalid");
    });

    it("accepts queries nested 20 levels deep and refuses 21 (USER-zsQ97)", async () => {
      const nest = (levels: number): JsonObject => {
        let query: JsonObject = mine;
        for (let i = 0; i < levels; i++) query = { andQuery: { queries: [query] } };
        return query;
      };
      expect((await listV1([nest(20)])).ids).toEqual(ids(...MINE));
      const tooDeep = await call(transport, V1.listUsers, { queries: [nest(21)] });
      expectZitadelError(tooDeep, Code.InvalidArgument, "USER-zsQ97", "Too many query nesting levels (Max 20)");
    });
  });

  describe("user v2 ListUsers", () => {
    it("lists users of every organisation for an IAM_OWNER, with v2's user object", async () => {
      const { ids: found, total, json } = await listV2([mine]);
      expect(found).toEqual(ids("alice", "other", "bob", "carol", "dave", "emile"));
      expect(total).toBe(6);
      expect((json.details as JsonObject).timestamp).toMatch(RFC3339);
      expect((json.result as JsonObject[])[0]).toMatchObject({
        userId: users.alice.id,
        state: "USER_STATE_ACTIVE",
        username: `${P}.Alice`,
        details: { sequence: "3", resourceOwner: up.defaultOrgId },
        human: {
          profile: { givenName: "Alice", familyName: "Liddell" },
          email: { email: `Alice.${P}@Example.com`, isVerified: true },
          phone: { phone: "+41791111111", isVerified: true },
        },
      });
    });

    it("searches by organisation, phone and v2's state numbers", async () => {
      expect((await listV2([mine, { organizationIdQuery: { organizationId: orgB } }])).ids).toEqual(ids("other"));
      const phone = (value: string, method: string) => text("phoneQuery", "number", value, method);
      expect((await listV2([mine, phone("+41791111111", "TEXT_QUERY_METHOD_EQUALS")])).ids).toEqual(ids("alice"));
      expect((await listV2([mine, phone("+417911", "TEXT_QUERY_METHOD_STARTS_WITH")])).ids).toEqual(ids("alice"));
      expect((await listV2([mine, phone("1111", "TEXT_QUERY_METHOD_ENDS_WITH")])).ids).toEqual(ids("alice"));
      expect((await listV2([mine, { stateQuery: { state: "USER_STATE_INITIAL" } }])).ids).toEqual(ids("bob"));
      const notB = { notQuery: { query: { organizationIdQuery: { organizationId: orgB } } } };
      expect((await listV2([mine, text("firstNameQuery", "firstName", "alice", "TEXT_QUERY_METHOD_EQUALS_IGNORE_CASE"), notB])).ids).toEqual(ids("alice"));
    });

    it("sorts by creation date", async () => {
      const sorted = await listV2([mine, { notQuery: { query: { organizationIdQuery: { organizationId: orgB } } } }], {
        sortingColumn: "USER_FIELD_NAME_CREATION_DATE",
        query: { asc: true },
      });
      expect(sorted.ids).toEqual(ids(...MINE));
    });

    it("uses v2's default limit of 100 and its maximum of 1000 (QUERY-4M0fs)", async () => {
      const bulk = userName(`bulk.${P}.`, "TEXT_QUERY_METHOD_STARTS_WITH");
      const page = await listV2([bulk], {});
      expect(page.ids).toHaveLength(100);
      expect(page.total).toBe(BULK);
      expect((await listV2([bulk], { query: { limit: 1000 } })).ids).toHaveLength(BULK);
      expectZitadelError(await call(transport, V2.listUsers, { query: { limit: 1001 } }), Code.InvalidArgument, "QUERY-4M0fs", "Limit exceeded");
    });

    it("lists only the organisations a caller may read users of, plus the caller itself", async () => {
      const scoped = await listV2([], byName, { token: manager.token });
      expect(scoped.ids.sort()).toEqual([users.other.id, manager.userId, viewer.userId].sort());
      expect((await listV2([mine], byName, { token: viewer.token })).ids).toEqual(ids("other"));
      // Without user.read anywhere, a caller still finds itself, and only itself.
      const self = await listV2([], byName, { token: nobody.token });
      expect(self).toMatchObject({ ids: [nobody.userId], total: 1 });
      expect((await listV2([mine], byName, { token: nobody.token })).total).toBe(0);
      const byId = await listV2([{ inUserIdsQuery: { userIds: [nobody.userId, users.alice.id] } }], byName, { token: nobody.token });
      expect(byId.ids).toEqual([nobody.userId]);
    });

    it("checks v2's PGV rules: search texts need at least one character", async () => {
      expectPgvError(
        await call(transport, V2.listUsers, { queries: [userName("")] }),
        pgvEmbedded("ListUsersRequest.Queries[0]", pgvEmbedded("SearchQuery.UserNameQuery", pgvLength("UserNameQuery.UserName", 1, 200))),
      );
      expectPgvError(
        await call(transport, V2.listUsers, { queries: [{ stateQuery: { state: 6 } }] }),
        pgvEmbedded(
          "ListUsersRequest.Queries[0]",
          pgvEmbedded("SearchQuery.StateQuery", "invalid StateQuery.State: value must be one of the defined enum values"),
        ),
      );
    });
  });

  describe("management v1 IsUserUnique", () => {
    const unique = async (request: JsonObject, options?: CallOptions) => {
      const json = expectOk(await call(transport, V1.isUserUnique, request, options));
      // protojson leaves false out.
      return json.isUnique === true;
    };

    it("AND-combines username and email: taken only if one user has both", async () => {
      expect(await unique({ userName: `${P}.Alice` })).toBe(false);
      expect(await unique({ email: `Alice.${P}@Example.com` })).toBe(false);
      expect(await unique({ userName: `${P}.Alice`, email: `Alice.${P}@Example.com` })).toBe(false);
      expect(await unique({ userName: `${P}.Alice`, email: `bob.${P}@example.org` })).toBe(true);
      expect(await unique({ userName: `${P}.nobody-has-this`, email: `nobody.${P}@example.com` })).toBe(true);
    });

    it("compares usernames case-insensitively, as they are claimed, and emails exactly, as ZITADEL does", async () => {
      expect(await unique({ userName: `${P.toUpperCase()}.ALICE` })).toBe(false);
      expect(await unique({ userName: `${P}.émile` })).toBe(false);
      expect(await unique({ email: `alice.${P}@example.com` })).toBe(true);
    });

    it("checks instance-wide, since usernames are unique across the instance", async () => {
      expect(await unique({ userName: `${P}.alice-other` })).toBe(false);
      expect(await unique({ userName: `${P}.Alice` }, { token: manager.token })).toBe(false);
    });

    it("denies a caller without user.read (AUTH-5mWD2) and checks the lengths", async () => {
      const denied = await call(transport, V1.isUserUnique, { userName: "x" }, { token: nobody.token });
      expectZitadelError(denied, Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
      expectPgvError(await call(transport, V1.isUserUnique, { userName: "x".repeat(201) }), pgvLength("IsUserUniqueRequest.UserName", 0, 200));
      expectPgvError(await call(transport, V1.isUserUnique, { email: "x".repeat(201) }), pgvLength("IsUserUniqueRequest.Email", 0, 200));
    });
  });

  describe("management v1 ListUserChanges", () => {
    const changes = async (userId: string, query: JsonObject = {}, options?: CallOptions) =>
      (expectOk(await call(transport, V1.listUserChanges, { userId, query }, options)).result ?? []) as JsonObject[];

    it("lists a user's events, newest first by default, as zitadel.change.v1.Change", async () => {
      const result = await changes(users.alice.id);
      expect(result.map((c) => [c.sequence, (c.eventType as JsonObject).key])).toEqual([
        ["3", "EventTypes.user.human.phone.verified"],
        ["2", "EventTypes.user.human.email.verified"],
        ["1", "EventTypes.user.human.added"],
      ]);
      expect(result[2]).toEqual({
        changeDate: expect.stringMatching(RFC3339),
        eventType: { key: "EventTypes.user.human.added", localizedMessage: "Person added" },
        sequence: "1",
        editorId: admin.id,
        editorDisplayName: "userport administrator",
        resourceOwnerId: up.defaultOrgId,
        editorPreferredLoginName: admin.userName,
      });
      expect((result[0]!.eventType as JsonObject).localizedMessage).toBe("Phone number verified");
    });

    it("pages with the sequence cursor (after it, in either order) and the limit", async () => {
      const keys = (result: JsonObject[]) => result.map((c) => c.sequence);
      expect(keys(await changes(users.carol.id, { asc: true }))).toEqual(["1", "2", "3"]);
      expect((await changes(users.carol.id, { asc: true })).at(-1)!.eventType).toEqual({ key: "EventTypes.user.locked", localizedMessage: "User locked" });
      expect(keys(await changes(users.carol.id, { asc: true, sequence: "1" }))).toEqual(["2", "3"]);
      expect(keys(await changes(users.carol.id, { sequence: "1" }))).toEqual(["3", "2"]);
      expect(keys(await changes(users.carol.id, { limit: 1 }))).toEqual(["3"]);
      expect(keys(await changes(users.carol.id, { asc: true, limit: 2 }))).toEqual(["1", "2"]);
      const tooMany = await call(transport, V1.listUserChanges, { userId: users.carol.id, query: { limit: 1001 } });
      expectZitadelError(tooMany, Code.InvalidArgument, "QUERY-4M0fs", "Limit exceeded");
    });

    it("keeps the history of a removed user, and of the user re-imported under its name", async () => {
      const name = `gone.${P}.${transport}`;
      const body = {
        userName: name,
        profile: { firstName: "Gone", lastName: "Soon" },
        email: { email: `${name}@example.com`, isEmailVerified: true },
        hashedPassword: { value: HASH },
      };
      const first = await importUser(body);
      expectOk(await call(transport, V1.removeUser, { id: first.id }));
      // Removed users never appear, and their name is free again.
      expect((await listV1([userName(name)])).ids).toEqual([]);
      expect(expectOk(await call(transport, V1.isUserUnique, { userName: name })).isUnique).toBe(true);
      const second = await importUser(body);
      expect((await changes(first.id, { asc: true })).map((c) => (c.eventType as JsonObject).key)).toEqual([
        "EventTypes.user.human.added",
        "EventTypes.user.human.email.verified",
        "EventTypes.user.removed",
      ]);
      expect((await changes(first.id)).map((c) => c.resourceOwnerId)).toEqual([up.defaultOrgId, up.defaultOrgId, up.defaultOrgId]);
      expect((await changes(second.id, { asc: true })).map((c) => c.sequence)).toEqual(["1", "2"]);
      expect((await listV1([userName(name)])).ids).toEqual([second.id]);
    });

    it("shows no history of a user of another organisation, or of no user", async () => {
      expect(await changes(users.other.id)).toEqual([]);
      expect(await changes("no-such-user")).toEqual([]);
      expect(await changes(users.other.id, {}, { headers: { "x-zitadel-orgid": orgB } })).toHaveLength(2);
      expect(await changes(users.other.id, {}, { token: manager.token })).toHaveLength(2);
    });

    it("denies a caller without user.read (AUTH-5mWD2)", async () => {
      const result = await call(transport, V1.listUserChanges, { userId: users.alice.id }, { token: nobody.token });
      expectZitadelError(result, Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
    });

    it.skipIf(transport === "rest")("requires a user id (PGV)", async () => {
      expectPgvError(await call(transport, V1.listUserChanges, { userId: "" }), pgvLength("ListUserChangesRequest.UserId", 1, 200));
    });
  });
});

describe("IsUserUnique over REST", () => {
  it("takes user_name or userName and email as query parameters", async () => {
    const get = async (query: string) => {
      const response = await fetch(`${up.server.url}/management/v1/users/_is_unique?${query}`, {
        headers: { authorization: `Bearer ${up.server.token}` },
      });
      expect(response.status).toBe(200);
      return (await response.json()) as JsonObject;
    };
    expect(await get(`user_name=${encodeURIComponent(`${P}.bob`)}`)).toEqual({});
    expect(await get(`userName=${encodeURIComponent(`${P}.BOB`)}&email=${encodeURIComponent(`bob.${P}@example.org`)}`)).toEqual({});
    expect(await get(`userName=${encodeURIComponent(`${P}.free`)}`)).toEqual({ isUnique: true });
  });
});

// ------------------------------------------------------------------ the store

describe("user search plans on SQLite", () => {
  const FIELDS: Array<[TextField, string, string]> = [
    ["username", "users_username_idx", "username_lower"],
    ["loginName", "users_username_idx", "username_lower"],
    ["givenName", "users_given_name_idx", "given_name_lower"],
    ["familyName", "users_family_name_idx", "family_name_lower"],
    ["nickName", "users_nick_name_idx", "nick_name_lower"],
    ["displayName", "users_display_name_idx", "display_name_lower"],
    ["email", "users_email_idx", "email_lower"],
    ["phone", "users_phone_idx", "phone"],
  ];
  const RANGE_METHODS: TextMethod[] = ["equals", "equalsIgnoreCase", "startsWith", "startsWithIgnoreCase"];
  let raw: SQLite.Database;
  let kysely: Kysely<Database>;
  beforeAll(async () => {
    // A store of its own: the suite's server may be on PostgreSQL, these are SQLite's plans.
    const dir = mkdtempSync(join(tmpdir(), "userport-plans-"));
    await (await openSqlite(dir)).close();
    raw = new SQLite(join(dir, "userport.sqlite"), { readonly: true });
    kysely = new Kysely<Database>({ dialect: new SqliteDialect({ database: raw }) });
    return () => {
      raw.close();
      rmSync(dir, { recursive: true, force: true });
    };
  });
  const planOf = (search: Partial<UserSearch>) => {
    const statement = userSearchStatement(kysely, TEXT_SQL.sqlite, {
      instanceId: "i",
      orgIds: ["o"],
      filters: [],
      sort: "id",
      asc: false,
      offset: 0,
      limit: 100,
      ...search,
    });
    const rows = raw.prepare(`EXPLAIN QUERY PLAN ${statement.sql}`).all(...(statement.parameters as unknown[])) as Array<{ detail: string }>;
    return rows.map((row) => row.detail);
  };

  for (const [field, index, column] of FIELDS) {
    for (const method of RANGE_METHODS) {
      for (const orgIds of [["o"], ["o", "p"], "all"] as const) {
        it(`searches ${field} ${method} in ${JSON.stringify(orgIds)} with a range of ${index}, page and total alike`, () => {
          const plan = planOf({ orgIds, filters: [{ kind: "text", field, value: "Ab", method }] });
          const key = method.startsWith("equals") ? `${column}=\\?` : `${column}>\\? AND ${column}<\\?`;
          const search = new RegExp(`^SEARCH users USING (COVERING )?INDEX ${index} \\(instance_id=\\? AND org_id=\\? AND ${key}\\)$`);
          // The page, then the total's scalar subquery.
          expect(
            plan.filter((line) => search.test(line)),
            plan.join("\n"),
          ).toHaveLength(2);
          expect(
            plan.filter((line) => /^SCAN users/.test(line)),
            plan.join("\n"),
          ).toEqual([]);
        });
      }
    }
  }

  it("combines criteria through the index of an equality, and lists an organisation in index order without sorting", () => {
    const and = planOf({
      sort: "username",
      filters: [
        { kind: "text", field: "givenName", value: "a", method: "equals" },
        { kind: "text", field: "email", value: "a", method: "startsWithIgnoreCase" },
        { kind: "state", state: "ACTIVE" },
      ],
    });
    // An equality is preferred to a range, which SQLite without statistics would rather take.
    expect(and[0]).toBe("SEARCH users USING INDEX users_given_name_idx (instance_id=? AND org_id=? AND given_name_lower=?)");
    expect(and.filter((line) => /^SCAN users/.test(line))).toEqual([]);
    const all = planOf({});
    expect(all[0]).toBe("SEARCH users USING INDEX users_org_id_idx (instance_id=? AND org_id=?)");
    expect(all.some((line) => line.includes("TEMP B-TREE"))).toBe(false);
  });

  it("can only test CONTAINS and ENDS_WITH row by row, within the organisation", () => {
    for (const method of ["contains", "containsIgnoreCase", "endsWith", "endsWithIgnoreCase"] as const) {
      const plan = planOf({ filters: [{ kind: "text", field: "username", value: "a", method }] });
      expect(
        plan.filter((line) => /^SCAN users/.test(line)),
        plan.join("\n"),
      ).toEqual([]);
      expect(plan[0]).toMatch(/^SEARCH users USING (COVERING )?INDEX \w+ \(instance_id=\? AND org_id=\?\)$/);
    }
  });
});

describe.runIf(testPostgresUrl)("user search plans on PostgreSQL", () => {
  let dataDir: string;
  let store: Db;
  let client: pg.Client;
  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "userport-plans-"));
    const url = (await testDatabaseUrl(dataDir))!;
    store = await openPostgres(url, 2);
    client = new pg.Client({ connectionString: url });
    await client.connect();
    // The tables are nearly empty, where a sequential scan is cheapest: this asks whether an
    // index can serve each search at all, which is what a table of many users needs.
    await client.query("SET enable_seqscan = off");
    return async () => {
      await client.end();
      await store.close();
      await dropTestDatabase(dataDir);
      rmSync(dataDir, { recursive: true, force: true });
    };
  });
  const planOf = async (search: Partial<UserSearch>) => {
    const statement = userSearchStatement(store.db, TEXT_SQL.postgres, {
      instanceId: "i",
      orgIds: ["o"],
      filters: [],
      sort: "id",
      asc: false,
      offset: 0,
      limit: 100,
      ...search,
    });
    const { rows } = await client.query(`EXPLAIN (FORMAT JSON) ${statement.sql}`, statement.parameters as unknown[]);
    return JSON.stringify(rows[0]["QUERY PLAN"]);
  };

  for (const [field, index] of [
    ["username", "users_username_idx"],
    ["givenName", "users_given_name_idx"],
    ["email", "users_email_idx"],
    ["phone", "users_phone_idx"],
  ] as const) {
    for (const method of ["equals", "equalsIgnoreCase", "startsWith", "startsWithIgnoreCase"] as const) {
      it(`searches ${field} ${method} through ${index}, whose binary collation keeps prefix ranges`, async () => {
        const plan = await planOf({ filters: [{ kind: "text", field, value: "Ab", method }] });
        expect(plan).toContain(`"Index Name":"${index}"`);
        expect(plan).not.toContain('"Node Type":"Seq Scan"');
      });
    }
  }

  it("gives every text column the binary collation, so that later migrations cannot forget it", async () => {
    const { rows } = await client.query(
      `SELECT table_name, column_name, collation_name FROM information_schema.columns
       WHERE table_schema = current_schema() AND data_type = 'text' AND table_name NOT LIKE 'kysely_%'`,
    );
    expect(rows.length).toBeGreaterThan(50);
    expect(rows.filter((row) => row.collation_name !== "C")).toEqual([]);
  });
});

describe("migrations 0002_user_search and 0003_partial_search_indexes", () => {
  it("folds the keys of existing users in JavaScript, names their events' owner and replaces the org index", async () => {
    const dir = mkdtempSync(join(tmpdir(), "userport-migration-"));
    const raw = new SQLite(join(dir, "userport.sqlite"));
    const db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: raw }) });
    try {
      const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations("sqlite") } });
      expect((await migrator.migrateTo("0001_initial")).error).toBeUndefined();
      raw.prepare("INSERT INTO orgs (instance_id, id, name, created_at) VALUES ('i', 'o', 'O', 0)").run();
      const insertUser = raw.prepare(
        `INSERT INTO users (instance_id, id, org_id, type, state, username, given_name, family_name, nick_name, display_name,
           preferred_language, gender, email, email_verified, phone, phone_verified, password_hash, password_change_required,
           password_changed_at, machine_name, machine_description, created_at, changed_at, sequence)
         VALUES ('i', ?, 'o', 'human', 'ACTIVE', ?, ?, ?, ?, ?, 'und', 0, ?, 1, '', 0, NULL, 0, NULL, '', '', 0, 0, 1)`,
      );
      insertUser.run("u1", "ÉMILE.Zola", "Émile", "ZOLA", "ΟΔΟΣ", "Émile Zola", "Emile@Example.COM");
      // More than one batch of the backfill.
      raw.transaction(() => {
        for (let i = 0; i < 1500; i++) insertUser.run(`v${i}`, `User${i}`, "G", "F", "", "G F", `U${i}@X.org`);
      })();
      raw
        .prepare(
          "INSERT INTO events (instance_id, aggregate_type, aggregate_id, sequence, type, payload, creator, created_at) VALUES ('i', 'user', 'u1', 1, 'user.human.added', '{}', 'x', 0)",
        )
        .run();
      expect((await migrator.migrateToLatest()).error).toBeUndefined();

      expect(raw.prepare("SELECT * FROM users WHERE id = 'u1'").get()).toMatchObject({
        username_lower: "émile.zola",
        given_name_lower: "émile",
        family_name_lower: "zola",
        // Each code point on its own: no final sigma, unlike String.prototype.toLowerCase.
        nick_name_lower: "οδοσ",
        display_name_lower: "émile zola",
        email_lower: "emile@example.com",
      });
      expect(raw.prepare("SELECT username_lower, email_lower FROM users WHERE id = 'v1499'").get()).toEqual({
        username_lower: "user1499",
        email_lower: "u1499@x.org",
      });
      expect(raw.prepare("SELECT count(*) AS n FROM users WHERE username_lower = ''").get()).toEqual({ n: 0 });
      expect(raw.prepare("SELECT resource_owner FROM events").all()).toEqual([{ resource_owner: "o" }]);
      const indexes = (raw.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'users'").all() as Array<{ name: string }>).map(
        (row) => row.name,
      );
      expect(indexes).toEqual(
        expect.arrayContaining([
          "users_org_id_idx",
          "users_username_idx",
          "users_given_name_idx",
          "users_family_name_idx",
          "users_nick_name_idx",
          "users_display_name_idx",
          "users_email_idx",
          "users_phone_idx",
        ]),
      );
      expect(indexes).not.toContain("users_org_idx");
      // 0003 leaves empty keys out of the indexes of optional fields.
      const partial = raw.prepare("SELECT sql FROM sqlite_master WHERE name = 'users_nick_name_idx'").get() as { sql: string };
      expect(partial.sql).toMatch(/where "nick_name_lower" <> ''$/i);
    } finally {
      await db.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
