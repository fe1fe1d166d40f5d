import { VerificationErrors } from "./error-catalogue.js";
import { createHash, timingSafeEqual } from "node:crypto";
import { takeUserAttempt } from "./attempts.js";
import { normalizeEmail, normalizePhone } from "./human.js";
import type { IdGenerator } from "./ids.js";
import { checkUrlTemplate, type Notifier } from "./notifications.js";
import { checkPasswordComplexity, DEFAULT_COMPLEXITY_POLICY, type PasswordHasher } from "./password.js";
import type { CodeKind, SecretBox } from "./secrets.js";
import type { NewEvent, OutboxMessage, StoredCode, User, UserStore, UserUpdate, AttemptLimiter } from "./ports.js";
import type { UserChangeCommands } from "./user-changes.js";
import type { ChangeTarget } from "./user-states.js";
import { makeCode } from "./users.js";

/**
 * Email and phone verification (v2 SetEmail, ResendEmailCode, VerifyEmail and their phone
 * twins) and the init code check that turns an INITIAL user ACTIVE, as ZITADEL's commands do
 * (internal/command/user_v2_email.go, user_v2_phone.go, user_human_init.go).
 *
 * A user holds at most one code of each kind: a new one replaces the last. A code verifies once
 * (it is marked used in the same transaction as the verification), only before it expires, and
 * is compared in constant time.
 */

export interface VerificationDeps {
  store: UserStore;
  changes: UserChangeCommands;
  newId: IdGenerator;
  secretBox: SecretBox;
  notifier: Notifier;
  hasher: PasswordHasher;
  /** Bounds the code checks per user (see src/domain/attempts.ts); none means unbounded. */
  attempts?: AttemptLimiter;
}

/** The contact channels a user verifies with a code. */
export type Channel = "email" | "phone";

/** How a new code is delivered: mailed (with an optional link template), returned, or not made. */
export type CodeDelivery = { kind: "send"; urlTemplate?: string } | { kind: "return" } | { kind: "verified" };

/** ZITADEL's errors and event types per channel. */
const CHANNEL = {
  email: {
    codeKind: "email",
    notFound: VerificationErrors.emailNotFound,
    noCodeToResend: VerificationErrors.emailNoCodeToResend,
    notChanged: VerificationErrors.emailNotChanged,
    changed: "user.human.email.changed",
    codeAdded: "user.human.email.code.added",
    verified: "user.human.email.verified",
    failed: "user.human.email.verification.failed",
    notification: "email_verification",
  },
  phone: {
    codeKind: "phone",
    notFound: VerificationErrors.phoneNotFound,
    noCodeToResend: VerificationErrors.phoneNoCodeToResend,
    notChanged: VerificationErrors.phoneNotChanged,
    changed: "user.human.phone.changed",
    codeAdded: "user.human.phone.code.added",
    verified: "user.human.phone.verified",
    failed: "user.human.phone.verification.failed",
    notification: "phone_verification",
  },
} as const;

const digest = (value: string) => createHash("sha256").update(value, "utf8").digest();

export function createVerificationCommands(deps: VerificationDeps) {
  /**
   * Whether `given` is the code, unused and unexpired. Digests of equal length are compared with
   * timingSafeEqual, so neither the code nor its length leaks through timing; a missing, used
   * or expired code is compared against itself for the same reason.
   */
  function codeMatches(stored: StoredCode | undefined, given: string, at: number): boolean {
    const usable = stored !== undefined && stored.usedAt === undefined && stored.expiresAt > at;
    const expected = usable ? deps.secretBox.open(stored.sealedCode) : given;
    return timingSafeEqual(digest(expected), digest(given)) && usable;
  }

  /**
   * ZITADEL's v2 email and phone commands: a removed or unknown user is "not found" and an
   * INITIAL user has to finish its initialisation first; both come before the permission check.
   */
  function v2Target(target: ChangeTarget, channel: Channel): ChangeTarget {
    return {
      ...target,
      authorize(user) {
        if (!user.human) throw CHANNEL[channel].notFound();
        if (user.state === "INITIAL") throw VerificationErrors.notYetInitialized();
        target.authorize?.(user);
      },
    };
  }
  const lookup = (userId: string, channel: Channel) => ({
    userId,
    notFound: CHANNEL[channel].notFound,
  });

  /** A new code for the channel, with its event and, when it is to be sent, its message. */
  function newCode(channel: Channel, delivery: CodeDelivery, at: number, recipient: User) {
    const spec = CHANNEL[channel];
    const returned = delivery.kind === "return";
    const urlTemplate = delivery.kind === "send" ? delivery.urlTemplate : undefined;
    const code = makeCode(deps, spec.codeKind as CodeKind, at, returned, urlTemplate);
    const event: NewEvent = { type: spec.codeAdded, payload: { codeId: code.stored.id, codeReturned: returned } };
    const outbox: OutboxMessage[] = returned
      ? []
      : [
          deps.notifier.compose({
            kind: spec.notification,
            user: recipient,
            code: code.code,
            ...(urlTemplate !== undefined ? { urlTemplate } : {}),
            at,
          }),
        ];
    return { code, event, outbox, returned };
  }

  /** SetEmail / SetPhone: a new address, then verified, or a new code sent or returned. */
  async function setContact(
    channel: Channel,
    target: ChangeTarget,
    userId: string,
    value: string,
    delivery: CodeDelivery,
  ): Promise<{ user: User; code?: string }> {
    if (delivery.kind === "send" && delivery.urlTemplate !== undefined) checkUrlTemplate(delivery.urlTemplate);
    let returnedCode: string | undefined;
    const user = await deps.changes.update(v2Target(target, channel), lookup(userId, channel), (current, at) => {
      const human = current.human!;
      const normalized = channel === "email" ? normalizeEmail(value) : normalizePhone(value);
      const previous = channel === "email" ? human.email.address : human.phone.number;
      if (normalized === previous) throw CHANNEL[channel].notChanged();
      const changed: User = {
        ...current,
        human:
          channel === "email" ? { ...human, email: { address: normalized, verified: false } } : { ...human, phone: { number: normalized, verified: false } },
      };
      const spec = CHANNEL[channel];
      const events: NewEvent[] = [{ type: spec.changed, payload: { [channel]: normalized } }];
      const plan: Omit<UserUpdate, "instanceId" | "userId" | "expectedSequence" | "at" | "creator"> = {
        events,
        set: channel === "email" ? { email: normalized, emailVerified: false } : { phone: normalized, phoneVerified: false },
        replaceCodes: [spec.codeKind],
      };
      if (delivery.kind === "verified") {
        events.push({ type: spec.verified, payload: {} });
        plan.set = channel === "email" ? { email: normalized, emailVerified: true } : { phone: normalized, phoneVerified: true };
        return plan;
      }
      const made = newCode(channel, delivery, at, changed);
      events.push(made.event);
      if (made.returned) returnedCode = made.code.code;
      return { ...plan, codes: [made.code.stored], outbox: made.outbox };
    });
    return { user, ...(returnedCode !== undefined ? { code: returnedCode } : {}) };
  }

  /** ResendEmailCode / ResendPhoneCode: only while a code is pending; the new one replaces it. */
  async function resendCode(
    channel: Channel,
    target: ChangeTarget,
    userId: string,
    delivery: Exclude<CodeDelivery, { kind: "verified" }>,
  ): Promise<{ user: User; code?: string }> {
    if (delivery.kind === "send" && delivery.urlTemplate !== undefined) checkUrlTemplate(delivery.urlTemplate);
    const spec = CHANNEL[channel];
    let returnedCode: string | undefined;
    const user = await deps.changes.update(v2Target(target, channel), lookup(userId, channel), async (current, at) => {
      const pending = await deps.store.findCode(current.instanceId, current.id, spec.codeKind);
      if (!pending || pending.usedAt !== undefined) throw spec.noCodeToResend();
      const made = newCode(channel, delivery, at, current);
      if (made.returned) returnedCode = made.code.code;
      return { events: [made.event], replaceCodes: [spec.codeKind], codes: [made.code.stored], outbox: made.outbox };
    });
    return { user, ...(returnedCode !== undefined ? { code: returnedCode } : {}) };
  }

  /**
   * VerifyEmail / VerifyPhone. As in ZITADEL, anyone authenticated may try (the code is the
   * proof, so callers pass no `authorize`); a wrong, used or expired code records a failed verification and is `COMMAND-eis9R`.
   */
  async function verifyCode(channel: Channel, target: ChangeTarget, userId: string, code: string): Promise<User> {
    if (code === "") throw VerificationErrors.codeEmpty();
    await takeUserAttempt(deps.attempts, target.instanceId, userId);
    const spec = CHANNEL[channel];
    let failed = false;
    const user = await deps.changes.update(v2Target(target, channel), lookup(userId, channel), async (current, at) => {
      failed = false;
      const stored = await deps.store.findCode(current.instanceId, current.id, spec.codeKind);
      if (!codeMatches(stored, code, at)) {
        failed = true;
        return { events: [{ type: spec.failed, payload: {} }] };
      }
      return {
        events: [{ type: spec.verified, payload: {} }],
        set: channel === "email" ? { emailVerified: true } : { phoneVerified: true },
        useCode: stored!.id,
      };
    });
    if (failed) throw VerificationErrors.codeInvalid();
    return user;
  }

  /**
   * The init code check of ZITADEL's login (HumanVerifyInitCode): the code from the init mail,
   * and a password if the user is to have one. Success writes
   * `user.human.initialization.check.succeeded`, verifies the email (the mail reached it) and
   * makes the user ACTIVE; a wrong or expired code records `…check.failed` and is
   * `COMMAND-11v6G`; a user without a pending init code is `COMMAND-mmn5f`.
   *
   * The password is hashed only once the code matched, as in ZITADEL's command
   * (internal/command/user_human_init.go verifies the code, then builds the password change):
   * this route needs no token, and hashing first would let anyone make the server spend a
   * bcrypt hash per request.
   */
  async function verifyInitCode(target: ChangeTarget, input: { userId: string; orgId?: string; code: string; password?: string }): Promise<User> {
    if (input.userId === "") throw VerificationErrors.initUserIdMissing();
    if (input.code === "") throw VerificationErrors.initCodeEmpty();
    const password = input.password !== undefined && input.password !== "" ? input.password : undefined;
    // The complexity check costs nothing; the hash waits for the code.
    if (password !== undefined) checkPasswordComplexity(password, DEFAULT_COMPLEXITY_POLICY);
    await takeUserAttempt(deps.attempts, target.instanceId, input.userId);
    // Hashed once, after the first matching code; a retry after a concurrent change reuses it.
    let passwordHash: string | undefined;
    let failed = false;
    const user = await deps.changes.update(
      {
        ...target,
        authorize(user) {
          if (input.orgId !== undefined && input.orgId !== "" && user.orgId !== input.orgId) {
            throw VerificationErrors.initCodeNotFound();
          }
        },
      },
      { userId: input.userId, notFound: VerificationErrors.initCodeNotFound },
      async (current, at) => {
        failed = false;
        const stored = await deps.store.findCode(current.instanceId, current.id, "init");
        if (current.state !== "INITIAL" || !current.human || !stored || stored.usedAt !== undefined) {
          throw VerificationErrors.initCodeNotFound();
        }
        if (!codeMatches(stored, input.code, at)) {
          failed = true;
          return { events: [{ type: "user.human.initialization.check.failed", payload: {} }] };
        }
        if (password !== undefined) passwordHash ??= await deps.hasher.hash(password);
        const events: NewEvent[] = [{ type: "user.human.initialization.check.succeeded", payload: {} }];
        if (!current.human.email.verified) events.push({ type: "user.human.email.verified", payload: {} });
        if (passwordHash !== undefined) events.push({ type: "user.human.password.changed", payload: { changeRequired: false } });
        return {
          events,
          set: {
            state: "ACTIVE",
            emailVerified: true,
            ...(passwordHash !== undefined ? { passwordHash, passwordChangeRequired: false } : {}),
          },
          useCode: stored.id,
        };
      },
      (after) =>
        failed || !after.human
          ? after
          : {
              ...after,
              state: "ACTIVE",
              human: {
                ...after.human,
                email: { ...after.human.email, verified: true },
                ...(passwordHash !== undefined ? { passwordSet: true, passwordChangeRequired: false } : {}),
              },
            },
    );
    if (failed) throw VerificationErrors.initCodeInvalid();
    return user;
  }

  /**
   * The email verification step of ZITADEL's login, behind the verification mail's link
   * (`/ui/login/mail/verification`, internal/api/ui/login/mail_verify_handler.go), which calls
   * the v1 command VerifyHumanEmail (internal/command/user_human_email.go) and so has its ids: a
   * missing user id `COMMAND-4M0ds`, an empty code `COMMAND-çm0ds`, no pending code (or no such
   * user) `COMMAND-3n8ud`, a wrong or expired code `COMMAND-Gdsgs` with
   * `user.human.email.verification.failed` recorded.
   */
  async function verifyEmailLink(target: ChangeTarget, input: { userId: string; orgId?: string; code: string }): Promise<User> {
    if (input.userId === "") throw VerificationErrors.loginUserIdMissing();
    if (input.code === "") throw VerificationErrors.loginCodeEmpty();
    await takeUserAttempt(deps.attempts, target.instanceId, input.userId);
    const spec = CHANNEL.email;
    let failed = false;
    const user = await deps.changes.update(
      {
        ...target,
        authorize(user) {
          if (input.orgId !== undefined && input.orgId !== "" && user.orgId !== input.orgId) {
            throw VerificationErrors.loginCodeNotFound();
          }
        },
      },
      { userId: input.userId, notFound: VerificationErrors.loginCodeNotFound },
      async (current, at) => {
        failed = false;
        const stored = await deps.store.findCode(current.instanceId, current.id, spec.codeKind);
        if (!current.human || !stored || stored.usedAt !== undefined) throw VerificationErrors.loginCodeNotFound();
        if (!codeMatches(stored, input.code, at)) {
          failed = true;
          return { events: [{ type: spec.failed, payload: {} }] };
        }
        return { events: [{ type: spec.verified, payload: {} }], set: { emailVerified: true }, useCode: stored.id };
      },
      (after) => (failed || !after.human ? after : { ...after, human: { ...after.human, email: { ...after.human.email, verified: true } } }),
    );
    if (failed) throw VerificationErrors.loginCodeInvalid();
    return user;
  }

  return {
    /** SetEmail / SetPhone: the new address or number, with a code to verify it unless it is verified. */
    setContact,
    /** ResendEmailCode / ResendPhoneCode. */
    resendCode,
    /** VerifyEmail / VerifyPhone. */
    verifyCode,
    verifyInitCode,
    verifyEmailLink,
  };
}

export type VerificationCommands = ReturnType<typeof createVerificationCommands>;
