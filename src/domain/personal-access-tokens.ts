import { MachineErrors } from "./error-catalogue.js";
import type { IdGenerator } from "./ids.js";
import type { PersonalAccessTokenStore, User } from "./ports.js";
import { retryAfterConflict } from "./conflicts.js";
import type { Target } from "./authentication.js";

export interface PersonalAccessToken {
  id: string;
  userId: string;
  expiresAt: number;
  createdAt: number;
}

/** ZITADEL's "no expiration" for tokens: 9999-01-01. */
export const TOKEN_NEVER_EXPIRES = Date.UTC(9999, 0, 1);

/**
 * Personal access tokens of machine users (ZITADEL's internal/command/user_personal_access_token.go).
 * A token is returned once; only its digest is stored.
 */
export function createPersonalAccessTokenCommands(deps: {
  store: PersonalAccessTokenStore;
  newId: IdGenerator;
  now?: () => number;
  /** Called after a change that can affect a caller (a removed token stops working at once). */
  onCallerChanged: () => void;
}) {
  const now = deps.now ?? Date.now;
  return {
    list: (instanceId: string, userId: string) => deps.store.listTokens(instanceId, userId),

    /**
     * ZITADEL's AddPersonalAccessToken for machine users: the token is returned once and only its
     * digest is stored; no expiration means 9999-01-01, one in the past is refused.
     */
    async add(
      target: Target,
      userId: string,
      expiresAt: number | undefined,
      mint: () => { token: string; digest: string },
    ): Promise<{ user: User; tokenId: string; token: string }> {
      const at = now();
      const expiry = expiresAt ?? TOKEN_NEVER_EXPIRES;
      // The key has no English text here for sure, so clients see it raw.
      if (expiry < at) throw MachineErrors.tokenExpiresBeforeNow();
      for (let attempt = 1; ; attempt++) {
        const user = await deps.store.getUser(target.instanceId, userId);
        if (!user || user.orgId !== target.orgId) throw MachineErrors.tokenUserNotFound();
        if (user.type !== "machine") throw MachineErrors.tokenUserNotMachine();
        const tokenId = deps.newId();
        const { token, digest } = mint();
        try {
          await deps.store.changeTokens(
            {
              instanceId: target.instanceId,
              userId,
              expectedSequence: user.sequence,
              event: { type: "user.personal.access.token.added", payload: { tokenId, expiration: new Date(expiry).toISOString() } },
              at,
              creator: target.creator,
              add: { id: tokenId, userId, expiresAt: expiry, createdAt: at, digest },
            },
            target.request,
          );
        } catch (err) {
          if (await retryAfterConflict(err, attempt)) continue;
          throw err;
        }
        return { user: { ...user, changedAt: at, sequence: user.sequence + 1 }, tokenId, token };
      }
    },

    /** ZITADEL's RemovePersonalAccessToken: the token stops working at once. */
    async remove(target: Target, userId: string, tokenId: string): Promise<User> {
      for (let attempt = 1; ; attempt++) {
        const user = await deps.store.getUser(target.instanceId, userId);
        const tokens = user && user.orgId === target.orgId ? await deps.store.listTokens(target.instanceId, userId) : [];
        if (!tokens.some((t) => t.id === tokenId)) throw MachineErrors.tokenNotFound();
        const at = now();
        try {
          await deps.store.changeTokens(
            {
              instanceId: target.instanceId,
              userId,
              expectedSequence: user!.sequence,
              event: { type: "user.personal.access.token.removed", payload: { tokenId } },
              at,
              creator: target.creator,
              removeId: tokenId,
            },
            target.request,
          );
        } catch (err) {
          if (await retryAfterConflict(err, attempt)) continue;
          throw err;
        }
        deps.onCallerChanged();
        return { ...user!, changedAt: at, sequence: user!.sequence + 1 };
      }
    },
  };
}

export type PersonalAccessTokenCommands = ReturnType<typeof createPersonalAccessTokenCommands>;
