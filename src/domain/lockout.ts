import { PolicyErrors } from "./error-catalogue.js";
import { retryAfterConflict } from "./conflicts.js";
import type { LockoutPolicy, LockoutStore } from "./ports.js";
import type { NewEvent } from "./ports.js";
import type { InstanceTarget, Target } from "./authentication.js";

/** A stored lockout policy with its change metadata. */
export interface StoredLockoutPolicy extends LockoutPolicy {
  createdAt: number;
  changedAt: number;
  /** The owner's event count after the policy's last change (organisation or instance). */
  sequence: number;
}

/**
 * A change of a lockout policy: `orgId` "" is the instance's own policy. The event follows the
 * owner's `expectedSequence` (the organisation's, or the instance aggregate's), so a concurrent
 * change of the owner fails it with `UniqueViolation("sequence")`.
 */
export interface LockoutChange {
  instanceId: string;
  orgId: string;
  expectedSequence: number;
  event: NewEvent;
  /** The policy to store; undefined removes it. */
  policy: (LockoutPolicy & { createdAt: number }) | undefined;
  at: number;
  creator: string;
}

/** The policy in force and where it comes from. */
export interface EffectiveLockoutPolicy {
  policy: LockoutPolicy;
  /** Change metadata; undefined for the configured default nobody has stored yet. */
  stored: StoredLockoutPolicy | undefined;
  /** True when the organisation has no policy of its own (always true for the instance's). */
  isDefault: boolean;
}

export interface LockoutCommandsDeps {
  store: LockoutStore;
  /** The instance's policy until an administrator stores one (USERPORT_MAX_PASSWORD_ATTEMPTS). */
  defaultLockout: LockoutPolicy;
  now?: () => number;
}

const samePolicy = (a: LockoutPolicy, b: LockoutPolicy) => a.maxPasswordAttempts === b.maxPasswordAttempts && a.maxOtpAttempts === b.maxOtpAttempts;

const payloadOf = (policy: LockoutPolicy) => ({ maxPasswordAttempts: policy.maxPasswordAttempts, maxOTPAttempts: policy.maxOtpAttempts });

/**
 * ZITADEL's lockout policies: an organisation's own (management v1) and the instance's (admin
 * v1). The session commands read the same rows when they count failed checks.
 */
export function createLockoutCommands(deps: LockoutCommandsDeps) {
  const now = deps.now ?? Date.now;

  async function instancePolicy(instanceId: string): Promise<EffectiveLockoutPolicy> {
    const stored = await deps.store.storedPolicy(instanceId, "");
    return { policy: stored ?? deps.defaultLockout, stored, isDefault: true };
  }

  /** Writes what `decide` returns, retrying when a concurrent change of the owner won. */
  async function change(
    target: Target,
    decide: (existing: StoredLockoutPolicy | undefined) => Pick<LockoutChange, "event" | "policy">,
  ): Promise<{ sequence: number; at: number }> {
    for (let attempt = 1; ; attempt++) {
      const existing = await deps.store.storedPolicy(target.instanceId, target.orgId);
      const previous = await deps.store.ownerSequence(target.instanceId, target.orgId);
      const decided = decide(existing);
      const at = now();
      try {
        await deps.store.write({ ...target, expectedSequence: previous, ...decided, at }, target.request);
      } catch (err) {
        if (await retryAfterConflict(err, attempt)) continue;
        throw err;
      }
      return { sequence: previous + 1, at };
    }
  }

  return {
    instancePolicy,

    /** ZITADEL's GetLockoutPolicy (management): the organisation's own, else the instance's. */
    async orgPolicy(instanceId: string, orgId: string): Promise<EffectiveLockoutPolicy> {
      const stored = await deps.store.storedPolicy(instanceId, orgId);
      if (stored) return { policy: stored, stored, isDefault: false };
      return instancePolicy(instanceId);
    },

    /** ZITADEL's AddLockoutPolicy, ChangeLockoutPolicy and RemoveLockoutPolicy of an organisation. */
    setOrgPolicy(target: Target, mode: "add" | "change" | "remove", policy: LockoutPolicy | undefined) {
      return change(target, (existing) => {
        if (mode === "add" && existing) throw PolicyErrors.lockoutPolicyExists();
        if (mode === "change" && !existing) throw PolicyErrors.lockoutPolicyNotFoundOnChange();
        if (mode === "remove" && !existing) throw PolicyErrors.lockoutPolicyNotFoundOnRemove();
        if (mode === "change" && samePolicy(existing!, policy!)) {
          throw PolicyErrors.lockoutPolicyNotChanged();
        }
        if (mode === "remove") return { event: { type: "org.policy.lockout.removed", payload: {} }, policy: undefined };
        return {
          event: { type: mode === "add" ? "org.policy.lockout.added" : "org.policy.lockout.changed", payload: payloadOf(policy!) },
          policy: { ...policy!, createdAt: existing?.createdAt ?? now() },
        };
      });
    },

    /**
     * ZITADEL's ChangeDefaultLockoutPolicy. ZITADEL's instance always has a policy; here it is the
     * configured default until the first change stores one, so that change is compared with it.
     */
    setInstancePolicy(target: InstanceTarget, policy: LockoutPolicy) {
      return change({ ...target, orgId: "" }, (existing) => {
        if (samePolicy(existing ?? deps.defaultLockout, policy)) {
          throw PolicyErrors.instanceLockoutPolicyNotChanged();
        }
        return {
          event: { type: "instance.policy.lockout.changed", payload: payloadOf(policy) },
          policy: { ...policy, createdAt: existing?.createdAt ?? now() },
        };
      });
    },
  };
}

export type LockoutCommands = ReturnType<typeof createLockoutCommands>;
