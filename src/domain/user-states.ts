import { type CatalogueError, UserStateErrors } from "./error-catalogue.js";
import type { RequestScoped, User, UserState, UserStore } from "./ports.js";
import { retryAfterConflict } from "./conflicts.js";

/** Where a state change acts: the instance, the organisation it is scoped to, and who asks. */
export interface ChangeTarget extends RequestScoped {
  instanceId: string;
  /** When set, users of other organisations are not found (v1 reads within the context org). */
  orgId: string | undefined;
  creator: string;
  api: StateApi;
  /**
   * Checks the caller may change this user (v2 checks on the user's own organisation); throws if
   * not. Called after the state checks, in ZITADEL's order.
   */
  authorize?: (user: User) => void;
}

type Transition = "deactivate" | "reactivate" | "lock" | "unlock" | "remove";

/** Which API asks: ZITADEL's v2 commands report the same failures with ids of their own. */
export type StateApi = "v1" | "v2";

type Ids = Record<StateApi, CatalogueError>;

interface Rule {
  /** ZITADEL's ids for "user not found" on this command. */
  notFound: Ids;
  /** Why the user's current state forbids the change, with ZITADEL's ids; undefined allows it. */
  refuse(state: UserState): Ids | undefined;
  to: UserState | "removed";
  event: string;
  /** Whether the change forgets the failed password and TOTP checks, so the lockout counts from 0 again. */
  resetsFailedAttempts?: boolean;
}

/**
 * ZITADEL's user state machine, with the ids of its management (v1) commands (ZITADEL's
 * internal/command/user.go) and of its v2 commands (internal/command/user_v2.go).
 */
const E = UserStateErrors;

const RULES: Record<Transition, Rule> = {
  deactivate: {
    notFound: { v1: E.deactivateNotFoundV1, v2: E.deactivateNotFoundV2 },
    refuse: (state) =>
      state === "INITIAL"
        ? { v1: E.deactivateInitialV1, v2: E.deactivateInitialV2 }
        : state === "INACTIVE"
          ? { v1: E.alreadyInactiveV1, v2: E.alreadyInactiveV2 }
          : undefined,
    to: "INACTIVE",
    event: "user.deactivated",
  },
  reactivate: {
    notFound: { v1: E.reactivateNotFoundV1, v2: E.reactivateNotFoundV2 },
    refuse: (state) => (state !== "INACTIVE" ? { v1: E.notInactiveV1, v2: E.notInactiveV2 } : undefined),
    to: "ACTIVE",
    event: "user.reactivated",
  },
  lock: {
    notFound: { v1: E.lockNotFoundV1, v2: E.lockNotFoundV2 },
    refuse: (state) => (state !== "ACTIVE" && state !== "INITIAL" ? { v1: E.notActiveOrInitialV1, v2: E.notActiveOrInitialV2 } : undefined),
    to: "LOCKED",
    event: "user.locked",
  },
  unlock: {
    notFound: { v1: E.unlockNotFoundV1, v2: E.unlockNotFoundV2 },
    refuse: (state) => (state !== "LOCKED" ? { v1: E.notLockedV1, v2: E.notLockedV2 } : undefined),
    to: "ACTIVE",
    event: "user.unlocked",
    // As ZITADEL: its password and TOTP write models set PasswordCheckFailedCount and
    // CheckFailedCount to 0 on UserUnlockedEvent.
    resetsFailedAttempts: true,
  },
  remove: {
    notFound: { v1: E.removeNotFoundV1, v2: E.removeNotFoundV2 },
    refuse: () => undefined,
    to: "removed",
    event: "user.removed",
  },
};

export interface UserStateDeps {
  store: UserStore;
  /** Told after a change that can affect who may call the API (a service user's state). */
  onCallerChanged: () => void;
  now?: () => number;
}

/**
 * Deactivate, reactivate, lock, unlock and remove, as ZITADEL's commands do. Each change checks
 * the user's current state, then writes its event and the new state only if nobody changed the
 * user meanwhile (optimistic: the event's sequence number is unique per user), retrying if so.
 * Returns the user as it is after the change (for `details`), or as it was before a removal.
 */
export function createUserStateCommands(deps: UserStateDeps) {
  const now = deps.now ?? Date.now;

  async function change(transition: Transition, target: ChangeTarget, userId: string): Promise<User> {
    const rule = RULES[transition];
    for (let attempt = 1; ; attempt++) {
      const user = await deps.store.getUser(target.instanceId, userId);
      if (!user || (target.orgId !== undefined && user.orgId !== target.orgId)) {
        throw rule.notFound[target.api]();
      }
      const refusal = rule.refuse(user.state);
      if (refusal) throw refusal[target.api]();
      target.authorize?.(user);
      const at = now();
      try {
        await deps.store.changeUser(
          {
            instanceId: target.instanceId,
            userId,
            expectedSequence: user.sequence,
            event: { type: rule.event, payload: {} },
            at,
            creator: target.creator,
            state: rule.to,
            ...(rule.resetsFailedAttempts ? { resetFailedChecks: true } : {}),
          },
          target.request,
        );
      } catch (err) {
        if (await retryAfterConflict(err, attempt)) continue;
        throw err;
      }
      if (user.type === "machine") deps.onCallerChanged();
      const after = { ...user, changedAt: at, sequence: user.sequence + 1 };
      return rule.to === "removed" ? after : { ...after, state: rule.to };
    }
  }

  return {
    deactivate: (target: ChangeTarget, userId: string) => change("deactivate", target, userId),
    reactivate: (target: ChangeTarget, userId: string) => change("reactivate", target, userId),
    lock: (target: ChangeTarget, userId: string) => change("lock", target, userId),
    unlock: (target: ChangeTarget, userId: string) => change("unlock", target, userId),
    remove: (target: ChangeTarget, userId: string) => change("remove", target, userId),
  };
}

export type UserStateCommands = ReturnType<typeof createUserStateCommands>;
