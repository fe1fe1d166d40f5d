import { AuthErrors, PasswordErrors, SessionErrors, UserErrors } from "./error-catalogue.js";
import { randomBytes } from "node:crypto";
import { Secret, TOTP } from "otpauth";
import { hasPermission, type Principal, requireCommandPermission } from "./access.js";
import { takeUserAttempt } from "./attempts.js";
import { CredentialsCheckFailed } from "./errors.js";
import type { HashRegistry } from "./hashes/index.js";
import type { IdGenerator } from "./ids.js";
import type { PasswordHasher } from "./password.js";
import { generateToken, type SecretBox, tokenDigest } from "./secrets.js";
import type {
  CredentialChange,
  LockoutPolicy,
  SessionFilter,
  SessionRecord,
  SessionStore,
  SessionUserAgent,
  UserCredentials,
  AttemptLimiter,
} from "./ports.js";
import type { NewEvent } from "./ports.js";
import { retryAfterConflict } from "./conflicts.js";
import type { ExternalPasswords } from "./external-passwords.js";

/** The checks of a CreateSession or SetSession request. */
export interface SessionChecks {
  user?: { userId: string } | { loginName: string };
  password?: string;
  totp?: string;
}

export interface CreateSessionInput {
  principal: Principal;
  checks: SessionChecks;
  /** Values base64-encoded. */
  metadata: Record<string, string>;
  userAgent: SessionUserAgent;
  lifetimeMs: number | undefined;
}

export interface SetSessionInput {
  principal: Principal;
  sessionId: string;
  checks: SessionChecks;
  metadata: Record<string, string>;
  lifetimeMs: number | undefined;
}

export interface SessionCommandsDeps {
  store: SessionStore;
  /** The configured hasher: a verified password stored any other way is rehashed with it. */
  hasher: PasswordHasher & { readonly cost: number };
  hashRegistry: HashRegistry;
  secretBox: SecretBox;
  newId: IdGenerator;
  /** The lockout policy in force for a user of the organisation (src/domain/lockout.ts decides). */
  lockoutPolicy(instanceId: string, orgId: string): Promise<LockoutPolicy>;
  /** Bounds the password checks per user (src/domain/attempts.ts); none means unbounded. */
  attempts?: AttemptLimiter;
  /** Where a user without a stored password may have one: an LDAP gateway (src/domain/external-passwords.ts). */
  externalPasswords?: Pick<ExternalPasswords, "verify">;
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
 * Whether a session's lifetime is over at `at`: ZITADEL's `Expiration.Before(now)`
 * (internal/command/session_model.go CheckNotInvalidated). A session without a lifetime never expires.
 */
export function isSessionExpired(session: { expiresAt: number | undefined }, at: number): boolean {
  return session.expiresAt !== undefined && session.expiresAt < at;
}

/**
 * ZITADEL's SessionWriteModel.CheckNotInvalidated (internal/command/session_model.go): a session
 * ended by DeleteSession or past its expiration takes no further checks, metadata or lifetime.
 */
function checkNotInvalidated(session: SessionRecord, at: number): void {
  if (session.terminated) throw SessionErrors.terminated();
  if (isSessionExpired(session, at)) throw SessionErrors.expired();
}

/**
 * Sessions, as ZITADEL's v2 SessionService: a user check, then password and TOTP checks, each
 * success recorded on the session; a failed check is recorded on the user and fails the request.
 */
export function createSessionCommands(deps: SessionCommandsDeps) {
  const now = deps.now ?? Date.now;
  // A hash of the configured cost to verify against when there is no user, so that an unknown
  // login name costs as much time as a wrong password does.
  let dummyHash: Promise<string> | undefined;
  const spendVerification = async (password: string) => {
    dummyHash ??= deps.hasher.hash(randomBytes(16).toString("base64url"));
    await deps.hashRegistry.verify(password, await dummyHash);
  };

  async function findUser(instanceId: string, check: NonNullable<SessionChecks["user"]>, password: string | undefined) {
    const userId = "userId" in check ? check.userId : await deps.store.userIdByLoginName(instanceId, check.loginName);
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
    const failedAttempts = await writeFailure(creds, creator, at, (current) => {
      const failedAttempts = current.failedAttempts + 1;
      const events: NewEvent[] = [{ type: "user.human.password.check.failed", payload: {} }];
      const set: CredentialChange["set"] = { failedAttempts };
      // The lock goes with the failure that reaches the limit, in the same transaction.
      if (policy.maxPasswordAttempts > 0 && failedAttempts >= policy.maxPasswordAttempts && current.user.state !== "LOCKED") {
        events.push({ type: "user.locked", payload: {} });
        set.state = "LOCKED";
      }
      return { events, set, failedAttempts };
    });
    throw new CredentialsCheckFailed(PasswordErrors.invalid, failedAttempts);
  }

  /**
   * Records a failed check on the user; when another change of the user committed since it was
   * read, the failure is counted again on the user as it is now.
   */
  async function writeFailure(
    creds: UserCredentials,
    creator: string,
    at: number,
    build: (current: UserCredentials) => { events: NewEvent[]; set: CredentialChange["set"]; failedAttempts: number },
  ): Promise<number> {
    let current = creds;
    for (let attempt = 1; ; attempt++) {
      const { events, set, failedAttempts } = build(current);
      const { user } = current;
      try {
        await deps.store.write({
          credentials: { instanceId: user.instanceId, userId: user.id, expectedSequence: user.sequence, events, at, creator, set },
        });
        return failedAttempts;
      } catch (err) {
        if (!(await retryAfterConflict(err, attempt))) throw err;
        const reread = await deps.store.credentials(user.instanceId, user.id);
        if (!reread) throw UserErrors.notFound();
        current = reread;
      }
    }
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
      await writeFailure(creds, creator, at, (current) => {
        const otpFailedAttempts = current.otpFailedAttempts + 1;
        const events: NewEvent[] = [{ type: "user.human.mfa.otp.check.failed", payload: {} }];
        const set: CredentialChange["set"] = { otpFailedAttempts };
        if (policy.maxOtpAttempts > 0 && otpFailedAttempts >= policy.maxOtpAttempts && current.user.state !== "LOCKED") {
          events.push({ type: "user.locked", payload: {} });
          set.state = "LOCKED";
        }
        return { events, set, failedAttempts: otpFailedAttempts };
      });
      // ZITADEL answers a wrong code with this error alone, without a CredentialsCheckError.
      throw SessionErrors.totpInvalid();
    }
    return {
      events: [{ type: "user.human.mfa.otp.check.succeeded", payload: {} }] as NewEvent[],
      set: { otpFailedAttempts: 0 } as CredentialChange["set"],
    };
  }

  /**
   * Runs the checks for `userId` (or the user the checks name) and writes them with the session
   * change in one transaction. Retries when the user changed between the read and the write; a
   * verification already done is reused as long as the hash it verified is still the user's.
   */
  async function runChecks(
    instanceId: string,
    creator: string,
    checks: SessionChecks,
    existingUserId: string | undefined,
    buildSession: (
      creds: UserCredentials | undefined,
      at: number,
      checked: { password: boolean; totp: boolean },
    ) => {
      session: SessionRecord;
      fromSequence: number;
      events: NewEvent[];
      token: string;
    },
  ) {
    if ((checks.password !== undefined || checks.totp !== undefined) && !checks.user && existingUserId === undefined) {
      throw SessionErrors.userIdMissing();
    }
    let verified: { hash: string; result: Awaited<ReturnType<typeof checkPassword>> } | undefined;
    for (let attempt = 1; ; attempt++) {
      let creds: UserCredentials | undefined;
      if (checks.user) creds = await findUser(instanceId, checks.user, checks.password);
      else if (existingUserId !== undefined) {
        creds = await deps.store.credentials(instanceId, existingUserId);
        if (!creds) throw UserErrors.notFound();
        if (creds.user.state === "INACTIVE" || creds.user.state === "LOCKED") {
          throw SessionErrors.userNotActive();
        }
      }
      const at = now();
      const events: NewEvent[] = [];
      const set: CredentialChange["set"] = {};
      if (creds && checks.password !== undefined) {
        if (!verified || verified.hash !== creds.passwordHash) {
          verified = { hash: creds.passwordHash ?? "", result: await checkPassword(creds, checks.password, creator, at) };
        }
        events.push(...verified.result.events);
        Object.assign(set, verified.result.set);
      }
      if (creds && checks.totp !== undefined) {
        const result = await checkTotp(creds, checks.totp, creator, at);
        events.push(...result.events);
        Object.assign(set, result.set);
      }
      const session = buildSession(creds, at, { password: checks.password !== undefined, totp: checks.totp !== undefined });
      try {
        await deps.store.write({
          ...(creds && events.length > 0
            ? {
                credentials: {
                  instanceId,
                  userId: creds.user.id,
                  expectedSequence: creds.user.sequence,
                  events,
                  at,
                  creator,
                  set,
                },
              }
            : {}),
          session: { session: session.session, fromSequence: session.fromSequence, events: session.events },
        });
      } catch (err) {
        if (await retryAfterConflict(err, attempt)) continue;
        throw err;
      }
      return { session: session.session, token: session.token, user: creds?.user };
    }
  }

  function checkEvents(creds: UserCredentials | undefined, at: number, checked: { password: boolean; totp: boolean }, newUser: boolean) {
    const events: NewEvent[] = [];
    if (creds && newUser) events.push({ type: "session.user.checked", payload: { userId: creds.user.id, userResourceOwner: creds.user.orgId, checkedAt: at } });
    if (checked.password) events.push({ type: "session.password.checked", payload: { checkedAt: at } });
    if (checked.totp) events.push({ type: "session.totp.checked", payload: { checkedAt: at } });
    return events;
  }

  async function createSession(input: CreateSessionInput) {
    const { principal } = input;
    // ZITADEL requires session.write on the instance to create sessions.
    requireCommandPermission(principal, "session.write", "");
    const sessionId = deps.newId();
    return runChecks(principal.instanceId, principal.userId, input.checks, undefined, (creds, at, checked) => {
      const token = generateToken();
      const events: NewEvent[] = [{ type: "session.added", payload: { userAgent: input.userAgent } }, ...checkEvents(creds, at, checked, true)];
      if (Object.keys(input.metadata).length > 0) events.push({ type: "session.metadata.set", payload: { keys: Object.keys(input.metadata) } });
      if (input.lifetimeMs !== undefined) events.push({ type: "session.lifetime.set", payload: { lifetimeMs: input.lifetimeMs } });
      events.push({ type: "session.token.set", payload: {} });
      const metadata = Object.fromEntries(Object.entries(input.metadata).filter(([, value]) => value !== ""));
      const session: SessionRecord = {
        instanceId: principal.instanceId,
        id: sessionId,
        creator: principal.userId,
        userId: creds?.user.id ?? "",
        userOrgId: creds?.user.orgId ?? "",
        userCheckedAt: creds ? at : undefined,
        passwordCheckedAt: checked.password ? at : undefined,
        totpCheckedAt: checked.totp ? at : undefined,
        tokenDigest: tokenDigest(token),
        userAgent: input.userAgent,
        metadata,
        expiresAt: input.lifetimeMs === undefined ? undefined : at + input.lifetimeMs,
        terminated: false,
        createdAt: at,
        changedAt: at,
        sequence: events.length,
      };
      return { session, fromSequence: 0, events, token };
    });
  }

  async function setSession(input: SetSessionInput) {
    const { principal } = input;
    requireCommandPermission(principal, "session.write", "");
    for (let attempt = 1; ; attempt++) {
      const current = await deps.store.session(principal.instanceId, input.sessionId);
      if (!current) throw SessionErrors.notFound();
      checkNotInvalidated(current, now());
      const checks = { ...input.checks };
      if (checks.user && current.userId !== "") {
        // The user of a session is checked once; naming the same user again is allowed.
        const requested = "userId" in checks.user ? checks.user.userId : await deps.store.userIdByLoginName(principal.instanceId, checks.user.loginName);
        if (requested !== current.userId) throw SessionErrors.userChangeNotPossible();
        delete checks.user;
      }
      try {
        return await runChecks(principal.instanceId, principal.userId, checks, current.userId === "" ? undefined : current.userId, (creds, at, checked) => {
          const token = generateToken();
          const events = checkEvents(creds, at, checked, current.userId === "");
          const metadata = { ...current.metadata };
          for (const [key, value] of Object.entries(input.metadata)) {
            if (value === "") delete metadata[key];
            else metadata[key] = value;
          }
          if (Object.keys(input.metadata).length > 0) events.push({ type: "session.metadata.set", payload: { keys: Object.keys(input.metadata) } });
          if (input.lifetimeMs !== undefined) events.push({ type: "session.lifetime.set", payload: { lifetimeMs: input.lifetimeMs } });
          events.push({ type: "session.token.set", payload: {} });
          const session: SessionRecord = {
            ...current,
            userId: creds?.user.id ?? current.userId,
            userOrgId: creds?.user.orgId ?? current.userOrgId,
            userCheckedAt: current.userId === "" && creds ? at : current.userCheckedAt,
            passwordCheckedAt: checked.password ? at : current.passwordCheckedAt,
            totpCheckedAt: checked.totp ? at : current.totpCheckedAt,
            tokenDigest: tokenDigest(token),
            metadata,
            expiresAt: input.lifetimeMs === undefined ? current.expiresAt : at + input.lifetimeMs,
            changedAt: at,
            sequence: current.sequence + events.length,
          };
          return { session, fromSequence: current.sequence, events, token };
        });
      } catch (err) {
        // Another change of the same session committed in between: start again from its new state.
        if (await retryAfterConflict(err, attempt, "session_sequence")) continue;
        throw err;
      }
    }
  }

  /**
   * Whether the caller may read or delete a session without its token: the session is its own, or
   * it holds the permission on the user's organisation (or the instance); for reading, also when
   * it created the session. (ZITADEL's checkSessionTerminationPermission leaves the creator out.)
   */
  function mayAccess(principal: Principal, session: SessionRecord, permission: "session.read" | "session.delete"): boolean {
    return (
      (permission === "session.read" && session.creator === principal.userId) ||
      (session.userId !== "" && session.userId === principal.userId) ||
      hasPermission(principal, permission, session.userOrgId)
    );
  }

  /** The caller proves the session's token, or may access the session without it (see mayAccess). */
  function authorize(principal: Principal, session: SessionRecord, token: string | undefined, permission: "session.read" | "session.delete") {
    if (token !== undefined) {
      if (tokenDigest(token) !== session.tokenDigest) throw SessionErrors.tokenInvalid();
    } else if (!mayAccess(principal, session, permission)) {
      throw AuthErrors.permissionDenied();
    }
  }

  /**
   * A session as GetSession shows it. A terminated one is gone (ZITADEL's projection drops it);
   * an expired one is still shown, with its expiration date in the past, as ZITADEL's
   * SessionByID (internal/query/session.go) shows it: it can no longer be changed (SetSession,
   * COMMAND-Hkl3d) nor used as a bearer token (AUTHZ-EGDo3).
   */
  async function getSession(principal: Principal, sessionId: string, token: string | undefined) {
    const session = await deps.store.session(principal.instanceId, sessionId);
    if (!session || session.terminated) throw SessionErrors.notFound();
    authorize(principal, session, token, "session.read");
    return session;
  }

  /**
   * Ends a session. As ZITADEL's terminateSession (internal/command/session.go), the token or the
   * permission is checked first, and a session that is already terminated or expired is left as it
   * is: the call succeeds and writes nothing.
   */
  async function deleteSession(principal: Principal, sessionId: string, token: string | undefined) {
    for (let attempt = 1; ; attempt++) {
      const session = await deps.store.session(principal.instanceId, sessionId);
      if (!session) throw SessionErrors.notFound();
      authorize(principal, session, token, "session.delete");
      const at = now();
      if (session.terminated || isSessionExpired(session, at)) return session;
      const next = { ...session, terminated: true, changedAt: at, sequence: session.sequence + 1 };
      try {
        await deps.store.write({ session: { session: next, fromSequence: session.sequence, events: [{ type: "session.terminated", payload: {} }] } });
        return next;
      } catch (err) {
        if (await retryAfterConflict(err, attempt, "session_sequence")) continue;
        throw err;
      }
    }
  }

  async function listSessions(principal: Principal, filter: SessionFilter, page: { offset: number; limit: number; asc: boolean }) {
    // Visible: created by the caller, the caller's own, or of organisations it may read sessions in.
    const all = hasPermission(principal, "session.read", "");
    const orgIds = all ? ("all" as const) : [...principal.orgRoles.keys()].filter((orgId) => hasPermission(principal, "session.read", orgId));
    return deps.store.listSessions(principal.instanceId, filter, page, { creator: principal.userId, userId: principal.userId, orgIds });
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
        await deps.store.write({
          credentials: { instanceId, userId, expectedSequence: creds.user.sequence, events, at, creator, set },
        });
      } catch (err) {
        if (await retryAfterConflict(err, attempt)) continue;
        throw err;
      }
      return creds;
    }
  }

  return { createSession, setSession, getSession, deleteSession, listSessions, checkUserPassword };
}

export type SessionCommands = ReturnType<typeof createSessionCommands>;
