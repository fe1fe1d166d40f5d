import { MACHINE_SECRET_CLAIM } from "../domain/machine-secrets.js";
import type { MachineSecretStore } from "../domain/ports.js";
import type { Db } from "./db.js";

/** Machine secrets are unique claims (src/domain/machine-secrets.ts): looked up by digest or by owner. */
export function createMachineSecretStore({ db }: Db): MachineSecretStore {
  return {
    async secretOwner(instanceId, digest) {
      const row = await db
        .selectFrom("unique_constraints")
        .select("owner_id")
        .where("instance_id", "=", instanceId)
        .where("kind", "=", MACHINE_SECRET_CLAIM)
        .where("value", "=", digest)
        .executeTakeFirst();
      return row?.owner_id;
    },
    async hasSecret(instanceId, userId) {
      const row = await db
        .selectFrom("unique_constraints")
        .select("owner_id")
        .where("instance_id", "=", instanceId)
        .where("kind", "=", MACHINE_SECRET_CLAIM)
        .where("owner_id", "=", userId)
        .executeTakeFirst();
      return row !== undefined;
    },
  };
}
