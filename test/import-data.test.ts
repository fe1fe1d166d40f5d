/**
 * ZITADEL's admin ImportData (`POST /admin/v1/import`, zitadel.admin.v1.AdminService/ImportData)
 * over REST and gRPC: organisations with their domain policy, domains, human users (hashed
 * passwords, init codes), machine users, metadata, IdP links and members, each part imported on
 * its own with failures listed in `errors` as ZITADEL's internal/api/grpc/admin/import.go does
 * (types "org", "domain", "human_user", "machine_user", "user_metadata", "user_link",
 * "org_member"; ids "<org>_<domain>", "<user>_<key>", "<user>_<idp>", "<org>_<user>"), and the
 * import going on after each. Users go through the bulk engine and get the rows and events of
 * a single v1 ImportHumanUser. Runs on SQLite, and on PostgreSQL when USERPORT_TEST_DATABASE_URL is set.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { ADMIN, SESSIONS, type TransportName, V1 } from "./helpers/clients.js";
import { expectErrorId, expectOk } from "./helpers/expectations.js";
import { bcryptHash, createApiCaller, GOOD_PASSWORD, uniqueName, useUserport, v1ImportBody } from "./helpers/fixtures.js";

const up = useUserport();

let HASH = "";
beforeAll(() => {
  HASH = bcryptHash(GOOD_PASSWORD, 4);
});

let idCounter = 0;
/** An id no other test uses, shaped like ZITADEL's. */
const newId = () => `${Date.now()}${String(process.pid % 1000).padStart(3, "0")}${String(++idCounter).padStart(3, "0")}`;

async function storeCounts() {
  const { db } = up.server;
  const count = async (table: "users" | "events" | "orgs" | "unique_constraints" | "members" | "org_domains") =>
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
    orgs: await count("orgs"),
    claims: await count("unique_constraints"),
    members: await count("members"),
    domains: await count("org_domains"),
  };
}

describe.each<TransportName>(["rest", "grpc-js"])("ImportData over %s", (transport) => {
  it("imports organisations, domains, users, metadata, links and members, listing each failure and going on", async () => {
    const admin = up.caller(transport);
    // An existing organisation with an IdP that allows linking: ZITADEL reports the org as
    // existing (ORG-lapo2m) and imports into it.
    const existing = await createApiCaller(up, "ORG_OWNER");
    const headers = { "x-zitadel-orgid": existing.orgId };
    const idp = expectOk(
      await up.caller("connect-json-h1").call(
        V1.addGenericOIDCProvider,
        {
          name: "Corp",
          issuer: "https://idp.example.com",
          clientId: "c",
          clientSecret: "s",
          providerOptions: { isLinkingAllowed: true, isCreationAllowed: true },
        },
        { headers },
      ),
    );
    const idpId = String(idp.id);

    const orgId = newId();
    const [ada, grace, bot, dup, linked] = [newId(), newId(), newId(), newId(), newId()];
    const domain = `${uniqueName("corp")}.example.com`;
    const adaName = uniqueName("ada");
    const data: JsonObject = {
      orgs: [
        {
          orgId,
          org: { name: uniqueName("Imported Org") },
          domains: [{ domainName: domain, isVerified: true, isPrimary: true }],
          humanUsers: [
            { userId: ada, user: v1ImportBody({ userName: adaName, hashedPassword: { value: HASH }, otpCode: "JBSWY3DPEHPK3PXP" }) },
            // Unverified email, no password: INITIAL with an init code, as v1 import.
            { userId: grace, user: v1ImportBody({ email: { email: `${uniqueName("grace")}@example.com`, isEmailVerified: false } }) },
            { userId: newId(), user: v1ImportBody({ email: { email: "not-an-email", isEmailVerified: true } }) },
            { userId: dup, user: v1ImportBody() },
            { userId: dup, user: v1ImportBody() },
          ],
          machineUsers: [{ userId: bot, user: { userName: uniqueName("bot"), name: "Bot" } }],
          userMetadata: [
            { id: ada, key: "department", value: Buffer.from("engineering").toString("base64") },
            { id: newId(), key: "orphan", value: Buffer.from("x").toString("base64") },
          ],
          orgMembers: [
            { userId: bot, roles: ["ORG_USER_MANAGER"] },
            { userId: ada, roles: ["NOT_A_ROLE"] },
          ],
          // A ZITADEL export carries its projects' content; over gRPC this test's client can only
          // encode it with userport's descriptors, which read none of it.
          projects: transport === "rest" ? [{ name: "not served" }, { name: "neither" }] : [{}, {}],
        },
        {
          orgId: existing.orgId,
          org: { name: existing.orgName },
          humanUsers: [{ userId: linked, user: v1ImportBody() }],
          userLinks: [
            { userId: linked, idpId, providedUserId: "ext-1", providedUserName: "linked@corp" },
            { userId: linked, idpId: "no-such-idp", providedUserId: "ext-2", providedUserName: "x" },
          ],
        },
      ],
    };
    const res = expectOk(await admin.call(ADMIN.importData, { dataOrgs: data, timeout: "10m" }));

    const errors = (res.errors ?? []) as JsonObject[];
    const byType = (type: string) => errors.filter((e) => e.type === type);
    expect(byType("org")).toEqual([{ type: "org", id: existing.orgId, message: "Errors.Org.AlreadyExisting (ORG-lapo2m)" }]);
    expect(byType("human_user").map((e) => [e.id, e.message])).toEqual([
      [expect.any(String), "Email is invalid (EMAIL-599BI)"],
      [dup, "Errors.User.AlreadyExisting (COMMAND-7yiox1isql)"],
    ]);
    expect(byType("user_metadata").map((e) => e.id)).toEqual([expect.stringMatching(/_orphan$/)]);
    expect(byType("org_member")).toEqual([{ type: "org_member", id: `${orgId}_${ada}`, message: "Errors.Org.MemberInvalid (Org-4N8es)" }]);
    expect(byType("user_link")).toEqual([
      { type: "user_link", id: `${linked}_no-such-idp`, message: "Identity Provider Configuration doesn't exist (COMMAND-39nf2)" },
    ]);
    expect(byType("project")).toEqual([{ type: "project", id: orgId, message: "userport does not import project (2 not imported) (UP-IMPORT2)" }]);
    expect(errors).toHaveLength(7);

    const success = (res.success as JsonObject).orgs as JsonObject[];
    expect(success.map((o) => o.orgId)).toEqual([orgId, existing.orgId]);
    expect(success[0]).toMatchObject({
      humanUserIds: [ada, grace, dup],
      machineUserIds: [bot],
      userMetadata: [{ userId: ada, key: "department" }],
      orgMembers: [bot],
      domains: [domain],
    });
    expect(success[1]).toMatchObject({
      humanUserIds: [linked],
      userLinks: [{ userId: linked, idpId, externalUserId: "ext-1", displayName: "linked@corp" }],
    });

    // Read back as any client would.
    const inOrg = { headers: { "x-zitadel-orgid": orgId } };
    const read = expectOk(await admin.call(V1.getUserByID, { id: ada }, inOrg));
    expect((read.user as JsonObject).userName).toBe(adaName);
    expect((read.user as JsonObject).state).toBe("USER_STATE_ACTIVE");
    expect(((await up.caller(transport).call(V1.getUserByID, { id: grace }, inOrg)) as { json: JsonObject }).json.user).toMatchObject({
      state: "USER_STATE_INITIAL",
    });
    // otp_code: a verified TOTP authenticator, as ZITADEL's ImportData (ImportHumanTOTP) makes it.
    expect(await up.eventTypes(ada)).toEqual([
      "user.human.added",
      "user.human.email.verified",
      "user.human.mfa.otp.added",
      "user.human.mfa.otp.verified",
      "user.metadata.set",
    ]);
    expect(await up.eventTypes(grace)).toEqual(["user.human.added", "user.human.initialization.code.added"]);
    const org = expectOk(await admin.call(V1.getMyOrg, {}, inOrg));
    expect((org.org as JsonObject).primaryDomain).toBe(domain);
    const members = expectOk(await admin.call(V1.listOrgMembers, {}, inOrg));
    expect((members.result as JsonObject[]).map((m) => [m.userId, m.roles])).toContainEqual([bot, ["ORG_USER_MANAGER"]]);
    const meta = expectOk(await admin.call(V1.getUserMetadata, { id: ada, key: "department" }, inOrg));
    expect(Buffer.from(String((meta.metadata as JsonObject).value), "base64").toString()).toBe("engineering");
    const links = expectOk(await admin.call(V1.listHumanLinkedIDPs, { userId: linked }, { headers }));
    expect((links.result as JsonObject[]).map((l) => l.providedUserId)).toEqual(["ext-1"]);
    // The imported hash signs in.
    const session = await admin.call(SESSIONS.createSession, { checks: { user: { userId: ada }, password: { password: GOOD_PASSWORD } } });
    expectOk(session, transport === "rest" ? 201 : undefined);
    // No hash in the answer.
    expect(JSON.stringify(res)).not.toContain(HASH);
  });

  it("the same data again: every organisation and user is reported as existing, nothing is written twice", async () => {
    const admin = up.caller(transport);
    const orgId = newId();
    const user = newId();
    const data = { orgs: [{ orgId, org: { name: uniqueName("Again") }, humanUsers: [{ userId: user, user: v1ImportBody() }] }] };
    expectOk(await admin.call(ADMIN.importData, { dataOrgs: data }));
    const before = await storeCounts();
    const again = expectOk(await admin.call(ADMIN.importData, { dataOrgs: data }));
    expect(again.errors).toEqual([
      { type: "org", id: orgId, message: "Errors.Org.AlreadyExisting (ORG-lapo2m)" },
      { type: "human_user", id: user, message: "Errors.User.AlreadyExisting (COMMAND-7yiox1isql)" },
    ]);
    const after = await storeCounts();
    expect({ ...after, events: 0 }).toEqual({ ...before, events: 0 });
  });

  it("file and v1 variants, a request without data and a malformed timeout are refused, writing nothing", async () => {
    const admin = up.caller(transport);
    const before = await storeCounts();
    const gcs = await admin.call(ADMIN.importData, { dataOrgsGcs: { bucket: "b", serviceaccountJson: "c2VjcmV0LWtleS1tYXRlcmlhbA==", path: "p" } });
    expect(expectErrorId(gcs, Code.Unimplemented, "UP-IMPORT1").message).not.toContain("c2VjcmV0");
    const s3 = await admin.call(ADMIN.importData, {
      dataOrgsS3: { path: "p", endpoint: "e", accessKeyId: "k", secretAccessKey: "TOP-SECRET-S3", bucket: "b" },
    });
    expect(expectErrorId(s3, Code.Unimplemented, "UP-IMPORT1").message).not.toContain("TOP-SECRET-S3");
    expectErrorId(await admin.call(ADMIN.importData, { dataOrgsLocal: { path: "/etc/passwd" } }), Code.Unimplemented, "UP-IMPORT1");
    expectErrorId(await admin.call(ADMIN.importData, { dataOrgsv1: transport === "rest" ? { orgs: [] } : {} }), Code.Unimplemented, "UP-IMPORT3");
    expectErrorId(await admin.call(ADMIN.importData, {}), Code.InvalidArgument, "UP-IMPORT5");
    const orgs = { orgs: [{ orgId: newId(), org: { name: uniqueName("Late") } }] };
    expectErrorId(await admin.call(ADMIN.importData, { dataOrgs: orgs, timeout: "ten minutes" }), Code.InvalidArgument, "UP-IMPORT4");
    expect(await storeCounts()).toEqual(before);
  });

  it("needs iam.write: an organisation's owner is refused with PERMISSION_DENIED", async () => {
    const owner = await createApiCaller(up, "ORG_OWNER");
    const before = await storeCounts();
    const data = { orgs: [{ orgId: newId(), org: { name: uniqueName("Sneaky") }, humanUsers: [{ userId: newId(), user: v1ImportBody() }] }] };
    const result = await up.caller(transport).call(ADMIN.importData, { dataOrgs: data }, { token: owner.token });
    expectErrorId(result, Code.PermissionDenied, "AUTH-5mWD2");
    expect(await storeCounts()).toEqual(before);
  });
});
