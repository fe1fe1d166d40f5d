import { type Kysely, type Migration, Migrator, sql } from "kysely";
import { PROJECTED_EVENT_TYPES } from "../domain/user-details.js";
import { withSearchKeys } from "./search-keys.js";

export type Dialect = "sqlite" | "postgres";

/**
 * Schema migrations, in order. Written with Kysely's schema builder and plain SQL that SQLite and
 * PostgreSQL share, so each runs on both, apart from the few steps that branch on the dialect;
 * never edit one that has shipped, add the next instead.
 */
export const migrations = (dialect: Dialect): Record<string, Migration> => ({
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
        // PostgreSQL has no AUTOINCREMENT; its identity columns come from a sequence.
        .addColumn("position", dialect === "postgres" ? "bigserial" : "integer", (c) =>
          dialect === "postgres" ? c.primaryKey() : c.primaryKey().autoIncrement(),
        )
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
  "0002_user_search": {
    // Kysely runs SQLite migrations outside a transaction; this one writes every user row, which
    // must not cost a commit (and an fsync) each, and should apply as a whole or not at all.
    up: (db: Kysely<unknown>) => (db.isTransaction ? addUserSearch(db) : db.transaction().execute(addUserSearch)),
  },
  "0003_partial_search_indexes": {
    // Keys of optional fields are often empty (nicknames, phones; every human field of a machine
    // user): left out of their indexes, they cost imports nothing. A search for a non-empty
    // value states `<key> <> ''` so that SQLite may use these indexes.
    async up(db: Kysely<unknown>) {
      const indexes = [
        ["users_given_name_idx", "given_name_lower"],
        ["users_family_name_idx", "family_name_lower"],
        ["users_nick_name_idx", "nick_name_lower"],
        ["users_display_name_idx", "display_name_lower"],
        ["users_email_idx", "email_lower"],
        ["users_phone_idx", "phone"],
      ] as const;
      for (const [name, column] of indexes) {
        await db.schema.dropIndex(name).execute();
        await db.schema.createIndex(name).on("users").columns(["instance_id", "org_id", column]).where(sql.ref(column), "<>", "").execute();
      }
    },
  },
  "0004_events_without_autoincrement": {
    // SQLite's AUTOINCREMENT writes its counter table on every insert, two more writes per
    // import. Events are never deleted, so a plain integer key already only grows.
    // PostgreSQL's bigserial has no such cost: nothing to do there.
    async up(db: Kysely<unknown>) {
      if (dialect === "postgres") return;
      await db.schema
        .createTable("events_next")
        .addColumn("position", "integer", (c) => c.primaryKey())
        .addColumn("instance_id", "text", (c) => c.notNull())
        .addColumn("aggregate_type", "text", (c) => c.notNull())
        .addColumn("aggregate_id", "text", (c) => c.notNull())
        .addColumn("sequence", "integer", (c) => c.notNull())
        .addColumn("type", "text", (c) => c.notNull())
        .addColumn("payload", "text", (c) => c.notNull())
        .addColumn("creator", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("resource_owner", "text", (c) => c.notNull().defaultTo(""))
        .addUniqueConstraint("events_next_aggregate_sequence", ["instance_id", "aggregate_id", "sequence"])
        .execute();
      await sql`INSERT INTO events_next (position, instance_id, aggregate_type, aggregate_id, sequence, type, payload,
          creator, created_at, resource_owner)
        SELECT position, instance_id, aggregate_type, aggregate_id, sequence, type, payload, creator, created_at,
          resource_owner FROM events`.execute(db);
      await db.schema.dropTable("events").execute();
      await db.schema.alterTable("events_next").renameTo("events").execute();
    },
  },
  "0005_orgs_domains_members": {
    // Organisations become objects of their own: a state, a change history (sequence), the
    // effective domain policy flag that scopes usernames, their domains, custom domain policies,
    // and membership details. Existing rows get neutral defaults (an active organisation
    // without domains, instance-wide usernames), which is what they meant so far.
    async up(db: Kysely<unknown>) {
      await db.schema
        .alterTable("orgs")
        .addColumn("state", "text", (c) => c.notNull().defaultTo("ACTIVE"))
        .execute();
      await db.schema
        .alterTable("orgs")
        .addColumn("changed_at", "bigint", (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema
        .alterTable("orgs")
        .addColumn("sequence", "integer", (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema
        .alterTable("orgs")
        .addColumn("user_login_must_be_domain", "integer", (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema
        .createTable("org_domains")
        .addColumn("instance_id", "text", (c) => c.notNull())
        .addColumn("org_id", "text", (c) => c.notNull())
        .addColumn("domain", "text", (c) => c.notNull())
        .addColumn("verified", "integer", (c) => c.notNull())
        .addColumn("is_primary", "integer", (c) => c.notNull())
        .addColumn("validation_type", "integer", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("changed_at", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("org_domains_pk", ["instance_id", "org_id", "domain"])
        .execute();
      // Login-name searches go from a domain to its organisation.
      await db.schema.createIndex("org_domains_domain_idx").on("org_domains").columns(["instance_id", "domain"]).execute();
      await db.schema
        .createTable("domain_policies")
        .addColumn("instance_id", "text", (c) => c.notNull())
        .addColumn("org_id", "text", (c) => c.notNull())
        .addColumn("user_login_must_be_domain", "integer", (c) => c.notNull())
        .addColumn("validate_org_domains", "integer", (c) => c.notNull())
        .addColumn("smtp_sender_address_matches_instance_domain", "integer", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("changed_at", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("domain_policies_pk", ["instance_id", "org_id"])
        .execute();
      await db.schema
        .alterTable("members")
        .addColumn("created_at", "bigint", (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema
        .alterTable("members")
        .addColumn("changed_at", "bigint", (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema.createIndex("personal_access_tokens_user_idx").on("personal_access_tokens").columns(["instance_id", "user_id"]).execute();
      // Organisation names are unique in the instance from now on; claim the existing ones
      // (so far only the default organisation, whose name is ASCII, so lower() folds it fully).
      await sql`INSERT INTO unique_constraints (instance_id, kind, value, owner_id)
        SELECT instance_id, 'org_name', lower(name), id FROM orgs`.execute(db);
    },
  },
  "0006_idps_links_metadata": {
    // Identity providers (of an organisation, or of the instance with org_id ""), users' links
    // to accounts at them and users' metadata. A link's (IdP, external id) is unique through
    // unique_constraints, like usernames; these tables are read models.
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("idps")
        .addColumn("instance_id", "text", (c) => c.notNull())
        .addColumn("id", "text", (c) => c.notNull())
        .addColumn("org_id", "text", (c) => c.notNull())
        .addColumn("type", "text", (c) => c.notNull())
        .addColumn("state", "text", (c) => c.notNull())
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("issuer", "text", (c) => c.notNull())
        .addColumn("client_id", "text", (c) => c.notNull())
        .addColumn("sealed_client_secret", "text", (c) => c.notNull())
        .addColumn("scopes", "text", (c) => c.notNull())
        .addColumn("is_id_token_mapping", "integer", (c) => c.notNull())
        .addColumn("use_pkce", "integer", (c) => c.notNull())
        .addColumn("is_linking_allowed", "integer", (c) => c.notNull())
        .addColumn("is_creation_allowed", "integer", (c) => c.notNull())
        .addColumn("is_auto_creation", "integer", (c) => c.notNull())
        .addColumn("is_auto_update", "integer", (c) => c.notNull())
        .addColumn("auto_linking", "integer", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("changed_at", "bigint", (c) => c.notNull())
        .addColumn("sequence", "integer", (c) => c.notNull())
        .addPrimaryKeyConstraint("idps_pk", ["instance_id", "id"])
        .execute();
      await db.schema.createIndex("idps_org_idx").on("idps").columns(["instance_id", "org_id", "name"]).execute();
      await db.schema
        .createTable("user_idp_links")
        .addColumn("instance_id", "text", (c) => c.notNull())
        .addColumn("user_id", "text", (c) => c.notNull())
        .addColumn("idp_id", "text", (c) => c.notNull())
        .addColumn("external_user_id", "text", (c) => c.notNull())
        .addColumn("display_name", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("user_idp_links_pk", ["instance_id", "user_id", "idp_id", "external_user_id"])
        .execute();
      await db.schema
        .createTable("user_metadata")
        .addColumn("instance_id", "text", (c) => c.notNull())
        .addColumn("user_id", "text", (c) => c.notNull())
        .addColumn("key", "text", (c) => c.notNull())
        .addColumn("value", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("changed_at", "bigint", (c) => c.notNull())
        .addColumn("sequence", "integer", (c) => c.notNull())
        .addPrimaryKeyConstraint("user_metadata_pk", ["instance_id", "user_id", "key"])
        .execute();
    },
  },
  "0007_sessions": {
    // Sessions (v2 SessionService), the password-check state of users (failed attempts for the
    // lockout policy, an imported TOTP secret, sealed) and per-organisation lockout policies.
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("sessions")
        .addColumn("instance_id", "text", (c) => c.notNull())
        .addColumn("id", "text", (c) => c.notNull())
        .addColumn("creator", "text", (c) => c.notNull())
        .addColumn("user_id", "text", (c) => c.notNull())
        .addColumn("user_org_id", "text", (c) => c.notNull())
        .addColumn("user_checked_at", "bigint")
        .addColumn("password_checked_at", "bigint")
        .addColumn("totp_checked_at", "bigint")
        // SHA-256 of the current session token; the token itself is never stored.
        .addColumn("token_digest", "text", (c) => c.notNull())
        .addColumn("user_agent", "text", (c) => c.notNull())
        .addColumn("metadata", "text", (c) => c.notNull())
        .addColumn("expires_at", "bigint")
        .addColumn("terminated", "integer", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("changed_at", "bigint", (c) => c.notNull())
        .addColumn("sequence", "integer", (c) => c.notNull())
        .addPrimaryKeyConstraint("sessions_pk", ["instance_id", "id"])
        .execute();
      await db.schema.createIndex("sessions_user_idx").on("sessions").columns(["instance_id", "user_id"]).execute();
      await db.schema
        .alterTable("users")
        .addColumn("password_failed_attempts", "integer", (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema.alterTable("users").addColumn("totp_secret", "text").execute();
      await db.schema
        .createTable("lockout_policies")
        .addColumn("instance_id", "text", (c) => c.notNull())
        .addColumn("org_id", "text", (c) => c.notNull())
        .addColumn("max_password_attempts", "integer", (c) => c.notNull())
        .addColumn("max_otp_attempts", "integer", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("changed_at", "bigint", (c) => c.notNull())
        .addColumn("sequence", "integer", (c) => c.notNull())
        .addPrimaryKeyConstraint("lockout_policies_pk", ["instance_id", "org_id"])
        .execute();
    },
  },
  "0008_outbox": {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("outbox")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("instance_id", "text", (c) => c.notNull())
        .addColumn("user_id", "text", (c) => c.notNull())
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("channel", "text", (c) => c.notNull())
        .addColumn("recipient", "text", (c) => c.notNull())
        .addColumn("deliverable", "integer", (c) => c.notNull())
        .addColumn("subject", "text", (c) => c.notNull())
        .addColumn("sealed_body", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("attempts", "integer", (c) => c.notNull())
        .addColumn("next_attempt_at", "bigint", (c) => c.notNull())
        .addColumn("claimed_until", "bigint", (c) => c.notNull())
        .addColumn("claim_token", "text")
        .addColumn("sent_at", "bigint")
        .addColumn("last_error", "text")
        .execute();
      // The dispatcher's question, "what is due?", reads only unsent deliverable messages.
      await db.schema.createIndex("outbox_due_idx").on("outbox").columns(["next_attempt_at"]).where(sql.ref("sent_at"), "is", null).execute();
      await db.schema.createIndex("outbox_user_idx").on("outbox").columns(["instance_id", "user_id"]).execute();
    },
  },
  "0009_postgres_binary_collation": {
    // Searches read prefixes as index ranges (`>= prefix AND < successor`) and lists sort by
    // text: both assume the code-point order SQLite uses. A PostgreSQL database's default
    // collation follows a locale instead, so every text column gets the binary "C" collation.
    // Later migrations must declare it on new text columns (a store test checks that they do).
    async up(db: Kysely<unknown>) {
      if (dialect !== "postgres") return;
      const { rows } = await sql<{ table_name: string; column_name: string }>`
        SELECT table_name, column_name FROM information_schema.columns
        WHERE table_schema = current_schema() AND data_type = 'text' AND table_name NOT LIKE 'kysely_%'
        ORDER BY table_name, ordinal_position`.execute(db);
      for (const { table_name, column_name } of rows) {
        await sql`ALTER TABLE ${sql.table(table_name)} ALTER COLUMN ${sql.ref(column_name)} TYPE text COLLATE "C"`.execute(db);
      }
    },
  },
  "0010_otp_failed_attempts": {
    // TOTP checks failed since the last success or unlock, counted apart from the password's
    // as ZITADEL does: the lockout policy's max OTP attempts locks on this count.
    async up(db: Kysely<unknown>) {
      await db.schema
        .alterTable("users")
        .addColumn("otp_failed_attempts", "integer", (c) => c.notNull().defaultTo(0))
        .execute();
    },
  },
  "0011_session_token_digest_idx": {
    // A session's token is a bearer token, as in ZITADEL: a token that is no personal access
    // token is looked up among the sessions by its digest.
    async up(db: Kysely<unknown>) {
      await db.schema.createIndex("sessions_token_digest_idx").on("sessions").column("token_digest").execute();
    },
  },
  "0012_directory_objects": {
    // Objects of PingOne's API that ZITADEL has no table for (a population's description, schema
    // attributes, LDAP gateways), as JSON bodies; secrets (a gateway's bind password) sealed apart.
    async up(db: Kysely<unknown>) {
      // New text columns take the binary collation on PostgreSQL, as 0009 gave the others.
      const text = dialect === "postgres" ? sql`text COLLATE "C"` : sql`text`;
      await db.schema
        .createTable("directory_objects")
        .addColumn("instance_id", text, (c) => c.notNull())
        .addColumn("kind", text, (c) => c.notNull())
        .addColumn("id", text, (c) => c.notNull())
        .addColumn("name", text, (c) => c.notNull())
        .addColumn("body", text, (c) => c.notNull())
        .addColumn("sealed_secret", text)
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("changed_at", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("directory_objects_pk", ["instance_id", "kind", "id"])
        .execute();
    },
  },
  "0013_user_read_details": {
    // The sequence and date user reads answer with: those of the user's last event that ZITADEL's
    // users projection dates users by (src/domain/user-details.ts), filled from the events.
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable("users").addColumn("details_sequence", "bigint").execute();
      await db.schema.alterTable("users").addColumn("details_changed_at", "bigint").execute();
      const dated = sql.join(PROJECTED_EVENT_TYPES.map((type) => sql.lit(type)));
      const last = (column: string) => sql`(SELECT ${sql.ref(`events.${column}`)} FROM events
          WHERE events.instance_id = users.instance_id AND events.aggregate_type = 'user'
            AND events.aggregate_id = users.id AND events.type IN (${dated})
          ORDER BY events.sequence DESC LIMIT 1)`;
      await sql`UPDATE users SET details_sequence = ${last("sequence")}, details_changed_at = ${last("created_at")}`.execute(db);
    },
  },
  "0014_import_jobs": {
    // Bulk import jobs (src/store/bulk-store.ts) and the result of every record of a job, by the
    // record's key: a key's result is written with its user, so a job never imports a key twice.
    async up(db: Kysely<unknown>) {
      // New text columns take the binary collation on PostgreSQL, as 0009 gave the others.
      const text = dialect === "postgres" ? sql`text COLLATE "C"` : sql`text`;
      await db.schema
        .createTable("import_jobs")
        .addColumn("instance_id", text, (c) => c.notNull())
        .addColumn("id", text, (c) => c.notNull())
        .addColumn("org_id", text, (c) => c.notNull())
        .addColumn("creator", text, (c) => c.notNull())
        .addColumn("state", text, (c) => c.notNull())
        .addColumn("on_conflict", text, (c) => c.notNull())
        .addColumn("next_index", "bigint", (c) => c.notNull())
        .addColumn("expected_records", "bigint", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("started_at", "bigint")
        .addColumn("finished_at", "bigint")
        .addColumn("run_started_at", "bigint")
        .addColumn("run_start_index", "bigint", (c) => c.notNull())
        .addColumn("changed_at", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("import_jobs_pk", ["instance_id", "id"])
        .execute();
      await db.schema.createIndex("import_jobs_org_idx").on("import_jobs").columns(["instance_id", "org_id", "created_at"]).execute();
      await db.schema
        .createTable("import_job_records")
        .addColumn("instance_id", text, (c) => c.notNull())
        .addColumn("job_id", text, (c) => c.notNull())
        .addColumn("key", text, (c) => c.notNull())
        .addColumn("idx", "bigint", (c) => c.notNull())
        .addColumn("outcome", text, (c) => c.notNull())
        .addColumn("user_id", text, (c) => c.notNull())
        .addColumn("error_kind", text, (c) => c.notNull())
        .addColumn("error_id", text, (c) => c.notNull())
        .addColumn("error_message", text, (c) => c.notNull())
        .addPrimaryKeyConstraint("import_job_records_pk", ["instance_id", "job_id", "key"])
        .execute();
      // Results by outcome in record order (list, count); all results in order.
      await db.schema.createIndex("import_job_records_outcome_idx").on("import_job_records").columns(["instance_id", "job_id", "outcome", "idx"]).execute();
    },
  },
  "0015_passkeys": {
    // Passkeys (ZITADEL's passwordless WebAuthN tokens, src/domain/passkeys.ts): a registration
    // started by RegisterPasskey is NOT_READY with its challenge until VerifyPasskeyRegistration
    // stores the credential (id, COSE public key, sign counter, transports, AAGUID) and makes it
    // READY. A session keeps its open WebAuthN challenge and the factor once checked.
    async up(db: Kysely<unknown>) {
      // New text columns take the binary collation on PostgreSQL, as 0009 gave the others.
      const text = dialect === "postgres" ? sql`text COLLATE "C"` : sql`text`;
      await db.schema
        .createTable("passkeys")
        .addColumn("instance_id", text, (c) => c.notNull())
        .addColumn("user_id", text, (c) => c.notNull())
        .addColumn("id", text, (c) => c.notNull())
        .addColumn("state", text, (c) => c.notNull())
        .addColumn("name", text, (c) => c.notNull())
        .addColumn("challenge", text, (c) => c.notNull())
        .addColumn("rp_id", text, (c) => c.notNull())
        .addColumn("user_verification", text, (c) => c.notNull())
        .addColumn("authenticator_attachment", text, (c) => c.notNull())
        .addColumn("credential_id", text)
        .addColumn("public_key", text)
        .addColumn("sign_count", "bigint", (c) => c.notNull())
        .addColumn("transports", text, (c) => c.notNull())
        .addColumn("aaguid", text, (c) => c.notNull())
        .addColumn("attestation_type", text, (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("changed_at", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("passkeys_pk", ["instance_id", "user_id", "id"])
        .execute();
      await db.schema.createIndex("passkeys_credential_idx").on("passkeys").columns(["instance_id", "credential_id"]).unique().execute();
      await db.schema.alterTable("sessions").addColumn("webauthn_challenge", text).execute();
      await db.schema.alterTable("sessions").addColumn("webauthn_checked_at", "bigint").execute();
      await db.schema.alterTable("sessions").addColumn("webauthn_user_verified", "integer").execute();
    },
  },
});

async function addUserSearch(db: Kysely<unknown>): Promise<void> {
  // Search keys: the text columns case-folded by foldCase, which SQLite's ASCII-only lower()
  // cannot do, so existing rows are folded here in JavaScript. Should foldCase ever change,
  // a later migration must fold the keys again.
  for (const column of SEARCH_KEY_COLUMNS) {
    await db.schema
      .alterTable("users")
      .addColumn(column, "text", (c) => c.notNull().defaultTo(""))
      .execute();
  }
  let after: { instance_id: string; id: string } | undefined;
  for (;;) {
    const rows: KeyedRow[] = (
      await sql<KeyedRow>`SELECT instance_id, id, username, given_name, family_name, nick_name, display_name, email
        FROM users ${after ? sql`WHERE (instance_id, id) > (${after.instance_id}, ${after.id})` : sql``}
        ORDER BY instance_id, id LIMIT 1000`.execute(db)
    ).rows;
    for (const row of rows) {
      const keyed = withSearchKeys(row);
      await sql`UPDATE users SET username_lower = ${keyed.username_lower}, given_name_lower = ${keyed.given_name_lower},
          family_name_lower = ${keyed.family_name_lower}, nick_name_lower = ${keyed.nick_name_lower},
          display_name_lower = ${keyed.display_name_lower}, email_lower = ${keyed.email_lower}
        WHERE instance_id = ${row.instance_id} AND id = ${row.id}`.execute(db);
    }
    if (rows.length < 1000) break;
    after = rows[rows.length - 1];
  }
  // Every search is scoped to an instance and organisations, then narrowed by one key: an
  // equality or a prefix range on the key is a range scan of one of these. (instance_id,
  // org_id, id) also lists an organisation's users in id order, and replaces the index on
  // (instance_id, org_id) alone.
  const indexes: Array<[string, string]> = [
    ["users_org_id_idx", "id"],
    ["users_username_idx", "username_lower"],
    ["users_given_name_idx", "given_name_lower"],
    ["users_family_name_idx", "family_name_lower"],
    ["users_nick_name_idx", "nick_name_lower"],
    ["users_display_name_idx", "display_name_lower"],
    ["users_email_idx", "email_lower"],
    ["users_phone_idx", "phone"],
  ];
  for (const [name, column] of indexes) {
    await db.schema.createIndex(name).on("users").columns(["instance_id", "org_id", column]).execute();
  }
  await db.schema.dropIndex("users_org_idx").execute();

  // The organisation owning an event's aggregate, kept for the history of removed users.
  await db.schema
    .alterTable("events")
    .addColumn("resource_owner", "text", (c) => c.notNull().defaultTo(""))
    .execute();
  await sql`UPDATE events SET resource_owner = (
      SELECT users.org_id FROM users WHERE users.instance_id = events.instance_id AND users.id = events.aggregate_id)
    WHERE aggregate_type = 'user' AND EXISTS (
      SELECT 1 FROM users WHERE users.instance_id = events.instance_id AND users.id = events.aggregate_id)`.execute(db);
}

const SEARCH_KEY_COLUMNS = ["username_lower", "given_name_lower", "family_name_lower", "nick_name_lower", "display_name_lower", "email_lower"] as const;

interface KeyedRow {
  instance_id: string;
  id: string;
  username: string;
  given_name: string;
  family_name: string;
  nick_name: string;
  display_name: string;
  email: string;
}

/** Brings the schema up to date; Kysely's migrator records what ran and locks while it runs. */
export async function migrateToLatest(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  // Migrations are numbered when work starts and may land in another order (0008 before 0007):
  // a database that already ran a later one still gets the earlier one, which is independent.
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations(dialect) }, allowUnorderedMigrations: true });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === "Error");
  if (error || failed) {
    throw new Error(`schema migration ${failed?.migrationName ?? ""} failed`, { cause: error });
  }
}
