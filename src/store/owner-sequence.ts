import type { Kysely } from "kysely";
import type { Database } from "./schema.js";

/**
 * The event count of a policy's or provider's owner: the organisation's, kept on its row as its
 * other changes expect, or with `orgId` "" the instance's, which has no row of its own and so
 * counts its events.
 */
export async function ownerSequence(db: Kysely<Database>, instanceId: string, orgId: string): Promise<number> {
  if (orgId !== "") {
    const row = await db.selectFrom("orgs").select("sequence").where("instance_id", "=", instanceId).where("id", "=", orgId).executeTakeFirst();
    return Number(row?.sequence ?? 0);
  }
  const row = await db
    .selectFrom("events")
    .select((eb) => eb.fn.max("sequence").as("sequence"))
    .where("instance_id", "=", instanceId)
    .where("aggregate_id", "=", instanceId)
    .executeTakeFirst();
  return Number(row?.sequence ?? 0);
}
