import { type Insertable, type Kysely, type Selectable, sql, type Updateable } from "kysely";
import type { CodeKind } from "../domain/secrets.js";
import type { NewCode, NewUser, User, UserStore, UserUpdate } from "../domain/ports.js";
import { projectedSequence } from "../domain/user-details.js";
import { foldCase } from "../domain/user-queries.js";
import type { Db } from "./db.js";
import { outboxStatements } from "./outbox-store.js";
import { createLoginNames } from "./login-names.js";
import { type Prepared, param, prepare, type WriteStatement } from "./prepared.js";
import type { CodeTable, Database, EventTable, UniqueConstraintTable, UserIdpLinkTable, UserMetadataTable, UserTable } from "./schema.js";

/** An insert of every column of a table, prepared once with one named parameter per column. */
function prepareInsert<T extends keyof Database & string>(db: Kysely<Database>, table: T, columns: ReadonlyArray<keyof Insertable<Database[T]> & string>) {
  const values = Object.fromEntries(columns.map((column) => [column, param(column)]));
  return prepare<Record<string, unknown>>(db.insertInto(table).values(values as never));
}

const USER_COLUMNS = [
  "instance_id",
  "id",
  "org_id",
  "type",
  "state",
  "username",
  "given_name",
  "family_name",
  "nick_name",
  "display_name",
  "preferred_language",
  "gender",
  "email",
  "email_verified",
  "phone",
  "phone_verified",
  "password_hash",
  "password_change_required",
  "password_changed_at",
  "machine_name",
  "machine_description",
  "created_at",
  "changed_at",
  "sequence",
  "details_sequence",
  "details_changed_at",
  "username_lower",
  "given_name_lower",
  "family_name_lower",
  "nick_name_lower",
  "display_name_lower",
  "email_lower",
  "totp_secret",
] as const satisfies ReadonlyArray<keyof UserTable>;
const UNIQUE_COLUMNS = ["instance_id", "kind", "value", "owner_id"] as const satisfies ReadonlyArray<keyof UniqueConstraintTable>;
const EVENT_COLUMNS = [
  "instance_id",
  "aggregate_type",
  "aggregate_id",
  "sequence",
  "type",
  "payload",
  "creator",
  "created_at",
] as const satisfies ReadonlyArray<keyof EventTable>;
/** Creation events also name the user's organisation, which stays readable after a removal. */
const CREATION_EVENT_COLUMNS = [...EVENT_COLUMNS, "resource_owner"] as const satisfies ReadonlyArray<keyof EventTable>;
const CODE_COLUMNS = [
  "instance_id",
  "id",
  "user_id",
  "kind",
  "sealed_code",
  "expires_at",
  "created_at",
  "returned",
  "url_template",
  "used_at",
] as const satisfies ReadonlyArray<keyof CodeTable>;

const LINK_COLUMNS = ["instance_id", "user_id", "idp_id", "external_user_id", "display_name", "created_at"] as const satisfies ReadonlyArray<
  keyof UserIdpLinkTable
>;
const METADATA_COLUMNS = ["instance_id", "user_id", "key", "value", "created_at", "changed_at", "sequence"] as const satisfies ReadonlyArray<
  keyof UserMetadataTable
>;

type UserOwnedTable = "users" | "unique_constraints" | "codes" | "personal_access_tokens" | "members" | "user_idp_links" | "user_metadata" | "passkeys";

/** The prepared inserts of a user's rows, shared by single creates and bulk imports (bulk-store.ts). */
export function createUserInserts(db: Kysely<Database>) {
  return {
    user: prepareInsert(db, "users", USER_COLUMNS),
    unique: prepareInsert(db, "unique_constraints", UNIQUE_COLUMNS),
    event: prepareInsert(db, "events", EVENT_COLUMNS),
    creationEvent: prepareInsert(db, "events", CREATION_EVENT_COLUMNS),
    code: prepareInsert(db, "codes", CODE_COLUMNS),
    link: prepareInsert(db, "user_idp_links", LINK_COLUMNS),
    metadata: prepareInsert(db, "user_metadata", METADATA_COLUMNS),
  };
}

/** The SQL implementation of the domain's user store. */
export function createUserStore({ db, read, writes }: Db): UserStore {
  const insert = createUserInserts(db);
  const byUser = (table: UserOwnedTable) =>
    prepare<{ instance_id: string; user_id: string }>(
      db
        .deleteFrom(table)
        .where("instance_id", "=", param<string>("instance_id"))
        .where(table === "users" ? "id" : table === "unique_constraints" ? "owner_id" : "user_id", "=", param<string>("user_id")),
    );
  const change = {
    state: prepare<{ state: string; changed_at: number; sequence: number; instance_id: string; id: string }>(
      db
        .updateTable("users")
        .set({ state: param("state"), changed_at: param("changed_at"), sequence: param("sequence") })
        .where("instance_id", "=", param<string>("instance_id"))
        .where("id", "=", param<string>("id")),
    ),
    // A state change ZITADEL's users projection dates the user by (all of them): reads move too.
    stateDated: prepare<{ state: string; changed_at: number; sequence: number; instance_id: string; id: string }>(
      db
        .updateTable("users")
        .set({
          state: param("state"),
          changed_at: param("changed_at"),
          sequence: param("sequence"),
          details_changed_at: param("changed_at"),
          details_sequence: param("sequence"),
        })
        .where("instance_id", "=", param<string>("instance_id"))
        .where("id", "=", param<string>("id")),
    ),
    // Literal zeros: prepared statements bind only named parameters.
    resetFailedChecks: prepare<{ instance_id: string; id: string }>(
      db
        .updateTable("users")
        .set({ password_failed_attempts: sql<number>`0`, otp_failed_attempts: sql<number>`0` })
        .where("instance_id", "=", param<string>("instance_id"))
        .where("id", "=", param<string>("id")),
    ),
    // Removing a user releases its username, links and passkeys at once, and ends its codes, tokens and roles.
    remove: [
      byUser("users"),
      byUser("unique_constraints"),
      byUser("codes"),
      byUser("personal_access_tokens"),
      byUser("members"),
      byUser("user_idp_links"),
      byUser("user_metadata"),
      byUser("passkeys"),
    ],
  };
  const selectUser: Prepared<{ instance_id: string; id: string }> = prepare(
    db.selectFrom("users").selectAll().where("instance_id", "=", param<string>("instance_id")).where("id", "=", param<string>("id")),
  );
  const selectMetadata = prepare<{ instance_id: string; user_id: string }>(
    db
      .selectFrom("user_metadata")
      .selectAll()
      .where("instance_id", "=", param<string>("instance_id"))
      .where("user_id", "=", param<string>("user_id"))
      .orderBy("key"),
  );
  const lastSequence = prepare<{ instance_id: string; aggregate_type: string; aggregate_id: string }>(
    db
      .selectFrom("events")
      .select((eb) => eb.fn.max("sequence").as("last"))
      .where("instance_id", "=", param<string>("instance_id"))
      .where("aggregate_type", "=", param<string>("aggregate_type"))
      .where("aggregate_id", "=", param<string>("aggregate_id")),
  );
  const withLoginNames = createLoginNames(db, read);
  const orgScoped = prepare<{ instance_id: string; id: string }>(
    db.selectFrom("orgs").select("user_login_must_be_domain").where("instance_id", "=", param<string>("instance_id")).where("id", "=", param<string>("id")),
  );
  // With a domain in the username, the organisation's flag and the owner of that domain (a
  // verified domain is claimed instance-wide by its organisation) in one round trip.
  const orgScopedAndDomainOwner = prepare<{ instance_id: string; id: string; kind: string; value: string }>(
    db.selectNoFrom((eb) => [
      eb
        .selectFrom("orgs")
        .select("user_login_must_be_domain")
        .where("instance_id", "=", param<string>("instance_id"))
        .where("id", "=", param<string>("id"))
        .as("user_login_must_be_domain"),
      eb
        .selectFrom("unique_constraints")
        .select("owner_id")
        .where("instance_id", "=", param<string>("instance_id"))
        .where("kind", "=", param<string>("kind"))
        .where("value", "=", param<string>("value"))
        .as("owner_id"),
    ]),
  );
  return {
    createUser: (creation, request) => writes.run([...userCreationStatements(insert, creation), ...outboxStatements(db, creation.outbox)], request),
    changeUser(userChange, request) {
      const { instanceId, userId, expectedSequence } = userChange;
      // The event goes first: its sequence number is unique per user, so a change that lost a
      // race fails here, before anything else is written.
      const event = insert.event.statement(
        {
          instance_id: instanceId,
          aggregate_type: "user",
          aggregate_id: userId,
          sequence: expectedSequence + 1,
          type: userChange.event.type,
          payload: JSON.stringify(userChange.event.payload),
          creator: userChange.creator,
          created_at: userChange.at,
        },
        "sequence",
      );
      const rest =
        userChange.state === "removed"
          ? change.remove.map((statement) => statement.statement({ instance_id: instanceId, user_id: userId }))
          : [
              (projectedSequence([userChange.event], 1) === undefined ? change.state : change.stateDated).statement({
                state: userChange.state,
                changed_at: userChange.at,
                sequence: expectedSequence + 1,
                instance_id: instanceId,
                id: userId,
              }),
              ...(userChange.resetFailedChecks ? [change.resetFailedChecks.statement({ instance_id: instanceId, id: userId })] : []),
            ];
      const codes = (userChange.codes ?? []).map((code) => codeStatement(insert.code, instanceId, userId, userChange.at, code));
      return writes.run([event, ...rest, ...codes, ...outboxStatements(db, userChange.outbox)], request);
    },
    updateUser: (update, request) => writes.run(userUpdateStatements(db, insert, update), request),
    async listIdpLinks(instanceId, userId) {
      const rows = await db
        .selectFrom("user_idp_links")
        .select(["idp_id", "external_user_id", "display_name"])
        .where("instance_id", "=", instanceId)
        .where("user_id", "=", userId)
        .orderBy("created_at")
        .orderBy("idp_id")
        .orderBy("external_user_id")
        .execute();
      return rows.map((row) => ({ idpId: row.idp_id, externalUserId: row.external_user_id, displayName: row.display_name }));
    },
    async listMetadata(instanceId, userId) {
      const rows = await read<Selectable<UserMetadataTable>>(selectMetadata.bind({ instance_id: instanceId, user_id: userId }));
      return rows.map((row) => ({
        key: row.key,
        value: new Uint8Array(Buffer.from(row.value, "base64")),
        createdAt: Number(row.created_at),
        changedAt: Number(row.changed_at),
        sequence: Number(row.sequence),
      }));
    },
    async lastSequence(instanceId, userId) {
      const rows = await read<{ last: number | null }>(lastSequence.bind({ instance_id: instanceId, aggregate_type: "user", aggregate_id: userId }));
      return Number(rows[0]?.last ?? 0);
    },
    async getUser(instanceId, userId) {
      const rows = await read<Selectable<UserTable>>(selectUser.bind({ instance_id: instanceId, id: userId }));
      return rows[0] && (await withLoginNames(instanceId, [toUser(rows[0])]))[0];
    },
    async usernameRules(instanceId, orgId, username) {
      const at = username.lastIndexOf("@");
      const [row] =
        at < 0
          ? await read<{ user_login_must_be_domain: number; owner_id?: undefined }>(orgScoped.bind({ instance_id: instanceId, id: orgId }))
          : await read<{ user_login_must_be_domain: number | null; owner_id: string | null }>(
              orgScopedAndDomainOwner.bind({ instance_id: instanceId, id: orgId, kind: "org_domain", value: username.slice(at + 1).toLowerCase() }),
            );
      return { orgScoped: Number(row?.user_login_must_be_domain ?? 0) === 1, domainOwner: row?.owner_id ?? undefined };
    },
    async findCode(instanceId, userId, kind) {
      const row = await db
        .selectFrom("codes")
        .select(["id", "kind", "sealed_code", "expires_at", "created_at", "used_at"])
        .where("instance_id", "=", instanceId)
        .where("user_id", "=", userId)
        .where("kind", "=", kind)
        .orderBy("created_at", "desc")
        .orderBy("id", "desc")
        .executeTakeFirst();
      return (
        row && {
          id: row.id,
          kind: row.kind as CodeKind,
          sealedCode: row.sealed_code,
          expiresAt: Number(row.expires_at),
          createdAt: Number(row.created_at),
          usedAt: row.used_at === null ? undefined : Number(row.used_at),
        }
      );
    },
  };
}

/** The organisation, if it exists in the instance. */

export type Inserts = Record<"user" | "unique" | "creationEvent" | "code" | "link" | "metadata", Prepared<Record<string, unknown>>>;

/** Metadata values are bytes; the writer takes text, so they are stored in base64. */
const base64 = (value: Uint8Array) => Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64");

/**
 * The statements of a user update. The events go first: the first one's sequence number is
 * unique per user, so an update that lost a race fails there, before anything else is written.
 * Not a hot path, so the statements are built per update.
 */
export function userUpdateStatements(
  db: Kysely<Database>,
  insert: Inserts & { event: Prepared<Record<string, unknown>> },
  update: UserUpdate,
): WriteStatement[] {
  const { instanceId, userId, at } = update;
  const sequence = update.expectedSequence + update.events.length;
  const compiled = (query: { compile(): { sql: string; parameters: readonly unknown[] } }, uniqueKind?: string): WriteStatement => {
    const { sql, parameters } = query.compile();
    return { sql, parameters, ...(uniqueKind === undefined ? {} : { uniqueKind }) };
  };
  const statements: WriteStatement[] = update.events.map((event, i) =>
    insert.event.statement(
      {
        instance_id: instanceId,
        aggregate_type: "user",
        aggregate_id: userId,
        sequence: update.expectedSequence + 1 + i,
        type: event.type,
        payload: JSON.stringify(event.payload),
        creator: update.creator,
        created_at: at,
      },
      "sequence",
    ),
  );
  const columns: Updateable<UserTable> = { changed_at: at, sequence };
  const dated = projectedSequence(update.events, update.expectedSequence + 1);
  if (dated !== undefined) {
    columns.details_sequence = dated;
    columns.details_changed_at = at;
  }
  if (update.set?.username !== undefined) {
    columns.username = update.set.username;
    columns.username_lower = foldCase(update.set.username);
  }
  const profile = update.set?.profile;
  if (profile !== undefined) {
    columns.given_name = profile.givenName;
    columns.given_name_lower = foldCase(profile.givenName);
    columns.family_name = profile.familyName;
    columns.family_name_lower = foldCase(profile.familyName);
    columns.nick_name = profile.nickName;
    columns.nick_name_lower = foldCase(profile.nickName);
    columns.display_name = profile.displayName;
    columns.display_name_lower = foldCase(profile.displayName);
    columns.preferred_language = profile.preferredLanguage;
    columns.gender = profile.gender;
  }
  if (update.set?.email !== undefined) {
    columns.email = update.set.email;
    columns.email_lower = foldCase(update.set.email);
  }
  if (update.set?.emailVerified !== undefined) columns.email_verified = update.set.emailVerified ? 1 : 0;
  if (update.set?.phone !== undefined) columns.phone = update.set.phone;
  if (update.set?.phoneVerified !== undefined) columns.phone_verified = update.set.phoneVerified ? 1 : 0;
  if (update.set?.state !== undefined) columns.state = update.set.state;
  if (update.set?.passwordHash !== undefined) {
    columns.password_hash = update.set.passwordHash;
    columns.password_changed_at = update.set.passwordHash === null ? null : at;
  }
  if (update.set?.passwordChangeRequired !== undefined) {
    columns.password_change_required = update.set.passwordChangeRequired ? 1 : 0;
  }
  if (update.set?.profile !== undefined) {
    const profile = update.set.profile;
    Object.assign(columns, {
      given_name: profile.givenName,
      given_name_lower: foldCase(profile.givenName),
      family_name: profile.familyName,
      family_name_lower: foldCase(profile.familyName),
      nick_name: profile.nickName,
      nick_name_lower: foldCase(profile.nickName),
      display_name: profile.displayName,
      display_name_lower: foldCase(profile.displayName),
      preferred_language: profile.preferredLanguage,
      gender: profile.gender,
    });
  }
  if (update.set?.orgId !== undefined) columns.org_id = update.set.orgId;
  statements.push(compiled(db.updateTable("users").set(columns).where("instance_id", "=", instanceId).where("id", "=", userId)));
  for (const release of update.release ?? []) {
    let query = db.deleteFrom("unique_constraints").where("instance_id", "=", instanceId).where("kind", "=", release.kind).where("owner_id", "=", userId);
    if (release.value !== undefined) query = query.where("value", "=", release.value);
    statements.push(compiled(query));
  }
  for (const claim of update.claim ?? []) {
    statements.push(insert.unique.statement({ instance_id: instanceId, kind: claim.kind, value: claim.value, owner_id: userId }, claim.kind));
  }
  if (update.replaceCodes && update.replaceCodes.length > 0) {
    statements.push(
      compiled(db.deleteFrom("codes").where("instance_id", "=", instanceId).where("user_id", "=", userId).where("kind", "in", update.replaceCodes)),
    );
  }
  if (update.useCode !== undefined) {
    statements.push(
      compiled(
        db.updateTable("codes").set({ used_at: at }).where("instance_id", "=", instanceId).where("id", "=", update.useCode).where("user_id", "=", userId),
      ),
    );
  }
  for (const code of update.codes ?? []) statements.push(codeStatement(insert.code, instanceId, userId, at, code));
  for (const link of update.removeLinks ?? []) {
    statements.push(
      compiled(
        db
          .deleteFrom("user_idp_links")
          .where("instance_id", "=", instanceId)
          .where("user_id", "=", userId)
          .where("idp_id", "=", link.idpId)
          .where("external_user_id", "=", link.externalUserId),
      ),
    );
  }
  for (const link of update.addLinks ?? []) statements.push(linkStatement(insert, instanceId, userId, at, link));
  const metadataKeys = [...(update.removeMetadata ?? []), ...(update.setMetadata ?? []).map((entry) => entry.key)];
  if (metadataKeys.length > 0) {
    // A set replaces the whole entry (its dates and sequence are those of this update).
    statements.push(
      compiled(db.deleteFrom("user_metadata").where("instance_id", "=", instanceId).where("user_id", "=", userId).where("key", "in", metadataKeys)),
    );
  }
  for (const entry of update.setMetadata ?? []) {
    statements.push(metadataStatement(insert, instanceId, userId, at, sequence, entry));
  }
  statements.push(...outboxStatements(db, update.outbox));
  return statements;
}

function linkStatement(insert: Inserts, instanceId: string, userId: string, at: number, link: NonNullable<NewUser["idpLinks"]>[number]) {
  return insert.link.statement({
    instance_id: instanceId,
    user_id: userId,
    idp_id: link.idpId,
    external_user_id: link.externalUserId,
    display_name: link.displayName,
    created_at: at,
  });
}

function metadataStatement(insert: Inserts, instanceId: string, userId: string, at: number, sequence: number, entry: NonNullable<NewUser["metadata"]>[number]) {
  return insert.metadata.statement({
    instance_id: instanceId,
    user_id: userId,
    key: entry.key,
    value: base64(entry.value),
    created_at: at,
    changed_at: at,
    sequence,
  });
}

/** The statements that create a user: its row, its unique claims, its events and its codes. */
export function userCreationStatements(insert: Inserts, change: NewUser): WriteStatement[] {
  const { user, creator } = change;
  const human = user.human;
  const givenName = human?.profile.givenName ?? "";
  const familyName = human?.profile.familyName ?? "";
  const nickName = human?.profile.nickName ?? "";
  const displayName = human?.profile.displayName ?? "";
  const email = human?.email.address ?? "";
  const row: Insertable<UserTable> = {
    instance_id: user.instanceId,
    id: user.id,
    org_id: user.orgId,
    type: user.type,
    state: user.state,
    username: user.username,
    given_name: givenName,
    family_name: familyName,
    nick_name: nickName,
    display_name: displayName,
    preferred_language: human?.profile.preferredLanguage ?? "",
    gender: human?.profile.gender ?? 0,
    email,
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
    // Creation always starts with an event that dates the user (user.human.added, user.machine.added).
    details_sequence: projectedSequence(change.events, change.firstSequence) ?? user.sequence,
    details_changed_at: user.createdAt,
    // Search keys (src/store/search-keys.ts), set one by one: this is the import hot path.
    username_lower: foldCase(user.username),
    given_name_lower: foldCase(givenName),
    family_name_lower: foldCase(familyName),
    nick_name_lower: foldCase(nickName),
    display_name_lower: foldCase(displayName),
    email_lower: foldCase(email),
    totp_secret: change.sealedTotpSecret ?? null,
  };
  return [
    insert.user.statement(row, "user_id"),
    ...change.uniques.map((unique) =>
      insert.unique.statement({ instance_id: user.instanceId, kind: unique.kind, value: unique.value, owner_id: user.id }, unique.kind),
    ),
    ...change.events.map((event, i) =>
      insert.creationEvent.statement({
        instance_id: user.instanceId,
        aggregate_type: "user",
        aggregate_id: user.id,
        sequence: change.firstSequence + i,
        type: event.type,
        payload: JSON.stringify(event.payload),
        creator,
        created_at: user.createdAt,
        resource_owner: user.orgId,
      }),
    ),
    ...change.codes.map((code) => codeStatement(insert.code, user.instanceId, user.id, user.createdAt, code)),
    ...(change.idpLinks ?? []).map((link) => linkStatement(insert, user.instanceId, user.id, user.createdAt, link)),
    ...(change.metadata ?? []).map((entry) => metadataStatement(insert, user.instanceId, user.id, user.createdAt, user.sequence, entry)),
  ];
}

function codeStatement(insert: Prepared<Record<string, unknown>>, instanceId: string, userId: string, at: number, code: NewCode) {
  return insert.statement({
    instance_id: instanceId,
    id: code.id,
    user_id: userId,
    kind: code.kind,
    sealed_code: code.sealedCode,
    expires_at: code.expiresAt,
    created_at: at,
    returned: code.returned ? 1 : 0,
    url_template: code.urlTemplate ?? null,
    used_at: null,
  });
}

export function toUser(row: Selectable<UserTable>): User {
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
    projected:
      row.details_sequence === null || row.details_changed_at === null
        ? { sequence: Number(row.sequence), changedAt: Number(row.changed_at) }
        : { sequence: Number(row.details_sequence), changedAt: Number(row.details_changed_at) },
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
