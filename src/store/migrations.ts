import { type Kysely, type Migration, Migrator } from "kysely";

/**
 * Schema migrations, in order. Written with Kysely's schema builder only, so each runs on
 * SQLite and PostgreSQL alike; never edit one that has shipped, add the next instead.
 */
const MIGRATIONS: Record<string, Migration> = {
  "0001_initial": {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("instances")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("default_org_id", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("orgs")
        .addColumn("instance_id", "text", (c) => c.notNull())
        .addColumn("id", "text", (c) => c.notNull())
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("orgs_pk", ["instance_id", "id"])
        .execute();
      await db.schema
        .createTable("users")
        .addColumn("instance_id", "text", (c) => c.notNull())
        .addColumn("id", "text", (c) => c.notNull())
        .addColumn("org_id", "text", (c) => c.notNull())
        .addColumn("type", "text", (c) => c.notNull())
        .addColumn("state", "text", (c) => c.notNull())
        .addColumn("username", "text", (c) => c.notNull())
        .addColumn("given_name", "text", (c) => c.notNull())
        .addColumn("family_name", "text", (c) => c.notNull())
        .addColumn("nick_name", "text", (c) => c.notNull())
        .addColumn("display_name", "text", (c) => c.notNull())
        .addColumn("preferred_language", "text", (c) => c.notNull())
        .addColumn("gender", "integer", (c) => c.notNull())
        .addColumn("email", "text", (c) => c.notNull())
        .addColumn("email_verified", "integer", (c) => c.notNull())
        .addColumn("phone", "text", (c) => c.notNull())
        .addColumn("phone_verified", "integer", (c) => c.notNull())
        .addColumn("password_hash", "text")
        .addColumn("password_change_required", "integer", (c) => c.notNull())
        .addColumn("password_changed_at", "bigint")
        .addColumn("machine_name", "text", (c) => c.notNull())
        .addColumn("machine_description", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("changed_at", "bigint", (c) => c.notNull())
        .addColumn("sequence", "integer", (c) => c.notNull())
        .addPrimaryKeyConstraint("users_pk", ["instance_id", "id"])
        .execute();
      await db.schema.createIndex("users_org_idx").on("users").columns(["instance_id", "org_id"]).execute();
      await db.schema
        .createTable("unique_constraints")
        .addColumn("instance_id", "text", (c) => c.notNull())
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("value", "text", (c) => c.notNull())
        .addColumn("owner_id", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("unique_constraints_pk", ["instance_id", "kind", "value"])
        .execute();
      await db.schema
        .createTable("events")
        .addColumn("position", "integer", (c) => c.primaryKey().autoIncrement())
        .addColumn("instance_id", "text", (c) => c.notNull())
        .addColumn("aggregate_type", "text", (c) => c.notNull())
        .addColumn("aggregate_id", "text", (c) => c.notNull())
        .addColumn("sequence", "integer", (c) => c.notNull())
        .addColumn("type", "text", (c) => c.notNull())
        .addColumn("payload", "text", (c) => c.notNull())
        .addColumn("creator", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addUniqueConstraint("events_aggregate_sequence", ["instance_id", "aggregate_id", "sequence"])
        .execute();
      await db.schema
        .createTable("codes")
        .addColumn("instance_id", "text", (c) => c.notNull())
        .addColumn("id", "text", (c) => c.notNull())
        .addColumn("user_id", "text", (c) => c.notNull())
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("sealed_code", "text", (c) => c.notNull())
        .addColumn("expires_at", "bigint", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("returned", "integer", (c) => c.notNull())
        .addColumn("url_template", "text")
        .addColumn("used_at", "bigint")
        .addPrimaryKeyConstraint("codes_pk", ["instance_id", "id"])
        .execute();
      await db.schema.createIndex("codes_user_idx").on("codes").columns(["instance_id", "user_id", "kind"]).execute();
      await db.schema
        .createTable("personal_access_tokens")
        .addColumn("instance_id", "text", (c) => c.notNull())
        .addColumn("id", "text", (c) => c.notNull())
        .addColumn("user_id", "text", (c) => c.notNull())
        .addColumn("digest", "text", (c) => c.notNull().unique())
        .addColumn("expires_at", "bigint", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("personal_access_tokens_pk", ["instance_id", "id"])
        .execute();
      await db.schema
        .createTable("members")
        .addColumn("instance_id", "text", (c) => c.notNull())
        .addColumn("org_id", "text", (c) => c.notNull())
        .addColumn("user_id", "text", (c) => c.notNull())
        .addColumn("roles", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("members_pk", ["instance_id", "org_id", "user_id"])
        .execute();
      await db.schema.createIndex("members_user_idx").on("members").columns(["instance_id", "user_id"]).execute();
    },
  },
};

/** Brings the schema up to date; Kysely's migrator records what ran and locks while it runs. */
export async function migrateToLatest(db: Kysely<unknown>): Promise<void> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => MIGRATIONS } });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === "Error");
  if (error || failed) {
    throw new Error(`schema migration ${failed?.migrationName ?? ""} failed`, { cause: error });
  }
}
