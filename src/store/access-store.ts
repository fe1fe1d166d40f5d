import type { AdministratorStore, CredentialStore } from "../domain/ports.js";
import type { Kysely } from "kysely";
import type { Principal, SessionCredential } from "../domain/access.js";

import type { Db } from "./db.js";
import { param, prepare } from "./prepared.js";
import { withSearchKeys } from "./search-keys.js";
import type { Database } from "./schema.js";

/** Callers' credentials and the organisations they name, for src/domain/authentication.ts. */
export function createCredentialStore(store: Db): CredentialStore {
  const tokenOwner = createPrincipalFinder(store);
  const sessionCredential = createSessionCredentialFinder(store);
  return {
    tokenOwner,
    sessionCredential,
    async orgExists(instanceId, orgId) {
      const row = await store.db.selectFrom("orgs").select("id").where("instance_id", "=", instanceId).where("id", "=", orgId).executeTakeFirst();
      return row !== undefined;
    },
    async orgOfVerifiedDomain(instanceId, domain) {
      const claim = await store.db
        .selectFrom("unique_constraints")
        .select("owner_id")
        .where("instance_id", "=", instanceId)
        .where("kind", "=", "org_domain")
        .where("value", "=", domain)
        .executeTakeFirst();
      return claim?.owner_id;
    },
  };
}

/** Looks up callers by token digest; prepared once, as it runs on every request. */
function createPrincipalFinder({ db, read }: Db) {
  // One query for the token, its user and all of the user's role assignments.
  const byDigest = prepare<{ digest: string }>(
    db
      .selectFrom("personal_access_tokens as t")
      .innerJoin("users as u", (join) => join.onRef("u.instance_id", "=", "t.instance_id").onRef("u.id", "=", "t.user_id"))
      .leftJoin("members as m", (join) => join.onRef("m.instance_id", "=", "t.instance_id").onRef("m.user_id", "=", "t.user_id"))
      .select(["t.instance_id", "t.user_id", "t.expires_at", "u.org_id", "u.state", "m.org_id as member_org_id", "m.roles"])
      .where("t.digest", "=", param<string>("digest")),
  );
  type Row = {
    instance_id: string;
    user_id: string;
    expires_at: number;
    org_id: string;
    state: string;
    member_org_id: string | null;
    roles: string | null;
  };

  /** The caller behind a token digest, if the token exists, is unexpired and its user is active. */
  return async function findPrincipal(digest: string, now: number): Promise<{ principal: Principal; tokenExpiresAt: number } | undefined> {
    const rows = await read<Row>(byDigest.bind({ digest }));
    const owner = rows[0];
    if (!owner || Number(owner.expires_at) <= now || owner.state !== "ACTIVE") return undefined;
    return {
      principal: { instanceId: owner.instance_id, userId: owner.user_id, orgId: owner.org_id, ...rolesOf(rows) },
      tokenExpiresAt: Number(owner.expires_at),
    };
  };
}

/** Looks up sessions by the digest of their token, for callers that present a session token. */
function createSessionCredentialFinder({ db, read }: Db) {
  // The session, its user and the user's role assignments, in one query.
  const byDigest = prepare<{ digest: string }>(
    db
      .selectFrom("sessions as s")
      .leftJoin("users as u", (join) => join.onRef("u.instance_id", "=", "s.instance_id").onRef("u.id", "=", "s.user_id"))
      .leftJoin("members as m", (join) => join.onRef("m.instance_id", "=", "s.instance_id").onRef("m.user_id", "=", "s.user_id"))
      .select([
        "s.instance_id",
        "s.user_id",
        "s.terminated",
        "s.expires_at",
        "s.password_checked_at",
        "s.totp_checked_at",
        "u.org_id",
        "u.state",
        "m.org_id as member_org_id",
        "m.roles",
      ])
      .where("s.token_digest", "=", param<string>("digest")),
  );
  type Row = {
    instance_id: string;
    user_id: string;
    terminated: number;
    expires_at: number | null;
    password_checked_at: number | null;
    totp_checked_at: number | null;
    org_id: string | null;
    state: string | null;
    member_org_id: string | null;
    roles: string | null;
  };

  /** The session behind a token digest, if there is one; src/domain/access.ts decides what it may do. */
  return async function findSession(digest: string): Promise<SessionCredential | undefined> {
    const rows = await read<Row>(byDigest.bind({ digest }));
    const session = rows[0];
    if (!session) return undefined;
    const active = session.user_id !== "" && session.org_id !== null && session.state === "ACTIVE";
    return {
      terminated: Number(session.terminated) === 1,
      expiresAt: session.expires_at === null ? undefined : Number(session.expires_at),
      authenticated: session.user_id !== "" && (session.password_checked_at !== null || session.totp_checked_at !== null),
      principal: active ? { instanceId: session.instance_id, userId: session.user_id, orgId: session.org_id!, ...rolesOf(rows) } : undefined,
    };
  };
}

/** The instance and organisation roles among a caller's member rows. */
function rolesOf(rows: readonly { member_org_id: string | null; roles: string | null }[]) {
  const orgRoles = new Map<string, string[]>();
  let instanceRoles: string[] = [];
  for (const { member_org_id, roles } of rows) {
    if (member_org_id === null || roles === null) continue;
    if (member_org_id === "") instanceRoles = roles.split(" ");
    else orgRoles.set(member_org_id, roles.split(" "));
  }
  return { instanceRoles, orgRoles };
}

export interface Instance {
  id: string;
  defaultOrgId: string;
}

/** The instance this deployment serves (userport runs one instance per database for now). */
export async function findInstance(db: Kysely<Database>): Promise<Instance | undefined> {
  const row = await db.selectFrom("instances").select(["id", "default_org_id"]).orderBy("created_at").executeTakeFirst();
  return row && { id: row.id, defaultOrgId: row.default_org_id };
}

/** The instance and its owners, for `userport token` (src/admin-token.ts). */
export function createAdministratorStore(store: Db): AdministratorStore {
  return {
    instanceId: async () => (await findInstance(store.db))?.id,
    async activeInstanceOwners(instanceId) {
      const members = await store.db
        .selectFrom("members as m")
        .innerJoin("users as u", (join) => join.onRef("u.instance_id", "=", "m.instance_id").onRef("u.id", "=", "m.user_id"))
        .select(["u.id", "u.username", "u.org_id", "u.state", "m.roles"])
        .where("m.instance_id", "=", instanceId)
        .where("m.org_id", "=", "")
        .where("u.type", "=", "machine")
        .orderBy("u.created_at")
        .execute();
      return members
        .filter((row) => row.roles.split(" ").includes("IAM_OWNER") && row.state === "ACTIVE")
        .map((row) => ({ id: row.id, username: row.username, orgId: row.org_id }));
    },
  };
}

export interface FirstInstance {
  instanceId: string;
  orgId: string;
  orgName: string;
  adminUserId: string;
  adminUsername: string;
  tokenId: string;
  tokenDigest: string;
  tokenExpiresAt: number;
  now: number;
}

/**
 * Creates the instance, its default organisation and the IAM_OWNER service user in one commit.
 * Replicas starting together on one database race for it: the first commit wins, the others
 * fail with `UniqueViolation("first_instance")` and find the winner's instance.
 */
export async function createFirstInstance({ db, writes }: Db, first: FirstInstance): Promise<void> {
  const { instanceId, orgId, adminUserId, now } = first;
  await writes.run([
    {
      ...db.insertInto("unique_constraints").values({ instance_id: "", kind: "first_instance", value: "", owner_id: instanceId }).compile(),
      uniqueKind: "first_instance",
    },
    db.insertInto("instances").values({ id: instanceId, default_org_id: orgId, created_at: now }).compile(),
    db.insertInto("orgs").values({ instance_id: instanceId, id: orgId, name: first.orgName, created_at: now }).compile(),
    db
      .insertInto("users")
      .values(
        withSearchKeys({
          instance_id: instanceId,
          id: adminUserId,
          org_id: orgId,
          type: "machine",
          state: "ACTIVE",
          username: first.adminUsername,
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
          machine_name: "userport administrator",
          machine_description: "created at the first start; its token is in admin.pat",
          created_at: now,
          changed_at: now,
          sequence: 1,
        }),
      )
      .compile(),
    db
      .insertInto("unique_constraints")
      .values({ instance_id: instanceId, kind: "username", value: first.adminUsername.toLowerCase(), owner_id: adminUserId })
      .compile(),
    db
      .insertInto("events")
      .values({
        instance_id: instanceId,
        aggregate_type: "user",
        aggregate_id: adminUserId,
        sequence: 1,
        type: "user.machine.added",
        payload: JSON.stringify({ userName: first.adminUsername }),
        creator: "system",
        created_at: now,
        resource_owner: orgId,
      })
      .compile(),
    db.insertInto("members").values({ instance_id: instanceId, org_id: "", user_id: adminUserId, roles: "IAM_OWNER" }).compile(),
    db
      .insertInto("personal_access_tokens")
      .values({
        instance_id: instanceId,
        id: first.tokenId,
        user_id: adminUserId,
        digest: first.tokenDigest,
        expires_at: first.tokenExpiresAt,
        created_at: now,
      })
      .compile(),
  ]);
}
