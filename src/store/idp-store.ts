import type { IdpStore } from "../domain/ports.js";
import type { Selectable } from "kysely";
import type { Idp } from "../domain/idps.js";
import type { Db } from "./db.js";
import { ownerSequence } from "./owner-sequence.js";
import type { IdpTable } from "./schema.js";

/** The SQL implementation of the domain's identity provider store. */
export function createIdpStore({ db, writes }: Db): IdpStore {
  return {
    createIdp(idp, sealedClientSecret, event, previousSequence, creator, request) {
      // The event goes first: its sequence is unique per aggregate, so a concurrent change of
      // the owner fails here, before the provider is written.
      const eventInsert = db
        .insertInto("events")
        .values({
          instance_id: idp.instanceId,
          aggregate_type: idp.orgId === "" ? "instance" : "org",
          aggregate_id: idp.orgId === "" ? idp.instanceId : idp.orgId,
          sequence: previousSequence + 1,
          type: event.type,
          payload: JSON.stringify(event.payload),
          creator,
          created_at: idp.createdAt,
          resource_owner: idp.orgId === "" ? idp.instanceId : idp.orgId,
        })
        .compile();
      const idpInsert = db
        .insertInto("idps")
        .values({
          instance_id: idp.instanceId,
          id: idp.id,
          org_id: idp.orgId,
          type: idp.type,
          state: idp.state,
          name: idp.name,
          issuer: idp.issuer,
          client_id: idp.clientId,
          sealed_client_secret: sealedClientSecret,
          scopes: JSON.stringify(idp.scopes),
          is_id_token_mapping: idp.isIdTokenMapping ? 1 : 0,
          use_pkce: idp.usePkce ? 1 : 0,
          is_linking_allowed: idp.options.isLinkingAllowed ? 1 : 0,
          is_creation_allowed: idp.options.isCreationAllowed ? 1 : 0,
          is_auto_creation: idp.options.isAutoCreation ? 1 : 0,
          is_auto_update: idp.options.isAutoUpdate ? 1 : 0,
          auto_linking: idp.options.autoLinking,
          created_at: idp.createdAt,
          changed_at: idp.changedAt,
          sequence: idp.sequence,
        })
        .compile();
      // The organisation's own sequence (its `details.sequence`, which its other changes build
      // on) follows its events.
      const orgUpdate = db
        .updateTable("orgs")
        .set({ sequence: previousSequence + 1, changed_at: idp.createdAt })
        .where("instance_id", "=", idp.instanceId)
        .where("id", "=", idp.orgId)
        .compile();
      return writes.run(
        [
          { sql: eventInsert.sql, parameters: eventInsert.parameters, uniqueKind: "sequence" },
          { sql: idpInsert.sql, parameters: idpInsert.parameters },
          ...(idp.orgId === "" ? [] : [{ sql: orgUpdate.sql, parameters: orgUpdate.parameters }]),
        ],
        request,
      );
    },
    async getIdp(instanceId, id) {
      const row = await db.selectFrom("idps").selectAll().where("instance_id", "=", instanceId).where("id", "=", id).executeTakeFirst();
      return row && toIdp(row);
    },
    async listIdps(instanceId, ownerIds) {
      // No owners, no providers: an empty IN list is an error on PostgreSQL (SQLite accepts it).
      if (ownerIds.length === 0) return [];
      const rows = await db.selectFrom("idps").selectAll().where("instance_id", "=", instanceId).where("org_id", "in", ownerIds).execute();
      return rows.map(toIdp);
    },
    lastSequence: (instanceId, orgId) => ownerSequence(db, instanceId, orgId),
  };
}

function toIdp(row: Selectable<IdpTable>): Idp {
  return {
    instanceId: row.instance_id,
    id: row.id,
    orgId: row.org_id,
    type: row.type,
    state: row.state,
    name: row.name,
    issuer: row.issuer,
    clientId: row.client_id,
    scopes: JSON.parse(row.scopes) as string[],
    isIdTokenMapping: row.is_id_token_mapping === 1,
    usePkce: row.use_pkce === 1,
    options: {
      isLinkingAllowed: row.is_linking_allowed === 1,
      isCreationAllowed: row.is_creation_allowed === 1,
      isAutoCreation: row.is_auto_creation === 1,
      isAutoUpdate: row.is_auto_update === 1,
      autoLinking: Number(row.auto_linking),
    },
    createdAt: Number(row.created_at),
    changedAt: Number(row.changed_at),
    sequence: Number(row.sequence),
  };
}
