import { randomUUID } from "node:crypto";
import type { CallerAccess } from "../domain/authentication.js";
import type { FastifyInstance } from "fastify";
import type { Config } from "../config.js";
import { createDirectoryObjects, createPopulationCommands } from "../domain/directory-objects.js";
import { createExternalPasswords } from "../domain/external-passwords.js";
import type { IdGenerator } from "../domain/ids.js";
import type { LockoutCommands } from "../domain/lockout.js";
import type { OrgCommands } from "../domain/orgs.js";
import type { PasswordCommands } from "../domain/passwords.js";
import type { SecretBox } from "../domain/secrets.js";
import type { SessionCommands } from "../domain/sessions.js";
import type { UserStore } from "../domain/ports.js";
import type { UserChangeCommands } from "../domain/user-changes.js";
import { createUserProfileCommands } from "../domain/user-profile.js";
import type { UserQueries } from "../domain/user-queries.js";
import type { UserStateCommands } from "../domain/user-states.js";
import type { UserCommands } from "../domain/users.js";
import type { Db } from "../store/db.js";
import { createLdapDirectory } from "../ldap/directory.js";
import { createDirectoryStore } from "../store/directory-store.js";
import { registerPingOne } from "./index.js";
import { registerPingOneTokenEndpoint } from "./token.js";
import { createDirectoryUser } from "./users.js";
import { createSessionStore } from "../store/session-store.js";
import type { MachineSecretCommands } from "../domain/machine-secrets.js";
import type { PersonalAccessTokenCommands } from "../domain/personal-access-tokens.js";

/**
 * External passwords behind LDAP gateways: the domain's authority over the LDAP directory client.
 * Built before the session commands, whose password check consults it for users without a
 * stored password; `close` ends the pooled LDAP connections.
 */
export function createPingOneExternalPasswords(parts: { store: Db; userStore: UserStore; secretBox: SecretBox; config: Config }) {
  const directory = createLdapDirectory({ timeoutMs: parts.config.ldapTimeoutMs });
  const passwords = createExternalPasswords({
    gateways: createDirectoryStore(parts.store),
    metadata: parts.userStore,
    secretBox: parts.secretBox,
    directory,
    userIdByLoginName: createSessionStore(parts.store).userIdByLoginName,
  });
  return { passwords, close: () => directory.close() };
}

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
    newId: IdGenerator;
    secretBox: SecretBox;
    external: ReturnType<typeof createPingOneExternalPasswords>;
    machineSecrets: MachineSecretCommands;
    personalAccessTokens: PersonalAccessTokenCommands;
    /** The instance (the environment) the token endpoint issues tokens for. */
    instanceId: string;
  },
): Promise<void> {
  const now = parts.config.now ?? Date.now;
  const directory = createDirectoryStore(parts.store);
  app.addHook("onClose", () => parts.external.close());
  const attributes = createDirectoryObjects(directory, "schema_attribute", now);
  // Users found by a gateway's newUserLookup are made as PingOne's import makes them.
  parts.external.passwords.onNewUser((found) => createDirectoryUser({ users: parts.users, attributes }, found));
  await registerPingOneTokenEndpoint(app, {
    instanceId: parts.instanceId,
    machineSecrets: parts.machineSecrets,
    personalAccessTokens: parts.personalAccessTokens,
    now,
  });
  await registerPingOne(app, {
    externalUrl: parts.config.externalUrl.replace(/\/+$/, ""),
    authenticate: (authorization) => parts.callerAccess.authenticate(authorization),
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
      onRemoved: parts.callerAccess.forgetOrg,
      now,
    }),
    attributes,
    gateways: createDirectoryObjects(directory, "gateway", now),
    secretBox: parts.secretBox,
    externalPasswords: parts.external.passwords,
    userStore: parts.userStore,
    passwords: parts.passwords,
    sessions: parts.sessionCommands,
    lockoutPolicy: async (instanceId, orgId) => (await parts.lockout.orgPolicy(instanceId, orgId)).policy,
    async instanceCreatedAt(instanceId) {
      return (await directory.instance(instanceId))?.createdAt ?? 0;
    },
  });
}
