/**
 * Identity providers and users' links to them — management v1 AddGenericOIDCProvider,
 * ListProviders, GetProviderByID, ImportHumanUser.idps, ListHumanLinkedIDPs, RemoveHumanLinkedIDP;
 * user v2 AddHumanUser/CreateUser idp_links, AddIDPLink, ListIDPLinks, RemoveIDPLink — through
 * gRPC (grpc-js), Connect (JSON) and REST (and gRPC-Web for the reads), against ZITADEL's
 * documented behaviour (ZITADEL's internal/command/user_idp_link.go, internal/repository/user/human_external_idp.go).
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { type CallOptions, SESSIONS, type TransportName, V1, V2 } from "./helpers/clients.js";
import { expectNotLeaked, expectOk, expectPgvError, expectZitadelError, pgvEmbedded, pgvLength } from "./helpers/expectations.js";
import { bcryptHash, RFC3339, type SeededCaller, seedScopedCaller, uniqueEmail, uniqueName, useUserport, v1ImportBody, v2AddBody } from "./helpers/fixtures.js";

const up = useUserport();
const HASH = bcryptHash("imported-Passw0rd!");
const SECRET = "client-secret-that-must-never-leave";
const WRITE_TRANSPORTS = ["grpc-js", "connect-json-h1", "rest"] as const satisfies readonly TransportName[];
const READ_TRANSPORTS = [...WRITE_TRANSPORTS, "grpc-web"] as const satisfies readonly TransportName[];

type Method = Parameters<ReturnType<typeof up.caller>["call"]>[0];

let viewer: SeededCaller;
let userManager: SeededCaller;
let otherOrg: SeededCaller;
/** A provider of the instance, usable from every organisation (written into the store: no admin API yet). */
let instanceIdp: string;
/** Providers of the default organisation: one that allows creating users, one that does not. */
let creating: string;
let notCreating: string;
/** A provider of another organisation. */
let foreign: string;

function oidcBody(extra: JsonObject = {}): JsonObject {
  return {
    name: uniqueName("idp"),
    issuer: "https://accounts.example.com",
    clientId: "client-1",
    clientSecret: SECRET,
    scopes: ["openid", "profile", "email"],
    providerOptions: { isLinkingAllowed: true, isCreationAllowed: true, isAutoCreation: true, isAutoUpdate: false },
    ...extra,
  };
}

async function addIdp(extra: JsonObject = {}, options?: CallOptions, transport: TransportName = "connect-json-h1") {
  return expectOk(await up.caller(transport).call(V1.addGenericOIDCProvider, oidcBody(extra), options)).id as string;
}

beforeAll(async () => {
  viewer = await seedScopedCaller(up.server, "ORG_OWNER_VIEWER");
  userManager = await seedScopedCaller(up.server, "ORG_USER_MANAGER", up.defaultOrgId);
  otherOrg = await seedScopedCaller(up.server, "ORG_OWNER");
  creating = await addIdp({ name: "Creating Provider" });
  notCreating = await addIdp({ providerOptions: { isLinkingAllowed: true, isCreationAllowed: false } });
  foreign = await addIdp({}, { token: otherOrg.token });
  const { id: instanceId } = await up.server.db.selectFrom("instances").select("id").executeTakeFirstOrThrow();
  instanceIdp = `instance-idp-${Date.now()}`;
  const now = Date.now();
  await up.server.db
    .insertInto("idps")
    .values({
      instance_id: instanceId,
      id: instanceIdp,
      org_id: "",
      type: "oidc",
      state: "ACTIVE",
      name: "Instance Provider",
      issuer: "https://sso.example.org",
      client_id: "instance-client",
      sealed_client_secret: "sealed",
      scopes: "[]",
      is_id_token_mapping: 0,
      use_pkce: 1,
      is_linking_allowed: 1,
      is_creation_allowed: 1,
      is_auto_creation: 0,
      is_auto_update: 0,
      auto_linking: 0,
      created_at: now,
      changed_at: now,
      sequence: 1,
    })
    .execute();
});

describe.each(WRITE_TRANSPORTS)("identity providers over %s", (transport) => {
  const call = (method: Method, body: JsonObject, options?: CallOptions) => up.caller(transport).call(method, body, options);

  it("adds a generic OIDC provider with its options, storing the secret encrypted and never returning it", async () => {
    const body = oidcBody({ isIdTokenMapping: true, usePkce: true });
    const added = await call(V1.addGenericOIDCProvider, body);
    const res = expectOk(added, 200);
    expectNotLeaked(added, SECRET);
    expect(res.id).toMatch(/^\d+$/);
    const details = res.details as JsonObject;
    expect(details.resourceOwner).toBe(up.defaultOrgId);
    expect(Number(details.sequence)).toBeGreaterThan(0);
    expect(details.changeDate).toMatch(RFC3339);

    const read = await call(V1.getProviderByID, { id: res.id as string });
    expectNotLeaked(read, SECRET);
    expect(expectOk(read).idp).toMatchObject({
      id: res.id,
      state: "IDP_STATE_ACTIVE",
      name: body.name,
      owner: "IDP_OWNER_TYPE_ORG",
      type: "PROVIDER_TYPE_OIDC",
      config: {
        options: { isLinkingAllowed: true, isCreationAllowed: true, isAutoCreation: true },
        oidc: { issuer: body.issuer, clientId: body.clientId, scopes: body.scopes, isIdTokenMapping: true, usePkce: true },
      },
    });
    const row = await up.server.db
      .selectFrom("idps")
      .select("sealed_client_secret")
      .where("id", "=", res.id as string)
      .executeTakeFirstOrThrow();
    expect(row.sealed_client_secret).not.toContain(SECRET);
    const events = await up.server.db.selectFrom("events").select(["type", "payload"]).where("aggregate_id", "=", up.defaultOrgId).execute();
    expect(events.map((e) => e.type)).toContain("org.idp.oidc.added");
    expect(JSON.stringify(events)).not.toContain(SECRET);
  });

  it("refuses a blank name, issuer, client id or secret with ZITADEL's ids", async () => {
    for (const [field, id] of [
      ["name", "ORG-Sgtj5"],
      ["issuer", "ORG-Hz6zj"],
      ["clientId", "ORG-fb5jm"],
      ["clientSecret", "ORG-Sfdf4"],
    ] as const) {
      const result = await call(V1.addGenericOIDCProvider, oidcBody({ [field]: "  " }));
      expectZitadelError(result, Code.InvalidArgument, id, "Errors.Invalid.Argument");
    }
  });

  it.skipIf(transport === "rest")("requires name, issuer, client id and secret, and at most 20 scopes (PGV)", async () => {
    expectPgvError(await call(V1.addGenericOIDCProvider, oidcBody({ name: "" })), pgvLength("AddGenericOIDCProviderRequest.Name", 1, 200));
    expectPgvError(await call(V1.addGenericOIDCProvider, oidcBody({ clientSecret: "" })), pgvLength("AddGenericOIDCProviderRequest.ClientSecret", 1, 1000));
    const scopes = Array.from({ length: 21 }, (_, i) => `scope${i}`);
    expectPgvError(
      await call(V1.addGenericOIDCProvider, oidcBody({ scopes })),
      "invalid AddGenericOIDCProviderRequest.Scopes: value must contain no more than 20 item(s)",
    );
  });

  it("lets owners add providers, not user managers or viewers (AUTH-5mWD2)", async () => {
    for (const caller of [userManager, viewer]) {
      const result = await call(V1.addGenericOIDCProvider, oidcBody(), { token: caller.token });
      expectZitadelError(result, Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
    }
  });
});

describe("a provider's organisation", () => {
  it("keeps counting its changes: the provider's event is the organisation's next, and later changes follow it", async () => {
    const owner = await seedScopedCaller(up.server, "ORG_OWNER");
    const call = (method: Method, body: JsonObject) => up.caller("connect-json-h1").call(method, body, { token: owner.token });
    const first = expectOk(await call(V1.addGenericOIDCProvider, oidcBody()));
    const second = expectOk(await call(V1.addGenericOIDCProvider, oidcBody()));
    const sequence = Number((first.details as JsonObject).sequence);
    expect((second.details as JsonObject).sequence).toBe(String(sequence + 1));
    // AddOrgDomain builds on the organisation's sequence: it must not collide with the providers' events.
    const domain = expectOk(await call(V1.addOrgDomain, { domain: `${uniqueName("d")}.example.com` }));
    const after = Number((domain.details as JsonObject).sequence);
    expect(after).toBeGreaterThan(sequence + 1);
    const org = await up.server.db.selectFrom("orgs").select("sequence").where("id", "=", owner.orgId).executeTakeFirstOrThrow();
    expect(Number(org.sequence)).toBe(after);
  });
});

describe.each(READ_TRANSPORTS)("reading identity providers over %s", (transport) => {
  const call = (method: Method, body: JsonObject, options?: CallOptions) => up.caller(transport).call(method, body, options);
  const ids = (res: JsonObject) => ((res.result as JsonObject[]) ?? []).map((idp) => idp.id);

  it("lists the organisation's and the instance's providers, not another organisation's", async () => {
    const res = expectOk(await call(V1.listProviders, { query: { asc: true } }));
    expect(ids(res)).toEqual(expect.arrayContaining([creating, notCreating, instanceIdp]));
    expect(ids(res)).not.toContain(foreign);
    expect(Number((res.details as JsonObject).totalResult)).toBe(ids(res).length);
    const system = (res.result as JsonObject[]).find((idp) => idp.id === instanceIdp)!;
    expect(system.owner).toBe("IDP_OWNER_TYPE_SYSTEM");
    expect((system.details as JsonObject).resourceOwner).not.toBe(up.defaultOrgId);
  });

  it("filters by id, name and owner, and pages", async () => {
    expect(ids(expectOk(await call(V1.listProviders, { queries: [{ idpIdQuery: { id: creating } }] })))).toEqual([creating]);
    const byName = { idpNameQuery: { name: "creating prov", method: "TEXT_QUERY_METHOD_STARTS_WITH_IGNORE_CASE" } };
    expect(ids(expectOk(await call(V1.listProviders, { queries: [byName] })))).toEqual([creating]);
    const system = expectOk(await call(V1.listProviders, { queries: [{ ownerTypeQuery: { ownerType: "IDP_OWNER_TYPE_SYSTEM" } }] }));
    expect(ids(system)).toEqual([instanceIdp]);
    const org = ids(expectOk(await call(V1.listProviders, { queries: [{ ownerTypeQuery: { ownerType: "IDP_OWNER_TYPE_ORG" } }] })));
    expect(org).toContain(creating);
    expect(org).not.toContain(instanceIdp);
    const page = expectOk(await call(V1.listProviders, { query: { limit: 1, offset: "1", asc: true } }));
    expect(ids(page)).toHaveLength(1);
    expect(Number((page.details as JsonObject).totalResult)).toBeGreaterThan(1);
  });

  it("gets a provider of the instance, but not one of another organisation (QUERY-SAFrt)", async () => {
    expect((expectOk(await call(V1.getProviderByID, { id: instanceIdp })).idp as JsonObject).owner).toBe("IDP_OWNER_TYPE_SYSTEM");
    for (const id of [foreign, "no-such-idp"]) {
      const result = await call(V1.getProviderByID, { id });
      expectZitadelError(result, Code.NotFound, "QUERY-SAFrt", "Identity Provider Configuration doesn't exist");
    }
  });

  it("lets viewers read providers, and denies callers without org.idp.read (AUTH-5mWD2)", async () => {
    expectOk(await call(V1.listProviders, {}, { token: viewer.token }));
    const denied = await call(V1.getProviderByID, { id: creating }, { token: userManager.token });
    expectZitadelError(denied, Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
  });
});

describe.each(WRITE_TRANSPORTS)("links of users over %s", (transport) => {
  const call = (method: Method, body: JsonObject, options?: CallOptions) => up.caller(transport).call(method, body, options);
  const eventKeys = async (userId: string) =>
    ((expectOk(await call(V1.listUserChanges, { userId, query: { asc: true } })).result as JsonObject[]) ?? []).map(
      (change) => (change.eventType as JsonObject).key,
    );
  const linkedIdps = async (userId: string) => (expectOk(await call(V1.listHumanLinkedIDPs, { userId })).result as JsonObject[] | undefined) ?? [];
  const idpEntry = (idpId: string, externalUserId: string, displayName = "") => ({
    configId: idpId,
    externalUserId,
    ...(displayName ? { displayName } : {}),
  });

  describe("ImportHumanUser.idps", () => {
    it("links the user, and the link suppresses the init code: the user starts ACTIVE", async () => {
      const external = uniqueName("ext");
      const body = v1ImportBody({ idps: [idpEntry(creating, external, "Minnie at the IdP")] });
      (body.email as JsonObject).isEmailVerified = false; // without the link this user would be INITIAL
      const res = expectOk(await call(V1.importHumanUser, body));
      const userId = res.userId as string;
      expect(res.details).toMatchObject({ sequence: "3" });
      const user = expectOk(await call(V1.getUserByID, { id: userId })).user as JsonObject;
      expect(user.state).toBe("USER_STATE_ACTIVE");
      expect(await eventKeys(userId)).toEqual([
        "EventTypes.user.human.added",
        "EventTypes.user.human.externalidp.added",
        "EventTypes.user.human.email.code.added",
      ]);
      const codes = await up.server.db.selectFrom("codes").select("kind").where("user_id", "=", userId).execute();
      expect(codes.map((c) => c.kind)).toEqual(["email"]);
      expect(await linkedIdps(userId)).toEqual([
        {
          userId,
          idpId: creating,
          idpName: "Creating Provider",
          providedUserId: external,
          providedUserName: "Minnie at the IdP",
          idpType: "IDP_TYPE_OIDC",
        },
      ]);
    });

    it("links to a provider of the instance", async () => {
      const res = expectOk(await call(V1.importHumanUser, v1ImportBody({ idps: [idpEntry(instanceIdp, uniqueName("ext"))] })));
      expect((await linkedIdps(res.userId as string)).map((link) => link.idpId)).toEqual([instanceIdp]);
    });

    it("refuses a provider that does not allow creating users (COMMAND-SJI3g)", async () => {
      const result = await call(V1.importHumanUser, v1ImportBody({ idps: [idpEntry(notCreating, uniqueName("ext"))] }));
      expectZitadelError(result, Code.FailedPrecondition, "COMMAND-SJI3g", "Errors.ExternalIDP.CreationNotAllowed");
    });

    it("refuses an unknown provider, or one of another organisation (COMMAND-39nfs)", async () => {
      for (const idp of ["no-such-idp", foreign]) {
        const result = await call(V1.importHumanUser, v1ImportBody({ idps: [idpEntry(idp, uniqueName("ext"))] }));
        expectZitadelError(result, Code.FailedPrecondition, "COMMAND-39nfs", "Identity Provider Configuration doesn't exist");
      }
    });

    it("refuses a blank provider or external id (COMMAND-6m9Kd)", async () => {
      const result = await call(V1.importHumanUser, v1ImportBody({ idps: [idpEntry(creating, "   ")] }));
      expectZitadelError(result, Code.InvalidArgument, "COMMAND-6m9Kd", "External IDP invalid");
    });

    it("keeps one account per provider, case-insensitively, until its user is removed", async () => {
      const external = uniqueName("Shared-Account");
      const first = expectOk(await call(V1.importHumanUser, v1ImportBody({ idps: [idpEntry(creating, external)] })));
      const again = v1ImportBody({ idps: [idpEntry(creating, external.toUpperCase())] });
      expectZitadelError(await call(V1.importHumanUser, again), Code.AlreadyExists, "V3-DKcYh", "External IDP already taken");
      // The failed import took nothing: its username is still free.
      expectOk(await call(V1.importHumanUser, { ...again, idps: [idpEntry(creating, uniqueName("other"))] }));
      // The same account at another provider is another account.
      expectOk(await call(V1.importHumanUser, v1ImportBody({ idps: [idpEntry(instanceIdp, external)] })));
      // Removing the user frees its links at once.
      expectOk(await call(V1.removeUser, { id: first.userId as string }));
      expectOk(await call(V1.importHumanUser, v1ImportBody({ idps: [idpEntry(creating, external.toUpperCase())] })));
    });
  });

  describe("user v2 idp_links", () => {
    it("links on AddHumanUser and CreateUser, needing no creation option", async () => {
      const link = { idpId: notCreating, userId: uniqueName("ext"), userName: "donald@idp" };
      const added = expectOk(await call(V2.addHumanUser, v2AddBody({ idpLinks: [link] })));
      const { username, ...human } = v2AddBody({ idpLinks: [{ ...link, userId: uniqueName("ext") }] });
      const created = expectOk(await call(V2.createUser, { organizationId: up.defaultOrgId, username, human }));
      for (const id of [added.userId, created.id]) {
        const links = expectOk(await call(V2.listIDPLinks, { userId: id as string })).result as JsonObject[];
        expect(links).toHaveLength(1);
        expect(links[0]).toMatchObject({ idpId: notCreating, userName: "donald@idp" });
      }
    });

    it("refuses an unknown provider (COMMAND-39nf2)", async () => {
      const result = await call(V2.addHumanUser, v2AddBody({ idpLinks: [{ idpId: foreign, userId: "x", userName: "x" }] }));
      expectZitadelError(result, Code.FailedPrecondition, "COMMAND-39nf2", "Identity Provider Configuration doesn't exist");
    });

    it.skipIf(transport === "rest")("requires the link's ids and name (PGV)", async () => {
      const result = await call(V2.addHumanUser, v2AddBody({ idpLinks: [{ idpId: creating, userId: "x", userName: "" }] }));
      expectPgvError(result, pgvEmbedded("AddHumanUserRequest.IdpLinks[0]", pgvLength("IDPLink.UserName", 1, 200)));
    });
  });

  describe("RemoveHumanLinkedIDP", () => {
    it("removes the link; the account can be linked again at once", async () => {
      const external = uniqueName("ext");
      const res = expectOk(await call(V1.importHumanUser, v1ImportBody({ hashedPassword: { value: HASH }, idps: [idpEntry(creating, external)] })));
      const userId = res.userId as string;
      const sequence = Number((res.details as JsonObject).sequence);
      const removed = expectOk(await call(V1.removeHumanLinkedIDP, { userId, idpId: creating, linkedUserId: external }), 200);
      expect(removed.details).toMatchObject({ sequence: String(sequence + 1), resourceOwner: up.defaultOrgId });
      expect(await linkedIdps(userId)).toEqual([]);
      expect((await eventKeys(userId)).at(-1)).toBe("EventTypes.user.human.externalidp.removed");
      expectOk(await call(V1.importHumanUser, v1ImportBody({ idps: [idpEntry(creating, external)] })));
    });

    it("does not find a link the user does not have, nor an unknown user (COMMAND-1M9xR)", async () => {
      const external = uniqueName("ext");
      const res = expectOk(await call(V1.importHumanUser, v1ImportBody({ idps: [idpEntry(creating, external)] })));
      for (const request of [
        { userId: res.userId as string, idpId: creating, linkedUserId: `${external}-other` },
        { userId: res.userId as string, idpId: instanceIdp, linkedUserId: external },
        { userId: "no-such-user", idpId: creating, linkedUserId: external },
      ]) {
        expectZitadelError(await call(V1.removeHumanLinkedIDP, request), Code.NotFound, "COMMAND-1M9xR", "External IDP not found");
      }
      const elsewhere = await call(
        V1.removeHumanLinkedIDP,
        { userId: res.userId as string, idpId: creating, linkedUserId: external },
        { token: otherOrg.token },
      );
      expectZitadelError(elsewhere, Code.NotFound, "COMMAND-1M9xR", "External IDP not found");
    });

    it("denies a caller without user.write (AUTH-5mWD2)", async () => {
      const result = await call(V1.removeHumanLinkedIDP, { userId: "1", idpId: creating, linkedUserId: "x" }, { token: viewer.token });
      expectZitadelError(result, Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
    });
  });

  describe("ListHumanLinkedIDPs", () => {
    it("shows no links of a user of another organisation, or of no user", async () => {
      const res = expectOk(await call(V1.importHumanUser, v1ImportBody({ idps: [idpEntry(creating, uniqueName("ext"))] })));
      expect(await linkedIdps("no-such-user")).toEqual([]);
      const elsewhere = expectOk(await call(V1.listHumanLinkedIDPs, { userId: res.userId as string }, { token: otherOrg.token }));
      expect(elsewhere.result ?? []).toEqual([]);
      expect(Number((elsewhere.details as JsonObject).totalResult ?? 0)).toBe(0);
    });

    it("denies a caller without user.read (AUTH-5mWD2)", async () => {
      const nobody = await seedScopedCaller(up.server, undefined);
      const result = await call(V1.listHumanLinkedIDPs, { userId: "1" }, { token: nobody.token });
      expectZitadelError(result, Code.PermissionDenied, "AUTH-5mWD2", "No matching permissions found");
    });
  });

  describe("user v2 AddIDPLink, ListIDPLinks, RemoveIDPLink", () => {
    it("links an existing user, lists and removes the link", async () => {
      const res = expectOk(await call(V1.importHumanUser, v1ImportBody({ hashedPassword: { value: HASH } })));
      const userId = res.userId as string;
      const sequence = Number((res.details as JsonObject).sequence);
      const link = { idpId: instanceIdp, userId: uniqueName("ext"), userName: "linked@idp" };
      const added = expectOk(await call(V2.addIDPLink, { userId, idpLink: link }), 200);
      expect(added.details).toMatchObject({ sequence: String(sequence + 1), resourceOwner: up.defaultOrgId });
      const listed = expectOk(await call(V2.listIDPLinks, { userId }));
      expect(listed.result).toEqual([link]);
      expect((listed.details as JsonObject).totalResult).toBe("1");
      const taken = await call(V2.addIDPLink, { userId, idpLink: { ...link, userId: link.userId.toUpperCase() } });
      expectZitadelError(taken, Code.AlreadyExists, "V3-DKcYh", "External IDP already taken");
      const removed = expectOk(await call(V2.removeIDPLink, { userId, idpId: link.idpId, linkedUserId: link.userId }));
      expect(removed.details).toMatchObject({ sequence: String(sequence + 2) });
      expect(expectOk(await call(V2.listIDPLinks, { userId })).result ?? []).toEqual([]);
      const again = await call(V2.removeIDPLink, { userId, idpId: link.idpId, linkedUserId: link.userId });
      expectZitadelError(again, Code.NotFound, "COMMAND-1M9xR", "External IDP not found");
    });

    it("refuses an unknown user (COMMAND-vzktar7b7f) and an unknown provider (COMMAND-39nf2)", async () => {
      const link = { idpId: creating, userId: uniqueName("ext"), userName: "x" };
      expectZitadelError(
        await call(V2.addIDPLink, { userId: "no-such-user", idpLink: link }),
        Code.FailedPrecondition,
        "COMMAND-vzktar7b7f",
        "User could not be found",
      );
      const res = expectOk(await call(V1.importHumanUser, v1ImportBody({ hashedPassword: { value: HASH } })));
      const result = await call(V2.addIDPLink, { userId: res.userId as string, idpLink: { ...link, idpId: foreign } });
      expectZitadelError(result, Code.FailedPrecondition, "COMMAND-39nf2", "Identity Provider Configuration doesn't exist");
    });

    it("denies callers without user.write on the user's organisation (AUTHZ-HKJD33), and without user.read its links", async () => {
      const link = { idpId: creating, userId: uniqueName("ext"), userName: "x" };
      const res = expectOk(await call(V1.importHumanUser, v1ImportBody({ hashedPassword: { value: HASH }, idps: [idpEntry(creating, link.userId)] })));
      const userId = res.userId as string;
      const denied = await call(V2.addIDPLink, { userId, idpLink: { ...link, userId: uniqueName("ext") } }, { token: otherOrg.token });
      expectZitadelError(denied, Code.PermissionDenied, "AUTHZ-HKJD33", "Errors.PermissionDenied");
      const removal = await call(V2.removeIDPLink, { userId, idpId: creating, linkedUserId: link.userId }, { token: otherOrg.token });
      expectZitadelError(removal, Code.PermissionDenied, "AUTHZ-HKJD33", "Errors.PermissionDenied");
      // ZITADEL's IDPUserLinks (internal/query/idp_user_link.go) checks user.read on the user's
      // organisation against the links found (internal/api/grpc/user/v2/integration_test/
      // idp_link_test.go "list links, no permission, org").
      const listed = await call(V2.listIDPLinks, { userId }, { token: otherOrg.token });
      expectZitadelError(listed, Code.PermissionDenied, "AUTHZ-HKJD33", "Errors.PermissionDenied");
      expectZitadelError(await call(V2.listIDPLinks, { userId }, { token: viewer.token }), Code.PermissionDenied, "AUTHZ-HKJD33", "Errors.PermissionDenied");
      expect(expectOk(await call(V2.listIDPLinks, { userId })).result).toHaveLength(1);
      expect(expectOk(await call(V2.listIDPLinks, { userId }, { token: userManager.token })).result).toHaveLength(1);
      // The user itself, signed in (its session token as the bearer), lists its own links.
      const session = expectOk(await call(SESSIONS.createSession, { checks: { user: { userId }, password: { password: "imported-Passw0rd!" } } }));
      expect(expectOk(await call(V2.listIDPLinks, { userId }, { token: String(session.sessionToken) })).result).toHaveLength(1);
      // A user without links (or no such user) has none to show: an empty list, as in ZITADEL.
      const unlinked = String(expectOk(await call(V1.importHumanUser, v1ImportBody({ hashedPassword: { value: HASH } }))).userId);
      expect(expectOk(await call(V2.listIDPLinks, { userId: unlinked }, { token: otherOrg.token })).result ?? []).toEqual([]);
      expect(expectOk(await call(V2.listIDPLinks, { userId: "no-such-user" }, { token: otherOrg.token })).result ?? []).toEqual([]);
    });

    it.skipIf(transport === "rest")("requires the user id and the link (PGV)", async () => {
      expectPgvError(await call(V2.addIDPLink, { userId: "1" }), "invalid AddIDPLinkRequest.IdpLink: value is required");
      expectPgvError(await call(V2.removeIDPLink, { userId: "1", idpId: "", linkedUserId: "x" }), pgvLength("RemoveIDPLinkRequest.IdpId", 1, 200));
    });
  });

  it("leaves no trace of the secret in any user's events", async () => {
    const rows = await up.server.db.selectFrom("events").select("payload").execute();
    expect(JSON.stringify(rows)).not.toContain(SECRET);
    expect(uniqueEmail()).toContain("@");
  });
});
