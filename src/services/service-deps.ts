import type { IdpCommands } from "../domain/idps.js";
import type { LockoutCommands } from "../domain/lockout.js";
import type { MachineSecretCommands } from "../domain/machine-secrets.js";
import type { OrgCommands } from "../domain/orgs.js";
import type { PasskeyCommands } from "../domain/passkeys.js";
import type { PasswordCommands } from "../domain/passwords.js";
import type { PersonalAccessTokenCommands } from "../domain/personal-access-tokens.js";
import type { SessionCommands } from "../domain/sessions.js";
import type { UserChangeCommands } from "../domain/user-changes.js";
import type { UserQueries } from "../domain/user-queries.js";
import type { UserStateCommands } from "../domain/user-states.js";
import type { UserCommands } from "../domain/users.js";
import type { VerificationCommands } from "../domain/verification.js";
import type { Access } from "../edge/access.js";

/**
 * The domain services the service implementations call, built once by the composition root
 * (src/server.ts). Each service takes the whole set and uses what it needs.
 */
export interface ServiceDeps {
  access: Access;
  /** Creating users: import, add, create (v1 and v2). */
  userCreation: UserCommands;
  /** Changing users: profile, username, contact data, links, metadata, init codes. */
  userChanges: UserChangeCommands;
  /** The user state machine: deactivate, reactivate, lock, unlock, remove. */
  userStates: UserStateCommands;
  /** Reading and searching users. */
  userQueries: UserQueries;
  orgs: OrgCommands;
  personalAccessTokens: PersonalAccessTokenCommands;
  idps: IdpCommands;
  passwords: PasswordCommands;
  lockout: LockoutCommands;
  verification: VerificationCommands;
  sessions: SessionCommands;
  /** Passkeys: registration codes and links, registration, list and removal. */
  passkeys: PasskeyCommands;
  /** Client secrets of machine users (PingOne's token endpoint). */
  machineSecrets: MachineSecretCommands;
}
