import { failedPrecondition, notFound } from "./errors.js";
import { UniqueViolation, type User, type UserState, type UserStore } from "./store-port.js";

/** Where a state change acts: the instance, the organisation it is scoped to, and who asks. */
export interface ChangeTarget {
  instanceId: string;
  /** When set, users of other organisations are not found (v1 reads within the context org). */
  orgId: string | undefined;
  creator: string;
  /** Checks the caller may change this user (v2 checks on the user's own organisation); throws if not. */
  authorize?: (user: User) => void;
}

type Transition = "deactivate" | "reactivate" | "lock" | "unlock" | "remove";

interface Rule {
  /** ZITADEL's id for "user not found" on this command. */
  notFoundId: string;
  /** Why the user's current state forbids the change, with ZITADEL's id; undefined allows it. */
  refuse(state: UserState): { id: string; message: string } | undefined;
  to: UserState | "removed";
  event: string;
}

/** ZITADEL's user state machine, with its error ids (zitadel-api.md §10.3). */
const RULES: Record<Transition, Rule> = {
  deactivate: {
    notFoundId: "COMMAND-3M9ds",
    refuse: (state) =>
      state === "INITIAL"
        ? { id: "COMMAND-ke0fw", message: "User with state initial can only be deleted not deactivated" }
        : state === "INACTIVE"
          ? { id: "COMMAND-5M0sf", message: "User already inactive" }
          : undefined,
    to: "INACTIVE",
    event: "user.deactivated",
  },
  reactivate: {
    notFoundId: "COMMAND-4M0sd",
    refuse: (state) => (state !== "INACTIVE" ? { id: "COMMAND-6M0sf", message: "User is not inactive" } : undefined),
    to: "ACTIVE",
    event: "user.reactivated",
  },
  lock: {
    notFoundId: "COMMAND-5M9fs",
    refuse: (state) =>
      state !== "ACTIVE" && state !== "INITIAL"
        ? { id: "COMMAND-3NN8v", message: "User is not active or initial" }
        : undefined,
    to: "LOCKED",
    event: "user.locked",
  },
  unlock: {
    notFoundId: "COMMAND-M0dos",
    refuse: (state) => (state !== "LOCKED" ? { id: "COMMAND-4M0ds", message: "User is not locked" } : undefined),
    to: "ACTIVE",
    event: "user.unlocked",
  },
  remove: { notFoundId: "COMMAND-m9od", refuse: () => undefined, to: "removed", event: "user.removed" },
};

/** How often a change is retried when another change of the same user committed in between. */
const MAX_ATTEMPTS = 5;

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
        throw notFound(rule.notFoundId, "User could not be found");
      }
      target.authorize?.(user);
      const refusal = rule.refuse(user.state);
      if (refusal) throw failedPrecondition(refusal.id, refusal.message);
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
        });
      } catch (err) {
        if (err instanceof UniqueViolation && err.kind === "sequence" && attempt < MAX_ATTEMPTS) continue;
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
