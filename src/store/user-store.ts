import type { Kysely, Selectable, Transaction } from "kysely";
import type { NewUser, Org, User, UserStore } from "../domain/store-port.js";
import { UniqueViolation } from "../domain/store-port.js";
import { type Db, isUniqueViolation } from "./db.js";
import type { Database, UserTable } from "./schema.js";

/** The SQL implementation of the domain's user store. */
export function createUserStore({ db, writes }: Db): UserStore {
  return {
    createUser: (change) => writes.run((trx) => insertUser(trx, change)),
    async getUser(instanceId, userId) {
      const row = await db
        .selectFrom("users")
        .selectAll()
        .where("instance_id", "=", instanceId)
        .where("id", "=", userId)
        .executeTakeFirst();
      return row && toUser(row);
    },
    getOrg: (instanceId, orgId) => findOrg(db, instanceId, orgId),
  };
}

export async function findOrg(db: Kysely<Database>, instanceId: string, orgId: string): Promise<Org | undefined> {
  const row = await db
    .selectFrom("orgs")
    .select(["instance_id", "id", "name"])
    .where("instance_id", "=", instanceId)
    .where("id", "=", orgId)
    .executeTakeFirst();
  return row && { instanceId: row.instance_id, id: row.id, name: row.name };
}

async function insertUser(trx: Transaction<Database>, change: NewUser): Promise<void> {
  const { user, creator } = change;
  const human = user.human;
  try {
    await trx
      .insertInto("users")
      .values({
        instance_id: user.instanceId,
        id: user.id,
        org_id: user.orgId,
        type: user.type,
        state: user.state,
        username: user.username,
        given_name: human?.profile.givenName ?? "",
        family_name: human?.profile.familyName ?? "",
        nick_name: human?.profile.nickName ?? "",
        display_name: human?.profile.displayName ?? "",
        preferred_language: human?.profile.preferredLanguage ?? "",
        gender: human?.profile.gender ?? 0,
        email: human?.email.address ?? "",
        email_verified: human?.email.verified ? 1 : 0,
        phone: human?.phone.number ?? "",
        phone_verified: human?.phone.verified ? 1 : 0,
        password_hash: change.passwordHash ?? null,
        password_change_required: human?.passwordChangeRequired ? 1 : 0,
        password_changed_at: human?.passwordChangedAt ?? null,
        machine_name: user.machine?.name ?? "",
        machine_description: user.machine?.description ?? "",
        created_at: user.createdAt,
        changed_at: user.changedAt,
        sequence: user.sequence,
      })
      .execute();
  } catch (err) {
    throw isUniqueViolation(err) ? new UniqueViolation("user_id") : err;
  }
  for (const unique of change.uniques) {
    try {
      await trx
        .insertInto("unique_constraints")
        .values({ instance_id: user.instanceId, kind: unique.kind, value: unique.value, owner_id: user.id })
        .execute();
    } catch (err) {
      throw isUniqueViolation(err) ? new UniqueViolation(unique.kind) : err;
    }
  }
  await trx
    .insertInto("events")
    .values(
      change.events.map((event, i) => ({
        instance_id: user.instanceId,
        aggregate_type: "user",
        aggregate_id: user.id,
        sequence: i + 1,
        type: event.type,
        payload: JSON.stringify(event.payload),
        creator,
        created_at: user.createdAt,
      })),
    )
    .execute();
  if (change.codes.length > 0) {
    await trx
      .insertInto("codes")
      .values(
        change.codes.map((code) => ({
          instance_id: user.instanceId,
          id: code.id,
          user_id: user.id,
          kind: code.kind,
          sealed_code: code.sealedCode,
          expires_at: code.expiresAt,
          created_at: user.createdAt,
          returned: code.returned ? 1 : 0,
          url_template: code.urlTemplate ?? null,
          used_at: null,
        })),
      )
      .execute();
  }
}

function toUser(row: Selectable<UserTable>): User {
  const user: User = {
    instanceId: row.instance_id,
    id: row.id,
    orgId: row.org_id,
    type: row.type,
    state: row.state,
    username: row.username,
    createdAt: Number(row.created_at),
    changedAt: Number(row.changed_at),
    sequence: Number(row.sequence),
  };
  if (row.type === "machine") {
    user.machine = { name: row.machine_name, description: row.machine_description };
    return user;
  }
  user.human = {
    profile: {
      givenName: row.given_name,
      familyName: row.family_name,
      nickName: row.nick_name,
      displayName: row.display_name,
      preferredLanguage: row.preferred_language,
      gender: row.gender,
    },
    email: { address: row.email, verified: row.email_verified === 1 },
    phone: { number: row.phone, verified: row.phone_verified === 1 },
    passwordSet: row.password_hash !== null,
    passwordChangeRequired: row.password_change_required === 1,
    passwordChangedAt: row.password_changed_at === null ? undefined : Number(row.password_changed_at),
  };
  return user;
}
