import { CLAIMS, claimError } from "./claims.js";
import { UserCreationErrors, UserErrors } from "./error-catalogue.js";
import { type CreatePath, type HumanProfile, normalizeEmail, normalizePhone, normalizeProfile, normalizeUsername } from "./human.js";
import type { HashRegistry } from "./hashes/index.js";
import type { IdGenerator } from "./ids.js";
import type { IdpCommands } from "./idps.js";
import { checkUrlTemplate, type NotificationInput, type Notifier } from "./notifications.js";
import { checkPasswordComplexity, DEFAULT_COMPLEXITY_POLICY, type PasswordHasher, validateEncodedHash } from "./password.js";
import { CODE_GENERATORS, type CodeKind, generateCode, type SecretBox } from "./secrets.js";
import type { IdpLink, MetadataEntry, NewCode, NewEvent, NewUser, RequestScoped, RequestState, User, UserStore } from "./ports.js";
import { foldCase } from "./user-queries.js";

/**
 * The unique claim of a username. By default usernames are unique across the instance; when
 * the organisation's domain policy requires domain login names (`userLoginMustBeDomain`), they
 * are unique per organisation, so the organisation is part of the value (`<orgId>/<username>`;
 * ids hold no "/"). Values are case-folded as the search keys are, so uniqueness ignores case.
 * Every write of a username (create, rename, policy change) must claim it through here.
 */
export function usernameClaim(username: string, orgId: string, orgScoped: boolean): { kind: string; value: string } {
  return orgScoped ? { kind: "org_username", value: `${orgId}/${foldCase(username)}` } : { kind: "username", value: foldCase(username) };
}

/** True for the kinds of {@link usernameClaim}. */

/**
 * Checks a username against the organisation's domain policy and returns its claim. Without
 * domain login names, a username whose part after the last "@" is a domain another organisation
 * verified is refused (COMMAND-SFd21), as in ZITADEL.
 */
export async function claimUsername(store: Pick<UserStore, "usernameRules">, instanceId: string, orgId: string, username: string) {
  const rules = await store.usernameRules(instanceId, orgId, username);
  if (!rules.orgScoped && rules.domainOwner !== undefined && rules.domainOwner !== orgId) {
    throw UserCreationErrors.domainReserved();
  }
  return usernameClaim(username, orgId, rules.orgScoped);
}

/** How a new human's email gets verified. */
export type EmailVerification =
  /** Already verified by the caller. */
  | { kind: "verified" }
  /** Left unverified, no code (v2 `is_verified: false`). */
  | { kind: "none" }
  /** A code is generated and sent to the user (v1 default, v2 `send_code` or no choice). */
  | { kind: "send"; urlTemplate?: string }
  /** A code is generated and handed back to the caller (v2 `return_code`). */
  | { kind: "return" };

export interface CreateHumanInput extends RequestScoped {
  path: CreatePath;
  instanceId: string;
  orgId: string;
  /** The calling user's id, recorded as the creator of the events. */
  creator: string;
  /** A caller-chosen id (v2 only); generated when absent. */
  userId?: string;
  /** May be blank on v2, where it defaults to the email. */
  username: string;
  profile: HumanProfile;
  email: { address: string; verification: EmailVerification };
  phone?: { number: string; verification: "verified" | "send" | "return" };
  password?: { plain: string } | { encodedHash: string };
  passwordChangeRequired: boolean;
  /** v1 import: hand back a passwordless registration link. */
  passwordlessRegistration: boolean;
  /** Links to accounts at identity providers of the organisation or the instance. */
  idpLinks?: IdpLink[];
  /** Metadata entries to set (v2). */
  metadata?: MetadataEntry[];
  /** v2: an existing TOTP secret (base32), imported as an already verified authenticator. */
  totpSecret?: string;
}

export interface CreatedHuman {
  user: User;
  emailCode?: string;
  phoneCode?: string;
  passwordless?: { link: string; expirySeconds: number };
}

/**
 * The reads a create needs besides the input. A bulk import passes copies that remember their
 * answers for one batch (src/domain/bulk-import.ts); single creates read the store each time.
 */
export interface CreationLookups {
  usernameRules: UserStore["usernameRules"];
  lastSequence: UserStore["lastSequence"];
  usableIdp: IdpCommands["usableIdp"];
  /** Hashes a plaintext password; a dry run checks the password's rules but skips the hash. */
  hashPassword?: (plain: string) => Promise<string>;
}

/** A human create that passed every rule (`checkHuman`), its values normalised, nothing built yet. */
export interface CheckedHuman {
  input: CreateHumanInput;
  email: string;
  username: string;
  profile: HumanProfile;
  phone: { number: string; verification: "verified" | "send" | "return" } | undefined;
  links: IdpLink[];
  metadata: { entries: MetadataEntry[]; rows: MetadataEntry[] };
  passwordHash: string | undefined;
  /** An imported TOTP secret, cleaned up, not sealed yet. */
  totpSecret: string | undefined;
  /** The unique claims the user takes: its username, then its links. */
  uniques: Array<{ kind: string; value: string }>;
}

/** A validated create, ready to write: what the store writes and what the caller is answered. */
export interface PreparedCreation<Result> {
  change: NewUser;
  result: Result;
}

export interface UserCommandsDeps {
  store: UserStore;
  hasher: PasswordHasher;
  /** The imported hash families this instance accepts. */
  hashRegistry: HashRegistry;
  newId: IdGenerator;
  secretBox: SecretBox;
  /** Renders the mails codes are sent with, for the outbox. */
  notifier: Notifier;
  /** Base of links handed out, e.g. `https://id.example.com` (no trailing slash). */
  externalUrl: string;
  /** Finds the identity providers links name. */
  idps: Pick<IdpCommands, "usableIdp">;
  now?: () => number;
}

/**
 * A new one-time code of a kind: the plain code (to return or send) and its stored form, sealed
 * with the master key so that it can still be sent later.
 */
export function makeCode(deps: { newId: IdGenerator; secretBox: SecretBox }, kind: CodeKind, at: number, returned: boolean, urlTemplate?: string) {
  const generator = CODE_GENERATORS[kind];
  const code = generateCode(generator);
  const stored: NewCode = {
    id: deps.newId(),
    kind,
    sealedCode: deps.secretBox.seal(code),
    expiresAt: at + generator.expirySeconds * 1000,
    returned,
    ...(urlTemplate === undefined ? {} : { urlTemplate }),
  };
  return { code, stored, expirySeconds: generator.expirySeconds };
}

/**
 * The unique claim of a link: one account (external id, case-insensitively) per identity
 * provider in the instance, as ZITADEL's `external_idps` constraint.
 */
export function linkClaim(idpId: string, externalUserId: string): { kind: "idp_link"; value: string } {
  return { kind: "idp_link", value: JSON.stringify([idpId, externalUserId.toLowerCase()]) };
}

/** The event of a metadata entry set; the value is bytes, base64 in the payload as in ZITADEL's JSON. */
export function metadataSetEvent(entry: MetadataEntry): NewEvent {
  return { type: "user.metadata.set", payload: { key: entry.key, value: Buffer.from(entry.value).toString("base64") } };
}

/**
 * Metadata given on create, checked as ZITADEL's AddHuman does (a trimmed key and a value are
 * required; the keys have no English text, so clients see the raw key). A key given twice keeps
 * its last value, each entry still writing its event.
 */
function normalizeCreationMetadata(entries: readonly MetadataEntry[]): { entries: MetadataEntry[]; rows: MetadataEntry[] } {
  const normalized = entries.map((entry) => {
    const key = entry.key.trim();
    if (key === "") throw UserCreationErrors.metadataKeyEmpty();
    if (entry.value.length === 0) throw UserCreationErrors.metadataValueEmpty();
    return { key, value: entry.value };
  });
  return { entries: normalized, rows: [...new Map(normalized.map((entry) => [entry.key, entry])).values()] };
}

/** The event of a new link, as ZITADEL writes it. */
export function linkAddedEvent(link: IdpLink): NewEvent {
  return {
    type: "user.human.externalidp.added",
    payload: { idpConfigId: link.idpId, userId: link.externalUserId, displayName: link.displayName },
  };
}

/** The user commands and queries of the domain, bound to their dependencies. */
export function createUserCommands(deps: UserCommandsDeps) {
  const now = deps.now ?? Date.now;

  const newCode = (kind: CodeKind, at: number, returned: boolean, urlTemplate?: string) => makeCode(deps, kind, at, returned, urlTemplate);

  const storeLookups: CreationLookups = {
    usernameRules: (...args) => deps.store.usernameRules(...args),
    lastSequence: (...args) => deps.store.lastSequence(...args),
    usableIdp: (...args) => deps.idps.usableIdp(...args),
  };

  /**
   * Creates a human user as v1 ImportHumanUser, v1 AddHumanUser or v2 AddHumanUser do.
   *
   * Validation and password hashing happen before anything is written; the user row, its
   * username claim, its events and its codes are then written in one durable transaction.
   */
  async function createHuman(input: CreateHumanInput): Promise<CreatedHuman> {
    const { change, result } = await prepareHuman(input);
    await writeCreation(change, input.request);
    return result;
  }

  /** Writes a prepared creation; a taken username, link or id fails as ZITADEL reports it. */
  async function writeCreation(change: NewUser, request: RequestState | undefined): Promise<void> {
    try {
      await deps.store.createUser(change, request);
    } catch (err) {
      throw creationError(err, change.user.type);
    }
  }

  /** The password a new human starts with: a plaintext one checked and hashed, or an imported hash checked. */
  async function initialPasswordHash(input: CreateHumanInput, lookups: CreationLookups): Promise<string | undefined> {
    if (input.password && "plain" in input.password) {
      checkPasswordComplexity(input.password.plain, DEFAULT_COMPLEXITY_POLICY);
      return lookups.hashPassword ? lookups.hashPassword(input.password.plain) : deps.hasher.hash(input.password.plain);
    }
    if (input.password) {
      validateEncodedHash(input.password.encodedHash, deps.hashRegistry);
      return input.password.encodedHash;
    }
    return undefined;
  }

  /**
   * The codes a new human starts with, appending their events to `events`: an init code or an
   * email code, a phone code, a passwordless registration link; and whether it starts INITIAL.
   */
  function newHumanCodes(input: CreateHumanInput, made: { userId: string; at: number; hasPassword: boolean; linked: boolean }, events: NewEvent[]) {
    const { path } = input;
    const codes: NewCode[] = [];
    // Codes to send; rendered into outbox messages once the user is complete.
    const notifications: Array<Omit<NotificationInput, "user" | "at">> = [];
    const result: Omit<CreatedHuman, "user"> = {};
    const verification = input.email.verification;

    // ZITADEL's v1 rule: without an IdP link, a user whose email is unverified or who has no way
    // to sign in yet starts INITIAL and is sent an init code instead of an email code.
    const hasSignInMethod = made.hasPassword || (path === "v1-import" && input.passwordlessRegistration);
    // IdP links suppress the init code: the user signs in at the provider.
    const initial = (path === "v1-import" || path === "v1-add") && !made.linked && (verification.kind !== "verified" || !hasSignInMethod);
    let emailVerified = verification.kind === "verified";
    if (path === "v1-import" && initial) emailVerified = false; // import writes only the init code

    if (emailVerified) events.push({ type: "user.human.email.verified", payload: {} });
    if (initial) {
      const init = newCode("init", made.at, false);
      codes.push(init.stored);
      events.push({ type: "user.human.initialization.code.added", payload: { codeId: init.stored.id } });
      notifications.push({ kind: "init", code: init.code });
    } else if (verification.kind === "send" || verification.kind === "return") {
      const returned = verification.kind === "return";
      const code = newCode("email", made.at, returned, verification.kind === "send" ? verification.urlTemplate : undefined);
      codes.push(code.stored);
      events.push({ type: "user.human.email.code.added", payload: { codeId: code.stored.id, codeReturned: returned } });
      if (returned) result.emailCode = code.code;
      else
        notifications.push({
          kind: "email_verification",
          code: code.code,
          ...(code.stored.urlTemplate !== undefined ? { urlTemplate: code.stored.urlTemplate } : {}),
        });
    }

    if (input.phone?.verification === "verified") {
      events.push({ type: "user.human.phone.verified", payload: {} });
    } else if (input.phone) {
      const returned = input.phone.verification === "return";
      const code = newCode("phone", made.at, returned);
      codes.push(code.stored);
      events.push({ type: "user.human.phone.code.added", payload: { codeId: code.stored.id, codeReturned: returned } });
      if (returned) result.phoneCode = code.code;
      else notifications.push({ kind: "phone_verification", code: code.code });
    }

    if (path === "v1-import" && input.passwordlessRegistration) {
      const code = newCode("passwordless", made.at, true);
      codes.push(code.stored);
      events.push({ type: "user.human.passwordless.initialization.code.added", payload: { codeId: code.stored.id } });
      // ZITADEL appends the parameters unescaped, in this order; ids and codes are URL-safe.
      const query = `userID=${made.userId}&orgID=${input.orgId}&codeID=${code.stored.id}&code=${code.code}`;
      result.passwordless = {
        link: `${deps.externalUrl}/ui/login/login/passwordless/init?${query}`,
        expirySeconds: code.expirySeconds,
      };
    }

    return { codes, notifications, result, initial, emailVerified };
  }

  /**
   * An imported TOTP secret is active at once, as in ZITADEL: added and verified together. It is
   * stored sealed, since checking a code needs the secret itself. ZITADEL checks only the length;
   * a secret that is not base32 could never produce a code, so it is refused here instead of
   * failing every sign-in later. Returns the secret as it is sealed.
   */
  function checkImportedTotp(totpSecret: string | undefined): string | undefined {
    if (totpSecret === undefined) return undefined;
    const secret = totpSecret.replace(/\s/g, "");
    if (!/^[A-Z2-7]+=*$/i.test(secret)) throw UserCreationErrors.totpSecretInvalid();
    return secret.toUpperCase();
  }

  /**
   * Every rule of a human create, without building what it writes: the one place single creates
   * and bulk imports (src/domain/bulk-import.ts) validate a user; a bulk dry run stops here.
   * Hashes a plaintext password (unless `lookups.hashPassword` says otherwise).
   */
  async function checkHuman(input: CreateHumanInput, lookups: CreationLookups = storeLookups): Promise<CheckedHuman> {
    const { path } = input;
    // PingOne's users may have no email (its import examples leave it out).
    const email = path === "pingone" && input.email.address.trim() === "" ? "" : normalizeEmail(input.email.address);
    // v2 falls back to the email only for an empty username; a blank one is V2-zzad3, as in ZITADEL.
    const username = normalizeUsername(path === "v2" && input.username === "" ? email : input.username, path);
    const profile = normalizeProfile(input.profile, path, email || username);
    const phone = input.phone && { ...input.phone, number: normalizePhone(input.phone.number) };
    if (input.email.verification.kind === "send" && input.email.verification.urlTemplate !== undefined) {
      checkUrlTemplate(input.email.verification.urlTemplate);
    }
    const claim = await claimUsername(lookups, input.instanceId, input.orgId, username);

    const links = input.idpLinks ?? [];
    for (const link of links) await checkNewUserLink(input, link, lookups);
    const metadata = normalizeCreationMetadata(input.metadata ?? []);

    const passwordHash = await initialPasswordHash(input, lookups);
    const totpSecret = checkImportedTotp(input.totpSecret);
    const uniques = [claim, ...links.map((link) => linkClaim(link.idpId, link.externalUserId))];
    return { input, email, username, profile, phone, links, metadata, passwordHash, totpSecret, uniques };
  }

  /**
   * Every rule of a human create, and everything it writes, without writing it: the one place
   * single creates (createHuman) and bulk imports (src/domain/bulk-import.ts) validate and build
   * a user. Hashes a plaintext password.
   */
  async function prepareHuman(input: CreateHumanInput, lookups: CreationLookups = storeLookups): Promise<PreparedCreation<CreatedHuman>> {
    const { email, username, profile, phone, links, metadata, passwordHash, totpSecret, uniques } = await checkHuman(input, lookups);
    const changeRequired = passwordChangeRequired(input, passwordHash !== undefined);

    const at = now();
    const userId = input.userId ?? deps.newId();
    const events: NewEvent[] = [
      {
        type: "user.human.added",
        payload: {
          userName: username,
          firstName: profile.givenName,
          lastName: profile.familyName,
          nickName: profile.nickName,
          displayName: profile.displayName,
          preferredLanguage: profile.preferredLanguage,
          gender: profile.gender,
          email,
          ...(phone ? { phone: phone.number } : {}),
          passwordSet: passwordHash !== undefined,
          changeRequired,
        },
      },
    ];
    events.push(...links.map(linkAddedEvent), ...metadata.entries.map(metadataSetEvent));
    const { codes, notifications, result, initial, emailVerified } = newHumanCodes(
      input,
      { userId, at, hasPassword: passwordHash !== undefined, linked: links.length > 0 },
      events,
    );

    if (totpSecret !== undefined) {
      events.push({ type: "user.human.mfa.otp.added", payload: {} }, { type: "user.human.mfa.otp.verified", payload: {} });
    }
    const sealedTotpSecret = totpSecret === undefined ? undefined : deps.secretBox.seal(totpSecret);

    // A removed user's id may be taken again; its events stay, so the new ones follow them.
    const previous = input.userId === undefined ? 0 : await lookups.lastSequence(input.instanceId, userId);
    const user: User = {
      instanceId: input.instanceId,
      id: userId,
      orgId: input.orgId,
      type: "human",
      state: initial ? "INITIAL" : "ACTIVE",
      username,
      createdAt: at,
      changedAt: at,
      sequence: previous + events.length,
      human: {
        profile,
        email: { address: email, verified: emailVerified },
        phone: { number: phone?.number ?? "", verified: phone?.verification === "verified" },
        passwordSet: passwordHash !== undefined,
        passwordChangeRequired: changeRequired,
        passwordChangedAt: passwordHash === undefined ? undefined : at,
      },
    };

    const change: NewUser = {
      user,
      passwordHash,
      ...(sealedTotpSecret !== undefined ? { sealedTotpSecret } : {}),
      uniques,
      idpLinks: links,
      metadata: metadata.rows,
      events,
      firstSequence: previous + 1,
      codes,
      outbox: notifications.map((notification) => deps.notifier.compose({ ...notification, user, at })),
      creator: input.creator,
    };
    return { change, result: { user, ...result } };
  }

  /**
   * A link of a new user, checked as ZITADEL checks it: both ids given, the provider one of the
   * organisation or of the instance, and, on the v1 paths, one that allows creating users.
   */
  async function checkNewUserLink(input: CreateHumanInput, link: IdpLink, lookups: CreationLookups): Promise<void> {
    if (link.idpId.trim() === "" || link.externalUserId.trim() === "") {
      throw UserCreationErrors.linkInvalid();
    }
    const idp = await lookups.usableIdp(input.instanceId, input.orgId, link.idpId);
    if (!idp) {
      throw input.path === "v2" ? UserCreationErrors.linkIdpMissingV2() : UserCreationErrors.linkIdpMissingV1();
    }
    if (input.path !== "v2" && !idp.options.isCreationAllowed) {
      // No English text in ZITADEL: clients see the raw key (zitadel/zitadel#8208).
      throw UserCreationErrors.linkCreationNotAllowed();
    }
  }

  /** Reads a user of an organisation; users of other organisations are not found. */
  async function getUser(instanceId: string, orgId: string | undefined, userId: string): Promise<User> {
    const user = await deps.store.getUser(instanceId, userId);
    if (!user || (orgId !== undefined && user.orgId !== orgId)) {
      throw UserErrors.notFound();
    }
    return user;
  }

  /**
   * ZITADEL's AddMachine (internal/command/user_machine.go): a service user, ACTIVE at once, that
   * signs in with personal access tokens. The username follows the organisation's domain policy
   * like a human's. A caller-chosen id (v1 AddMachineUser, v2 CreateUser) is used as given.
   */
  async function createMachine(input: CreateMachineInput): Promise<User> {
    const { change, result } = await prepareMachine(input);
    await writeCreation(change, input.request);
    return result;
  }

  /** Every rule of a machine user's create, and what it writes, without writing it. */
  async function prepareMachine(input: CreateMachineInput, lookups: CreationLookups = storeLookups): Promise<PreparedCreation<User>> {
    const userId = input.userId ?? deps.newId();
    const given = input.username.trim();
    const username = given === "" && input.usernameFallbackToId ? userId : given;
    // ZITADEL's machine checks; the keys have no English text, so clients see them raw.
    if (username === "") throw UserCreationErrors.machineUsernameEmpty();
    const name = input.name.trim();
    if (name === "") throw UserCreationErrors.machineNameEmpty();
    const claim = await claimUsername(lookups, input.instanceId, input.orgId, username);
    const at = now();
    // A removed user's id may be taken again; its events stay, so the new ones follow them.
    const previous = input.userId === undefined ? 0 : await lookups.lastSequence(input.instanceId, userId);
    const user: User = {
      instanceId: input.instanceId,
      id: userId,
      orgId: input.orgId,
      type: "machine",
      state: "ACTIVE",
      username,
      createdAt: at,
      changedAt: at,
      sequence: previous + 1,
      machine: { name, description: input.description },
    };
    const change: NewUser = {
      user,
      passwordHash: undefined,
      uniques: [claim],
      events: [{ type: "user.machine.added", payload: { userName: username, name, description: input.description } }],
      firstSequence: previous + 1,
      codes: [],
      creator: input.creator,
    };
    return { change, result: user };
  }

  return { createHuman, createMachine, getUser, checkHuman, prepareHuman, prepareMachine };
}

export type UserCommands = ReturnType<typeof createUserCommands>;

export interface CreateMachineInput extends RequestScoped {
  instanceId: string;
  orgId: string;
  creator: string;
  /** A caller-chosen id (v1 AddMachineUser, v2 CreateUser); generated when absent. */
  userId?: string;
  username: string;
  /**
   * v2 CreateUser: an empty username becomes the user's id, as ZITADEL's
   * AddMachineWithUsernameToIDFallback does (v1 AddMachineUser requires one).
   */
  usernameFallbackToId?: boolean;
  name: string;
  description: string;
}

/**
 * What a failed creation write means for the caller, as ZITADEL reports it: a taken username,
 * IdP link or user id; anything else is passed on unchanged.
 */
export function creationError(err: unknown, type: User["type"] = "human"): unknown {
  return claimError(err, CLAIMS.newUser(type));
}

/**
 * v1 AddHumanUser always requires a change of an initial password; v1 import honours the flag
 * for a plaintext password but, like ZITADEL, drops it for an imported hash; v2 honours it.
 */
function passwordChangeRequired(input: CreateHumanInput, hasPassword: boolean): boolean {
  if (!hasPassword) return false;
  if (input.path === "v1-add") return true;
  if (input.path === "v1-import" && input.password && "encodedHash" in input.password) return false;
  return input.passwordChangeRequired;
}
