import { createHash, timingSafeEqual } from "node:crypto";
import type { AuthenticationResponseJSON, AuthenticatorTransportFuture, RegistrationResponseJSON } from "@simplewebauthn/server";
import { type Principal, requireCommandPermission } from "./access.js";
import { takeUserAttempt } from "./attempts.js";
import { retryingConflicts } from "./conflicts.js";
import { PasskeyErrors } from "./error-catalogue.js";
import type { IdGenerator } from "./ids.js";
import type { Notifier } from "./notifications.js";
import { checkUrlTemplate } from "./notifications.js";
import {
  type AttemptLimiter,
  type CredentialChange,
  type NewEvent,
  type Passkey,
  type RequestScoped,
  type RequestState,
  type SessionStore,
  UniqueViolation,
  type User,
  type UserCredentials,
  type WebAuthNChallenge,
} from "./ports.js";
import { CODE_GENERATORS, generateCode, type SecretBox } from "./secrets.js";

/**
 * Passkeys, as ZITADEL's passwordless WebAuthN tokens (internal/command/user_human_webauthn.go,
 * user_v2_passkey.go, session_webauhtn.go): registration in two steps (RegisterPasskey answers
 * the creation options and keeps the challenge on a NOT_READY token; VerifyPasskeyRegistration
 * checks the browser's attestation and makes it READY), registration codes for a link, and the
 * assertion check of the session API. The WebAuthn ceremonies themselves are @simplewebauthn/server's.
 */

/** The relying party: its id (a domain), the origins browsers may sign for, and its display name. */
export interface RelyingParty {
  id: string;
  origin: string;
  name: string;
}

export interface PasskeyCommandsDeps {
  store: SessionStore;
  secretBox: SecretBox;
  newId: IdGenerator;
  notifier: Notifier;
  rp: RelyingParty;
  externalUrl: string;
  /** Bounds the code and assertion checks per user (src/domain/attempts.ts); none means unbounded. */
  attempts?: AttemptLimiter;
  now?: () => number;
}

/** Which authenticators a registration admits (v2 PasskeyAuthenticator). */
export type AuthenticatorAttachment = "" | "platform" | "cross-platform";

export type UserVerification = WebAuthNChallenge["userVerification"];

/** Where ZITADEL's passwordless registration links lead (its login's EndpointPasswordlessRegistration). */
export const PASSWORDLESS_INIT_PATH = "/ui/login/login/passwordless/init";

/** A JSON object as the Struct fields of the protos carry it. */
export type JsonValue = number | string | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/**
 * The WebAuthn library, loaded on first use: its X.509 and ASN.1 dependencies would otherwise add
 * to every start of the server and of the CLI, which never needs them.
 */
let library: Promise<typeof import("@simplewebauthn/server")> | undefined;
const webauthn = () => {
  library ??= import("@simplewebauthn/server");
  return library;
};

/** Plain JSON: the library leaves optional members `undefined`, which a protobuf Struct cannot carry. */
const asJson = (value: object): JsonObject => JSON.parse(JSON.stringify(value)) as JsonObject;

const digest = (value: string) => createHash("sha256").update(value).digest();
const sameCode = (expected: string, given: string) => timingSafeEqual(digest(expected), digest(given));

/**
 * The origin a browser put into the client data, if its host is the relying party id or one of
 * its subdomains (the rule browsers apply to an RP id, WebAuthn §5.1.3). ZITADEL's webauthn.Config
 * takes the client data's origin as the expected one (internal/webauthn/webauthn.go
 * serverFromContext); userport admits it only under the relying party's domain, and the external
 * URL's own origin always.
 */
function admittedOrigins(rp: RelyingParty, rpId: string, clientDataJSON: unknown): string[] {
  const origins = [rp.origin];
  if (typeof clientDataJSON !== "string") return origins;
  try {
    const claimed = JSON.parse(Buffer.from(clientDataJSON, "base64url").toString("utf8")) as { origin?: unknown };
    if (typeof claimed.origin !== "string") return origins;
    const url = new URL(claimed.origin);
    const secure = url.protocol === "https:" || url.hostname === "localhost" || url.hostname === "127.0.0.1";
    if (secure && (url.hostname === rpId || url.hostname.endsWith(`.${rpId}`))) origins.push(claimed.origin);
  } catch {
    // Not JSON or not a URL: the library reports the response as malformed.
  }
  return origins;
}

export function createPasskeyCommands(deps: PasskeyCommandsDeps) {
  const now = deps.now ?? Date.now;

  /** A human user of the instance (optionally of `orgId`), or ZITADEL's not-found. */
  async function humanOf(instanceId: string, userId: string, orgId?: string): Promise<UserCredentials> {
    const creds = await deps.store.credentials(instanceId, userId);
    if (creds?.user.type !== "human" || (orgId !== undefined && creds.user.orgId !== orgId)) {
      throw PasskeyErrors.userNotFound();
    }
    return creds;
  }

  /** The user itself, or `permission` on its organisation (ZITADEL's checkPermissionUpdateUser…). */
  function authorize(principal: Principal, user: User, permission: string) {
    if (principal.userId === user.id) return;
    requireCommandPermission(principal, permission, user.orgId);
  }

  async function writeChange(
    creds: UserCredentials,
    creator: string,
    request: RequestState | undefined,
    at: number,
    events: NewEvent[],
    extra: Partial<CredentialChange> = {},
  ) {
    const { user } = creds;
    await deps.store.write(
      { credentials: { instanceId: user.instanceId, userId: user.id, expectedSequence: user.sequence, events, at, creator, set: {}, ...extra } },
      request,
    );
  }

  /**
   * Runs `attempt` again when another change of the user committed between its read and write; a
   * credential id another passkey already has is ZITADEL's AlreadyExists.
   */
  async function retrying<T>(attempt: () => Promise<T>): Promise<T> {
    try {
      return await retryingConflicts(attempt);
    } catch (err) {
      if (err instanceof UniqueViolation && err.kind === "passkey_credential") throw PasskeyErrors.alreadyExists();
      throw err;
    }
  }

  /**
   * Checks a registration code (ZITADEL's verifyUserPasskeyCode): a wrong, used, expired or
   * unknown one is `COMMAND-Eeb2a` and writes `user.human.passwordless.initialization.check.failed`.
   */
  /**
   * The user a registration step is for: with a code, anyone holding it (the code is checked);
   * without one, the user itself or a caller with user.write on its organisation.
   */
  async function registrant(
    input: { principal: Principal | undefined; instanceId: string; userId: string; code?: { id: string; code: string } },
    creator: string,
    at: number,
  ): Promise<UserCredentials> {
    const creds = await humanOf(input.instanceId, input.userId);
    if (input.code) await checkCode(creds, input.code.id, input.code.code, creator, at);
    else if (input.principal) authorize(input.principal, creds.user, "user.write");
    else throw PasskeyErrors.codeInvalid();
    return creds;
  }

  async function checkCode(creds: UserCredentials, codeId: string, code: string, creator: string, at: number): Promise<void> {
    await takeUserAttempt(deps.attempts, creds.user.instanceId, creds.user.id);
    const stored = await deps.store.codeById(creds.user.instanceId, creds.user.id, codeId);
    const usable = stored !== undefined && stored.kind === "passwordless" && !stored.used && stored.expiresAt > at;
    const matches = sameCode(stored && stored.kind === "passwordless" ? deps.secretBox.open(stored.sealedCode) : "\u0000", code);
    if (usable && matches) return;
    await retrying(async () => {
      const current = await humanOf(creds.user.instanceId, creds.user.id);
      // Written for no request, as every failed check (src/domain/failed-checks.ts).
      await writeChange(current, creator, undefined, now(), [{ type: "user.human.passwordless.initialization.check.failed", payload: { codeId } }]);
    });
    throw PasskeyErrors.codeInvalid();
  }

  /**
   * What a registration link's code is now, for the registration page to say so before the
   * ceremony starts: only a code that matches learns whether it expired or was used. Writes nothing.
   */
  async function registrationCodeState(instanceId: string, userId: string, codeId: string, code: string) {
    const creds = await deps.store.credentials(instanceId, userId);
    const stored = creds?.user.type === "human" ? await deps.store.codeById(instanceId, userId, codeId) : undefined;
    const matches = sameCode(stored?.kind === "passwordless" ? deps.secretBox.open(stored.sealedCode) : "\u0000", code);
    if (stored?.kind !== "passwordless" || !matches) return "invalid" as const;
    if (stored.used) return "used" as const;
    if (stored.expiresAt <= now()) return "expired" as const;
    return "valid" as const;
  }

  /**
   * Makes a registration code (ZITADEL's addUserPasskeyCode / HumanAddPasswordlessInitCode): the
   * code is returned, or mailed with the default link or the request's template.
   */
  async function createRegistrationCode(
    input: RequestScoped & {
      principal: Principal;
      userId: string;
      /** v1 checks its declared permission on this organisation first; the user must belong to it. */
      orgId?: string;
      delivery: { kind: "return" } | { kind: "link" } | { kind: "send"; urlTemplate?: string };
      /** v2 checks the caller in the command: the user itself or this permission on its organisation. */
      permission?: string;
    },
  ) {
    if (input.delivery.kind === "send" && input.delivery.urlTemplate !== undefined) checkPasskeyUrlTemplate(input.delivery.urlTemplate);
    return retrying(async () => {
      const creds = await humanOf(input.principal.instanceId, input.userId, input.orgId);
      if (input.permission) authorize(input.principal, creds.user, input.permission);
      const at = now();
      const generator = CODE_GENERATORS.passwordless;
      const code = generateCode(generator);
      const codeId = deps.newId();
      const expiresAt = at + generator.expirySeconds * 1000;
      const { user } = creds;
      const query = `userID=${user.id}&orgID=${user.orgId}&codeID=${codeId}&code=${code}`;
      const link = `${deps.externalUrl}${PASSWORDLESS_INIT_PATH}?${query}`;
      const returned = input.delivery.kind !== "send";
      const urlTemplate = input.delivery.kind === "send" ? input.delivery.urlTemplate : undefined;
      const events: NewEvent[] = [
        input.delivery.kind === "link"
          ? { type: "user.human.passwordless.initialization.code.added", payload: { codeId, expiry: generator.expirySeconds } }
          : {
              type: "user.human.passwordless.initialization.code.requested",
              payload: { codeId, expiry: generator.expirySeconds, codeReturned: returned, ...(urlTemplate ? { urlTemplate } : {}) },
            },
      ];
      const outbox = returned
        ? []
        : [
            deps.notifier.compose({
              user,
              code,
              kind: "passwordless_registration",
              at,
              codeId,
              ...(urlTemplate !== undefined ? { urlTemplate } : {}),
            }),
          ];
      await writeChange(creds, input.principal.userId, input.request, at, events, {
        newCode: { id: codeId, kind: "passwordless", sealedCode: deps.secretBox.seal(code), expiresAt, returned, ...(urlTemplate ? { urlTemplate } : {}) },
        outbox,
      });
      return { user: { ...user, sequence: user.sequence + events.length, changedAt: at }, codeId, code, link, expirySeconds: generator.expirySeconds };
    });
  }

  /**
   * Starts a registration (ZITADEL's registerUserPasskey): the creation options for the browser,
   * with user verification required and attestation "none", the user's ready passkeys excluded.
   * With a code the caller needs no permission; `consumeCode` spends it now (v2 RegisterPasskey,
   * as ZITADEL does) rather than at the verification (the registration page's flow).
   */
  async function registerPasskey(
    input: RequestScoped & {
      principal: Principal | undefined;
      instanceId: string;
      userId: string;
      code?: { id: string; code: string; consume: boolean };
      authenticator: AuthenticatorAttachment;
      domain: string;
    },
  ) {
    const creator = input.principal?.userId ?? input.userId;
    return retrying(async () => {
      const at = now();
      const creds = await registrant(input, creator, at);
      const { user } = creds;
      const rpId = input.domain || deps.rp.id;
      const existing = (await deps.store.passkeys(user.instanceId, user.id)).filter((p) => p.state === "READY" && p.credentialId);
      const options = await (await webauthn()).generateRegistrationOptions({
        rpName: deps.rp.name,
        rpID: rpId,
        userName: user.username,
        userID: new TextEncoder().encode(user.id),
        userDisplayName: user.human?.profile.displayName || user.username,
        attestationType: "none",
        excludeCredentials: existing.map((p) => ({ id: p.credentialId!, transports: p.transports as AuthenticatorTransportFuture[] })),
        authenticatorSelection: {
          userVerification: "required",
          residentKey: "preferred",
          ...(input.authenticator ? { authenticatorAttachment: input.authenticator } : {}),
        },
        timeout: 300_000,
      });
      const passkey: Passkey = {
        id: deps.newId(),
        userId: user.id,
        state: "NOT_READY",
        name: "",
        challenge: options.challenge,
        rpId,
        userVerification: "required",
        authenticatorAttachment: input.authenticator,
        credentialId: undefined,
        publicKey: undefined,
        signCount: 0,
        transports: [],
        aaguid: "",
        attestationType: "",
        createdAt: at,
        changedAt: at,
      };
      const events: NewEvent[] = [{ type: "user.human.passwordless.token.added", payload: { webAuthNTokenId: passkey.id, rpID: rpId } }];
      if (input.code?.consume) events.push({ type: "user.human.passwordless.initialization.check.succeeded", payload: { codeId: input.code.id } });
      await writeChange(creds, creator, input.request, at, events, {
        passkeys: { put: [passkey] },
        ...(input.code?.consume ? { usedCodeId: input.code.id } : {}),
      });
      return {
        user: { ...user, sequence: user.sequence + events.length, changedAt: at },
        passkeyId: passkey.id,
        creationOptions: asJson({ publicKey: options }),
      };
    });
  }

  /**
   * Finishes a registration (ZITADEL's HumanHumanPasswordlessSetup): the attestation must answer
   * the token's challenge for the relying party, with the user verified. A code (the registration
   * page's flow) is checked again and spent here.
   */
  async function verifyRegistration(
    input: RequestScoped & {
      principal: Principal | undefined;
      instanceId: string;
      userId: string;
      passkeyId: string;
      credential: JsonObject;
      name: string;
      code?: { id: string; code: string };
    },
  ) {
    const creator = input.principal?.userId ?? input.userId;
    return retrying(async () => {
      const at = now();
      const creds = await registrant(input, creator, at);
      const { user } = creds;
      const token = (await deps.store.passkeys(user.instanceId, user.id)).find((p) => p.id === input.passkeyId && p.state === "NOT_READY");
      if (!token) throw PasskeyErrors.tokenNotFound();
      const response = input.credential as unknown as RegistrationResponseJSON;
      if (typeof response?.response !== "object" || response.response === null || typeof response.id !== "string") {
        throw PasskeyErrors.credentialUnparsable();
      }
      const { verifyRegistrationResponse } = await webauthn();
      let verified: Awaited<ReturnType<typeof verifyRegistrationResponse>>;
      try {
        verified = await verifyRegistrationResponse({
          response,
          expectedChallenge: token.challenge,
          expectedOrigin: admittedOrigins(deps.rp, token.rpId, response.response.clientDataJSON),
          expectedRPID: token.rpId,
          requireUserVerification: true,
        });
      } catch {
        // The library's reason stays out of the answer, as ZITADEL logs it only at debug level.
        throw PasskeyErrors.createCredentialFailed();
      }
      if (!verified.verified) throw PasskeyErrors.createCredentialFailed();
      const info = verified.registrationInfo;
      const ready: Passkey = {
        ...token,
        state: "READY",
        name: input.name,
        credentialId: info.credential.id,
        publicKey: Buffer.from(info.credential.publicKey).toString("base64url"),
        signCount: info.credential.counter,
        transports: info.credential.transports ?? response.response.transports ?? [],
        aaguid: info.aaguid,
        attestationType: info.fmt,
        changedAt: at,
      };
      const events: NewEvent[] = [
        {
          type: "user.human.passwordless.token.verified",
          payload: {
            webAuthNTokenId: token.id,
            webAuthNTokenName: input.name,
            aaguid: info.aaguid,
            attestationType: info.fmt,
            signCount: info.credential.counter,
          },
        },
      ];
      if (input.code) events.push({ type: "user.human.passwordless.initialization.check.succeeded", payload: { codeId: input.code.id } });
      await writeChange(creds, creator, input.request, at, events, {
        passkeys: { put: [ready] },
        ...(input.code ? { usedCodeId: input.code.id } : {}),
      });
      return { user: { ...user, sequence: user.sequence + events.length, changedAt: at }, passkey: ready };
    });
  }

  /** The user's ready passkeys; the user itself, or `user.read` on its organisation (v2). */
  async function listPasskeys(input: { principal: Principal; userId: string; orgId?: string; checkPermission: boolean }) {
    const creds = await humanOf(input.principal.instanceId, input.userId, input.orgId);
    if (input.checkPermission) authorize(input.principal, creds.user, "user.read");
    const passkeys = await deps.store.passkeys(creds.user.instanceId, creds.user.id);
    return { user: creds.user, passkeys: passkeys.filter((p) => p.state === "READY") };
  }

  /** Removes a passkey (ZITADEL's HumanRemovePasswordless): an unknown one is `COMMAND-DAfb2`. */
  async function removePasskey(
    input: RequestScoped & {
      principal: Principal;
      userId: string;
      passkeyId: string;
      orgId?: string;
      checkPermission: boolean;
    },
  ) {
    return retrying(async () => {
      const creds = await humanOf(input.principal.instanceId, input.userId, input.orgId);
      if (input.checkPermission) authorize(input.principal, creds.user, "user.write");
      const found = (await deps.store.passkeys(creds.user.instanceId, creds.user.id)).find((p) => p.id === input.passkeyId);
      if (!found) throw PasskeyErrors.removeNotFound();
      const at = now();
      const events: NewEvent[] = [{ type: "user.human.passwordless.token.removed", payload: { webAuthNTokenId: found.id } }];
      await writeChange(creds, input.principal.userId, input.request, at, events, { passkeys: { remove: [found.id] } });
      return { ...creds.user, sequence: creds.user.sequence + events.length, changedAt: at };
    });
  }

  /**
   * A session's WebAuthN challenge (ZITADEL's CreateWebAuthNChallenge): the request options for
   * the user's passkeys. ZITADEL offers the passkeys for `required` and the U2F tokens otherwise;
   * userport has no U2F registration, so it offers the passkeys in every case.
   */
  async function challenge(creds: UserCredentials, request: { domain: string; userVerification: UserVerification }) {
    if (creds.user.state !== "ACTIVE") throw PasskeyErrors.userNotActive();
    const ready = (await deps.store.passkeys(creds.user.instanceId, creds.user.id)).filter((p) => p.state === "READY" && p.credentialId);
    if (ready.length === 0) throw PasskeyErrors.beginLoginFailed();
    const options = await (await webauthn()).generateAuthenticationOptions({
      rpID: request.domain,
      allowCredentials: ready.map((p) => ({ id: p.credentialId!, transports: p.transports as AuthenticatorTransportFuture[] })),
      userVerification: request.userVerification,
      timeout: 300_000,
    });
    const open: WebAuthNChallenge = { challenge: options.challenge, rpId: request.domain, userVerification: request.userVerification };
    return { open, requestOptions: asJson({ publicKey: options }) };
  }

  /**
   * Checks an assertion against the session's open challenge (ZITADEL's CheckWebAuthN): the
   * credential must be one of the user's passkeys, signed for the challenge and relying party,
   * with the user verified when the challenge required it, and a signature counter past the
   * stored one. A counter that did not move on is a cloned authenticator (`WEBAU-4M90s`): ZITADEL's
   * session command lets it pass with a warning, userport refuses it. As in ZITADEL, a failed
   * assertion is not counted towards the lockout policy and writes no event.
   */
  async function checkAssertion(creds: UserCredentials, open: WebAuthNChallenge | undefined, assertion: JsonObject, at: number) {
    if (!open) throw PasskeyErrors.noChallenge();
    await takeUserAttempt(deps.attempts, creds.user.instanceId, creds.user.id);
    const response = assertion as unknown as AuthenticationResponseJSON;
    if (typeof response?.response !== "object" || response.response === null || typeof response.id !== "string") {
      throw PasskeyErrors.assertionUnparsable();
    }
    const passkeys = await deps.store.passkeys(creds.user.instanceId, creds.user.id);
    const token = passkeys.find((p) => p.state === "READY" && p.credentialId === response.id);
    if (!token?.publicKey) throw PasskeyErrors.assertionOfAnotherUser();
    const { verifyAuthenticationResponse } = await webauthn();
    let result: Awaited<ReturnType<typeof verifyAuthenticationResponse>>;
    try {
      result = await verifyAuthenticationResponse({
        response,
        expectedChallenge: open.challenge,
        expectedOrigin: admittedOrigins(deps.rp, open.rpId, response.response.clientDataJSON),
        expectedRPID: open.rpId,
        credential: {
          id: token.credentialId!,
          publicKey: new Uint8Array(Buffer.from(token.publicKey, "base64url")),
          counter: token.signCount,
          transports: token.transports as AuthenticatorTransportFuture[],
        },
        requireUserVerification: open.userVerification === "required",
      });
    } catch (err) {
      if (err instanceof Error && /counter value/i.test(err.message)) throw PasskeyErrors.cloneWarning();
      throw PasskeyErrors.validateLoginFailed();
    }
    if (!result.verified) throw PasskeyErrors.validateLoginFailed();
    const { newCounter, userVerified } = result.authenticationInfo;
    return {
      userVerified,
      // ZITADEL's session command writes only the new counter on the user (session.go, the
      // v3 PasskeyCheckCommand's Events); the check itself is the session's webAuthN.checked.
      events: [{ type: "user.human.passwordless.token.signcount.changed", payload: { webAuthNTokenId: token.id, signCount: newCounter } }] as NewEvent[],
      passkey: { ...token, signCount: newCounter, changedAt: at },
    };
  }

  return { registrationCodeState, createRegistrationCode, registerPasskey, verifyRegistration, listPasskeys, removePasskey, challenge, checkAssertion };
}

/** A passkey link template may use UserID, OrgID, CodeID and Code (ZITADEL's RenderPasskeyURLTemplate). */
export function checkPasskeyUrlTemplate(template: string): void {
  checkUrlTemplate(template, { CodeID: "codeID" });
}

export type PasskeyCommands = ReturnType<typeof createPasskeyCommands>;
