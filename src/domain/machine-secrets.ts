import { type CatalogueError, MachineErrors } from "./error-catalogue.js";
import type { MachineSecretStore } from "./ports.js";
import { retryAfterConflict } from "./conflicts.js";
import { generateToken, tokenDigest } from "./secrets.js";
import type { User, UserStore } from "./ports.js";
import type { Target } from "./authentication.js";

/**
 * Client secrets of machine users, as ZITADEL's GenerateMachineSecret / RemoveMachineSecret
 * (internal/command/user_machine_secret.go): one secret per user, returned once; the client id is
 * the username. Only its SHA-256 digest is kept, as the user's unique claim of kind
 * MACHINE_SECRET_CLAIM (written with the user's event in one transaction, released on removal),
 * so that a presented secret finds its user by the digest.
 */
export const MACHINE_SECRET_CLAIM = "machine_secret";

export interface MachineSecretDeps {
  users: Pick<UserStore, "getUser" | "updateUser">;
  secrets: MachineSecretStore;
  now?: () => number;
}

export function createMachineSecretCommands(deps: MachineSecretDeps) {
  const now = deps.now ?? Date.now;

  /** The machine user in the organisation; ZITADEL's machine write model finds nothing else. */
  async function machine(instanceId: string, orgId: string, userId: string, userNotFound: CatalogueError): Promise<User> {
    const user = await deps.users.getUser(instanceId, userId);
    if (!user || user.orgId !== orgId || user.type !== "machine") throw userNotFound();
    return user;
  }

  async function generate(target: Target, userId: string) {
    for (let attempt = 1; ; attempt++) {
      const user = await machine(target.instanceId, target.orgId, userId, MachineErrors.secretUserNotFound);
      const clientSecret = generateToken();
      const at = now();
      try {
        await deps.users.updateUser(
          {
            instanceId: target.instanceId,
            userId,
            expectedSequence: user.sequence,
            events: [{ type: "user.machine.secret.set", payload: {} }],
            at,
            creator: target.creator,
            release: [{ kind: MACHINE_SECRET_CLAIM }],
            claim: [{ kind: MACHINE_SECRET_CLAIM, value: tokenDigest(clientSecret) }],
          },
          target.request,
        );
      } catch (err) {
        if (await retryAfterConflict(err, attempt)) continue;
        throw err;
      }
      return { user: { ...user, changedAt: at, sequence: user.sequence + 1 }, clientId: user.username, clientSecret };
    }
  }

  async function remove(target: Target, userId: string): Promise<User> {
    for (let attempt = 1; ; attempt++) {
      const user = await machine(target.instanceId, target.orgId, userId, MachineErrors.secretRemoveUserNotFound);
      if (!(await deps.secrets.hasSecret(target.instanceId, userId))) throw MachineErrors.secretNotExisting();
      const at = now();
      try {
        await deps.users.updateUser(
          {
            instanceId: target.instanceId,
            userId,
            expectedSequence: user.sequence,
            events: [{ type: "user.machine.secret.removed", payload: {} }],
            at,
            creator: target.creator,
            release: [{ kind: MACHINE_SECRET_CLAIM }],
          },
          target.request,
        );
      } catch (err) {
        if (await retryAfterConflict(err, attempt)) continue;
        throw err;
      }
      return { ...user, changedAt: at, sequence: user.sequence + 1 };
    }
  }

  /**
   * The active machine user whose secret this is and whose username (or id) is `clientId`;
   * undefined for anything else, without saying which part was wrong.
   */
  async function authenticate(instanceId: string, clientId: string, clientSecret: string): Promise<User | undefined> {
    if (clientId === "" || clientSecret === "") return undefined;
    const owner = await deps.secrets.secretOwner(instanceId, tokenDigest(clientSecret));
    const user = owner === undefined ? undefined : await deps.users.getUser(instanceId, owner);
    if (user?.type !== "machine" || user.state !== "ACTIVE") return undefined;
    return user.username === clientId || user.id === clientId ? user : undefined;
  }

  return { generate, remove, authenticate };
}

export type MachineSecretCommands = ReturnType<typeof createMachineSecretCommands>;
