/**
 * The bulk migration stream, `userport.migration.v1.MigrationService/ImportUsers`, over real
 * sockets with grpc-js and Connect (HTTP/2): per-record results in order after commit, the same
 * rows and events as a single v2 AddHumanUser, dry runs that write nothing, duplicates within a
 * stream and across concurrent streams, conflict policies, idempotent resume, bad input, and
 * flow control towards a client that stops reading.
 * Runs on SQLite, and on PostgreSQL when USERPORT_TEST_DATABASE_URL is set.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { SESSIONS, V1, V2 } from "./helpers/clients.js";
import { expectOk } from "./helpers/expectations.js";
import { bcryptHash, createApiCaller, GOOD_PASSWORD, uniqueEmail, uniqueName, useUserport } from "./helpers/fixtures.js";
import { openImport, runImport, STREAM_TRANSPORTS, type StreamError } from "./helpers/import-stream.js";

const up = useUserport();

/** A v2 AddHumanUserRequest (protojson) with a pre-hashed password and a verified email. */
function human(extra: JsonObject = {}): JsonObject {
  return {
    username: uniqueName("bulk"),
    profile: { givenName: "Bulk", familyName: "User" },
    email: { email: uniqueEmail("bulk"), isVerified: true },
    ...(extra.password === undefined ? { hashedPassword: { hash: HASH } } : {}),
    ...extra,
  };
}
let HASH = "";
beforeAll(() => {
  HASH = bcryptHash(GOOD_PASSWORD, 4);
});

const outcomes = (results: JsonObject[]) => results.map((r) => String(r.outcome).replace("IMPORT_OUTCOME_", ""));

/** Everything an import could write, counted. */
async function storeCounts() {
  const { db } = up.server;
  const count = async (table: "users" | "events" | "unique_constraints" | "import_jobs" | "import_job_records" | "outbox" | "codes") =>
    Number(
      (
        await db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll<number>().as("n"))
          .executeTakeFirstOrThrow()
      ).n,
    );
  return {
    users: await count("users"),
    events: await count("events"),
    claims: await count("unique_constraints"),
    jobs: await count("import_jobs"),
    results: await count("import_job_records"),
    outbox: await count("outbox"),
    codes: await count("codes"),
  };
}

describe.each(STREAM_TRANSPORTS)("ImportUsers over %s", (transport) => {
  it("answers one result per record, in record order, each failure alone with its index, key and a message naming the field", async () => {
    const taken = uniqueName("taken");
    const records: JsonObject[] = [
      { key: "k1", human: human({ username: taken }) },
      { key: "k2", human: human({ email: { email: "not-an-email", isVerified: true } }) },
      { key: "k3", human: human({ username: taken }) },
      { key: "k4", human: human({ profile: { givenName: "", familyName: "X" } }) },
      { key: "k5", human: human({ hashedPassword: { hash: "$9$unknown" } }) },
      { key: "k6", human: human({ phone: { phone: "+41 not a number", isVerified: true } }) },
      { key: "k1", human: human() },
      { key: "k7", machine: { username: uniqueName("bot"), machine: { name: "Bot" } } },
    ];
    const run = await runImport(up.server.url, up.server.token, transport, {}, [records.slice(0, 4), records.slice(4)]);
    expect(run.error).toBeUndefined();
    expect(run.job.id).toMatch(/^\d+$/);
    expect(run.results.map((r) => r.key)).toEqual(["k1", "k2", "k3", "k4", "k5", "k6", "k1", "k7"]);
    expect(outcomes(run.results)).toEqual(["CREATED", "FAILED", "FAILED", "FAILED", "FAILED", "FAILED", "CREATED", "CREATED"]);
    expect(run.results.map((r) => r.index)).toEqual(["0", "1", "2", "3", "4", "5", "0", "6"].map((i) => (i === "0" ? undefined : i)));
    const errors = run.results.map((r) => r.error as JsonObject | undefined);
    // AddHumanUser's PGV email rule (ZITADEL's user/v2 email.proto): no ZITADEL id, the field named.
    expect(errors[1]).toMatchObject({ code: Code.InvalidArgument });
    expect(errors[1]!.id).toBeUndefined();
    expect(String(errors[1]!.message)).toContain("invalid SetHumanEmail.Email: value must be a valid email address");
    expect(errors[2]).toMatchObject({ code: Code.AlreadyExists, id: "V3-DKcYh", message: "User already exists" });
    expect(errors[3]).toMatchObject({ code: Code.InvalidArgument });
    expect(errors[3]!.id).toBeUndefined(); // a request-shape rule: no ZITADEL id, as PGV reports it
    expect(String(errors[3]!.message)).toContain("SetHumanProfile.GivenName");
    expect(errors[4]).toMatchObject({ code: Code.InvalidArgument, id: "USER-JDk4t" });
    expect(errors[5]).toMatchObject({ code: Code.InvalidArgument, id: "PHONE-so0wa" });
    // The key given twice: the first result again, nothing written for the second.
    expect(run.results[6]).toMatchObject({ replayed: true, userId: run.results[0]!.userId });
    // No secret in any answer.
    expect(JSON.stringify(run.responses)).not.toContain(HASH);
    const last = run.responses[run.responses.length - 1]!.progress as JsonObject;
    expect(last).toMatchObject({ recordsDone: "8", created: "3", failed: "5" });
  });

  it("gives a bulk-imported user the rows and events of a single v2 AddHumanUser: reads, searches, changes, sign-in and rehash work", async () => {
    const username = uniqueName("same");
    // A hash at another cost than the server's: the first sign-in rehashes it.
    const hash = bcryptHash(GOOD_PASSWORD, 5);
    const body = (name: string) => ({ ...human({ username: name }), hashedPassword: { hash }, phone: { phone: "+41 79 123 45 67", isVerified: true } });
    const run = await runImport(up.server.url, up.server.token, transport, {}, [[{ human: body(username) }]]);
    expect(outcomes(run.results)).toEqual(["CREATED"]);
    expect(run.results[0]!.key).toBe(username);
    const bulkId = String(run.results[0]!.userId);
    const single = expectOk(await up.caller("connect-json-h1").call(V2.addHumanUser, body(uniqueName("single"))));
    expect(await up.eventTypes(bulkId)).toEqual(await up.eventTypes(String(single.userId)));

    const { db } = up.server;
    const row = async (id: string) => {
      const {
        id: _id,
        username: _u,
        username_lower: _l,
        email: _e,
        email_lower: _el,
        created_at: _c,
        changed_at: _ch,
        details_changed_at: _dc,
        ...rest
      } = await db.selectFrom("users").selectAll().where("id", "=", id).executeTakeFirstOrThrow();
      return { ...rest, password_changed_at: rest.password_changed_at === null ? null : "set" };
    };
    expect(await row(bulkId)).toEqual(await row(String(single.userId)));

    const caller = up.caller("grpc-js");
    const read = expectOk(await caller.call(V2.getUserByID, { userId: bulkId }));
    expect((read.user as JsonObject).username).toBe(username);
    const search = expectOk(await caller.call(V2.listUsers, { queries: [{ userNameQuery: { userName: username, method: "TEXT_QUERY_METHOD_EQUALS" } }] }));
    expect((search.result as JsonObject[]).map((user) => user.userId)).toEqual([bulkId]);
    const session = expectOk(await caller.call(SESSIONS.createSession, { checks: { user: { loginName: username }, password: { password: GOOD_PASSWORD } } }));
    expect(session.sessionId).toBeTruthy();
    const changes = expectOk(await caller.call(V1.listUserChanges, { userId: bulkId }));
    const types = (changes.result as JsonObject[]).map((change) => (change.eventType as JsonObject).key);
    expect(types).toContain("EventTypes.user.human.added");
    expect(types).toContain("EventTypes.user.human.password.hash.updated");
  });

  it("dry run: the same results as the real import, duplicates and stored conflicts included, and nothing written", async () => {
    const stored = uniqueName("stored");
    expectOk(await up.caller("connect-json-h1").call(V2.addHumanUser, human({ username: stored })));
    const twice = uniqueName("twice");
    const batches = [
      [
        { key: "a", human: human() },
        { key: "b", human: human({ username: stored }) },
        { key: "c", human: human({ username: twice }) },
        { key: "d", human: human({ username: twice }) },
      ],
      [
        { key: "e", human: human({ email: { email: "bad@", isVerified: true } }) },
        { key: "a", human: human() },
        { key: "f", human: human({ hashedPassword: { hash: "{SSHA}notenabled" } }) },
        { key: "g", human: human({ password: { password: "weak" } }) },
      ],
    ];
    const before = await storeCounts();
    const dry = await runImport(up.server.url, up.server.token, transport, { dryRun: true }, batches);
    expect(dry.error).toBeUndefined();
    expect(await storeCounts()).toEqual(before);
    expect(dry.job).toMatchObject({ dryRun: true });
    const real = await runImport(up.server.url, up.server.token, transport, {}, batches);
    const comparable = (results: JsonObject[]) => results.map(({ userId: _u, ...rest }) => rest);
    expect(comparable(dry.results)).toEqual(comparable(real.results));
    expect(outcomes(real.results)).toEqual(["CREATED", "FAILED", "CREATED", "FAILED", "FAILED", "CREATED", "FAILED", "FAILED"]);
  });

  it("dry run: a key that failed, then was imported, is answered with its import when sent again, as in the real import", async () => {
    // The real import replaces a key's stored failure with its next result (BulkUnit.replacesFailure,
    // BulkStore.finishBatch), so the key sent a third time replays that result.
    const fixed = human();
    const batches = [[{ key: "k", human: human({ email: { email: "bad@", isVerified: true } }) }], [{ key: "k", human: fixed }], [{ key: "k", human: fixed }]];
    const dry = await runImport(up.server.url, up.server.token, transport, { dryRun: true }, batches);
    expect(dry.error).toBeUndefined();
    const real = await runImport(up.server.url, up.server.token, transport, {}, batches);
    expect(outcomes(real.results)).toEqual(["FAILED", "CREATED", "CREATED"]);
    expect(real.results[2]).toMatchObject({ replayed: true, index: "1" });
    const comparable = (results: JsonObject[]) => results.map(({ userId: _u, ...rest }) => rest);
    expect(comparable(dry.results)).toEqual(comparable(real.results));
  });

  it("dry run under skip and update: the same results as the real import, stored users and users of the run included", async () => {
    const stored = uniqueName("stored");
    expectOk(await up.caller("connect-json-h1").call(V2.addHumanUser, human({ username: stored })));
    const machine = uniqueName("machine");
    expectOk(await up.caller("connect-json-h1").call(V2.createUser, { organizationId: up.defaultOrgId, username: machine, machine: { name: "M" } }));
    for (const policy of ["CONFLICT_POLICY_SKIP", "CONFLICT_POLICY_UPDATE"]) {
      const twice = uniqueName("twice");
      const batches = [
        [
          { key: "a", human: human({ username: stored, profile: { givenName: "Changed", familyName: "User" } }) },
          { key: "b", human: human({ username: twice }) },
          { key: "c", human: human({ username: twice }) },
          // A stored user of the other type: skipped, but not the record's to change.
          { key: "d", human: human({ username: machine }) },
        ],
        [
          { key: "e", human: human({ username: twice, email: { email: "bad@", isVerified: true } }) },
          { key: "f", human: human({ username: twice }) },
        ],
      ];
      const before = await storeCounts();
      const dry = await runImport(up.server.url, up.server.token, transport, { dryRun: true, onConflict: policy }, batches);
      expect(dry.error).toBeUndefined();
      expect(await storeCounts()).toEqual(before);
      // The real import runs twice under its own names, so that its users of the run are new too.
      const real = await runImport(up.server.url, up.server.token, transport, { onConflict: policy }, batches);
      const comparable = (results: JsonObject[]) => results.map(({ userId: _u, ...rest }) => rest);
      expect(comparable(dry.results)).toEqual(comparable(real.results));
      const expected = policy === "CONFLICT_POLICY_SKIP" ? "SKIPPED" : "UPDATED";
      // Skipping needs no owner of the record's type; updating does.
      expect(outcomes(real.results)).toEqual([expected, "CREATED", expected, policy === "CONFLICT_POLICY_SKIP" ? "SKIPPED" : "FAILED", "FAILED", expected]);
      // A stored user is named; one created earlier in a dry run has no id to name.
      expect(dry.results[0]!.userId).toBe(real.results[0]!.userId);
      expect(dry.results[2]!.userId ?? "").toBe("");
    }
  });

  it("dry run: a record whose IdP link the run took fails whole, and its username stays free for a later record, as in the real import", async () => {
    const idpId = expectOk(
      await up.caller("connect-json-h1").call(V1.addGenericOIDCProvider, {
        name: uniqueName("idp"),
        issuer: "https://accounts.example.com",
        clientId: "client-1",
        clientSecret: "client-secret",
        scopes: ["openid"],
        providerOptions: { isLinkingAllowed: true, isCreationAllowed: true, isAutoCreation: true },
      }),
    ).id as string;
    const link = (userId: string) => ({ idpLinks: [{ idpId, userId, userName: userId }] });
    const external = uniqueName("ext");
    const freed = uniqueName("freed");
    const batches = [
      [
        { key: "a", human: human(link(external)) },
        // Its username is free but its link is the run's: it fails, and plans neither.
        { key: "b", human: human({ username: freed, ...link(external) }) },
      ],
      [
        { key: "c", human: human({ username: freed }) },
        { key: "d", human: human(link(external)) },
      ],
    ];
    const before = await storeCounts();
    const dry = await runImport(up.server.url, up.server.token, transport, { dryRun: true }, batches);
    expect(dry.error).toBeUndefined();
    expect(await storeCounts()).toEqual(before);
    expect(outcomes(dry.results)).toEqual(["CREATED", "FAILED", "CREATED", "FAILED"]);
    // The real import in one batch (one transaction), so that its writes keep the records' order on either store.
    const real = await runImport(up.server.url, up.server.token, transport, {}, [batches.flat()]);
    const comparable = (results: JsonObject[]) => results.map(({ userId: _u, ...rest }) => rest);
    expect(comparable(dry.results)).toEqual(comparable(real.results));
  });

  it("dry run: a user id chosen twice, or already stored, fails as in the real import", async () => {
    const storedId = `${Date.now()}1`;
    expectOk(await up.caller("connect-json-h1").call(V2.addHumanUser, human({ userId: storedId })));
    const chosen = `${Date.now()}2`;
    const batches = [
      [
        { key: "a", human: human({ userId: chosen }) },
        { key: "b", human: human({ userId: storedId }) },
        { key: "c", human: human() },
      ],
      [{ key: "d", human: human({ userId: chosen }) }],
    ];
    // The dry run sees the id across its batches; the real import gets the records in one batch
    // (one transaction), so that the order of its writes is the records' on either store.
    const dry = await runImport(up.server.url, up.server.token, transport, { dryRun: true }, batches);
    expect(dry.error).toBeUndefined();
    const real = await runImport(up.server.url, up.server.token, transport, {}, [batches.flat()]);
    const comparable = (results: JsonObject[]) => results.map(({ userId: _u, ...rest }) => rest);
    expect(comparable(dry.results)).toEqual(comparable(real.results));
    expect(outcomes(real.results)).toEqual(["CREATED", "FAILED", "CREATED", "FAILED"]);
  });

  it("on_conflict skip names the stored user and writes nothing; update changes the stored user with its events", async () => {
    const name = uniqueName("conflict");
    const first = await runImport(up.server.url, up.server.token, transport, {}, [[{ human: human({ username: name }) }]]);
    const userId = String(first.results[0]!.userId);
    const eventsBefore = await up.eventTypes(userId);

    const skip = await runImport(up.server.url, up.server.token, transport, { onConflict: "CONFLICT_POLICY_SKIP" }, [
      [{ key: "x", human: human({ username: name }) }],
    ]);
    expect(skip.results[0]).toMatchObject({ outcome: "IMPORT_OUTCOME_SKIPPED", userId });
    expect(await up.eventTypes(userId)).toEqual(eventsBefore);

    const email = uniqueEmail("updated");
    const update = await runImport(up.server.url, up.server.token, transport, { onConflict: "CONFLICT_POLICY_UPDATE" }, [
      [{ key: "y", human: human({ username: name, profile: { givenName: "New", familyName: "Name" }, email: { email, isVerified: true } }) }],
    ]);
    expect(update.results[0]).toMatchObject({ outcome: "IMPORT_OUTCOME_UPDATED", userId });
    const read = expectOk(await up.caller("connect-json-h1").call(V2.getUserByID, { userId }));
    const humanRead = (read.user as JsonObject).human as JsonObject;
    expect(humanRead.profile).toMatchObject({ givenName: "New", familyName: "Name" });
    expect(humanRead.email).toMatchObject({ email, isVerified: true });
    expect((await up.eventTypes(userId)).slice(eventsBefore.length)).toEqual([
      "user.human.profile.changed",
      "user.human.email.changed",
      "user.human.email.verified",
      "user.human.password.changed",
    ]);
  });

  it("resuming a job: committed keys answer their earlier result and write nothing; the job says where it stopped", async () => {
    const records = Array.from({ length: 5 }, (_, i) => ({ key: `r${i}`, human: human() }));
    const first = await runImport(up.server.url, up.server.token, transport, {}, [records.slice(0, 3)]);
    const jobId = String(first.job.id);
    const before = await storeCounts();
    const again = await runImport(up.server.url, up.server.token, transport, { jobId }, [records]);
    expect(again.error).toBeUndefined();
    expect(again.job).toMatchObject({ id: jobId, nextIndex: "3" });
    expect(again.results.slice(0, 3)).toEqual(first.results.map((r) => ({ ...r, replayed: true })));
    expect(outcomes(again.results.slice(3))).toEqual(["CREATED", "CREATED"]);
    expect(again.results.slice(3).map((r) => r.index)).toEqual(["3", "4"]);
    const after = await storeCounts();
    expect(after.users - before.users).toBe(2);
  });

  it("two concurrent streams importing overlapping usernames: each username is created once", async () => {
    const names = Array.from({ length: 40 }, () => uniqueName("race"));
    const batch = names.map((username) => ({ key: username, human: human({ username }) }));
    const [a, b] = await Promise.all([
      runImport(up.server.url, up.server.token, transport, {}, [batch.slice(0, 20), batch.slice(20)]),
      runImport(up.server.url, up.server.token, transport, {}, [batch.slice(20), batch.slice(0, 20)]),
    ]);
    const created = [...a.results, ...b.results].filter((r) => r.outcome === "IMPORT_OUTCOME_CREATED").map((r) => r.key);
    expect(created.sort()).toEqual([...names].sort());
    const failed = [...a.results, ...b.results].filter((r) => r.outcome === "IMPORT_OUTCOME_FAILED");
    expect(failed.every((r) => (r.error as JsonObject).id === "V3-DKcYh")).toBe(true);
    const rows = await up.server.db.selectFrom("users").select("username").where("username", "in", names).execute();
    expect(rows.length).toBe(names.length);
  });

  it("two batches of one stream claiming the same username and user id: the earlier record wins, whatever the store", async () => {
    // The second batch is prepared and handed to the store while the first (larger, so slower to
    // write) still runs its inserts: on PostgreSQL each goes on a connection of its own, and the
    // later batch must not take a username or id before the earlier one.
    for (let attempt = 0; attempt < 3; attempt++) {
      const username = uniqueName("order");
      const userId = `${Date.now()}${attempt}7`;
      const first = Array.from({ length: 400 }, (_, i) => ({ key: `a${i}`, human: human() }));
      first.push({ key: "a-last", human: human({ username, userId }) });
      const second = [
        { key: "b-name", human: human({ username }) },
        { key: "b-id", human: human({ userId }) },
      ];
      const run = await runImport(up.server.url, up.server.token, transport, {}, [first, second]);
      expect(run.error).toBeUndefined();
      expect(run.results.at(-3)).toMatchObject({ key: "a-last", outcome: "IMPORT_OUTCOME_CREATED", userId });
      expect(outcomes(run.results.slice(-2))).toEqual(["FAILED", "FAILED"]);
    }
  });

  it("a batch larger than the engine's parts: every outcome and user id lands on its own record, whichever part fails, dry run or not", async () => {
    // The engine prepares a batch and hands its writes to the store a hundred records at a time
    // (src/domain/bulk-import.ts), and commits the parts as one.
    const stored = uniqueName("stored");
    expect((await runImport(up.server.url, up.server.token, transport, {}, [[{ key: "before", human: human({ username: stored }) }]])).error).toBeUndefined();
    const twice = uniqueName("twice");
    const records = Array.from({ length: 250 }, (_, i) => ({ key: `p${i}`, human: human() }));
    records[10] = { key: "p10", human: human({ username: twice }) };
    records[120] = { key: "p120", human: human({ profile: { givenName: "", familyName: "X" } }) }; // fails while prepared
    records[150] = { key: "p150", human: human({ username: stored }) }; // a stored user's: fails at the commit
    records[230] = { key: "p230", human: human({ username: twice }) }; // an earlier part's: fails at the commit
    const failedAt = (results: JsonObject[]) => results.flatMap((r, i) => (r.outcome === "IMPORT_OUTCOME_FAILED" ? [i] : []));
    // A dry run prepares in parts too, and finds the same failures.
    const dry = await runImport(up.server.url, up.server.token, transport, { dryRun: true }, [records]);
    expect(dry.error).toBeUndefined();
    expect(failedAt(dry.results)).toEqual([120, 150, 230]);
    const run = await runImport(up.server.url, up.server.token, transport, {}, [records]);
    expect(run.error).toBeUndefined();
    expect(run.results.map((r) => r.key)).toEqual(records.map((r) => r.key));
    expect(failedAt(run.results)).toEqual([120, 150, 230]);
    for (const i of [150, 230]) expect(run.results[i]!.error).toMatchObject({ code: Code.AlreadyExists, id: "V3-DKcYh" });
    const created = run.results.flatMap((r, i) => (r.outcome === "IMPORT_OUTCOME_CREATED" ? [{ i, userId: String(r.userId) }] : []));
    expect(created).toHaveLength(247);
    const rows = await up.server.db
      .selectFrom("users")
      .select(["id", "username"])
      .where(
        "id",
        "in",
        created.map((c) => c.userId),
      )
      .execute();
    const usernameOf = new Map(rows.map((row) => [row.id, row.username]));
    for (const { i, userId } of created) expect(usernameOf.get(userId)).toBe(records[i]!.human.username);
  });

  it("a stream whose first message is not the options ends with INVALID_ARGUMENT", async () => {
    const call = openImport(up.server.url, up.server.token, transport);
    call.send({ records: { records: [{ human: human() }] } });
    call.end();
    const error = await call.next().then(
      () => undefined,
      (err: StreamError) => err,
    );
    expect(error).toMatchObject({ code: Code.InvalidArgument, ids: ["UP-BULK8"] });
  });

  it("a message over the record limit ends the stream with INVALID_ARGUMENT after the earlier results", async () => {
    const many = Array.from({ length: 1001 }, () => ({ human: human() }));
    const run = await runImport(up.server.url, up.server.token, transport, {}, [[{ human: human() }], many]);
    expect(outcomes(run.results)).toEqual(["CREATED"]);
    expect(run.error).toMatchObject({ code: Code.InvalidArgument, ids: ["UP-BULK5"] });
  });

  it("refuses a job of another caller, and a stream into an organisation the caller may not write", async () => {
    const other = await createApiCaller(up, "ORG_OWNER");
    const mine = await runImport(up.server.url, up.server.token, transport, {}, [[{ human: human() }]]);
    const resumed = await runImport(up.server.url, other.token, transport, { jobId: String(mine.job.id) }, [], {
      "x-zitadel-orgid": String(mine.job.organizationId),
    });
    expect(resumed.error?.code).toBe(Code.PermissionDenied);
    const own = await runImport(up.server.url, other.token, transport, { jobId: String(mine.job.id) }, []);
    expect(own.error).toMatchObject({ code: Code.NotFound, ids: ["UP-BULK1"] });
  });
});

/**
 * Raw frames over HTTP/2, so that a test can send bytes no client library would encode: gRPC
 * (length-prefixed messages, status in trailers) and Connect's streaming protocol (envelopes,
 * the status in an end-of-stream envelope). The request stream stays open after `bad` unless
 * `end` says otherwise: a client may go on sending, or wait for the answer.
 */
async function rawImport(protocol: "grpc" | "connect", bad: Buffer, opts: { end: boolean }) {
  const http2 = await import("node:http2");
  const { toBinary, fromJson, fromBinary, toJson } = await import("@bufbuild/protobuf");
  const { ImportUsersRequestSchema, ImportUsersResponseSchema } = await import("../gen/userport/migration/v1/migration_pb.js");
  const encode = (json: JsonObject) => Buffer.from(toBinary(ImportUsersRequestSchema, fromJson(ImportUsersRequestSchema, json)));
  const frame = (bytes: Buffer) => {
    const head = Buffer.alloc(5);
    head.writeUInt32BE(bytes.length, 1);
    return Buffer.concat([head, bytes]);
  };
  const orgId = String(expectOk(await up.caller("connect-json-h1").call(V1.addOrg, { name: uniqueName("Broken") })).id);
  const session = http2.connect(up.server.url);
  const stream = session.request({
    ":method": "POST",
    ":path": "/userport.migration.v1.MigrationService/ImportUsers",
    "content-type": protocol === "grpc" ? "application/grpc" : "application/connect+proto",
    ...(protocol === "grpc" ? { te: "trailers" } : { "connect-protocol-version": "1" }),
    authorization: `Bearer ${up.server.token}`,
  });
  // An organisation of its own: a stream that ends with an error leaves its job open, and an
  // organisation has at most 10 such jobs (UP-BULK4).
  stream.write(frame(encode({ options: { organizationId: orgId } })));
  stream.write(frame(encode({ records: { records: [{ human: human() }, { human: human() }] } })));
  stream.write(frame(encode({ records: { records: [{ human: human() }] } })));
  stream.write(bad);
  if (opts.end) stream.end();
  const chunks: Buffer[] = [];
  let trailers: Record<string, unknown> = {};
  stream.on("trailers", (t) => {
    trailers = t;
  });
  stream.on("data", (chunk: Buffer) => chunks.push(chunk));
  const closed = await new Promise<boolean>((resolve) => {
    stream.on("close", () => resolve(true));
    stream.on("error", () => resolve(true));
  });
  session.close();
  const body = Buffer.concat(chunks);
  const results: JsonObject[] = [];
  let status = { code: "", message: "" };
  for (let at = 0; at + 5 <= body.length; ) {
    const flags = body[at]!;
    const length = body.readUInt32BE(at + 1);
    const payload = body.subarray(at + 5, at + 5 + length);
    at += 5 + length;
    if (flags & 0x02) {
      const end = JSON.parse(payload.toString()) as { error?: { code: string; message: string } };
      status = { code: end.error?.code ?? "ok", message: end.error?.message ?? "" };
      continue;
    }
    const response = toJson(ImportUsersResponseSchema, fromBinary(ImportUsersResponseSchema, payload)) as JsonObject;
    results.push(...((response.results ?? []) as JsonObject[]));
  }
  if (protocol === "grpc") {
    const code = Number(trailers["grpc-status"]);
    status = { code: Code[code] ?? String(code), message: decodeURIComponent(String(trailers["grpc-message"] ?? "")) };
  }
  return { closed, results, status };
}

/** A frame header announcing `length` bytes, then that many bytes of field 2 (records) that do not parse. */
const MALFORMED = Buffer.from([0, 0, 0, 0, 7, 0x12, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]);
/** A frame larger than USERPORT_BODY_LIMIT (4 MiB in the tests): refused before it is read whole. */
const OVERSIZED = (() => {
  const bytes = Buffer.alloc(5 + 4 * 1024 * 1024 + 16);
  bytes.writeUInt32BE(4 * 1024 * 1024 + 16, 1);
  return bytes;
})();

describe.each(["grpc", "connect"] as const)("ImportUsers with a broken message (raw %s over HTTP/2)", (protocol) => {
  const code = (name: string) => (protocol === "grpc" ? name : name.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase());
  for (const end of [true, false]) {
    it(`a malformed message ends the stream with INVALID_ARGUMENT after the results of every earlier record (request stream ${end ? "ended" : "left open"})`, async () => {
      const run = await rawImport(protocol, MALFORMED, { end });
      expect(run.closed).toBe(true);
      expect(outcomes(run.results)).toEqual(["CREATED", "CREATED", "CREATED"]);
      expect(run.status).toEqual({
        code: code("InvalidArgument"),
        message: "A stream message is not a valid userport.migration.v1.ImportUsersRequest (UP-BULK12)",
      });
    });
    it(`an oversized message ends the stream with INVALID_ARGUMENT after the results of every earlier record (request stream ${end ? "ended" : "left open"})`, async () => {
      const run = await rawImport(protocol, OVERSIZED, { end });
      expect(run.closed).toBe(true);
      expect(outcomes(run.results)).toEqual(["CREATED", "CREATED", "CREATED"]);
      expect(run.status).toEqual({
        code: code("InvalidArgument"),
        message: "A stream message is larger than the server accepts (USERPORT_BODY_LIMIT) (UP-BULK6)",
      });
    });
  }
});

describe("ImportUsers with a broken message (grpc-js)", () => {
  /** Sends the options, one good batch, then `bad` as raw bytes, and reads the stream to its end. */
  async function sendRaw(bad: Buffer) {
    const grpc = await import("@grpc/grpc-js");
    const { toBinary, fromJson, fromBinary, toJson } = await import("@bufbuild/protobuf");
    const { ImportUsersRequestSchema, ImportUsersResponseSchema } = await import("../gen/userport/migration/v1/migration_pb.js");
    const client = new grpc.Client(new URL(up.server.url).host, grpc.credentials.createInsecure());
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${up.server.token}`);
    const call = client.makeBidiStreamRequest<Buffer, JsonObject>(
      "/userport.migration.v1.MigrationService/ImportUsers",
      (bytes) => bytes,
      (bytes: Buffer) => toJson(ImportUsersResponseSchema, fromBinary(ImportUsersResponseSchema, bytes)) as JsonObject,
      metadata,
      {},
    );
    const encode = (json: JsonObject) => Buffer.from(toBinary(ImportUsersRequestSchema, fromJson(ImportUsersRequestSchema, json)));
    const orgId = String(expectOk(await up.caller("connect-json-h1").call(V1.addOrg, { name: uniqueName("Broken") })).id);
    call.write(encode({ options: { organizationId: orgId } }));
    call.write(encode({ records: { records: [{ human: human() }] } }));
    call.write(bad);
    call.end();
    const results: JsonObject[] = [];
    const error = await new Promise<{ code: number; details: string }>((resolve) => {
      call.on("data", (response: JsonObject) => results.push(...((response.results ?? []) as JsonObject[])));
      call.on("error", (err: { code: number; details: string }) => resolve(err));
      call.on("end", () => resolve({ code: 0, details: "" }));
    });
    client.close();
    return { results, error };
  }

  it("a malformed message ends the stream with INVALID_ARGUMENT after the earlier results, naming no parser internals", async () => {
    const { results, error } = await sendRaw(Buffer.from([0x12, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]));
    expect(outcomes(results)).toEqual(["CREATED"]);
    expect(error.code).toBe(Code.InvalidArgument);
    expect(decodeURIComponent(error.details)).toBe("A stream message is not a valid userport.migration.v1.ImportUsersRequest (UP-BULK12)");
  });

  it("an oversized message ends the stream with INVALID_ARGUMENT after the earlier results, and the server still closes", async () => {
    const { results, error } = await sendRaw(Buffer.alloc(4 * 1024 * 1024 + 16));
    expect(outcomes(results)).toEqual(["CREATED"]);
    expect(error.code).toBe(Code.InvalidArgument);
    expect(decodeURIComponent(error.details)).toBe("A stream message is larger than the server accepts (USERPORT_BODY_LIMIT) (UP-BULK6)");
  });
});

describe("ImportUsers flow control (raw gRPC over HTTP/2)", () => {
  it("takes no more from a client that stops reading its results than a few messages and the HTTP/2 windows, and serves others meanwhile", async () => {
    const http2 = await import("node:http2");
    const { toBinary, fromJson } = await import("@bufbuild/protobuf");
    const { ImportUsersRequestSchema } = await import("../gen/userport/migration/v1/migration_pb.js");
    const frame = (json: JsonObject) => {
      const bytes = toBinary(ImportUsersRequestSchema, fromJson(ImportUsersRequestSchema, json));
      const framed = Buffer.alloc(5 + bytes.length);
      framed.writeUInt32BE(bytes.length, 1);
      framed.set(bytes, 5);
      return framed;
    };
    const session = http2.connect(up.server.url);
    const stream = session.request({
      ":method": "POST",
      ":path": "/userport.migration.v1.MigrationService/ImportUsers",
      "content-type": "application/grpc",
      te: "trailers",
      authorization: `Bearer ${up.server.token}`,
    });
    stream.write(frame({ options: { dryRun: true } }));
    // A thousand records sent over and over (their keys answered from the first time after that).
    const batch = frame({ records: { records: Array.from({ length: 1000 }, () => ({ human: human() })) } });
    const offeredAtMost = 64 * 1024 * 1024;
    let offered = 0;
    let sent = 0;
    const failures: unknown[] = [];
    stream.on("error", (err) => failures.push(err));
    // The client writes as its own stream lets it ('drain'); a write's callback runs once its
    // bytes went out to the server, which HTTP/2 flow control allows only as far as the server
    // read. Nothing reads the responses: the stream stays paused.
    const pump = () => {
      while (offered < offeredAtMost) {
        offered += batch.length;
        const written = stream.write(batch, (err) => {
          if (err) failures.push(err);
          else sent += batch.length;
        });
        if (!written) return;
      }
    };
    stream.on("drain", pump);
    pump();
    let last = -1;
    for (let waited = 0; waited < 15_000 && sent !== last; waited += 1000) {
      last = sent;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    expect(failures).toEqual([]);
    // Sending stopped, after more than one message and well before the 64 MiB the client had.
    expect(sent).toBe(last);
    expect(sent).toBeGreaterThan(batch.length);
    expect(sent).toBeLessThan(8 * 1024 * 1024);
    // The server is not stuck: other calls are answered while this stream waits.
    const ready = await fetch(`${up.server.url}/healthz`);
    expect(ready.status).toBe(200);
    expectOk(await up.caller("grpc-js").call(V1.addOrg, { name: uniqueName("Meanwhile") }));
    stream.close(http2.constants.NGHTTP2_CANCEL);
    session.close();
  });
});
