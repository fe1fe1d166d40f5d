/**
 * The cross-organisation denial test : a token of organisation A, holding
 * A's strongest role (ORG_OWNER), tries every RPC of the management, user, admin and session
 * services against organisation B: B's organisation, B's users, B's tokens, B's domains, B's
 * sessions (the session service also with A's user manager and a user of A without roles).
 * Every attempt must fail with PERMISSION_DENIED, or NOT_FOUND / FAILED_PRECONDITION "not found"
 * where ZITADEL hides that something exists; a read that succeeds must show nothing of B; and B
 * must be unchanged afterwards, to the last event.
 *
 * The RPCs come from the service descriptors, so an RPC added later without a case here fails
 * the "has a case" test until one is written.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import type { DescService } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../gen/zitadel/admin_pb.js";
import { ManagementService } from "../gen/zitadel/management_pb.js";
import { SessionService } from "../gen/zitadel/session/v2/session_service_pb.js";
import { UserService } from "../gen/zitadel/user/v2/user_service_pb.js";
import { MigrationService } from "../gen/userport/migration/v1/migration_pb.js";
import type { CallResult, TransportName } from "./helpers/clients.js";
import { runImport } from "./helpers/import-stream.js";
import { ADMIN, SESSIONS, V1, V2 } from "./helpers/clients.js";
import { expectOk } from "./helpers/expectations.js";
import { PINGONE_ROUTES } from "../src/pingone/index.js";
import { type ApiCaller, createApiCaller, GOOD_PASSWORD, uniqueName, useUserport, v1ImportBody } from "./helpers/fixtures.js";

const SERVICES: DescService[] = [ManagementService, UserService, AdminService, SessionService, MigrationService];

/** What B owns, made by the administrator. */
interface Victim {
  org: ApiCaller;
  domain: string;
  humanId: string;
  humanName: string;
  machineId: string;
  tokenId: string;
  idpId: string;
  /** A session of B's human with metadata; its token stays with B. */
  sessionId: string;
  /** An import job of B's owner, with one imported record. */
  jobId: string;
  /** A passkey registration of B's human, started by the administrator (NOT_READY). */
  passkeyId: string;
}

const id = (b: Victim) => ({ id: b.humanId });
const user = (b: Victim) => ({ userId: b.humanId });

/**
 * Per RPC (service.method), the attempts against B (one request or several); management v1 ones
 * run in B's context and in A's.
 */
const CASES: Record<string, (b: Victim) => JsonObject | JsonObject[]> = {
  // management v1: every case is tried with x-zitadel-orgid: B, and again in A's own context.
  "ManagementService.GetUserByID": id,
  "ManagementService.ListUsers": () => ({}),
  "ManagementService.ListUserChanges": user,
  "ManagementService.IsUserUnique": (b) => ({ userName: b.humanName }),
  "ManagementService.AddHumanUser": () => ({ ...v1ImportBody(), initialPassword: GOOD_PASSWORD }),
  "ManagementService.ImportHumanUser": () => v1ImportBody(),
  "ManagementService.DeactivateUser": id,
  "ManagementService.ReactivateUser": id,
  "ManagementService.LockUser": id,
  "ManagementService.UnlockUser": id,
  "ManagementService.RemoveUser": id,
  "ManagementService.ResendHumanInitialization": user,
  "ManagementService.UpdateUserName": (b) => ({ userId: b.humanId, userName: uniqueName("stolen") }),
  "ManagementService.AddMachineUser": () => ({ userName: uniqueName("intruder"), name: "Intruder" }),
  "ManagementService.ListPersonalAccessTokens": (b) => ({ userId: b.machineId }),
  "ManagementService.AddPersonalAccessToken": (b) => ({ userId: b.machineId }),
  "ManagementService.RemovePersonalAccessToken": (b) => ({ userId: b.machineId, tokenId: b.tokenId }),
  "ManagementService.GenerateMachineSecret": (b) => ({ userId: b.machineId }),
  "ManagementService.RemoveMachineSecret": (b) => ({ userId: b.machineId }),
  "ManagementService.GetMyOrg": () => ({}),
  "ManagementService.AddOrg": () => ({ name: uniqueName("Org") }),
  "ManagementService.AddOrgDomain": () => ({ domain: `${uniqueName("grab")}.example.com` }),
  "ManagementService.ListOrgDomains": () => ({}),
  "ManagementService.SetPrimaryOrgDomain": (b) => ({ domain: b.domain }),
  "ManagementService.ListOrgMembers": () => ({}),
  "ManagementService.AddOrgMember": (b) => ({ userId: b.humanId, roles: ["ORG_OWNER"] }),
  "ManagementService.RemoveOrgMember": (b) => ({ userId: b.machineId }),
  // RemoveOrgDomain and UpdateOrgMember: B's domain and B's member, unknown in A.
  "ManagementService.RemoveOrgDomain": (b) => ({ domain: b.domain }),
  "ManagementService.UpdateOrgMember": (b) => ({ userId: b.machineId, roles: ["ORG_OWNER"] }),
  "ManagementService.AddGenericOIDCProvider": () => ({
    name: uniqueName("idp"),
    issuer: "https://issuer.example.com",
    clientId: "client",
    clientSecret: "secret",
  }),
  "ManagementService.ListProviders": () => ({}),
  "ManagementService.GetProviderByID": (b) => ({ id: b.idpId }),
  "ManagementService.ListHumanLinkedIDPs": user,
  "ManagementService.RemoveHumanLinkedIDP": (b) => ({ userId: b.humanId, idpId: b.idpId, linkedUserId: "external-1" }),
  "ManagementService.SetUserMetadata": (b) => ({ id: b.humanId, key: "planted", value: "YQ==" }),
  "ManagementService.BulkSetUserMetadata": (b) => ({ id: b.humanId, metadata: [{ key: "planted", value: "YQ==" }] }),
  "ManagementService.ListUserMetadata": id,
  "ManagementService.GetUserMetadata": (b) => ({ id: b.humanId, key: "secret" }),
  "ManagementService.RemoveUserMetadata": (b) => ({ id: b.humanId, key: "secret" }),
  "ManagementService.BulkRemoveUserMetadata": (b) => ({ id: b.humanId, keys: ["secret"] }),
  "ManagementService.GetDomainPolicy": () => ({}),
  "ManagementService.SetHumanInitialPassword": (b) => ({ userId: b.humanId, password: GOOD_PASSWORD }),
  "ManagementService.SetHumanPassword": (b) => ({ userId: b.humanId, password: GOOD_PASSWORD, noChangeRequired: true }),
  // passkeys (management v1): B's human and its started registration.
  "ManagementService.ListHumanPasswordless": user,
  "ManagementService.AddPasswordlessRegistration": user,
  "ManagementService.SendPasswordlessRegistration": user,
  "ManagementService.RemoveHumanPasswordless": (b) => ({ userId: b.humanId, tokenId: b.passkeyId }),
  // lockout policy (management v1): B's own policy is there to read, change or remove.
  "ManagementService.GetLockoutPolicy": () => ({}),
  // The instance's policy: it names no organisation, and B's own policy is not it.
  "ManagementService.GetDefaultLockoutPolicy": () => ({}),
  "ManagementService.AddCustomLockoutPolicy": () => ({ maxPasswordAttempts: 1 }),
  "ManagementService.UpdateCustomLockoutPolicy": () => ({ maxPasswordAttempts: 2 }),
  "ManagementService.ResetLockoutPolicyToDefault": () => ({}),
  // user v2: B is named in the request itself.
  "UserService.AddHumanUser": (b) => ({
    organization: { orgId: b.org.orgId },
    profile: { givenName: "In", familyName: "Truder" },
    email: { email: `${uniqueName("in")}@example.com`, isVerified: true },
  }),
  "UserService.CreateUser": (b) => ({
    organizationId: b.org.orgId,
    human: { profile: { givenName: "In", familyName: "Truder" }, email: { email: `${uniqueName("in")}@example.com`, isVerified: true } },
  }),
  "UserService.AddIDPLink": (b) => ({ userId: b.humanId, idpLink: { idpId: b.idpId, userId: "external-2", userName: "x" } }),
  "UserService.ListIDPLinks": user,
  "UserService.RemoveIDPLink": (b) => ({ userId: b.humanId, idpId: b.idpId, linkedUserId: "external-1" }),
  "UserService.GetUserByID": user,
  "UserService.ListUsers": (b) => ({ queries: [{ organizationIdQuery: { organizationId: b.org.orgId } }] }),
  "UserService.DeactivateUser": user,
  "UserService.ReactivateUser": user,
  "UserService.LockUser": user,
  "UserService.UnlockUser": user,
  "UserService.DeleteUser": user,
  "UserService.PasswordReset": (b) => ({ userId: b.humanId, returnCode: {} }),
  "UserService.SetPassword": (b) => ({ userId: b.humanId, newPassword: { password: GOOD_PASSWORD } }),
  // passkeys (user v2): without a registration code, the caller needs the permission on B.
  // (A wrong code is refused too, but ZITADEL records that failure on the user, so B would change.)
  "UserService.RegisterPasskey": user,
  "UserService.VerifyPasskeyRegistration": (b) => ({
    userId: b.humanId,
    passkeyId: b.passkeyId,
    passkeyName: "stolen",
    publicKeyCredential: { id: "AAAA", rawId: "AAAA", type: "public-key", response: { clientDataJSON: "e30", attestationObject: "oA" } },
  }),
  "UserService.CreatePasskeyRegistrationLink": (b): JsonObject[] => [
    { userId: b.humanId, returnCode: {} },
    { userId: b.humanId, sendLink: {} },
    { userId: b.humanId },
  ],
  "UserService.ListPasskeys": user,
  "UserService.RemovePasskey": (b) => ({ userId: b.humanId, passkeyId: b.passkeyId }),
  // B's human is INITIAL (imported without a password), so these stop at COMMAND-uz0Uu before
  // the permission check, as in ZITADEL; test/verification.test.ts checks their permissions.
  "UserService.SetEmail": (b) => ({ userId: b.humanId, email: `${uniqueName("stolen")}@example.com`, returnCode: {} }),
  "UserService.ResendEmailCode": (b) => ({ userId: b.humanId, returnCode: {} }),
  "UserService.VerifyEmail": (b) => ({ userId: b.humanId, verificationCode: "ABCDEF" }),
  "UserService.SetPhone": (b) => ({ userId: b.humanId, phone: "+41 79 123 45 67", returnCode: {} }),
  "UserService.ResendPhoneCode": (b) => ({ userId: b.humanId, returnCode: {} }),
  "UserService.VerifyPhone": (b) => ({ userId: b.humanId, verificationCode: "ABCDEF" }),
  // admin: instance-level; B is named by org_id.
  "AdminService.GetCustomDomainPolicy": (b) => ({ orgId: b.org.orgId }),
  "AdminService.AddCustomDomainPolicy": (b) => ({ orgId: b.org.orgId, userLoginMustBeDomain: true }),
  "AdminService.UpdateCustomDomainPolicy": (b) => ({ orgId: b.org.orgId, userLoginMustBeDomain: true }),
  "AdminService.ResetCustomDomainPolicyToDefault": (b) => ({ orgId: b.org.orgId }),
  // lockout policy of the instance (admin v1): B's users are under it too.
  "AdminService.GetLockoutPolicy": () => ({}),
  "AdminService.UpdateLockoutPolicy": () => ({ maxPasswordAttempts: 1 }),
  // ImportData needs iam.write (instance roles only): B's organisation, users, members, metadata, domains.
  "AdminService.ImportData": (b) => ({
    dataOrgs: {
      orgs: [
        {
          orgId: b.org.orgId,
          org: { name: uniqueName("Org") },
          domains: [{ domainName: `${uniqueName("grab")}.example.com`, isVerified: true, isPrimary: true }],
          humanUsers: [{ userId: `${b.humanId}9`, user: v1ImportBody() }],
          machineUsers: [{ userId: `${b.machineId}9`, user: { userName: uniqueName("intruder"), name: "Intruder" } }],
          userMetadata: [{ id: b.humanId, key: "planted", value: "YQ==" }],
          userLinks: [{ userId: b.humanId, idpId: b.idpId, providedUserId: "planted", providedUserName: "planted" }],
          orgMembers: [{ userId: b.humanId, roles: ["ORG_OWNER"] }],
        },
      ],
    },
  }),
  // session v2: ZITADEL checks session.write on the instance to create a session and on the
  // user's organisation to change one; without the session's token, it shows a session only to
  // its creator, its user, or a holder of session.read on the user's organisation, and ends one
  // only for its user or a holder of session.delete there (internal/command/session.go,
  // internal/query/session.go). No organisation role grants session.write, so A's callers
  // create no session at all, not even one checking a user of B.
  "SessionService.CreateSession": (b): JsonObject[] => [
    { checks: { user: { userId: b.humanId } } },
    { checks: { user: { loginName: b.humanName } } },
    { checks: { user: { userId: b.humanId }, password: { password: GOOD_PASSWORD } }, metadata: { planted: "YQ==" } },
  ],
  "SessionService.SetSession": (b): JsonObject[] => [
    { sessionId: b.sessionId, metadata: { planted: "YQ==" } },
    { sessionId: b.sessionId, checks: { password: { password: GOOD_PASSWORD } } },
    { sessionId: b.sessionId, lifetime: "60s" },
    { sessionId: b.sessionId, challenges: { webAuthN: { domain: "localhost", userVerificationRequirement: "USER_VERIFICATION_REQUIREMENT_REQUIRED" } } },
    { sessionId: b.sessionId, checks: { webAuthN: { credentialAssertionData: { id: "AAAA", type: "public-key", response: {} } } } },
  ],
  "SessionService.GetSession": (b): JsonObject[] => [{ sessionId: b.sessionId }, { sessionId: b.sessionId, sessionToken: "not-the-token" }],
  "SessionService.DeleteSession": (b): JsonObject[] => [{ sessionId: b.sessionId }, { sessionId: b.sessionId, sessionToken: "not-the-token" }],
  // userport's migration service: B's job, and imports into B.
  "MigrationService.ImportUsers": (b): JsonObject[] => [
    { options: { organizationId: b.org.orgId } },
    { options: { jobId: b.jobId } },
    { options: { organizationId: b.org.orgId, dryRun: true } },
  ],
  "MigrationService.CreateImportJob": (b) => ({ organizationId: b.org.orgId }),
  "MigrationService.GetImportJob": (b) => ({ jobId: b.jobId }),
  "MigrationService.ListImportJobs": (b) => ({ organizationId: b.org.orgId }),
  "MigrationService.ListImportJobResults": (b) => ({ jobId: b.jobId }),
  "MigrationService.CancelImportJob": (b) => ({ jobId: b.jobId }),
  "SessionService.ListSessions": (b): JsonObject[] => [
    {},
    { queries: [{ idsQuery: { ids: [b.sessionId] } }] },
    { queries: [{ userIdQuery: { id: b.humanId } }] },
  ],
};

const caseName = (service: DescService, method: string) => `${service.name}.${method}`;
const ALL_METHODS = SERVICES.flatMap((service) => service.methods.map((method) => ({ service, method })));

/** Failures that deny or hide: never a success, never a validation error that could mask either. */
const DENIALS = new Set([Code.PermissionDenied, Code.NotFound, Code.FailedPrecondition]);

describe("cross-organisation denial", () => {
  const up = useUserport();

  it("has a case for every RPC of the management, user, admin and session services", () => {
    const missing = ALL_METHODS.map(({ service, method }) => caseName(service, method.name)).filter((name) => !CASES[name]);
    expect(missing, "RPCs without a cross-organisation case in test/cross-org.test.ts").toEqual([]);
  });

  describe.each<TransportName>(["grpc-js", "rest"])("over %s", (transport) => {
    let a: ApiCaller;
    /** A's callers of the session service: its owner, its user manager, and a user without roles. */
    let sessionCallers: { role: string; token: string }[];
    let b: Victim;

    /** Everything of B a change would touch: rows of its users, tokens, members, domains, claims and events. */
    async function snapshotOfB() {
      const { db } = up.server;
      // Sessions of B's users, including any a call might have added.
      const sessions = await db.selectFrom("sessions").selectAll().where("user_org_id", "=", b.org.orgId).orderBy("id").execute();
      const ids = [b.org.orgId, b.humanId, b.machineId, b.org.userId, ...sessions.map((session) => session.id)];
      return {
        sessions,
        users: await db.selectFrom("users").selectAll().where("org_id", "=", b.org.orgId).orderBy("id").execute(),
        events: await db.selectFrom("events").select(["aggregate_id", "sequence", "type"]).where("aggregate_id", "in", ids).orderBy("position").execute(),
        tokens: await db.selectFrom("personal_access_tokens").select(["id", "user_id"]).where("user_id", "in", ids).orderBy("id").execute(),
        members: await db.selectFrom("members").selectAll().where("org_id", "=", b.org.orgId).orderBy("user_id").execute(),
        domains: await db.selectFrom("org_domains").selectAll().where("org_id", "=", b.org.orgId).orderBy("domain").execute(),
        policies: await db.selectFrom("domain_policies").selectAll().where("org_id", "=", b.org.orgId).execute(),
        lockoutPolicies: await db.selectFrom("lockout_policies").selectAll().where("org_id", "in", [b.org.orgId, ""]).execute(),
        importJobs: await db.selectFrom("import_jobs").selectAll().where("org_id", "=", b.org.orgId).orderBy("id").execute(),
        passkeys: await db.selectFrom("passkeys").selectAll().where("user_id", "in", ids).orderBy("id").execute(),
        codes: await db.selectFrom("codes").select(["id", "user_id", "kind", "used_at"]).where("user_id", "in", ids).orderBy("id").execute(),
        importResults: await db.selectFrom("import_job_records").selectAll().where("job_id", "=", b.jobId).orderBy("key").execute(),
        claims: await db.selectFrom("unique_constraints").selectAll().where("owner_id", "in", ids).orderBy("kind").orderBy("value").execute(),
        orgUsers: (await db.selectFrom("users").select("id").where("org_id", "=", b.org.orgId).execute()).length,
      };
    }

    beforeAll(async () => {
      a = await createApiCaller(up, "ORG_OWNER");
      sessionCallers = [
        { role: "ORG_OWNER", token: a.token },
        { role: "ORG_USER_MANAGER", token: (await createApiCaller(up, "ORG_USER_MANAGER", a.orgId)).token },
        { role: "no role", token: (await createApiCaller(up, undefined, a.orgId)).token },
      ];
      const org = await createApiCaller(up, "ORG_OWNER");
      const admin = up.caller("connect-json-h1");
      const headers = { "x-zitadel-orgid": org.orgId };
      const humanName = uniqueName("victim");
      const human = expectOk(await admin.call(V1.importHumanUser, v1ImportBody({ userName: humanName }), { headers }));
      const machine = expectOk(await admin.call(V1.addMachineUser, { userName: uniqueName("bot"), name: "Bot" }, { headers }));
      const token = expectOk(await admin.call(V1.addPersonalAccessToken, { userId: String(machine.userId) }, { headers }));
      expectOk(await admin.call(V1.generateMachineSecret, { userId: String(machine.userId) }, { headers }));
      expectOk(await admin.call(V1.addOrgMember, { userId: String(machine.userId), roles: ["ORG_USER_MANAGER"] }, { headers }));
      const domain = `${uniqueName("victim")}.example.com`;
      expectOk(await admin.call(V1.addOrgDomain, { domain }, { headers }));
      expectOk(await admin.call(V1.setUserMetadata, { id: String(human.userId), key: "secret", value: "cw==" }, { headers }));
      const idp = expectOk(
        await admin.call(
          V1.addGenericOIDCProvider,
          { name: uniqueName("idp"), issuer: "https://issuer.example.com", clientId: "c", clientSecret: "s" },
          { headers },
        ),
      );
      expectOk(await admin.call(ADMIN.addCustomDomainPolicy, { orgId: org.orgId, validateOrgDomains: false }));
      expectOk(await admin.call(V1.addCustomLockoutPolicy, { maxPasswordAttempts: 5 }, { headers }));
      // The administrator creates it, as a login client would: an organisation's roles cannot.
      const session = expectOk(
        await admin.call(SESSIONS.createSession, {
          checks: { user: { userId: String(human.userId) } },
          metadata: { secret: "cw==" },
          userAgent: { fingerprintId: "victim-agent" },
        }),
      );
      const passkey = expectOk(await admin.call(V2.registerPasskey, { userId: String(human.userId) }));
      // Made READY here (the ceremony needs a browser, test/passkeys.test.ts), so that a read
      // that reached B would show it.
      await up.server.db
        .updateTable("passkeys")
        .set({
          state: "READY",
          name: "victim key",
          credential_id: Buffer.from(uniqueName("victim-credential")).toString("base64url"),
          public_key: "pQECAyYgASFYIA",
        })
        .where("id", "=", String(passkey.passkeyId))
        .execute();
      const jobResponse = await fetch(`${up.server.url}/migration/v1/jobs`, {
        method: "POST",
        headers: { authorization: `Bearer ${org.token}`, "content-type": "application/json" },
        body: "{}",
      });
      const jobId = String(((await jobResponse.json()) as { job: JsonObject }).job.id);
      const uploaded = await fetch(`${up.server.url}/migration/v1/jobs/${jobId}/records`, {
        method: "POST",
        headers: { authorization: `Bearer ${org.token}`, "content-type": "application/x-ndjson" },
        body: JSON.stringify({
          key: "b-1",
          human: {
            username: uniqueName("bjob"),
            profile: { givenName: "B", familyName: "Job" },
            email: { email: `${uniqueName("bjob")}@example.com`, isVerified: true },
          },
        }),
      });
      expect(uploaded.status).toBe(200);
      b = {
        jobId,
        org,
        domain,
        humanId: String(human.userId),
        humanName,
        machineId: String(machine.userId),
        tokenId: String(token.tokenId),
        idpId: String(idp.id),
        sessionId: String(session.sessionId),
        passkeyId: String(passkey.passkeyId),
      };
    });

    it("B's owner reads and lists B's session without its token: the session cases deny for the organisation", async () => {
      const caller = up.caller(transport);
      const read = expectOk(await caller.call(SESSIONS.getSession, { sessionId: b.sessionId }, { token: b.org.token }));
      expect((read.session as JsonObject).id).toBe(b.sessionId);
      const list = expectOk(await caller.call(SESSIONS.listSessions, { queries: [{ userIdQuery: { id: b.humanId } }] }, { token: b.org.token }));
      expect((list.sessions as JsonObject[]).map((session) => session.id)).toEqual([b.sessionId]);
    });

    /** Fails unless the call was denied or hid B, or succeeded showing nothing of B. */
    function expectNothingOfB(name: string, result: CallResult): void {
      if (!result.ok) {
        expect(DENIALS.has(result.error.code), `${name}: ${Code[result.error.code]} ${result.error.message}`).toBe(true);
        return;
      }
      const seen = JSON.stringify(result.json);
      for (const secret of [b.org.orgId, b.humanId, b.machineId, b.humanName, b.tokenId, b.domain, b.idpId, b.sessionId, b.jobId, b.passkeyId]) {
        expect(seen, `${name} succeeded and showed ${secret} of B`).not.toContain(secret);
      }
    }

    for (const { service, method } of ALL_METHODS) {
      const name = caseName(service, method.name);
      it(`${name} cannot reach B`, async () => {
        const build = CASES[name];
        // Without a case this RPC is unproven: fail here too, not only in the "has a case" test.
        expect(build, `${name} has no cross-organisation case`).toBeDefined();
        if (!build) throw new Error(`${name} has no cross-organisation case`);
        const before = await snapshotOfB();
        const built = build(b);
        for (const request of Array.isArray(built) ? built : [built]) {
          if (method.methodKind === "bidi_streaming") {
            // ImportUsers: a stream over gRPC (no REST binding); over REST, the NDJSON upload into B's job.
            const record = {
              human: {
                username: uniqueName("intruder"),
                profile: { givenName: "In", familyName: "Truder" },
                email: { email: `${uniqueName("in")}@example.com`, isVerified: true },
              },
            };
            for (const headers of [{}, { "x-zitadel-orgid": b.org.orgId }] as Record<string, string>[]) {
              const label = `${name} ${JSON.stringify({ request, headers })}`;
              if (transport === "rest") {
                const response = await fetch(`${up.server.url}/migration/v1/jobs/${b.jobId}/records`, {
                  method: "POST",
                  headers: { authorization: `Bearer ${a.token}`, "content-type": "application/x-ndjson", ...headers },
                  body: JSON.stringify(record),
                });
                expect([403, 404], label).toContain(response.status);
                continue;
              }
              const run = await runImport(up.server.url, a.token, "grpc-js", request.options as JsonObject, [[record]], headers);
              expect(run.results, label).toEqual([]);
              expect(run.error, label).toBeDefined();
              expect(DENIALS.has(run.error!.code), `${label}: ${run.error?.message}`).toBe(true);
            }
          } else if (service === SessionService) {
            // Sessions are instance-wide: B is reached through its users and sessions, whichever
            // organisation the header names.
            for (const { role, token } of sessionCallers) {
              for (const headers of [{}, { "x-zitadel-orgid": b.org.orgId }] as Record<string, string>[]) {
                const result = await up.caller(transport).call(method as never, request, { token, headers });
                const label = `${name} by A's ${role} ${JSON.stringify({ request, headers })}`;
                expectNothingOfB(label, result);
                // A has no sessions at all, so not even the count may include B's.
                if (result.ok && method.name === "ListSessions") expect((result.json.details as JsonObject).totalResult ?? "0", label).toBe("0");
              }
            }
          } else if (service === UserService) {
            expectNothingOfB(name, await up.caller(transport).call(method as never, request, { token: a.token }));
          } else {
            // In B's context (or naming B), the permission check refuses: PERMISSION_DENIED.
            const inB = await up.caller(transport).call(method as never, request, {
              token: a.token,
              headers: { "x-zitadel-orgid": b.org.orgId },
            });
            expect(inB.ok, `${name} in B's context succeeded: ${JSON.stringify(inB)}`).toBe(false);
            if (!inB.ok) expect(Code[inB.error.code], `${name}: ${inB.error.message}`).toBe(Code[Code.PermissionDenied]);
            // In A's own context, B's objects are not there (or the call succeeds on A's own things).
            if (service === ManagementService)
              expectNothingOfB(`${name} (A's context)`, await up.caller(transport).call(method as never, request, { token: a.token }));
          }
        }
        expect(await snapshotOfB(), `${name} changed B`).toEqual(before);
      });
    }
  });
});

/**
 * The same denial for PingOne's API (src/pingone): a token holding ORG_OWNER of population A
 * tries every route against population B (B's users, B's population). Each must answer 403
 * ACCESS_FAILED or 404 NOT_FOUND in PingOne's shape, and B must be unchanged. Routes come from
 * the facade's own list, so a route added without a case fails "has a case".
 */
describe("cross-organisation denial over PingOne's API", () => {
  const up = useUserport();
  type PingOneCase = (b: { popId: string; userId: string; schemaId: string; attributeId: string; gatewayId: string }) => {
    media?: string;
    body?: unknown;
    path: string;
  };
  const P = "/v1/environments/{env}";
  const PINGONE_CASES: Record<string, PingOneCase> = {
    // Environment-wide reads are allowed, but show nothing of B's users or population.
    "GET /v1/environments": () => ({ path: "/v1/environments" }),
    "GET /v1/environments/:envId": () => ({ path: P }),
    "GET /v1/environments/:envId/users": () => ({ path: `${P}/users` }),
    "POST /v1/environments/:envId/users": (b) => ({
      path: `${P}/users`,
      media: "application/json",
      body: { username: uniqueName(), population: { id: b.popId } },
    }),
    "GET /v1/environments/:envId/users/:userId": (b) => ({ path: `${P}/users/${b.userId}` }),
    "PUT /v1/environments/:envId/users/:userId": (b) => ({ path: `${P}/users/${b.userId}`, media: "application/json", body: { username: uniqueName() } }),
    "PATCH /v1/environments/:envId/users/:userId": (b) => ({ path: `${P}/users/${b.userId}`, media: "application/json", body: { title: "x" } }),
    "DELETE /v1/environments/:envId/users/:userId": (b) => ({ path: `${P}/users/${b.userId}` }),
    "POST /v1/environments/:envId/users/:userId": (b) => ({
      path: `${P}/users/${b.userId}`,
      media: "application/vnd.pingidentity.account.lock+json",
      body: "",
    }),
    "GET /v1/environments/:envId/users/:userId/enabled": (b) => ({ path: `${P}/users/${b.userId}/enabled` }),
    "PUT /v1/environments/:envId/users/:userId/enabled": (b) => ({
      path: `${P}/users/${b.userId}/enabled`,
      media: "application/json",
      body: { enabled: false },
    }),
    "GET /v1/environments/:envId/users/:userId/mfaEnabled": (b) => ({ path: `${P}/users/${b.userId}/mfaEnabled` }),
    "PUT /v1/environments/:envId/users/:userId/mfaEnabled": (b) => ({
      path: `${P}/users/${b.userId}/mfaEnabled`,
      media: "application/json",
      body: { mfaEnabled: true },
    }),
    "GET /v1/environments/:envId/users/:userId/population": (b) => ({ path: `${P}/users/${b.userId}/population` }),
    "PUT /v1/environments/:envId/users/:userId/population": (b) => ({
      path: `${P}/users/${b.userId}/population`,
      media: "application/json",
      body: { id: b.popId },
    }),
    "GET /v1/environments/:envId/users/:userId/password": (b) => ({ path: `${P}/users/${b.userId}/password` }),
    "PUT /v1/environments/:envId/users/:userId/password": (b) => ({
      path: `${P}/users/${b.userId}/password`,
      media: "application/vnd.pingidentity.password.set+json",
      body: { value: "Taken-Over-Passw0rd!" },
    }),
    "POST /v1/environments/:envId/users/:userId/password": (b) => ({
      path: `${P}/users/${b.userId}/password`,
      media: "application/vnd.pingidentity.password.check+json",
      body: { password: GOOD_PASSWORD },
    }),
    "GET /v1/environments/:envId/populations": () => ({ path: `${P}/populations` }),
    "POST /v1/environments/:envId/populations": () => ({ path: `${P}/populations`, media: "application/json", body: { name: uniqueName("pop") } }),
    "GET /v1/environments/:envId/populations/:popId": (b) => ({ path: `${P}/populations/${b.popId}` }),
    "PUT /v1/environments/:envId/populations/:popId": (b) => ({
      path: `${P}/populations/${b.popId}`,
      media: "application/json",
      body: { name: uniqueName("taken") },
    }),
    "DELETE /v1/environments/:envId/populations/:popId": (b) => ({ path: `${P}/populations/${b.popId}` }),
    // The user schema is the environment's: organisation roles neither read nor change it.
    "GET /v1/environments/:envId/schemas": () => ({ path: `${P}/schemas` }),
    "GET /v1/environments/:envId/schemas/:schemaId": (b) => ({ path: `${P}/schemas/${b.schemaId}` }),
    "GET /v1/environments/:envId/schemas/:schemaId/attributes": (b) => ({ path: `${P}/schemas/${b.schemaId}/attributes` }),
    "POST /v1/environments/:envId/schemas/:schemaId/attributes": (b) => ({
      path: `${P}/schemas/${b.schemaId}/attributes`,
      media: "application/json",
      body: { name: "stolen", type: "STRING" },
    }),
    "GET /v1/environments/:envId/schemas/:schemaId/attributes/:attributeId": (b) => ({ path: `${P}/schemas/${b.schemaId}/attributes/${b.attributeId}` }),
    "PUT /v1/environments/:envId/schemas/:schemaId/attributes/:attributeId": (b) => ({
      path: `${P}/schemas/${b.schemaId}/attributes/${b.attributeId}`,
      media: "application/json",
      body: { name: "renamed", type: "STRING" },
    }),
    "DELETE /v1/environments/:envId/schemas/:schemaId/attributes/:attributeId": (b) => ({ path: `${P}/schemas/${b.schemaId}/attributes/${b.attributeId}` }),
    // LDAP gateways are the environment's too (iam.policy.*): organisation roles neither see nor change them.
    "GET /v1/environments/:envId/gateways": () => ({ path: `${P}/gateways` }),
    "POST /v1/environments/:envId/gateways": () => ({ path: `${P}/gateways`, media: "application/json", body: gatewayBody() }),
    "GET /v1/environments/:envId/gateways/:gatewayId": (b) => ({ path: `${P}/gateways/${b.gatewayId}` }),
    "PUT /v1/environments/:envId/gateways/:gatewayId": (b) => ({ path: `${P}/gateways/${b.gatewayId}`, media: "application/json", body: gatewayBody() }),
    "DELETE /v1/environments/:envId/gateways/:gatewayId": (b) => ({ path: `${P}/gateways/${b.gatewayId}` }),
  };
  function gatewayBody() {
    return {
      name: uniqueName("gateway"),
      type: "LDAP",
      enabled: true,
      vendor: "OpenDJ Directory Server",
      bindDN: "cn=gateway,dc=example,dc=com",
      bindPassword: "Hijacked-Bind-1!",
      serversHostAndPort: ["127.0.0.1:1"],
      userTypes: [{ name: "All", passwordAuthority: "LDAP", searchBaseDn: "dc=example,dc=com", orderedCorrelationAttributes: ["uid"] }],
    };
  }
  /** Environment-wide reads an organisation owner may make: they must succeed showing nothing of B. */
  const ALLOWED_READS = new Set([
    "GET /v1/environments",
    "GET /v1/environments/:envId",
    "GET /v1/environments/:envId/users",
    "GET /v1/environments/:envId/populations",
  ]);

  let a: ApiCaller;
  let b: { popId: string; userId: string; username: string; schemaId: string; attributeId: string; gatewayId: string };
  let env = "";

  const request = async (token: string, method: string, path: string, media?: string, body?: unknown) => {
    const response = await fetch(up.server.url + path.replace("{env}", env), {
      method,
      headers: { authorization: `Bearer ${token}`, ...(media ? { "content-type": media } : {}) },
      ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {}),
    });
    const raw = await response.text();
    return { status: response.status, raw, json: raw ? (JSON.parse(raw) as Record<string, unknown>) : undefined };
  };

  async function snapshotOfB() {
    const { db } = up.server;
    return {
      users: await db.selectFrom("users").selectAll().where("org_id", "=", b.popId).orderBy("id").execute(),
      orgs: await db.selectFrom("orgs").selectAll().where("id", "=", b.popId).execute(),
      events: await db
        .selectFrom("events")
        .select(["aggregate_id", "sequence", "type"])
        .where("aggregate_id", "in", [b.popId, b.userId])
        .orderBy("position")
        .execute(),
      metadata: await db.selectFrom("user_metadata").selectAll().where("user_id", "=", b.userId).execute(),
      objects: await db.selectFrom("directory_objects").selectAll().orderBy("kind").orderBy("id").execute(),
      instance: await db.selectFrom("instances").selectAll().execute(),
    };
  }

  beforeAll(async () => {
    a = await createApiCaller(up, "ORG_OWNER");
    const admin = up.server.token;
    env = String(((await request(admin, "GET", "/v1/environments")).json!._embedded as { environments: Array<{ id: string }> }).environments[0]!.id);
    const pop = await request(admin, "POST", "/v1/environments/{env}/populations", "application/json", { name: uniqueName("victims") });
    const popId = String(pop.json!.id);
    const username = uniqueName("victim");
    const user = await request(admin, "POST", "/v1/environments/{env}/users", "application/vnd.pingidentity.user.import+json", {
      username,
      population: { id: popId },
      title: "secret-title",
      password: { value: GOOD_PASSWORD },
    });
    expect(user.status, user.raw).toBe(201);
    const schemas = await request(admin, "GET", "/v1/environments/{env}/schemas");
    const schemaId = String((schemas.json!._embedded as { schemas: Array<{ id: string }> }).schemas[0]!.id);
    const attribute = await request(admin, "POST", `/v1/environments/{env}/schemas/${schemaId}/attributes`, "application/json", {
      name: "badge",
      type: "STRING",
    });
    expect(attribute.status, attribute.raw).toBe(201);
    const gateway = await request(admin, "POST", "/v1/environments/{env}/gateways", "application/json", gatewayBody());
    expect(gateway.status, gateway.raw).toBe(201);
    b = { popId, userId: String(user.json!.id), username, schemaId, attributeId: String(attribute.json!.id), gatewayId: String(gateway.json!.id) };
  });

  it("has a case for every route of the facade", () => {
    const missing = [...PINGONE_ROUTES].filter((route) => !PINGONE_CASES[route]);
    expect(PINGONE_ROUTES.size).toBeGreaterThan(20);
    expect(missing, "PingOne routes without a cross-organisation case").toEqual([]);
  });

  for (const [route, build] of Object.entries(PINGONE_CASES)) {
    it(`${route} cannot reach B`, async () => {
      const before = await snapshotOfB();
      const method = route.split(" ")[0]!;
      const { path, media, body } = build(b);
      const result = await request(a.token, method, path, media, body);
      if (ALLOWED_READS.has(route)) {
        expect(result.status, result.raw).toBe(200);
        for (const secret of [b.userId, b.username, "secret-title"]) expect(result.raw, `${route} showed ${secret}`).not.toContain(secret);
        if (route.endsWith("/populations")) expect(result.raw).not.toContain(b.popId);
      } else {
        expect([403, 404], `${route}: ${result.raw}`).toContain(result.status);
        expect(result.json).toMatchObject({ code: result.status === 403 ? "ACCESS_FAILED" : "NOT_FOUND" });
        expect(String(result.json!.id)).toMatch(/^[0-9a-f-]{36}$/);
      }
      expect(await snapshotOfB(), `${route} changed B`).toEqual(before);
    });
  }
});
