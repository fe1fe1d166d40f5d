import type { DirectoryStore } from "../domain/ports.js";
import { type Selectable, sql } from "kysely";
import type { DirectoryObject, DirectoryObjectKind, OrgSummary } from "../domain/directory-objects.js";
import { foldCase } from "../domain/user-queries.js";
import type { Db } from "./db.js";
import { param, prepare, statement, type WriteStatement } from "./prepared.js";
import type { DirectoryObjectTable } from "./schema.js";

/** The SQL implementation of the directory objects and populations (src/domain/directory-objects.ts). */
export function createDirectoryStore({ db, read, writes }: Db): DirectoryStore {
  // Read on every external-password check.
  const selectObject = prepare<{ instance_id: string; kind: string; id: string }>(
    db
      .selectFrom("directory_objects")
      .selectAll()
      .where("instance_id", "=", param<string>("instance_id"))
      .where("kind", "=", param<DirectoryObjectKind>("kind"))
      .where("id", "=", param<string>("id")),
  );
  const orgEvent = (instanceId: string, orgId: string, sequence: number, type: string, payload: unknown, creator: string, at: number) =>
    statement(
      db.insertInto("events").values({
        instance_id: instanceId,
        aggregate_type: "org",
        aggregate_id: orgId,
        sequence,
        type,
        payload: JSON.stringify(payload),
        creator,
        created_at: at,
        resource_owner: orgId,
      }),
      "sequence",
    );

  async function summaries(instanceId: string, orgId?: string): Promise<OrgSummary[]> {
    let query = db
      .selectFrom("orgs as o")
      .select((eb) => [
        "o.id",
        "o.name",
        "o.created_at",
        "o.changed_at",
        eb
          .selectFrom("users as u")
          .select((inner) => inner.fn.countAll<number>().as("n"))
          .whereRef("u.instance_id", "=", "o.instance_id")
          .whereRef("u.org_id", "=", "o.id")
          .as("user_count"),
      ])
      .where("o.instance_id", "=", instanceId);
    if (orgId !== undefined) query = query.where("o.id", "=", orgId);
    const rows = await query.orderBy("o.created_at").orderBy("o.id").execute();
    return rows.map((row) => ({
      id: row.id,
      name: row.name,
      createdAt: Number(row.created_at),
      changedAt: Number(row.changed_at),
      userCount: Number(row.user_count ?? 0),
    }));
  }

  return {
    async getObject(instanceId, kind, id) {
      const [row] = await read<Selectable<DirectoryObjectTable>>(selectObject.bind({ instance_id: instanceId, kind, id }));
      return row && toObject(row);
    },
    async listObjects(instanceId, kind) {
      const rows = await db
        .selectFrom("directory_objects")
        .selectAll()
        .where("instance_id", "=", instanceId)
        .where("kind", "=", kind)
        .orderBy("created_at")
        .orderBy("id")
        .execute();
      return rows.map(toObject);
    },
    putObject(instanceId, object, replaces, request) {
      const claimKind = `${object.kind}_name`;
      const statements: WriteStatement[] = [];
      if (replaces) {
        statements.push(
          statement(db.deleteFrom("directory_objects").where("instance_id", "=", instanceId).where("kind", "=", object.kind).where("id", "=", object.id)),
        );
        if (foldCase(replaces.name) !== foldCase(object.name)) {
          statements.push(
            statement(
              db.deleteFrom("unique_constraints").where("instance_id", "=", instanceId).where("kind", "=", claimKind).where("owner_id", "=", object.id),
            ),
          );
        }
      }
      if (!replaces || foldCase(replaces.name) !== foldCase(object.name)) {
        statements.push(
          statement(
            db.insertInto("unique_constraints").values({ instance_id: instanceId, kind: claimKind, value: foldCase(object.name), owner_id: object.id }),
            claimKind,
          ),
        );
      }
      statements.push(
        statement(
          db.insertInto("directory_objects").values({
            instance_id: instanceId,
            kind: object.kind,
            id: object.id,
            name: object.name,
            body: JSON.stringify(object.body),
            sealed_secret: object.sealedSecret ?? null,
            created_at: object.createdAt,
            changed_at: object.changedAt,
          }),
          `${object.kind}_id`,
        ),
      );
      return writes.run(statements, request);
    },
    removeObject(instanceId, object, request) {
      return writes.run(
        [
          statement(db.deleteFrom("directory_objects").where("instance_id", "=", instanceId).where("kind", "=", object.kind).where("id", "=", object.id)),
          statement(
            db
              .deleteFrom("unique_constraints")
              .where("instance_id", "=", instanceId)
              .where("kind", "=", `${object.kind}_name`)
              .where("owner_id", "=", object.id),
          ),
        ],
        request,
      );
    },

    async instance(instanceId) {
      const row = await db.selectFrom("instances").selectAll().where("id", "=", instanceId).executeTakeFirst();
      return row && { createdAt: Number(row.created_at), defaultOrgId: row.default_org_id };
    },
    async orgExists(instanceId, orgId) {
      const row = await db.selectFrom("orgs").select("id").where("instance_id", "=", instanceId).where("id", "=", orgId).executeTakeFirst();
      return row !== undefined;
    },
    listOrgs: (instanceId) => summaries(instanceId),
    async getOrgSummary(instanceId, orgId) {
      return (await summaries(instanceId, orgId))[0];
    },
    setDefaultOrg(instanceId, orgId, _at, _creator, request) {
      return writes.run([statement(db.updateTable("instances").set({ default_org_id: orgId }).where("id", "=", instanceId))], request);
    },
    renameOrg({ instanceId, orgId, expectedSequence, name, at, creator, event }, request) {
      return writes.run(
        [
          orgEvent(instanceId, orgId, expectedSequence + 1, event.type, event.payload, creator, at),
          statement(
            db
              .updateTable("orgs")
              .set({ name, sequence: expectedSequence + 1, changed_at: at })
              .where("instance_id", "=", instanceId)
              .where("id", "=", orgId),
          ),
          statement(db.deleteFrom("unique_constraints").where("instance_id", "=", instanceId).where("kind", "=", "org_name").where("owner_id", "=", orgId)),
          statement(
            db.insertInto("unique_constraints").values({ instance_id: instanceId, kind: "org_name", value: foldCase(name), owner_id: orgId }),
            "org_name",
          ),
        ],
        request,
      );
    },
    removeOrg({ instanceId, orgId, expectedSequence, at, creator }, request) {
      const byOrg = (table: "org_domains" | "domain_policies" | "lockout_policies" | "members") =>
        statement({ compile: () => sql`DELETE FROM ${sql.table(table)} WHERE instance_id = ${instanceId} AND org_id = ${orgId}`.compile(db) });
      return writes.run(
        [
          orgEvent(instanceId, orgId, expectedSequence + 1, "org.removed", {}, creator, at),
          statement(db.deleteFrom("orgs").where("instance_id", "=", instanceId).where("id", "=", orgId)),
          byOrg("org_domains"),
          byOrg("domain_policies"),
          byOrg("lockout_policies"),
          byOrg("members"),
          statement(
            db
              .deleteFrom("unique_constraints")
              .where("instance_id", "=", instanceId)
              .where("owner_id", "=", orgId)
              .where("kind", "in", ["org_name", "org_domain"]),
          ),
          statement(db.deleteFrom("directory_objects").where("instance_id", "=", instanceId).where("kind", "=", "population").where("id", "=", orgId)),
        ],
        request,
      );
    },
  };
}

function toObject(row: Selectable<DirectoryObjectTable>): DirectoryObject {
  return {
    kind: row.kind as DirectoryObjectKind,
    id: row.id,
    name: row.name,
    body: JSON.parse(row.body) as Record<string, unknown>,
    sealedSecret: row.sealed_secret ?? undefined,
    createdAt: Number(row.created_at),
    changedAt: Number(row.changed_at),
  };
}
