import { type Kysely, type Selectable, sql } from "kysely";
import type { DomainPolicy, Org, OrgDomain, OrgWrite } from "../domain/orgs.js";
import type { PersonalAccessToken } from "../domain/personal-access-tokens.js";
import { foldCase } from "../domain/user-queries.js";
import type { NewEvent, OrgStore, PersonalAccessTokenStore, User } from "../domain/ports.js";
import type { Db } from "./db.js";
import { createLoginNames } from "./login-names.js";
import { statement, type WriteStatement } from "./prepared.js";
import type { Database, UserTable } from "./schema.js";
import { toUser } from "./user-store.js";

/** The SQL implementation of the organisation store. Organisation writes are rare: plain Kysely. */
export function createOrgStore({ db, read, writes }: Db): OrgStore & PersonalAccessTokenStore {
  const withLoginNames = createLoginNames(db, read);
  const events = (instanceId: string, orgId: string, first: number, list: NewEvent[], creator: string, at: number, aggregateType = "org") =>
    list.map((event, i) =>
      statement(
        db.insertInto("events").values({
          instance_id: instanceId,
          aggregate_type: aggregateType,
          aggregate_id: orgId,
          sequence: first + i,
          type: event.type,
          payload: JSON.stringify(event.payload),
          creator,
          created_at: at,
          resource_owner: aggregateType === "org" ? orgId : "",
        }),
        "sequence",
      ),
    );

  function writeStatements(instanceId: string, orgId: string, write: OrgWrite, at: number): WriteStatement[] {
    switch (write.kind) {
      case "addDomain": {
        const { domain } = write;
        const rows = [
          statement(
            db.insertInto("org_domains").values({
              instance_id: instanceId,
              org_id: orgId,
              domain: domain.domain,
              verified: domain.verified ? 1 : 0,
              is_primary: domain.primary ? 1 : 0,
              validation_type: domain.validationType,
              created_at: at,
              changed_at: at,
            }),
            "org_domain_row",
          ),
        ];
        if (domain.verified) rows.push(claimDomain(instanceId, orgId, domain.domain));
        return rows;
      }
      case "setPrimaryDomain":
        return [
          statement(
            db
              .updateTable("org_domains")
              .set({ is_primary: sql<number>`CASE WHEN domain = ${write.domain} THEN 1 ELSE 0 END`, changed_at: at })
              .where("instance_id", "=", instanceId)
              .where("org_id", "=", orgId),
          ),
        ];
      case "removeDomain": {
        const rows = [
          statement(db.deleteFrom("org_domains").where("instance_id", "=", instanceId).where("org_id", "=", orgId).where("domain", "=", write.domain)),
        ];
        if (write.verified) {
          rows.push(
            statement(
              db
                .deleteFrom("unique_constraints")
                .where("instance_id", "=", instanceId)
                .where("kind", "=", "org_domain")
                .where("value", "=", write.domain)
                .where("owner_id", "=", orgId),
            ),
          );
        }
        return rows;
      }
      case "addMember":
        return [
          statement(
            db.insertInto("members").values({
              instance_id: instanceId,
              org_id: orgId,
              user_id: write.userId,
              roles: write.roles.join(" "),
              created_at: at,
              changed_at: at,
            }),
            "member",
          ),
        ];
      case "changeMember":
        return [
          statement(
            db
              .updateTable("members")
              .set({ roles: write.roles.join(" "), changed_at: at })
              .where("instance_id", "=", instanceId)
              .where("org_id", "=", orgId)
              .where("user_id", "=", write.userId),
          ),
        ];
      case "removeMember":
        return [statement(db.deleteFrom("members").where("instance_id", "=", instanceId).where("org_id", "=", orgId).where("user_id", "=", write.userId))];
      case "setDomainPolicy": {
        const rows = [
          statement(db.deleteFrom("domain_policies").where("instance_id", "=", instanceId).where("org_id", "=", orgId)),
          statement(
            db
              .updateTable("orgs")
              .set({ user_login_must_be_domain: write.effectiveMustBeDomain ? 1 : 0 })
              .where("instance_id", "=", instanceId)
              .where("id", "=", orgId),
          ),
        ];
        if (write.policy) {
          rows.push(
            statement(
              db.insertInto("domain_policies").values({
                instance_id: instanceId,
                org_id: orgId,
                user_login_must_be_domain: write.policy.userLoginMustBeDomain ? 1 : 0,
                validate_org_domains: write.policy.validateOrgDomains ? 1 : 0,
                smtp_sender_address_matches_instance_domain: write.policy.smtpSenderAddressMatchesInstanceDomain ? 1 : 0,
                created_at: at,
                changed_at: at,
              }),
            ),
          );
        }
        if (write.reclaimUsernames) rows.push(...reclaimUsernames(instanceId, orgId, write.effectiveMustBeDomain));
        return rows;
      }
    }
  }

  function claimDomain(instanceId: string, orgId: string, domain: string): WriteStatement {
    return statement(db.insertInto("unique_constraints").values({ instance_id: instanceId, kind: "org_domain", value: domain, owner_id: orgId }), "org_domain");
  }

  /**
   * Moves every username claim of the organisation's users into the new scope (see
   * `usernameClaim` in src/domain/users.ts), in SQL so that users created meanwhile are included.
   * The claim values are built from the folded search key, the form every claim uses.
   */
  function reclaimUsernames(instanceId: string, orgId: string, orgScoped: boolean): WriteStatement[] {
    const orgUsers = db.selectFrom("users").select("id").where("instance_id", "=", instanceId).where("org_id", "=", orgId);
    const kind = orgScoped ? "org_username" : "username";
    return [
      statement(
        db
          .deleteFrom("unique_constraints")
          .where("instance_id", "=", instanceId)
          .where("kind", "in", ["username", "org_username"])
          .where("owner_id", "in", orgUsers),
      ),
      statement(
        db
          .insertInto("unique_constraints")
          .columns(["instance_id", "kind", "value", "owner_id"])
          .expression(
            db
              .selectFrom("users")
              .select((eb) => [
                "instance_id",
                eb.val(kind).as("kind"),
                (orgScoped ? sql<string>`org_id || '/' || username_lower` : sql<string>`username_lower`).as("value"),
                "id",
              ])
              .where("instance_id", "=", instanceId)
              .where("org_id", "=", orgId),
          ),
        kind,
      ),
    ];
  }

  return {
    async getOrg(instanceId, orgId) {
      const row = await db
        .selectFrom("orgs")
        .selectAll()
        .select((eb) =>
          eb
            .selectFrom("org_domains as d")
            .select("d.domain")
            .whereRef("d.instance_id", "=", "orgs.instance_id")
            .whereRef("d.org_id", "=", "orgs.id")
            .where("d.is_primary", "=", 1)
            .limit(1)
            .as("primary_domain"),
        )
        // The organisation's events are the truth of its sequence: other writers (identity
        // providers) append to the organisation too.
        .select((eb) =>
          eb
            .selectFrom("events as e")
            .select((e) => e.fn.max("e.sequence").as("last"))
            .whereRef("e.instance_id", "=", "orgs.instance_id")
            .whereRef("e.aggregate_id", "=", "orgs.id")
            .as("last_sequence"),
        )
        .where("instance_id", "=", instanceId)
        .where("id", "=", orgId)
        .executeTakeFirst();
      if (!row) return undefined;
      return {
        instanceId: row.instance_id,
        id: row.id,
        name: row.name,
        state: row.state,
        createdAt: Number(row.created_at),
        // Organisations from before migration 0005 have no change time: their creation is the last change.
        changedAt: Number(row.changed_at) || Number(row.created_at),
        sequence: Number(row.last_sequence ?? row.sequence),
        primaryDomain: row.primary_domain ?? "",
        userLoginMustBeDomain: Number(row.user_login_must_be_domain) === 1,
      } satisfies Org;
    },

    createOrg({ org, domain, owner, events: list, creator }, request) {
      const at = org.createdAt;
      return writes.run(
        [
          statement(
            db.insertInto("orgs").values({
              instance_id: org.instanceId,
              id: org.id,
              name: org.name,
              created_at: at,
              state: org.state,
              changed_at: at,
              sequence: list.length,
              user_login_must_be_domain: org.userLoginMustBeDomain ? 1 : 0,
            }),
          ),
          statement(
            db.insertInto("unique_constraints").values({ instance_id: org.instanceId, kind: "org_name", value: foldCase(org.name), owner_id: org.id }),
            "org_name",
          ),
          ...writeStatements(org.instanceId, org.id, { kind: "addDomain", domain }, at),
          ...events(org.instanceId, org.id, 1, list, creator, at),
          ...writeStatements(org.instanceId, org.id, { kind: "addMember", userId: owner.userId, roles: owner.roles }, at),
        ],
        request,
      );
    },

    changeOrg({ instanceId, orgId, expectedSequence, events: list, writes: changes, at, creator }, request) {
      // The events go first: their sequence numbers are unique per organisation, so a change
      // that lost a race fails before anything else is written.
      return writes.run(
        [
          ...events(instanceId, orgId, expectedSequence + 1, list, creator, at),
          statement(
            db
              .updateTable("orgs")
              .set({ sequence: expectedSequence + list.length, changed_at: at })
              .where("instance_id", "=", instanceId)
              .where("id", "=", orgId),
          ),
          ...changes.flatMap((change) => writeStatements(instanceId, orgId, change, at)),
        ],
        request,
      );
    },

    async listDomains(instanceId, orgId) {
      const rows = await db.selectFrom("org_domains").selectAll().where("instance_id", "=", instanceId).where("org_id", "=", orgId).orderBy("domain").execute();
      return rows.map(
        (row): OrgDomain => ({
          orgId: row.org_id,
          domain: row.domain,
          verified: Number(row.verified) === 1,
          primary: Number(row.is_primary) === 1,
          validationType: Number(row.validation_type),
          createdAt: Number(row.created_at),
          changedAt: Number(row.changed_at),
        }),
      );
    },

    async customDomainPolicy(instanceId, orgId) {
      const row = await db.selectFrom("domain_policies").selectAll().where("instance_id", "=", instanceId).where("org_id", "=", orgId).executeTakeFirst();
      return (
        row &&
        ({
          userLoginMustBeDomain: Number(row.user_login_must_be_domain) === 1,
          validateOrgDomains: Number(row.validate_org_domains) === 1,
          smtpSenderAddressMatchesInstanceDomain: Number(row.smtp_sender_address_matches_instance_domain) === 1,
        } satisfies DomainPolicy)
      );
    },

    async listMembers(instanceId, orgId) {
      const members = await db.selectFrom("members").selectAll().where("instance_id", "=", instanceId).where("org_id", "=", orgId).orderBy("user_id").execute();
      const found = await usersById(
        db,
        instanceId,
        members.map((m) => m.user_id),
      );
      // Members show their preferred login names, as the users do.
      const users = new Map((await withLoginNames(instanceId, [...found.values()])).map((u) => [u.id, u]));
      return members.map((member) => ({
        userId: member.user_id,
        roles: member.roles.split(" ").filter((role) => role !== ""),
        createdAt: Number(member.created_at),
        changedAt: Number(member.changed_at) || Number(member.created_at),
        user: users.get(member.user_id),
      }));
    },

    async getUser(instanceId, userId) {
      return (await usersById(db, instanceId, [userId])).get(userId);
    },

    async listTokens(instanceId, userId) {
      const rows = await db
        .selectFrom("personal_access_tokens")
        .select(["id", "user_id", "expires_at", "created_at"])
        .where("instance_id", "=", instanceId)
        .where("user_id", "=", userId)
        .orderBy("id")
        .execute();
      return rows.map(
        (row): PersonalAccessToken => ({
          id: row.id,
          userId: row.user_id,
          expiresAt: Number(row.expires_at),
          createdAt: Number(row.created_at),
        }),
      );
    },

    changeTokens({ instanceId, userId, expectedSequence, event, at, creator, add, removeId }, request) {
      return writes.run(
        [
          ...events(instanceId, userId, expectedSequence + 1, [event], creator, at, "user"),
          statement(
            db
              .updateTable("users")
              .set({ sequence: expectedSequence + 1, changed_at: at })
              .where("instance_id", "=", instanceId)
              .where("id", "=", userId),
          ),
          ...(add
            ? [
                statement(
                  db.insertInto("personal_access_tokens").values({
                    instance_id: instanceId,
                    id: add.id,
                    user_id: userId,
                    digest: add.digest,
                    expires_at: add.expiresAt,
                    created_at: add.createdAt,
                  }),
                ),
              ]
            : []),
          ...(removeId !== undefined
            ? [
                statement(
                  db.deleteFrom("personal_access_tokens").where("instance_id", "=", instanceId).where("user_id", "=", userId).where("id", "=", removeId),
                ),
              ]
            : []),
        ],
        request,
      );
    },
  };
}

async function usersById(db: Kysely<Database>, instanceId: string, ids: readonly string[]): Promise<Map<string, User>> {
  if (ids.length === 0) return new Map();
  const rows: Selectable<UserTable>[] = await db
    .selectFrom("users")
    .selectAll()
    .where("instance_id", "=", instanceId)
    .where("id", "in", [...ids])
    .execute();
  return new Map(rows.map((row) => [row.id, toUser(row)]));
}
