/**
 * User state changes — management v1 DeactivateUser, ReactivateUser, LockUser, UnlockUser and
 * RemoveUser; user v2 DeactivateUser, ReactivateUser, LockUser, UnlockUser and DeleteUser —
 * through every transport, against ZITADEL's documented behaviour (ZITADEL's internal/command/user.go, user_v2.go).
 */
import { randomBytes } from "node:crypto";
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { type CallOptions, type CallResult, IN_PROCESS, type UnaryMethod, V1, V2 } from "./helpers/clients.js";
import { expectCode, expectOk, expectPgvError, expectZitadelError, pgvLength } from "./helpers/expectations.js";
import { bcryptHash, RFC3339, uniqueName, USER_ID, seedScopedCaller, useUserport, v1ImportBody, v2AddBody } from "./helpers/fixtures.js";

const up = useUserport();
const HASH = bcryptHash("imported-Passw0rd!");

const APIS = ["v1", "v2"] as const;
type Api = (typeof APIS)[number];
type Change = "deactivate" | "reactivate" | "lock" | "unlock" | "remove";
type State = "ACTIVE" | "INACTIVE" | "LOCKED" | "INITIAL";

const METHODS: Record<Api, Record<Change, UnaryMethod>> = {
  v1: {
    deactivate: V1.deactivateUser,
    reactivate: V1.reactivateUser,
    lock: V1.lockUser,
    unlock: V1.unlockUser,
    remove: V1.removeUser,
  },
  v2: {
    deactivate: V2.deactivateUser,
    reactivate: V2.reactivateUser,
    lock: V2.lockUser,
    unlock: V2.unlockUser,
    remove: V2.deleteUser,
  },
};

/** The request message of each RPC, as PGV names it. */
const REQUEST_FIELD: Record<Api, Record<Change, string>> = {
  v1: {
    deactivate: "DeactivateUserRequest.Id",
    reactivate: "ReactivateUserRequest.Id",
    lock: "LockUserRequest.Id",
    unlock: "UnlockUserRequest.Id",
    remove: "RemoveUserRequest.Id",
  },
  v2: {
    deactivate: "DeactivateUserRequest.UserId",
    reactivate: "ReactivateUserRequest.UserId",
    lock: "LockUserRequest.UserId",
    unlock: "UnlockUserRequest.UserId",
    remove: "DeleteUserRequest.UserId",
  },
};

const CHANGES = ["deactivate", "reactivate", "lock", "unlock", "remove"] as const satisfies readonly Change[];

/**
 * ZITADEL's ids for a user that is not found, and for a change the user's state forbids: the
 * management v1 commands' (§10.1a, §10.3), and the v2 commands' own (internal/command/user_v2.go).
 */
const V1_IDS = {
  notFound: {
    deactivate: "COMMAND-3M9ds",
    reactivate: "COMMAND-4M0sd",
    lock: "COMMAND-5M9fs",
    unlock: "COMMAND-M0dos",
    remove: "COMMAND-m9od",
  } satisfies Record<Change, string>,
  deactivateInitial: ["COMMAND-ke0fw", "User with state initial can only be deleted not deactivated"],
  alreadyInactive: ["COMMAND-5M0sf", "User already inactive"],
  notInactive: ["COMMAND-6M0sf", "User is not inactive"],
  notActiveOrInitial: ["COMMAND-3NN8v", "User is not active or initial"],
  notLocked: ["COMMAND-4M0ds", "User is not locked"],
} as const;
const V2_IDS = {
  notFound: {
    deactivate: "COMMAND-5gp2p62iin",
    reactivate: "COMMAND-9hy5kzbuk6",
    lock: "COMMAND-450yxuqrh1",
    unlock: "COMMAND-x377t913pw",
    remove: "COMMAND-bd4ir1mblj",
  } satisfies Record<Change, string>,
  deactivateInitial: ["COMMAND-gvx4kct9r2", "User with state initial can only be deleted not deactivated"],
  alreadyInactive: ["COMMAND-5gunjw0cd7", "User already inactive"],
  notInactive: ["COMMAND-s5qqcz97hf", "User is not inactive"],
  notActiveOrInitial: ["COMMAND-lgws8wtsqf", "User is not active or initial"],
  notLocked: ["COMMAND-olb9vb0oca", "User is not locked"],
} as const;
const IDS = { v1: V1_IDS, v2: V2_IDS } as const;
const NOT_FOUND_TEXT = "User could not be found";

function unknownId(): string {
  return `9${BigInt(`0x${randomBytes(7).toString("hex")}`)
    .toString()
    .padStart(17, "0")}`;
}

// The state machine is the domain's: its rules run once in process (the server's own handlers,
// authorisation and validation, through Connect's router transport) and once over REST, whose
// routes for these RPCs are their own; every transport's rendering of errors is
// test/users-wire.test.ts's and test/malformed-messages.test.ts's.
describe.each([IN_PROCESS, "rest"] as const)("user state changes over %s", (transport) => {
  const t = () => up.caller(transport);

  const idOf = (api: Api, userId: string): JsonObject => (api === "v1" ? { id: userId } : { userId });
  const change = (api: Api, what: Change, userId: string, options?: CallOptions) => t().call(METHODS[api][what], idOf(api, userId), options);

  /** A user of the default organisation: ACTIVE (verified email and a password) or INITIAL (neither). */
  async function newUser(state: "ACTIVE" | "INITIAL", extra: JsonObject = {}, options?: CallOptions) {
    const body = state === "ACTIVE" ? v1ImportBody({ hashedPassword: { value: HASH }, ...extra }) : v1ImportBody({ ...extra });
    const res = expectOk(await t().call(V1.importHumanUser, body, options));
    expect(res.userId).toMatch(USER_ID);
    const details = res.details as JsonObject;
    return { id: res.userId as string, userName: body.userName as string, sequence: Number(details.sequence) };
  }

  /** The user as read back by GetUserByID of the same API version (as the admin unless told). */
  async function readBack(api: Api, userId: string, options?: CallOptions) {
    const res = expectOk(await t().call(api === "v1" ? V1.getUserByID : V2.getUserByID, idOf(api, userId), options), 200);
    const user = res.user as JsonObject;
    const details = user.details as JsonObject;
    return { state: user.state as string, sequence: Number(details.sequence), changeDate: details.changeDate as string };
  }

  /** A successful change: `{details}` only, sequence one up, changeDate not before the last one. */
  function expectChanged(result: CallResult, api: Api, before: { sequence: number; changeDate?: string }, orgId: string) {
    const res = expectOk(result, 200);
    expect(Object.keys(res)).toEqual(["details"]);
    const details = res.details as JsonObject;
    if (api === "v1") {
      // v1 change details carry sequence, change date and resource owner, no creation date.
      expect(Object.keys(details).sort()).toEqual(["changeDate", "resourceOwner", "sequence"]);
    }
    expect(details).toMatchObject({ sequence: String(before.sequence + 1), resourceOwner: orgId });
    expect(details.changeDate).toMatch(RFC3339);
    if (before.changeDate !== undefined) {
      expect(Date.parse(details.changeDate as string)).toBeGreaterThanOrEqual(Date.parse(before.changeDate));
    }
    return { sequence: Number(details.sequence), changeDate: details.changeDate as string };
  }

  function expectRefused(result: CallResult, [id, text]: readonly [string, string]) {
    expectZitadelError(result, Code.FailedPrecondition, id, text);
  }

  describe.each(APIS)("%s", (api) => {
    it("walks ACTIVE → LOCKED → ACTIVE → INACTIVE → ACTIVE → LOCKED → INACTIVE, one sequence step and one event per change", async () => {
      const user = await newUser("ACTIVE");
      const start = await readBack(api, user.id);
      expect(start).toMatchObject({ state: "USER_STATE_ACTIVE", sequence: user.sequence });
      let last: { sequence: number; changeDate: string } = start;
      const eventsBefore = await up.eventTypes(user.id);

      const steps: Array<[Change, State, string]> = [
        ["lock", "LOCKED", "user.locked"],
        ["unlock", "ACTIVE", "user.unlocked"],
        ["deactivate", "INACTIVE", "user.deactivated"],
        ["reactivate", "ACTIVE", "user.reactivated"],
        ["lock", "LOCKED", "user.locked"],
        ["deactivate", "INACTIVE", "user.deactivated"],
      ];
      for (const [what, state] of steps) {
        const changed = expectChanged(await change(api, what, user.id), api, last, up.defaultOrgId);
        const read = await readBack(api, user.id);
        expect(read, `${what} → ${state}`).toEqual({ state: `USER_STATE_${state}`, ...changed });
        last = changed;
      }
      expect(last.sequence).toBe(user.sequence + steps.length);
      expect(Date.parse(last.changeDate)).toBeGreaterThan(Date.parse(start.changeDate));
      expect(await up.eventTypes(user.id)).toEqual([...eventsBefore, ...steps.map(([, , event]) => event)]);
    });

    it("locks an INITIAL user; refuses to deactivate, reactivate or unlock it (COMMAND-ke0fw, -6M0sf, -4M0ds)", async () => {
      const user = await newUser("INITIAL");
      const before = await readBack(api, user.id);
      expect(before.state).toBe("USER_STATE_INITIAL");

      expectRefused(await change(api, "deactivate", user.id), IDS[api].deactivateInitial);
      expectRefused(await change(api, "reactivate", user.id), IDS[api].notInactive);
      expectRefused(await change(api, "unlock", user.id), IDS[api].notLocked);
      expect(await readBack(api, user.id)).toEqual(before);

      // The change builds on the user's last event (the init code), which reads do not show: ZITADEL's
      // users projection does not date users by it (internal/query/projection/user.go).
      expectChanged(await change(api, "lock", user.id), api, { ...before, sequence: user.sequence }, up.defaultOrgId);
      expect((await readBack(api, user.id)).state).toBe("USER_STATE_LOCKED");
    });

    it("refuses what an ACTIVE user's state forbids (COMMAND-6M0sf, -4M0ds), leaving it unchanged", async () => {
      const user = await newUser("ACTIVE");
      const before = await readBack(api, user.id);
      expectRefused(await change(api, "reactivate", user.id), IDS[api].notInactive);
      expectRefused(await change(api, "unlock", user.id), IDS[api].notLocked);
      expect(await readBack(api, user.id)).toEqual(before);
    });

    it("refuses what a LOCKED user's state forbids (COMMAND-3NN8v, -6M0sf), leaving it unchanged", async () => {
      const user = await newUser("ACTIVE");
      expectOk(await change(api, "lock", user.id));
      const before = await readBack(api, user.id);
      expect(before.state).toBe("USER_STATE_LOCKED");
      expectRefused(await change(api, "lock", user.id), IDS[api].notActiveOrInitial);
      expectRefused(await change(api, "reactivate", user.id), IDS[api].notInactive);
      expect(await readBack(api, user.id)).toEqual(before);
    });

    it("refuses what an INACTIVE user's state forbids (COMMAND-5M0sf, -3NN8v, -4M0ds), leaving it unchanged", async () => {
      const user = await newUser("ACTIVE");
      expectOk(await change(api, "deactivate", user.id));
      const before = await readBack(api, user.id);
      expect(before.state).toBe("USER_STATE_INACTIVE");
      expectRefused(await change(api, "deactivate", user.id), IDS[api].alreadyInactive);
      expectRefused(await change(api, "lock", user.id), IDS[api].notActiveOrInitial);
      expectRefused(await change(api, "unlock", user.id), IDS[api].notLocked);
      expect(await readBack(api, user.id)).toEqual(before);
    });

    it.each(CHANGES)("answers %s of an unknown id with NotFound and the command's own id", async (what) => {
      expectZitadelError(await change(api, what, unknownId()), Code.NotFound, IDS[api].notFound[what], NOT_FOUND_TEXT);
    });

    it("removes a user: gone at once, a second removal is NotFound (COMMAND-m9od), its username free in any case", async () => {
      const user = await newUser("ACTIVE");
      const before = await readBack(api, user.id);
      // While the user exists its username is taken, whatever the case.
      expectCode(await t().call(V1.importHumanUser, v1ImportBody({ userName: user.userName.toUpperCase() })), Code.AlreadyExists);

      expectChanged(await change(api, "remove", user.id), api, before, up.defaultOrgId);
      expect((await up.eventTypes(user.id)).at(-1)).toBe("user.removed");

      const notFound = ["QUERY-Dfbg2", "User could not be found"] as const;
      expectZitadelError(await t().call(V1.getUserByID, { id: user.id }), Code.NotFound, ...notFound);
      expectZitadelError(await t().call(V2.getUserByID, { userId: user.id }), Code.NotFound, ...notFound);
      for (const what of CHANGES) {
        expectZitadelError(await change(api, what, user.id), Code.NotFound, IDS[api].notFound[what], NOT_FOUND_TEXT);
      }

      // The username is released at once: the same name in another case, then the very same name.
      const upper = expectOk(await t().call(V1.importHumanUser, v1ImportBody({ userName: user.userName.toUpperCase() })));
      expect(upper.userId).toMatch(USER_ID);
      expect(upper.userId).not.toBe(user.id);
      expectOk(await change(api, "remove", upper.userId as string));
      const same = await newUser("ACTIVE", { userName: user.userName });
      expect(same.id).not.toBe(user.id);
      expect(same.id).not.toBe(upper.userId);
      expect(await readBack(api, same.id)).toMatchObject({ state: "USER_STATE_ACTIVE", sequence: same.sequence });
    });

    it("lets exactly one of 10 parallel locks win; the others are refused with COMMAND-3NN8v", async () => {
      const user = await newUser("ACTIVE");
      const before = await readBack(api, user.id);
      const results = await Promise.all(Array.from({ length: 10 }, () => change(api, "lock", user.id)));
      const won = results.filter((result) => result.ok);
      expect(won).toHaveLength(1);
      expectChanged(won[0]!, api, before, up.defaultOrgId);
      for (const result of results.filter((r) => !r.ok)) expectRefused(result, IDS[api].notActiveOrInitial);
      expect(await readBack(api, user.id)).toMatchObject({ state: "USER_STATE_LOCKED", sequence: before.sequence + 1 });
      expect((await up.eventTypes(user.id)).filter((type) => type === "user.locked")).toHaveLength(1);
    });

    it("lets exactly one of 10 parallel removals win; the others are NotFound (COMMAND-m9od)", async () => {
      const user = await newUser("ACTIVE");
      const results = await Promise.all(Array.from({ length: 10 }, () => change(api, "remove", user.id)));
      expect(results.filter((result) => result.ok)).toHaveLength(1);
      for (const result of results.filter((r) => !r.ok)) {
        expectZitadelError(result, Code.NotFound, IDS[api].notFound.remove, NOT_FOUND_TEXT);
      }
      expect((await up.eventTypes(user.id)).filter((type) => type === "user.removed")).toHaveLength(1);
    });

    // An empty path segment cannot carry an empty id over REST.
    it.skipIf(transport === "rest")('rejects an empty id with PGV\'s text, e.g. "invalid LockUserRequest.Id: …"', async () => {
      for (const what of CHANGES) {
        expectPgvError(await change(api, what, ""), pgvLength(REQUEST_FIELD[api][what], 1, 200));
      }
    });

    it("rejects an id longer than 200 characters with PGV's text", async () => {
      for (const what of CHANGES) {
        expectPgvError(await change(api, what, "1".repeat(201)), pgvLength(REQUEST_FIELD[api][what], 1, 200));
      }
    });

    it("reaches a user whose caller-chosen id has 200 characters, the most v2 allows", async () => {
      const userId = `${uniqueName("long-id")}-`.padEnd(200, "x");
      expectOk(await t().call(V2.addHumanUser, v2AddBody({ userId })));
      const before = await readBack(api, userId);
      expect(before.state).toBe("USER_STATE_ACTIVE");
      expectChanged(await change(api, "lock", userId), api, before, up.defaultOrgId);
      expect((await readBack(api, userId)).state).toBe("USER_STATE_LOCKED");
      expectOk(await change(api, "remove", userId));
    });

    describe("a service user's token", () => {
      // The admin acts on the service user, which lives in its own organisation: v1 names that
      // organisation in x-zitadel-orgid, v2 finds the user across organisations.
      let svc: { orgId: string; token: string; userId: string };
      const asAdmin = (): CallOptions | undefined => (api === "v1" ? { headers: { "x-zitadel-orgid": svc.orgId } } : undefined);
      /** A call with the service user's own token (a read of itself, which its role allows). */
      const asService = () => t().call(V1.getUserByID, { id: svc.userId }, { token: svc.token });

      beforeAll(async () => {
        svc = await seedScopedCaller(up.server, "ORG_USER_MANAGER");
      });

      it("stops working on the very next call once its user is locked, and works again once unlocked", async () => {
        expectOk(await asService());
        expectOk(await change(api, "lock", svc.userId, asAdmin()));
        expectCode(await asService(), Code.Unauthenticated);
        expectOk(await change(api, "unlock", svc.userId, asAdmin()));
        expectOk(await asService());
      });

      it("stops working on the very next call once its user is deactivated, and works again once reactivated", async () => {
        expectOk(await asService());
        expectOk(await change(api, "deactivate", svc.userId, asAdmin()));
        expectCode(await asService(), Code.Unauthenticated);
        expectOk(await change(api, "reactivate", svc.userId, asAdmin()));
        expectOk(await asService());
      });

      it("stops working for good once its user is removed", async () => {
        expectOk(await asService());
        expectOk(await change(api, "remove", svc.userId, asAdmin()));
        expectCode(await asService(), Code.Unauthenticated);
        expectCode(await t().call(V2.getUserByID, { userId: svc.userId }, { token: svc.token }), Code.Unauthenticated);
      });
    });
  });

  // ZITADEL counts a removed user as not existing (isUserStateExists), so v2 may reuse its id.
  it("lets a new v2 user take a removed user's id, continuing that id's sequence", async () => {
    const api = "v2";
    const userId = uniqueName("reused-id");
    expectOk(await t().call(V2.addHumanUser, v2AddBody({ userId })));
    const before = await readBack(api, userId);
    const removed = expectChanged(await change(api, "remove", userId), api, before, up.defaultOrgId);
    const again = expectOk(await t().call(V2.addHumanUser, v2AddBody({ userId })));
    expect(again.userId).toBe(userId);
    // The sequence counts the user's events, and the removed user's events stay.
    const sequence = Number((again.details as JsonObject).sequence);
    expect(sequence).toBeGreaterThan(removed.sequence);
    expect(await readBack(api, userId)).toMatchObject({ state: "USER_STATE_ACTIVE", sequence });
    expectChanged(await change(api, "lock", userId), api, { sequence }, up.defaultOrgId);
  });

  describe("organisation scope and permissions", () => {
    let manager: { orgId: string; token: string; userId: string };
    let viewer: { orgId: string; token: string; userId: string };
    const asManager = { token: "" };
    const asViewer = { token: "" };

    beforeAll(async () => {
      manager = await seedScopedCaller(up.server, "ORG_USER_MANAGER");
      viewer = await seedScopedCaller(up.server, "ORG_OWNER_VIEWER");
      asManager.token = manager.token;
      asViewer.token = viewer.token;
    });

    it("v1 acts within the context organisation: another organisation's user is NotFound with the command's id", async () => {
      const theirs = await newUser("ACTIVE", {}, asManager);
      const ours = await newUser("ACTIVE");
      const theirsBefore = await readBack("v2", theirs.id);
      const oursBefore = await readBack("v2", ours.id);

      // The admin's context is the default organisation, the manager's its own.
      for (const what of CHANGES) {
        expectZitadelError(await change("v1", what, theirs.id), Code.NotFound, IDS.v1.notFound[what], NOT_FOUND_TEXT);
        expectZitadelError(await change("v1", what, ours.id, asManager), Code.NotFound, IDS.v1.notFound[what], NOT_FOUND_TEXT);
      }
      expect(await readBack("v2", theirs.id)).toEqual(theirsBefore);
      expect(await readBack("v2", ours.id)).toEqual(oursBefore);

      // Naming the user's organisation in x-zitadel-orgid reaches it, if the caller may act there.
      expectChanged(await change("v1", "lock", theirs.id, { headers: { "x-zitadel-orgid": manager.orgId } }), "v1", theirsBefore, manager.orgId);
      expectZitadelError(
        await change("v1", "lock", ours.id, { ...asManager, headers: { "x-zitadel-orgid": up.defaultOrgId } }),
        Code.PermissionDenied,
        "AUTH-5mWD2",
        "No matching permissions found",
      );
      // Within its own organisation the manager may change and remove users.
      expectOk(await change("v1", "unlock", theirs.id, asManager));
      expectOk(await change("v1", "remove", theirs.id, asManager));
    });

    it("v2 checks the caller's permission on the user's organisation (AUTHZ-HKJD33)", async () => {
      const theirs = await newUser("ACTIVE", {}, asManager);
      const ours = await newUser("ACTIVE");
      const oursBefore = await readBack("v2", ours.id);

      for (const what of ["lock", "deactivate", "remove"] as const) {
        expectZitadelError(await change("v2", what, ours.id, asManager), Code.PermissionDenied, "AUTHZ-HKJD33", "Errors.PermissionDenied");
      }
      // The header does not change whose organisation the user is in.
      expectZitadelError(
        await change("v2", "lock", ours.id, { ...asManager, headers: { "x-zitadel-orgid": manager.orgId } }),
        Code.PermissionDenied,
        "AUTHZ-HKJD33",
        "Errors.PermissionDenied",
      );
      expect(await readBack("v2", ours.id)).toEqual(oursBefore);

      // Its own organisation's user it may change; the IAM_OWNER admin may change users of any organisation.
      const theirsBefore = await readBack("v2", theirs.id);
      const locked = expectChanged(await change("v2", "lock", theirs.id, asManager), "v2", theirsBefore, manager.orgId);
      expectChanged(await change("v2", "unlock", theirs.id), "v2", locked, manager.orgId);
      expectOk(await change("v2", "remove", theirs.id, asManager));
    });

    it("v2 lets a caller lock and deactivate itself without user.write, as ZITADEL allows self (checkPermissionUpdateUser)", async () => {
      const self = await seedScopedCaller(up.server, "ORG_OWNER_VIEWER");
      const asSelf = { token: self.token };
      expectOk(await change("v2", "lock", self.userId, asSelf));
      // Locked, its token no longer works; the admin unlocks it.
      expectCode(await t().call(V2.getUserByID, { userId: self.userId }, asSelf), Code.Unauthenticated);
      expectOk(await change("v2", "unlock", self.userId));
      expectOk(await change("v2", "deactivate", self.userId, asSelf));
      expectCode(await t().call(V2.getUserByID, { userId: self.userId }, asSelf), Code.Unauthenticated);
    });

    it("denies a viewer changes of its own organisation's users (v1 AUTH-5mWD2, v2 AUTHZ-HKJD33)", async () => {
      const user = await newUser("ACTIVE", {}, { headers: { "x-zitadel-orgid": viewer.orgId } });
      const before = await readBack("v2", user.id, asViewer);
      for (const what of ["lock", "deactivate", "remove"] as const) {
        expectZitadelError(await change("v1", what, user.id, asViewer), Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
      }
      for (const what of ["lock", "deactivate"] as const) {
        expectZitadelError(await change("v2", what, user.id, asViewer), Code.PermissionDenied, "AUTHZ-HKJD33", "Errors.PermissionDenied");
      }
      // v2 DeleteUser's permission check is version-dependent (§8: method-level user.delete or the
      // command check), so only the code is pinned.
      expectCode(await change("v2", "remove", user.id, asViewer), Code.PermissionDenied);
      expect(await readBack("v2", user.id, asViewer)).toEqual(before);
    });
  });
});
