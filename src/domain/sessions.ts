import { createCredentialChecks, type CredentialCheckDeps, type UserCheck } from "./credential-checks.js";
import { authorizeSessionAccess, visibleSessions } from "./session-access.js";
import { PasskeyErrors, SessionErrors, UserErrors } from "./error-catalogue.js";
import { type Principal, requireCommandPermission } from "./access.js";
import type { IdGenerator } from "./ids.js";
import { generateToken, tokenDigest } from "./secrets.js";
import type { CredentialChange, SessionFilter, SessionRecord, SessionUserAgent, UserCredentials, WebAuthNChallenge } from "./ports.js";
import type { NewEvent, RequestScoped, RequestState } from "./ports.js";
import { retryAfterConflict } from "./conflicts.js";
import type { JsonObject, PasskeyCommands, UserVerification } from "./passkeys.js";

/** The checks of a CreateSession or SetSession request. */
export interface SessionChecks {
  user?: UserCheck;
  password?: string;
  totp?: string;
  /** A WebAuthN assertion (the browser's PublicKeyCredential as JSON) answering the open challenge. */
  webAuthN?: JsonObject;
}

/** The challenges a CreateSession or SetSession request asks for. */
export interface SessionChallenges {
  webAuthN?: { domain: string; userVerification: UserVerification };
}

export interface CreateSessionInput extends RequestScoped {
  principal: Principal;
  checks: SessionChecks;
  /** Values base64-encoded. */
  metadata: Record<string, string>;
  userAgent: SessionUserAgent;
  lifetimeMs: number | undefined;
  challenges?: SessionChallenges;
}

export interface SetSessionInput extends RequestScoped {
  principal: Principal;
  sessionId: string;
  checks: SessionChecks;
  metadata: Record<string, string>;
  lifetimeMs: number | undefined;
  challenges?: SessionChallenges;
}

export interface SessionCommandsDeps extends CredentialCheckDeps {
  newId: IdGenerator;
  /** WebAuthN challenges and assertion checks (src/domain/passkeys.ts). */
  passkeys?: Pick<PasskeyCommands, "challenge" | "checkAssertion">;
}

/** What the checks of one request verified, and the challenge it opened. */
interface Checked {
  password: boolean;
  totp: boolean;
  webAuthN?: { userVerified: boolean };
  challenge?: WebAuthNChallenge;
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
  const { findUser, checkPassword, checkTotp, checkUserPassword } = createCredentialChecks(deps);
  /**
   * Runs the checks for `userId` (or the user the checks name) and writes them with the session
   * change in one transaction. Retries when the user changed between the read and the write; a
   * verification already done is reused as long as the hash it verified is still the user's.
   */
  async function runChecks(
    instanceId: string,
    creator: string,
    request: RequestState | undefined,
    checks: SessionChecks,
    existingUserId: string | undefined,
    webAuthN: { open: WebAuthNChallenge | undefined; requested: SessionChallenges["webAuthN"] },
    buildSession: (
      creds: UserCredentials | undefined,
      at: number,
      checked: Checked,
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
      const passkeys: NonNullable<CredentialChange["passkeys"]> = {};
      let webAuthNChecked: { userVerified: boolean } | undefined;
      if (checks.webAuthN !== undefined) {
        if (!webAuthN.open) throw PasskeyErrors.noChallenge();
        if (!creds) throw PasskeyErrors.sessionUserMissing();
        const result = await requirePasskeys().checkAssertion(creds, webAuthN.open, checks.webAuthN, at);
        events.push(...result.events);
        passkeys.put = [result.passkey];
        webAuthNChecked = { userVerified: result.userVerified };
      }
      let challenge: Awaited<ReturnType<PasskeyCommands["challenge"]>> | undefined;
      if (webAuthN.requested) {
        if (!creds) throw PasskeyErrors.sessionUserMissing();
        challenge = await requirePasskeys().challenge(creds, webAuthN.requested);
      }
      const session = buildSession(creds, at, {
        password: checks.password !== undefined,
        totp: checks.totp !== undefined,
        ...(webAuthNChecked ? { webAuthN: webAuthNChecked } : {}),
        ...(challenge ? { challenge: challenge.open } : {}),
      });
      try {
        await deps.store.write(
          {
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
                    ...(passkeys.put ? { passkeys } : {}),
                  },
                }
              : {}),
            session: { session: session.session, fromSequence: session.fromSequence, events: session.events },
          },
          request,
        );
      } catch (err) {
        if (await retryAfterConflict(err, attempt)) continue;
        throw err;
      }
      return {
        session: session.session,
        token: session.token,
        user: creds?.user,
        challenges: challenge ? { webAuthN: challenge.requestOptions } : {},
      };
    }
  }

  function requirePasskeys() {
    if (!deps.passkeys) throw PasskeyErrors.unavailable();
    return deps.passkeys;
  }

  function checkEvents(creds: UserCredentials | undefined, at: number, checked: Checked, newUser: boolean) {
    const events: NewEvent[] = [];
    if (creds && newUser) events.push({ type: "session.user.checked", payload: { userId: creds.user.id, userResourceOwner: creds.user.orgId, checkedAt: at } });
    if (checked.password) events.push({ type: "session.password.checked", payload: { checkedAt: at } });
    if (checked.totp) events.push({ type: "session.totp.checked", payload: { checkedAt: at } });
    if (checked.webAuthN) events.push({ type: "session.webAuthN.checked", payload: { checkedAt: at, userVerified: checked.webAuthN.userVerified } });
    if (checked.challenge) {
      events.push({ type: "session.webAuthN.challenged", payload: { rpId: checked.challenge.rpId, userVerification: checked.challenge.userVerification } });
    }
    return events;
  }

  async function createSession(input: CreateSessionInput) {
    const { principal } = input;
    // ZITADEL requires session.write on the instance to create sessions.
    requireCommandPermission(principal, "session.write", "");
    const sessionId = deps.newId();
    return runChecks(
      principal.instanceId,
      principal.userId,
      input.request,
      input.checks,
      undefined,
      { open: undefined, requested: input.challenges?.webAuthN },
      (creds, at, checked) => {
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
          webAuthNChallenge: checked.challenge,
          webAuthNCheckedAt: checked.webAuthN ? at : undefined,
          webAuthNUserVerified: checked.webAuthN?.userVerified,
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
      },
    );
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
        const webAuthN = { open: current.webAuthNChallenge, requested: input.challenges?.webAuthN };
        return await runChecks(
          principal.instanceId,
          principal.userId,
          input.request,
          checks,
          current.userId === "" ? undefined : current.userId,
          webAuthN,
          (creds, at, checked) => {
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
              // A check answers the open challenge (ZITADEL's reduceWebAuthNChecked clears it); a new one replaces it.
              webAuthNChallenge: checked.challenge ?? (checked.webAuthN ? undefined : current.webAuthNChallenge),
              webAuthNCheckedAt: checked.webAuthN ? at : current.webAuthNCheckedAt,
              webAuthNUserVerified: checked.webAuthN ? checked.webAuthN.userVerified : current.webAuthNUserVerified,
              tokenDigest: tokenDigest(token),
              metadata,
              expiresAt: input.lifetimeMs === undefined ? current.expiresAt : at + input.lifetimeMs,
              changedAt: at,
              sequence: current.sequence + events.length,
            };
            return { session, fromSequence: current.sequence, events, token };
          },
        );
      } catch (err) {
        // Another change of the same session committed in between: start again from its new state.
        if (await retryAfterConflict(err, attempt, "session_sequence")) continue;
        throw err;
      }
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
    authorizeSessionAccess(principal, session, token, "session.read");
    return session;
  }

  /**
   * Ends a session. As ZITADEL's terminateSession (internal/command/session.go), the token or the
   * permission is checked first, and a session that is already terminated or expired is left as it
   * is: the call succeeds and writes nothing.
   */
  async function deleteSession(principal: Principal, sessionId: string, token: string | undefined, request: RequestState | undefined) {
    for (let attempt = 1; ; attempt++) {
      const session = await deps.store.session(principal.instanceId, sessionId);
      if (!session) throw SessionErrors.notFound();
      authorizeSessionAccess(principal, session, token, "session.delete");
      const at = now();
      if (session.terminated || isSessionExpired(session, at)) return session;
      const next = { ...session, terminated: true, changedAt: at, sequence: session.sequence + 1 };
      try {
        await deps.store.write({ session: { session: next, fromSequence: session.sequence, events: [{ type: "session.terminated", payload: {} }] } }, request);
        return next;
      } catch (err) {
        if (await retryAfterConflict(err, attempt, "session_sequence")) continue;
        throw err;
      }
    }
  }

  async function listSessions(principal: Principal, filter: SessionFilter, page: { offset: number; limit: number; asc: boolean }) {
    return deps.store.listSessions(principal.instanceId, filter, page, visibleSessions(principal));
  }

  return { createSession, setSession, getSession, deleteSession, listSessions, checkUserPassword };
}

export type SessionCommands = ReturnType<typeof createSessionCommands>;
