import { randomBytes } from "node:crypto";
import { Secret, TOTP } from "otpauth";
import { takeUserAttempt } from "./attempts.js";
import { retryAfterConflict } from "./conflicts.js";
import { PasswordErrors, SessionErrors, UserErrors } from "./error-catalogue.js";
import { CredentialsCheckFailed } from "./errors.js";
import type { ExternalPasswords } from "./external-passwords.js";
import { createFailureRecorder, otpFailure, passwordFailure } from "./failed-checks.js";
import type { HashRegistry } from "./hashes/index.js";
import type { PasswordHasher } from "./password.js";
import type { AttemptLimiter, CredentialChange, LockoutPolicy, NewEvent, SessionStore, UserCredentials } from "./ports.js";
import type { SecretBox } from "./secrets.js";

/** Which user a check is about: by id or by login name. */
export type UserCheck = { userId: string } | { loginName: string };

export interface CredentialCheckDeps {
  store: SessionStore;
  /** The configured hasher: a verified password stored any other way is rehashed with it. */
  hasher: PasswordHasher & { readonly cost: number };
  hashRegistry: HashRegistry;
  secretBox: SecretBox;
  /** The lockout policy in force for a user of the organisation (src/domain/lockout.ts decides). */
  lockoutPolicy(instanceId: string, orgId: string): Promise<LockoutPolicy>;
  /** Bounds the password checks per user (src/domain/attempts.ts); none means unbounded. */
  attempts?: AttemptLimiter;
  /** Where a user without a stored password may have one: an LDAP gateway (src/domain/external-passwords.ts). */
  externalPasswords?: Pick<ExternalPasswords, "verify"> & Partial<Pick<ExternalPasswords, "provision">>;
  now?: () => number;
}

const BCRYPT_MAX_BYTES = 72;

/** Whether a stored hash is what the configured hasher would make now: bcrypt at its cost. */
export function isCurrentHash(encoded: string, cost: number): boolean {
  // $2a$, $2b$ and $2y$ are the same algorithm for what the binding makes; $2$ and $2x$ are
  // older or buggy variants and get replaced.
  const match = /^\$2[aby]\$(\d\d)\$/.exec(encoded);
  return match !== null && Number(match[1]) === cost;
}

/**
 * The user, password and TOTP checks of sessions (ZITADEL's session commands,
 * internal/command/session.go): each success resolves with the events and credential changes to
 * write with the session; each failure is written on the user (src/domain/failed-checks.ts) and
 * thrown.
 */
export function createCredentialChecks(deps: CredentialCheckDeps) {
  const now = deps.now ?? Date.now;
  const recordFailure = createFailureRecorder(deps.store);
  // A hash of the configured cost to verify against when there is no user, so that an unknown
  // login name costs as much time as a wrong password does.
  let dummyHash: Promise<string> | undefined;
  const spendVerification = async (password: string) => {
    dummyHash ??= deps.hasher.hash(randomBytes(16).toString("base64url"));
    await deps.hashRegistry.verify(password, await dummyHash);
  };

  async function findUser(instanceId: string, check: UserCheck, password: string | undefined) {
    let userId = "userId" in check ? check.userId : await deps.store.userIdByLoginName(instanceId, check.loginName);
    if (userId === undefined && "loginName" in check && password !== undefined) {
      // Just-in-time migration: a gateway's newUserLookup may find the login name in its directory
      // and create the user once the password binds there (src/domain/external-passwords.ts).
      userId = await deps.externalPasswords?.provision?.(instanceId, check.loginName, password);
    }
    const found = userId === undefined ? undefined : await deps.store.credentials(instanceId, userId);
    if (!found) {
      if (password !== undefined) await spendVerification(password);
      throw UserErrors.notFound();
    }
    // ZITADEL's session API accepts active and initial users only (State.IsEnabled).
    if (found.user.state === "INACTIVE" || found.user.state === "LOCKED") {
      throw SessionErrors.userNotActive();
    }
    return found;
  }

  /**
   * Verifies `password` for the user. Resolves with the events and user changes of a success;
   * throws after writing the failure (and a lock, when the lockout policy says so).
   */
  async function checkPassword(creds: UserCredentials, password: string, creator: string, at: number) {
    const { user } = creds;
    if (user.state === "INITIAL") {
      // ZITADEL's login sends an initial user through the init flow first; without it there is no sign-in.
      throw UserErrors.notYetInitialized();
    }
    // Before any hashing: a user's budget of checks bounds the CPU spent on guesses at it.
    await takeUserAttempt(deps.attempts, user.instanceId, user.id);
    let matches: boolean;
    if (creds.passwordHash === undefined) {
      // The external authority decides (a directory that cannot is an error, not a wrong password).
      const external = await deps.externalPasswords?.verify(user, password);
      if (external === undefined) {
        await spendVerification(password);
        throw SessionErrors.passwordNotSet();
      }
      matches = external.matches;
      if (external.matches) {
        const events: NewEvent[] = [];
        const set: CredentialChange["set"] = { failedAttempts: 0 };
        // passwordAuthority PING_ONE: the password is taken over at its first success (as bcrypt
        // would truncate a longer one, such a password stays external).
        if (external.capture && Buffer.byteLength(password) <= BCRYPT_MAX_BYTES) {
          set.passwordHash = await deps.hasher.hash(password);
          set.passwordChangedAt = at;
          events.push({ type: "user.human.password.external.captured", payload: { gatewayId: external.gatewayId, userTypeId: external.userTypeId } });
        }
        events.push({ type: "user.human.password.check.succeeded", payload: {} });
        return { events, set };
      }
    } else {
      try {
        matches = await deps.hashRegistry.verify(password, creds.passwordHash);
      } catch (err) {
        // A hash whose family was switched off after the import, or one that no longer parses.
        throw PasswordErrors.notVerifiable(err);
      }
    }
    if (matches && creds.passwordHash !== undefined) {
      const events: NewEvent[] = [];
      const set: CredentialChange["set"] = { failedAttempts: 0 };
      // bcrypt reads 72 bytes at most: a longer password that another algorithm verified keeps
      // its hash, since any bcrypt hash of it would also accept every password sharing its prefix.
      if (!isCurrentHash(creds.passwordHash, deps.hasher.cost) && Buffer.byteLength(password) <= BCRYPT_MAX_BYTES) {
        set.passwordHash = await deps.hasher.hash(password);
        events.push({ type: "user.human.password.hash.updated", payload: {} });
      }
      events.push({ type: "user.human.password.check.succeeded", payload: {} });
      return { events, set };
    }
    const policy = await deps.lockoutPolicy(user.instanceId, user.orgId);
    const failedAttempts = await recordFailure(creds, creator, at, passwordFailure(policy));
    throw new CredentialsCheckFailed(PasswordErrors.invalid, failedAttempts);
  }

  /**
   * Checks a TOTP code against the user's active secret (RFC 6238: SHA-1, 30 s, 6 digits, ±1 step).
   * A failure is counted apart from the password's and locks the user when the count reaches the
   * lockout policy's max OTP attempts (ZITADEL's checkTOTP); a success resets the count.
   */
  async function checkTotp(creds: UserCredentials, code: string, creator: string, at: number) {
    if (creds.sealedTotpSecret === undefined) throw SessionErrors.totpNotReady();
    const totp = new TOTP({ secret: Secret.fromBase32(deps.secretBox.open(creds.sealedTotpSecret)), digits: 6, period: 30, algorithm: "SHA1" });
    if (totp.validate({ token: code, timestamp: at, window: 1 }) === null) {
      const policy = await deps.lockoutPolicy(creds.user.instanceId, creds.user.orgId);
      await recordFailure(creds, creator, at, otpFailure(policy));
      // ZITADEL answers a wrong code with this error alone, without a CredentialsCheckError.
      throw SessionErrors.totpInvalid();
    }
    return {
      events: [{ type: "user.human.mfa.otp.check.succeeded", payload: {} }] as NewEvent[],
      set: { otpFailedAttempts: 0 } as CredentialChange["set"],
    };
  }

  /**
   * A password check without a session (PingOne's password check, src/pingone): the same
   * verification, rehash, failure count and lockout as CreateSession's, written on the user.
   * Resolves with the user's credentials as they were read; throws as checkPassword does.
   */
  async function checkUserPassword(instanceId: string, userId: string, password: string, creator: string): Promise<UserCredentials> {
    for (let attempt = 1; ; attempt++) {
      const creds = await findUser(instanceId, { userId }, password);
      const at = now();
      const { events, set } = await checkPassword(creds, password, creator, at);
      try {
        // PingOne's facade runs no deadline: its checks are written for no request.
        await deps.store.write({ credentials: { instanceId, userId, expectedSequence: creds.user.sequence, events, at, creator, set } }, undefined);
      } catch (err) {
        if (await retryAfterConflict(err, attempt)) continue;
        throw err;
      }
      return creds;
    }
  }

  return { findUser, checkPassword, checkTotp, checkUserPassword };
}

export type CredentialChecks = ReturnType<typeof createCredentialChecks>;
