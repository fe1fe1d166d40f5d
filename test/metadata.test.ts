/**
 * User metadata — management v1 SetUserMetadata, BulkSetUserMetadata, ListUserMetadata,
 * GetUserMetadata, RemoveUserMetadata, BulkRemoveUserMetadata, and user v2 `metadata` on
 * AddHumanUser and CreateUser — through gRPC (grpc-js), Connect (JSON) and REST (and gRPC-Web for
 * the reads), against ZITADEL's documented behaviour (ZITADEL's internal/command/user_metadata.go).
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { type CallOptions, type TransportName, V1, V2 } from "./helpers/clients.js";
import { expectOk, expectPgvError, expectZitadelError, pgvEmbedded } from "./helpers/expectations.js";
import { bcryptHash, RFC3339, type SeededCaller, seedScopedCaller, useUserport, v1ImportBody, v2AddBody } from "./helpers/fixtures.js";

const up = useUserport();
const HASH = bcryptHash("imported-Passw0rd!");
/** Bytes that are not text: metadata values are bytes, base64 in JSON. */
const BINARY = Buffer.from([0, 255, 1, 2, 0x80]).toString("base64");
const b64 = (text: string) => Buffer.from(text).toString("base64");
const WRITE_TRANSPORTS = ["grpc-js", "connect-json-h1", "rest"] as const satisfies readonly TransportName[];
const READ_TRANSPORTS = [...WRITE_TRANSPORTS, "grpc-web"] as const satisfies readonly TransportName[];

type Method = Parameters<ReturnType<typeof up.caller>["call"]>[0];

let viewer: SeededCaller;
let nobody: SeededCaller;
let otherOrg: SeededCaller;
beforeAll(async () => {
  viewer = await seedScopedCaller(up.server, "ORG_OWNER_VIEWER", up.defaultOrgId);
  nobody = await seedScopedCaller(up.server, undefined, up.defaultOrgId);
  otherOrg = await seedScopedCaller(up.server, "ORG_OWNER");
});

async function newUser(transport: TransportName = "connect-json-h1") {
  const res = expectOk(await up.caller(transport).call(V1.importHumanUser, v1ImportBody({ hashedPassword: { value: HASH } })));
  return { id: res.userId as string, sequence: Number((res.details as JsonObject).sequence) };
}

describe.each(WRITE_TRANSPORTS)("user metadata over %s", (transport) => {
  const call = (method: Method, body: JsonObject, options?: CallOptions) => up.caller(transport).call(method, body, options);
  const eventKeys = async (userId: string) =>
    ((expectOk(await call(V1.listUserChanges, { userId, query: { asc: true } })).result as JsonObject[]) ?? []).map(
      (change) => (change.eventType as JsonObject).key,
    );

  it("sets, reads, replaces and removes an entry; the bytes come back as given", async () => {
    const user = await newUser();
    const set = expectOk(await call(V1.setUserMetadata, { id: user.id, key: "department", value: BINARY }), 200);
    expect(set.details).toMatchObject({ sequence: String(user.sequence + 1), resourceOwner: up.defaultOrgId });
    expect((set.details as JsonObject).changeDate).toMatch(RFC3339);

    const read = expectOk(await call(V1.getUserMetadata, { id: user.id, key: "department" })).metadata as JsonObject;
    expect(read).toMatchObject({ key: "department", value: BINARY });
    expect(read.details).toMatchObject({ sequence: String(user.sequence + 1), resourceOwner: up.defaultOrgId });

    // The same value again changes nothing: no event, the sequence stays.
    const same = expectOk(await call(V1.setUserMetadata, { id: user.id, key: "department", value: BINARY }));
    expect(same.details).toMatchObject({ sequence: String(user.sequence + 1) });
    const replaced = expectOk(await call(V1.setUserMetadata, { id: user.id, key: "department", value: b64("sales") }));
    expect(replaced.details).toMatchObject({ sequence: String(user.sequence + 2) });
    expect((expectOk(await call(V1.getUserMetadata, { id: user.id, key: "department" })).metadata as JsonObject).value).toBe(b64("sales"));

    const removed = expectOk(await call(V1.removeUserMetadata, { id: user.id, key: "department" }));
    expect(removed.details).toMatchObject({ sequence: String(user.sequence + 3) });
    const gone = await call(V1.getUserMetadata, { id: user.id, key: "department" });
    expectZitadelError(gone, Code.NotFound, "QUERY-Rgh32", "Metadata not found");
    expect((await eventKeys(user.id)).slice(-3)).toEqual(["EventTypes.user.metadata.set", "EventTypes.user.metadata.set", "EventTypes.user.metadata.removed"]);
  });

  it("sets and removes several entries at once", async () => {
    const user = await newUser();
    const metadata = [
      { key: "a", value: b64("1") },
      { key: "b", value: b64("2") },
      { key: "c", value: BINARY },
    ];
    const set = expectOk(await call(V1.bulkSetUserMetadata, { id: user.id, metadata }));
    expect(set.details).toMatchObject({ sequence: String(user.sequence + 3) });
    const listed = expectOk(await call(V1.listUserMetadata, { id: user.id, query: { asc: true } }));
    expect((listed.result as JsonObject[]).map((m) => [m.key, m.value])).toEqual(metadata.map((m) => [m.key, m.value]));
    expect((listed.details as JsonObject).totalResult).toBe("3");
    const removed = expectOk(await call(V1.bulkRemoveUserMetadata, { id: user.id, keys: ["a", "c"] }));
    expect(removed.details).toMatchObject({ sequence: String(user.sequence + 5) });
    const left = expectOk(await call(V1.listUserMetadata, { id: user.id }));
    expect((left.result as JsonObject[]).map((m) => m.key)).toEqual(["b"]);
  });

  it("refuses an empty list (META-9mm2d) and keys the user does not have (META-ncnw3, META-2nnds)", async () => {
    const user = await newUser();
    expectZitadelError(await call(V1.bulkSetUserMetadata, { id: user.id, metadata: [] }), Code.FailedPrecondition, "META-9mm2d", "Metadata list is empty");
    expectZitadelError(await call(V1.bulkRemoveUserMetadata, { id: user.id, keys: [] }), Code.FailedPrecondition, "META-9mm2d", "Metadata list is empty");
    expectZitadelError(await call(V1.removeUserMetadata, { id: user.id, key: "nothing" }), Code.NotFound, "META-ncnw3", "Metadata not found");
    expectOk(await call(V1.setUserMetadata, { id: user.id, key: "there", value: b64("x") }));
    const bulk = await call(V1.bulkRemoveUserMetadata, { id: user.id, keys: ["there", "nothing"] });
    expectZitadelError(bulk, Code.NotFound, "META-2nnds", "One or more keys do not exist");
    expect((expectOk(await call(V1.listUserMetadata, { id: user.id })).result as JsonObject[]).map((m) => m.key)).toEqual(["there"]);
  });

  it("does not find an unknown user, or one of another organisation (COMMAND-uXHNj)", async () => {
    const user = await newUser();
    for (const [id, options] of [
      ["no-such-user", undefined],
      [user.id, { token: otherOrg.token }],
    ] as const) {
      const result = await call(V1.setUserMetadata, { id, key: "k", value: b64("v") }, options);
      expectZitadelError(result, Code.FailedPrecondition, "COMMAND-uXHNj", "User could not be found");
      const removal = await call(V1.removeUserMetadata, { id, key: "k" }, options);
      expectZitadelError(removal, Code.FailedPrecondition, "COMMAND-uXHNj", "User could not be found");
    }
  });

  it("denies writes without user.write and reads without user.read (AUTH-5mWD2)", async () => {
    const user = await newUser();
    const writes: Array<[Method, JsonObject]> = [
      [V1.setUserMetadata, { id: user.id, key: "k", value: b64("v") }],
      [V1.bulkSetUserMetadata, { id: user.id, metadata: [{ key: "k", value: b64("v") }] }],
      [V1.removeUserMetadata, { id: user.id, key: "k" }],
      [V1.bulkRemoveUserMetadata, { id: user.id, keys: ["k"] }],
    ];
    for (const [method, body] of writes) {
      expectZitadelError(await call(method, body, { token: viewer.token }), Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
    }
    const reads: Array<[Method, JsonObject]> = [
      [V1.getUserMetadata, { id: user.id, key: "k" }],
      [V1.listUserMetadata, { id: user.id }],
    ];
    for (const [method, body] of reads) {
      expectZitadelError(await call(method, body, { token: nobody.token }), Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
    }
  });

  it("requires a key and a value of 1 to 500000 bytes (PGV)", async () => {
    expectPgvError(
      await call(V1.setUserMetadata, { id: "1", key: "k", value: "" }),
      "invalid SetUserMetadataRequest.Value: value length must be between 1 and 500000 bytes, inclusive",
    );
    const big = Buffer.alloc(500_001, 1).toString("base64");
    expectPgvError(
      await call(V1.setUserMetadata, { id: "1", key: "k", value: big }),
      "invalid SetUserMetadataRequest.Value: value length must be between 1 and 500000 bytes, inclusive",
    );
    expectPgvError(
      await call(V1.bulkSetUserMetadata, { id: "1", metadata: [{ key: "", value: b64("v") }] }),
      pgvEmbedded(
        "BulkSetUserMetadataRequest.Metadata[0]",
        "invalid BulkSetUserMetadataRequest_Metadata.Key: value length must be between 1 and 200 runes, inclusive",
      ),
    );
  });

  it("takes metadata on v2 AddHumanUser and CreateUser, one event per entry", async () => {
    const metadata = [
      { key: "tier", value: b64("gold") },
      { key: "blob", value: BINARY },
    ];
    const added = expectOk(await call(V2.addHumanUser, v2AddBody({ metadata })));
    const { username, ...human } = v2AddBody({ metadata });
    const created = expectOk(await call(V2.createUser, { organizationId: up.defaultOrgId, username, human }));
    for (const id of [added.userId as string, created.id as string]) {
      const listed = expectOk(await call(V1.listUserMetadata, { id, query: { asc: true } }));
      expect((listed.result as JsonObject[]).map((m) => [m.key, m.value])).toEqual([
        ["blob", BINARY],
        ["tier", b64("gold")],
      ]);
      expect((await eventKeys(id)).filter((key) => key === "EventTypes.user.metadata.set")).toHaveLength(2);
    }
  });

  it("refuses a blank key on create (USER-Drght)", async () => {
    const result = await call(V2.addHumanUser, v2AddBody({ metadata: [{ key: "  ", value: b64("v") }] }));
    expectZitadelError(result, Code.InvalidArgument, "USER-Drght", "Errors.User.Metadata.KeyEmpty");
  });

  it("requires a value on create (PGV)", async () => {
    const result = await call(V2.addHumanUser, v2AddBody({ metadata: [{ key: "k", value: "" }] }));
    expectPgvError(
      result,
      pgvEmbedded("AddHumanUserRequest.Metadata[0]", "invalid SetMetadataEntry.Value: value length must be between 1 and 500000 bytes, inclusive"),
    );
  });

  it("drops a removed user's metadata with the user", async () => {
    const user = await newUser();
    expectOk(await call(V1.setUserMetadata, { id: user.id, key: "k", value: b64("v") }));
    expectOk(await call(V1.removeUser, { id: user.id }));
    const rows = await up.server.db.selectFrom("user_metadata").select("key").where("user_id", "=", user.id).execute();
    expect(rows).toEqual([]);
  });
});

describe.each(READ_TRANSPORTS)("reading user metadata over %s", (transport) => {
  const call = (method: Method, body: JsonObject, options?: CallOptions) => up.caller(transport).call(method, body, options);
  let user: { id: string };
  beforeAll(async () => {
    user = await newUser();
    const metadata = ["alpha", "alpine", "beta"].map((key) => ({ key, value: b64(key) }));
    expectOk(await up.caller("connect-json-h1").call(V1.bulkSetUserMetadata, { id: user.id, metadata }));
  });

  it("lists by key, filters with a text query and pages", async () => {
    const keys = async (body: JsonObject) =>
      ((expectOk(await call(V1.listUserMetadata, { id: user.id, ...body })).result as JsonObject[]) ?? []).map((m) => m.key);
    expect(await keys({ query: { asc: true } })).toEqual(["alpha", "alpine", "beta"]);
    expect(await keys({})).toEqual(["beta", "alpine", "alpha"]);
    expect(await keys({ query: { asc: true }, queries: [{ keyQuery: { key: "ALP", method: "TEXT_QUERY_METHOD_STARTS_WITH_IGNORE_CASE" } }] })).toEqual([
      "alpha",
      "alpine",
    ]);
    expect(await keys({ queries: [{ keyQuery: { key: "ALP", method: "TEXT_QUERY_METHOD_STARTS_WITH" } }] })).toEqual([]);
    expect(await keys({ query: { asc: true, offset: "1", limit: 1 } })).toEqual(["alpine"]);
  });

  it("shows no metadata of a user of another organisation", async () => {
    const listed = expectOk(await call(V1.listUserMetadata, { id: user.id }, { token: otherOrg.token }));
    expect(listed.result ?? []).toEqual([]);
    const got = await call(V1.getUserMetadata, { id: user.id, key: "alpha" }, { token: otherOrg.token });
    expectZitadelError(got, Code.NotFound, "QUERY-Rgh32", "Metadata not found");
  });

  it("lets viewers read", async () => {
    const got = expectOk(await call(V1.getUserMetadata, { id: user.id, key: "beta" }, { token: viewer.token }));
    expect((got.metadata as JsonObject).value).toBe(b64("beta"));
  });
});
