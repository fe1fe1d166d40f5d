import { randomUUID } from "node:crypto";
import type { CallerAccess } from "../domain/authentication.js";
import type { FastifyInstance } from "fastify";
import type { Config } from "../config.js";
import { createDirectoryObjects, createPopulationCommands } from "../domain/directory-objects.js";
import type { IdGenerator } from "../domain/ids.js";
import type { LockoutCommands } from "../domain/lockout.js";
import type { OrgCommands } from "../domain/orgs.js";
import type { PasswordCommands } from "../domain/passwords.js";
import type { SessionCommands } from "../domain/sessions.js";
import type { UserStore } from "../domain/ports.js";
import type { UserChangeCommands } from "../domain/user-changes.js";
import { createUserProfileCommands } from "../domain/user-profile.js";
import type { UserQueries } from "../domain/user-queries.js";
import type { UserStateCommands } from "../domain/user-states.js";
import type { UserCommands } from "../domain/users.js";
import type { Db } from "../store/db.js";
import { createDirectoryStore } from "../store/directory-store.js";
import { registerPingOne } from "./index.js";

/** Builds the PingOne facade's own pieces (directory store, populations, profiles) and registers its routes. */
export async function registerPingOneFacade(
  app: FastifyInstance,
  parts: {
    store: Db;
    config: Config;
    callerAccess: CallerAccess;
    userStore: UserStore;
    users: UserCommands;
    states: UserStateCommands;
    changes: UserChangeCommands;
    queries: UserQueries;
    orgs: OrgCommands;
    passwords: PasswordCommands;
    sessionCommands: SessionCommands;
    lockout: LockoutCommands;
    logUnexpected: (err: unknown) => void;
    newId: IdGenerator;
  },
): Promise<void> {
  const now = parts.config.now ?? Date.now;
  const directory = createDirectoryStore(parts.store);
  await registerPingOne(app, {
    externalUrl: parts.config.externalUrl.replace(/\/+$/, ""),
    authenticate: (headers) => parts.callerAccess.authenticate(headers.get("authorization")),
    users: parts.users,
    states: parts.states,
    changes: parts.changes,
    profiles: createUserProfileCommands({ store: parts.userStore, changes: parts.changes }),
    queries: parts.queries,
    populations: createPopulationCommands({
      store: directory,
      addOrg: (target, name, id) => parts.orgs.addOrg(target, name, id),
      getOrg: (instanceId, orgId) => parts.orgs.getOrg(instanceId, orgId),
      newUuid: randomUUID,
      now,
      onOrgRemoved: parts.callerAccess.forgetOrg,
    }),
    attributes: createDirectoryObjects(directory, "schema_attribute", now),
    userStore: parts.userStore,
    passwords: parts.passwords,
    sessions: parts.sessionCommands,
    lockoutPolicy: async (instanceId, orgId) => (await parts.lockout.orgPolicy(instanceId, orgId)).policy,
    async instanceCreatedAt(instanceId) {
      return (await directory.instance(instanceId))?.createdAt ?? 0;
    },
    logUnexpected: parts.logUnexpected,
  });
}
