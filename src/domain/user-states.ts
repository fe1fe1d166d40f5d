import { failedPrecondition, notFound } from "./errors.js";
import type { User, UserState, UserStore } from "./ports.js";
import { retryAfterConflict } from "./conflicts.js";

/** Where a state change acts: the instance, the organisation it is scoped to, and who asks. */
export interface ChangeTarget {
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

type Ids = Record<StateApi, string>;

interface Rule {
  /** ZITADEL's ids for "user not found" on this command. */
  notFound: Ids;
  /** Why the user's current state forbids the change, with ZITADEL's ids; undefined allows it. */
  refuse(state: UserState): { ids: Ids; message: string } | undefined;
  to: UserState | "removed";
  event: string;
  /** Whether the change forgets the failed password and TOTP checks, so the lockout counts from 0 again. */
  resetsFailedAttempts?: boolean;
}

/**
 * ZITADEL's user state machine, with the ids of its management (v1) commands (ZITADEL's
 * internal/command/user.go) and of its v2 commands (internal/command/user_v2.go).
 */
const RULES: Record<Transition, Rule> = {
  deactivate: {
    notFound: { v1: "COMMAND-3M9ds", v2: "COMMAND-5gp2p62iin" },
    refuse: (state) =>
      state === "INITIAL"
        ? {
            ids: { v1: "COMMAND-ke0fw", v2: "COMMAND-gvx4kct9r2" },
            message: "User with state initial can only be deleted not deactivated",
          }
        : state === "INACTIVE"
          ? { ids: { v1: "COMMAND-5M0sf", v2: "COMMAND-5gunjw0cd7" }, message: "User already inactive" }
          : undefined,
    to: "INACTIVE",
    event: "user.deactivated",
  },
  reactivate: {
    notFound: { v1: "COMMAND-4M0sd", v2: "COMMAND-9hy5kzbuk6" },
    refuse: (state) => (state !== "INACTIVE" ? { ids: { v1: "COMMAND-6M0sf", v2: "COMMAND-s5qqcz97hf" }, message: "User is not inactive" } : undefined),
    to: "ACTIVE",
    event: "user.reactivated",
  },
  lock: {
    notFound: { v1: "COMMAND-5M9fs", v2: "COMMAND-450yxuqrh1" },
    refuse: (state) =>
      state !== "ACTIVE" && state !== "INITIAL"
        ? { ids: { v1: "COMMAND-3NN8v", v2: "COMMAND-lgws8wtsqf" }, message: "User is not active or initial" }
        : undefined,
    to: "LOCKED",
    event: "user.locked",
  },
  unlock: {
    notFound: { v1: "COMMAND-M0dos", v2: "COMMAND-x377t913pw" },
    refuse: (state) => (state !== "LOCKED" ? { ids: { v1: "COMMAND-4M0ds", v2: "COMMAND-olb9vb0oca" }, message: "User is not locked" } : undefined),
    to: "ACTIVE",
    event: "user.unlocked",
    // As ZITADEL: its password and TOTP write models set PasswordCheckFailedCount and
    // CheckFailedCount to 0 on UserUnlockedEvent.
    resetsFailedAttempts: true,
  },
  remove: {
    notFound: { v1: "COMMAND-m9od", v2: "COMMAND-bd4ir1mblj" },
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
        throw notFound(rule.notFound[target.api], "User could not be found");
      }
      const refusal = rule.refuse(user.state);
      if (refusal) throw failedPrecondition(refusal.ids[target.api], refusal.message);
      target.authorize?.(user);
      const at = now();
      try {
        await deps.store.changeUser({
          instanceId: target.instanceId,
          userId,
          expectedSequence: user.sequence,
          event: { type: rule.event, payload: {} },
          at,
          creator: target.creator,
          state: rule.to,
          ...(rule.resetsFailedAttempts ? { resetFailedChecks: true } : {}),
        });
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
