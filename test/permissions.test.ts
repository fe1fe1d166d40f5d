import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { TRANSPORTS, V1, V2 } from "./helpers/clients.js";
import { expectOk, expectZitadelError } from "./helpers/expectations.js";
import { seedScopedCaller, useUserport, v1ImportBody } from "./helpers/fixtures.js";

describe.each(TRANSPORTS)("permissions per organisation over %s", (transport) => {
  const up = useUserport();
  let manager: { orgId: string; token: string; userId: string };
  let viewer: { orgId: string; token: string; userId: string };
  let defaultOrgUserId: string;

  beforeAll(async () => {
    manager = await seedScopedCaller(up.server, "ORG_USER_MANAGER");
    viewer = await seedScopedCaller(up.server, "ORG_OWNER_VIEWER");
    const created = expectOk(await up.caller(transport).call(V1.importHumanUser, v1ImportBody()));
    defaultOrgUserId = String(created.userId);
  });

  it("lets an ORG_USER_MANAGER create and read users of its own organisation", async () => {
    const created = expectOk(await up.caller(transport).call(V1.importHumanUser, v1ImportBody(), { token: manager.token }));
    expect((created.details as { resourceOwner: string }).resourceOwner).toBe(manager.orgId);
    const read = expectOk(await up.caller(transport).call(V1.getUserByID, { id: created.userId! }, { token: manager.token }));
    expect((read.user as { id: string }).id).toBe(created.userId);
  });

  it("denies an ORG_USER_MANAGER another organisation through x-zitadel-orgid (AUTH-5mWD2)", async () => {
    const orgId = up.defaultOrgId;
    const result = await up.caller(transport).call(V1.importHumanUser, v1ImportBody(), {
      token: manager.token,
      headers: { "x-zitadel-orgid": orgId },
    });
    expectZitadelError(result, Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
  });

  it("denies an ORG_USER_MANAGER a v2 create in another organisation (AUTH-5mWD2)", async () => {
    const result = await up.caller(transport).call(
      V2.addHumanUser,
      {
        organization: { orgId: up.defaultOrgId },
        profile: { givenName: "Cross", familyName: "Org" },
        email: { email: "cross@example.com", isVerified: true },
      },
      { token: manager.token },
    );
    expectZitadelError(result, Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
  });

  it("does not show a user of another organisation to a scoped caller", async () => {
    // v1 reads within the caller's organisation: the other one's user is simply not there.
    const v1 = await up.caller(transport).call(V1.getUserByID, { id: defaultOrgUserId }, { token: manager.token });
    expectZitadelError(v1, Code.NotFound, "QUERY-Dfbg2", "User could not be found");
    // v2 reads by id across organisations and checks the permission on the user's organisation.
    const v2 = await up.caller(transport).call(V2.getUserByID, { userId: defaultOrgUserId }, { token: manager.token });
    expectZitadelError(v2, Code.PermissionDenied, "AUTHZ-HKJD33", "Errors.PermissionDenied");
  });

  it("lets a viewer read but not write (AUTH-5mWD2)", async () => {
    const result = await up.caller(transport).call(V1.importHumanUser, v1ImportBody(), { token: viewer.token });
    expectZitadelError(result, Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
    const self = expectOk(await up.caller(transport).call(V2.getUserByID, { userId: viewer.userId }, { token: viewer.token }));
    expect((self.user as { userId: string }).userId).toBe(viewer.userId);
  });
});
