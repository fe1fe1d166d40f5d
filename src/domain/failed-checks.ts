import { UserErrors } from "./error-catalogue.js";
import { retryAfterConflict } from "./conflicts.js";
import type { CredentialChange, LockoutPolicy, NewEvent, SessionStore, UserCredentials } from "./ports.js";

/**
 * Failed password and TOTP checks and the lockout they lead to, as ZITADEL's HumanPasswordCheckFailed
 * and HumanCheckMFATOTP commands write them (internal/command/user_human_password.go,
 * user_human_otp.go): each failure counts, and the one that reaches the lockout policy's limit locks
 * the user in the same transaction.
 */

/** The events and changes of one failed check on the user as it is now, with the count after it. */
export type FailureWrite = (current: UserCredentials) => { events: NewEvent[]; set: CredentialChange["set"]; failedAttempts: number };

/** A failed password check; at `maxPasswordAttempts` failures in a row the user is locked. */
export const passwordFailure =
  (policy: LockoutPolicy): FailureWrite =>
  (current) => {
    const failedAttempts = current.failedAttempts + 1;
    const events: NewEvent[] = [{ type: "user.human.password.check.failed", payload: {} }];
    const set: CredentialChange["set"] = { failedAttempts };
    // The lock goes with the failure that reaches the limit, in the same transaction.
    if (policy.maxPasswordAttempts > 0 && failedAttempts >= policy.maxPasswordAttempts && current.user.state !== "LOCKED") {
      events.push({ type: "user.locked", payload: {} });
      set.state = "LOCKED";
    }
    return { events, set, failedAttempts };
  };

/** A failed TOTP check, counted apart from the password's; at `maxOtpAttempts` the user is locked. */
export const otpFailure =
  (policy: LockoutPolicy): FailureWrite =>
  (current) => {
    const otpFailedAttempts = current.otpFailedAttempts + 1;
    const events: NewEvent[] = [{ type: "user.human.mfa.otp.check.failed", payload: {} }];
    const set: CredentialChange["set"] = { otpFailedAttempts };
    if (policy.maxOtpAttempts > 0 && otpFailedAttempts >= policy.maxOtpAttempts && current.user.state !== "LOCKED") {
      events.push({ type: "user.locked", payload: {} });
      set.state = "LOCKED";
    }
    return { events, set, failedAttempts: otpFailedAttempts };
  };

/** Writes failed checks on users. */
export function createFailureRecorder(store: Pick<SessionStore, "write" | "credentials">) {
  const deps = { store };
  /**
   * Records a failed check on the user; when another change of the user committed since it was
   * read, the failure is counted again on the user as it is now. Written for no request: a guess
   * counts towards the lockout even when its caller gave up while it was checked.
   */
  async function recordFailure(creds: UserCredentials, creator: string, at: number, build: FailureWrite): Promise<number> {
    let current = creds;
    for (let attempt = 1; ; attempt++) {
      const { events, set, failedAttempts } = build(current);
      const { user } = current;
      try {
        await deps.store.write(
          { credentials: { instanceId: user.instanceId, userId: user.id, expectedSequence: user.sequence, events, at, creator, set } },
          undefined,
        );
        return failedAttempts;
      } catch (err) {
        if (!(await retryAfterConflict(err, attempt))) throw err;
        const reread = await deps.store.credentials(user.instanceId, user.id);
        if (!reread) throw UserErrors.notFound();
        current = reread;
      }
    }
  }

  return recordFailure;
}
