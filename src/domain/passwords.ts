import { type CatalogueError, PasswordErrors } from "./error-catalogue.js";
import { timingSafeEqual } from "node:crypto";
import { takeUserAttempt } from "./attempts.js";
import type { HashRegistry } from "./hashes/index.js";
import type { IdGenerator } from "./ids.js";
import { checkUrlTemplate, type Notifier } from "./notifications.js";
import { checkPasswordComplexity, DEFAULT_COMPLEXITY_POLICY, type PasswordHasher } from "./password.js";
import { CODE_GENERATORS, generateCode, type SecretBox } from "./secrets.js";
import type { CredentialChange, SessionStore, UserCredentials, AttemptLimiter } from "./ports.js";
import type { RequestScoped, User } from "./ports.js";
import { retryingConflicts } from "./conflicts.js";

/** What proves a password change may happen; none means the caller's permission must. */
export type PasswordVerification = { currentPassword: string } | { code: string } | undefined;

export interface SetPasswordInput extends RequestScoped {
  instanceId: string;
  /** v1: the context organisation; users of others are not found. */
  orgId: string | undefined;
  userId: string;
  creator: string;
  password: string;
  changeRequired: boolean;
  verification: PasswordVerification;
  /** Checks the caller may set the password without a verification; throws if not. */
  authorize: (user: User) => void;
}

export interface PasswordResetInput extends RequestScoped {
  instanceId: string;
  userId: string;
  creator: string;
  medium: { kind: "return" } | { kind: "send"; urlTemplate?: string };
  /** Checks the caller may request a reset for this user; throws if not. */
  authorize: (user: User) => void;
}

export interface PasswordCommandsDeps {
  store: SessionStore;
  hasher: PasswordHasher;
  hashRegistry: HashRegistry;
  secretBox: SecretBox;
  newId: IdGenerator;
  notifier: Notifier;
  /** Bounds the checks of current passwords and reset codes per user (src/domain/attempts.ts). */
  attempts?: AttemptLimiter;
  now?: () => number;
}

function sameCode(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Passwords after creation, as ZITADEL's commands (internal/command/user_human_password.go):
 * set by an administrator, changed with the current password, or reset with a one-time code
 * that is mailed (outbox) or returned. A new password passes the complexity policy, is hashed
 * with the configured hasher and clears the failed-check count.
 */
export function createPasswordCommands(deps: PasswordCommandsDeps) {
  const now = deps.now ?? Date.now;

  async function humanOf(instanceId: string, orgId: string | undefined, userId: string, userNotFound: CatalogueError) {
    const creds = await deps.store.credentials(instanceId, userId);
    if (creds?.user.type !== "human" || (orgId !== undefined && creds.user.orgId !== orgId)) {
      throw userNotFound();
    }
    return creds;
  }

  async function verify(creds: UserCredentials, verification: NonNullable<PasswordVerification>, at: number) {
    await takeUserAttempt(deps.attempts, creds.user.instanceId, creds.user.id);
    if ("currentPassword" in verification) {
      if (creds.passwordHash === undefined) throw PasswordErrors.notSet();
      let matches: boolean;
      try {
        matches = await deps.hashRegistry.verify(verification.currentPassword, creds.passwordHash);
      } catch (err) {
        throw PasswordErrors.notVerifiable(err);
      }
      if (!matches) throw PasswordErrors.invalid();
      return undefined;
    }
    // The newest code replaces older ones; a used one is gone, an expired one says so.
    const code = await deps.store.latestCode(creds.user.instanceId, creds.user.id, "password");
    if (!code || code.used) throw PasswordErrors.codeNotFound();
    if (code.expiresAt <= at) throw PasswordErrors.codeExpired();
    if (!sameCode(deps.secretBox.open(code.sealedCode), verification.code)) throw PasswordErrors.codeInvalid();
    return code.id;
  }

  /** Sets a new password; resolves with the user as it is afterwards. */
  async function setPassword(input: SetPasswordInput): Promise<User> {
    checkPasswordComplexity(input.password, DEFAULT_COMPLEXITY_POLICY);
    // Hashed once: a retry after a concurrent change reuses it.
    let hash: string | undefined;
    return retryingConflicts(async () => {
      const creds = await humanOf(input.instanceId, input.orgId, input.userId, PasswordErrors.changeUserNotFound);
      const at = now();
      if (!input.verification) input.authorize(creds.user);
      const usedCodeId = input.verification ? await verify(creds, input.verification, at) : undefined;
      hash ??= await deps.hasher.hash(input.password);
      const change: CredentialChange = {
        instanceId: input.instanceId,
        userId: creds.user.id,
        expectedSequence: creds.user.sequence,
        events: [{ type: "user.human.password.changed", payload: { changeRequired: input.changeRequired } }],
        at,
        creator: input.creator,
        set: { passwordHash: hash, passwordChangeRequired: input.changeRequired, passwordChangedAt: at, failedAttempts: 0 },
        ...(usedCodeId !== undefined ? { usedCodeId } : {}),
      };
      await deps.store.write({ credentials: change }, input.request);
      const { human } = creds.user;
      return {
        ...creds.user,
        changedAt: at,
        sequence: creds.user.sequence + 1,
        ...(human ? { human: { ...human, passwordSet: true, passwordChangeRequired: input.changeRequired, passwordChangedAt: at } } : {}),
      };
    });
  }

  /**
   * Makes a password reset code: returned to the caller, or mailed through the outbox in the same
   * transaction. Initial users finish their initialisation instead (COMMAND-2M9sd).
   */
  async function requestReset(input: PasswordResetInput): Promise<{ user: User; code?: string }> {
    if (input.medium.kind === "send" && input.medium.urlTemplate !== undefined) checkUrlTemplate(input.medium.urlTemplate);
    return retryingConflicts(async () => {
      const creds = await humanOf(input.instanceId, undefined, input.userId, PasswordErrors.setUserNotFound);
      input.authorize(creds.user);
      if (creds.user.state === "INITIAL") throw PasswordErrors.notYetInitialized();
      const at = now();
      const generator = CODE_GENERATORS.password;
      const code = generateCode(generator);
      const codeId = deps.newId();
      const returned = input.medium.kind === "return";
      const urlTemplate = input.medium.kind === "send" ? input.medium.urlTemplate : undefined;
      await deps.store.write(
        {
          credentials: {
            instanceId: input.instanceId,
            userId: creds.user.id,
            expectedSequence: creds.user.sequence,
            events: [{ type: "user.human.password.code.added", payload: { codeId, codeReturned: returned, notificationType: "email" } }],
            at,
            creator: input.creator,
            set: {},
            newCode: {
              id: codeId,
              kind: "password",
              sealedCode: deps.secretBox.seal(code),
              expiresAt: at + generator.expirySeconds * 1000,
              returned,
              ...(urlTemplate !== undefined ? { urlTemplate } : {}),
            },
            ...(returned
              ? {}
              : {
                  outbox: [
                    deps.notifier.compose({
                      kind: "password_reset",
                      user: creds.user,
                      code,
                      at,
                      ...(urlTemplate !== undefined ? { urlTemplate } : {}),
                    }),
                  ],
                }),
          },
        },
        input.request,
      );
      const user = { ...creds.user, changedAt: at, sequence: creds.user.sequence + 1 };
      return returned ? { user, code } : { user };
    });
  }

  return { setPassword, requestReset };
}

export type PasswordCommands = ReturnType<typeof createPasswordCommands>;
