import type { LockoutStore } from "../domain/ports.js";

import type { Db } from "./db.js";
import { ownerSequence } from "./owner-sequence.js";
import { statement, type WriteStatement } from "./prepared.js";

/**
 * The SQL implementation of the lockout policy store: rows of `lockout_policies` (org_id "" is
 * the instance's), written with the owner's event in one commit.
 */
export function createLockoutStore({ db, writes }: Db): LockoutStore {
  return {
    async storedPolicy(instanceId, orgId) {
      const row = await db.selectFrom("lockout_policies").selectAll().where("instance_id", "=", instanceId).where("org_id", "=", orgId).executeTakeFirst();
      return (
        row && {
          maxPasswordAttempts: Number(row.max_password_attempts),
          maxOtpAttempts: Number(row.max_otp_attempts),
          createdAt: Number(row.created_at),
          changedAt: Number(row.changed_at),
          sequence: Number(row.sequence),
        }
      );
    },

    ownerSequence: (instanceId, orgId) => ownerSequence(db, instanceId, orgId),

    write({ instanceId, orgId, expectedSequence, event, policy, at, creator }, request) {
      const ofInstance = orgId === "";
      const sequence = expectedSequence + 1;
      const rows: WriteStatement[] = [
        // The event goes first: its sequence is unique per aggregate, so a change that lost a
        // race fails before anything else is written.
        statement(
          db.insertInto("events").values({
            instance_id: instanceId,
            aggregate_type: ofInstance ? "instance" : "org",
            aggregate_id: ofInstance ? instanceId : orgId,
            sequence,
            type: event.type,
            payload: JSON.stringify(event.payload),
            creator,
            created_at: at,
            resource_owner: ofInstance ? instanceId : orgId,
          }),
          "sequence",
        ),
        statement(db.deleteFrom("lockout_policies").where("instance_id", "=", instanceId).where("org_id", "=", orgId)),
      ];
      if (!ofInstance) {
        rows.push(statement(db.updateTable("orgs").set({ sequence, changed_at: at }).where("instance_id", "=", instanceId).where("id", "=", orgId)));
      }
      if (policy) {
        rows.push(
          statement(
            db.insertInto("lockout_policies").values({
              instance_id: instanceId,
              org_id: orgId,
              max_password_attempts: policy.maxPasswordAttempts,
              max_otp_attempts: policy.maxOtpAttempts,
              created_at: policy.createdAt,
              changed_at: at,
              sequence,
            }),
          ),
        );
      }
      return writes.run(rows, request);
    },
  };
}
