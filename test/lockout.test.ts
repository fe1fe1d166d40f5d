/**
 * The lockout policy API: management v1 GetLockoutPolicy,
 * GetDefaultLockoutPolicy, AddCustomLockoutPolicy, UpdateCustomLockoutPolicy,
 * ResetLockoutPolicyToDefault and admin v1
 * GetLockoutPolicy, UpdateLockoutPolicy, with ZITADEL's errors and events
 * (internal/command/org_policy_lockout.go, instance_policy_lockout.go), and the policy really
 * enforced by CreateSession's password checks.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { ADMIN, type CallResult, SESSIONS, type TransportName, type UnaryMethod, V1, V2 } from "./helpers/clients.js";
import { expectCode, expectOk, expectZitadelError } from "./helpers/expectations.js";
import { type ApiCaller, bcryptHash, createApiCaller, RFC3339, type Userport, useUserport, v1ImportBody } from "./helpers/fixtures.js";

/** Writes over gRPC (grpc-js), Connect JSON and REST; reads also over gRPC-Web. */
const WRITERS: TransportName[] = ["grpc-js", "connect-json-h1", "rest"];
const READERS: TransportName[] = [...WRITERS, "grpc-web"];
const PASSWORD = "Imported-Passw0rd!";
/** USERPORT_MAX_PASSWORD_ATTEMPTS of the servers below: the instance's policy until one is stored. */
const CONFIGURED = 3;

const instanceIdOf = async (up: Userport) => (await up.server.db.selectFrom("instances").select("id").executeTakeFirstOrThrow()).id;

async function eventTypes(up: Userport, aggregateId: string, prefix: string): Promise<string[]> {
  const rows = await up.server.db.selectFrom("events").select("type").where("aggregate_id", "=", aggregateId).orderBy("sequence").execute();
  return rows.map((row) => row.type).filter((type) => type.startsWith(prefix));
}

/** A failed password check: ZITADEL answers it with a CredentialsCheckError carrying the count. */
function expectWrongPassword(result: CallResult, failedAttempts: number): void {
  const error = expectCode(result, Code.InvalidArgument);
  expect(error.credentialChecks).toEqual([{ id: "COMMAND-3M0fs", message: "Password is invalid", failedAttempts }]);
}

/** Imports a user with a password into `orgId` and returns a wrong-password sign-in over `transport`. */
async function userWithPassword(up: Userport, transport: TransportName, orgId: string) {
  const body = v1ImportBody({ hashedPassword: { value: bcryptHash(PASSWORD) } });
  const userId = String(expectOk(await up.caller("rest").call(V1.importHumanUser, body, { headers: { "x-zitadel-orgid": orgId } })).userId);
  const signIn = (password: string) => up.caller(transport).call(SESSIONS.createSession, { checks: { user: { userId }, password: { password } } });
  const state = async () => (expectOk(await up.caller(transport).call(V2.getUserByID, { userId })).user as JsonObject).state;
  return { userId, signIn, state };
}

describe("an organisation's lockout policy (management v1)", () => {
  const up = useUserport({ maxPasswordAttempts: CONFIGURED });

  describe.each(WRITERS)("over %s", (transport) => {
    let owner: ApiCaller;
    beforeAll(async () => {
      owner = await createApiCaller(up, "ORG_OWNER");
    });
    const call = (method: UnaryMethod, body: JsonObject = {}) => up.caller(transport).call(method, body, { token: owner.token });

    it("reads the instance's policy as the default, then adds, changes and resets its own (events org.policy.lockout.*)", async () => {
      const instanceId = await instanceIdOf(up);
      const initial = expectOk(await call(V1.getLockoutPolicy));
      expect(initial).toMatchObject({
        isDefault: true,
        policy: { isDefault: true, maxPasswordAttempts: String(CONFIGURED), details: { resourceOwner: instanceId } },
      });
      expect(initial.policy).not.toHaveProperty("maxOtpAttempts");

      const added = expectOk(await call(V1.addCustomLockoutPolicy, { maxPasswordAttempts: 2 }));
      expect(added.details).toMatchObject({ resourceOwner: owner.orgId, changeDate: expect.stringMatching(RFC3339) });
      const own = expectOk(await call(V1.getLockoutPolicy));
      expect(own).not.toHaveProperty("isDefault");
      expect(own.policy).toMatchObject({ maxPasswordAttempts: "2", details: { resourceOwner: owner.orgId, sequence: (added.details as JsonObject).sequence } });
      expect(own.policy).not.toHaveProperty("isDefault");

      const changed = expectOk(await call(V1.updateCustomLockoutPolicy, { maxPasswordAttempts: 4, maxOtpAttempts: 1 }));
      expect(Number((changed.details as JsonObject).sequence)).toBe(Number((added.details as JsonObject).sequence) + 1);
      expect(expectOk(await call(V1.getLockoutPolicy)).policy).toMatchObject({ maxPasswordAttempts: "4", maxOtpAttempts: "1" });

      expectOk(await call(V1.resetLockoutPolicyToDefault));
      expect(expectOk(await call(V1.getLockoutPolicy))).toMatchObject({ isDefault: true, policy: { maxPasswordAttempts: String(CONFIGURED) } });
      expect(await eventTypes(up, owner.orgId, "org.policy.lockout")).toEqual([
        "org.policy.lockout.added",
        "org.policy.lockout.changed",
        "org.policy.lockout.removed",
      ]);
    });

    it("refuses a second policy (ORG-0olDf), an unchanged one (ORG-0JFSr), and changing or resetting none (ORG-ADfs1, ORG-D4zuz)", async () => {
      expectZitadelError(await call(V1.updateCustomLockoutPolicy, { maxPasswordAttempts: 1 }), Code.NotFound, "ORG-ADfs1", "Errors.Org.LockoutPolicy.NotFound");
      expectZitadelError(await call(V1.resetLockoutPolicyToDefault), Code.NotFound, "ORG-D4zuz", "Errors.Org.LockoutPolicy.NotFound");
      expectOk(await call(V1.addCustomLockoutPolicy, { maxPasswordAttempts: 5 }));
      expectZitadelError(
        await call(V1.addCustomLockoutPolicy, { maxPasswordAttempts: 6 }),
        Code.AlreadyExists,
        "ORG-0olDf",
        "Errors.ORG.LockoutPolicy.AlreadyExists",
      );
      expectZitadelError(
        await call(V1.updateCustomLockoutPolicy, { maxPasswordAttempts: 5 }),
        Code.FailedPrecondition,
        "ORG-0JFSr",
        "Errors.Org.LockoutPolicy.NotChanged",
      );
      expectOk(await call(V1.resetLockoutPolicyToDefault));
    });

    it("needs policy.write / policy.delete to change it and policy.read to read it (AUTH-5mWD2)", async () => {
      const userManager = await createApiCaller(up, "ORG_USER_MANAGER", owner.orgId);
      const noRole = await createApiCaller(up, undefined, owner.orgId);
      const as = (token: string, method: UnaryMethod, body: JsonObject = {}) => up.caller(transport).call(method, body, { token });
      const denied = (result: Awaited<ReturnType<typeof as>>) =>
        expectZitadelError(result, Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
      // ORG_USER_MANAGER holds policy.read only.
      expectOk(await as(userManager.token, V1.getLockoutPolicy));
      denied(await as(userManager.token, V1.addCustomLockoutPolicy, { maxPasswordAttempts: 1 }));
      denied(await as(userManager.token, V1.updateCustomLockoutPolicy, { maxPasswordAttempts: 1 }));
      denied(await as(userManager.token, V1.resetLockoutPolicyToDefault));
      denied(await as(noRole.token, V1.getLockoutPolicy));
      expect(await eventTypes(up, owner.orgId, "org.policy.lockout")).toHaveLength(5);
    });
  });

  it.each(READERS)("GetLockoutPolicy reads the organisation's own policy (%s)", async (transport) => {
    const owner = await createApiCaller(up, "ORG_OWNER");
    expectOk(await up.caller("rest").call(V1.addCustomLockoutPolicy, { maxPasswordAttempts: 7, maxOtpAttempts: 2 }, { token: owner.token }));
    const read = expectOk(await up.caller(transport).call(V1.getLockoutPolicy, {}, { token: owner.token }));
    expect(read.policy).toMatchObject({ maxPasswordAttempts: "7", maxOtpAttempts: "2", details: { resourceOwner: owner.orgId } });
  });

  it.each(READERS)("GetDefaultLockoutPolicy reads the instance's policy, not the organisation's own; policy.read (AUTH-5mWD2) (%s)", async (transport) => {
    const instanceId = await instanceIdOf(up);
    const owner = await createApiCaller(up, "ORG_OWNER");
    const userManager = await createApiCaller(up, "ORG_USER_MANAGER", owner.orgId);
    const noRole = await createApiCaller(up, undefined, owner.orgId);
    expectOk(await up.caller("rest").call(V1.addCustomLockoutPolicy, { maxPasswordAttempts: 7, maxOtpAttempts: 2 }, { token: owner.token }));
    for (const token of [owner.token, userManager.token]) {
      const read = expectOk(await up.caller(transport).call(V1.getDefaultLockoutPolicy, {}, { token }));
      // The configured default nobody stored: only its owner in details, max_otp_attempts 0 left out.
      expect(read).toEqual({ policy: { details: { resourceOwner: instanceId }, maxPasswordAttempts: String(CONFIGURED), isDefault: true } });
    }
    expectZitadelError(
      await up.caller(transport).call(V1.getDefaultLockoutPolicy, {}, { token: noRole.token }),
      Code.PermissionDenied,
      "AUTH-5mWD2",
      "No matching permissions found",
    );
  });

  it.each(WRITERS)("is enforced: a policy of 2 locks on the second wrong password; reset, the instance's 3 applies (%s)", async (transport) => {
    const owner = await createApiCaller(up, "ORG_OWNER");
    const asOwner = { token: owner.token };
    expectOk(await up.caller(transport).call(V1.addCustomLockoutPolicy, { maxPasswordAttempts: 2 }, asOwner));
    const strict = await userWithPassword(up, transport, owner.orgId);
    expectWrongPassword(await strict.signIn("wrong-Passw0rd!"), 1);
    expect(await strict.state()).toBe("USER_STATE_ACTIVE");
    expectWrongPassword(await strict.signIn("wrong-Passw0rd!"), 2);
    expect(await strict.state()).toBe("USER_STATE_LOCKED");

    expectOk(await up.caller(transport).call(V1.resetLockoutPolicyToDefault, {}, asOwner));
    const lenient = await userWithPassword(up, transport, owner.orgId);
    for (let attempt = 1; attempt < CONFIGURED; attempt++) {
      expectWrongPassword(await lenient.signIn("wrong-Passw0rd!"), attempt);
    }
    expect(await lenient.state()).toBe("USER_STATE_ACTIVE");
    expectWrongPassword(await lenient.signIn("wrong-Passw0rd!"), CONFIGURED);
    expect(await lenient.state()).toBe("USER_STATE_LOCKED");
  });
});

describe("the instance's lockout policy (admin v1)", () => {
  const up = useUserport({ maxPasswordAttempts: CONFIGURED });

  it("is USERPORT_MAX_PASSWORD_ATTEMPTS until an administrator changes it; unchanged values are refused (INSTANCE-0psjF)", async () => {
    const instanceId = await instanceIdOf(up);
    for (const transport of READERS) {
      const read = expectOk(await up.caller(transport).call(ADMIN.getLockoutPolicy, {}));
      expect(read.policy).toEqual({ details: { resourceOwner: instanceId }, maxPasswordAttempts: String(CONFIGURED), isDefault: true });
    }
    expectZitadelError(
      await up.caller("grpc-js").call(ADMIN.updateLockoutPolicy, { maxPasswordAttempts: CONFIGURED }),
      Code.FailedPrecondition,
      "INSTANCE-0psjF",
      "Errors.IAM.LockoutPolicy.NotChanged",
    );
  });

  it.each(WRITERS.map((transport, i) => [transport, 4 + i] as const))(
    "UpdateLockoutPolicy stores the instance's policy, which organisations without their own then follow (%s)",
    async (transport, max) => {
      const instanceId = await instanceIdOf(up);
      const updated = expectOk(await up.caller(transport).call(ADMIN.updateLockoutPolicy, { maxPasswordAttempts: max, maxOtpAttempts: 1 }));
      expect(updated.details).toMatchObject({ resourceOwner: instanceId, changeDate: expect.stringMatching(RFC3339) });
      for (const reader of READERS) {
        const read = expectOk(await up.caller(reader).call(ADMIN.getLockoutPolicy, {}));
        expect(read.policy).toMatchObject({
          maxPasswordAttempts: String(max),
          maxOtpAttempts: "1",
          isDefault: true,
          details: { resourceOwner: instanceId, sequence: (updated.details as JsonObject).sequence },
        });
      }
      expectZitadelError(
        await up.caller(transport).call(ADMIN.updateLockoutPolicy, { maxPasswordAttempts: max, maxOtpAttempts: 1 }),
        Code.FailedPrecondition,
        "INSTANCE-0psjF",
        "Errors.IAM.LockoutPolicy.NotChanged",
      );
      const owner = await createApiCaller(up, "ORG_OWNER");
      const viaOrg = expectOk(await up.caller(transport).call(V1.getLockoutPolicy, {}, { token: owner.token }));
      expect(viaOrg).toMatchObject({ isDefault: true, policy: { maxPasswordAttempts: String(max), details: { resourceOwner: instanceId } } });
      const viaDefault = expectOk(await up.caller(transport).call(V1.getDefaultLockoutPolicy, {}, { token: owner.token }));
      // The same policy, with the same change metadata, as the admin API reads.
      expect(viaDefault.policy).toEqual(expectOk(await up.caller(transport).call(ADMIN.getLockoutPolicy, {})).policy);
      expect(viaDefault.policy).toMatchObject({ maxPasswordAttempts: String(max), maxOtpAttempts: "1", isDefault: true });
      const user = await userWithPassword(up, transport, owner.orgId);
      for (let attempt = 1; attempt < max; attempt++) expectWrongPassword(await user.signIn("wrong-Passw0rd!"), attempt);
      expect(await user.state()).toBe("USER_STATE_ACTIVE");
      expectWrongPassword(await user.signIn("wrong-Passw0rd!"), max);
      expect(await user.state()).toBe("USER_STATE_LOCKED");
    },
  );

  it("writes instance.policy.lockout.changed events on the instance", async () => {
    expect(await eventTypes(up, await instanceIdOf(up), "instance.policy.lockout")).toEqual(WRITERS.map(() => "instance.policy.lockout.changed"));
  });

  it.each(WRITERS)("is for instance roles only: an organisation's owner is refused (AUTH-5mWD2) (%s)", async (transport) => {
    const owner = await createApiCaller(up, "ORG_OWNER");
    for (const [method, body] of [
      [ADMIN.getLockoutPolicy, {}],
      [ADMIN.updateLockoutPolicy, { maxPasswordAttempts: 1 }],
    ] as const) {
      expectZitadelError(
        await up.caller(transport).call(method, body, { token: owner.token }),
        Code.PermissionDenied,
        "AUTH-5mWD2",
        "No matching permissions found",
      );
    }
  });
});
