import type { Principal, SessionCredential } from "./access.js";
import type { ErrorKind } from "./errors.js";
import type { DirectoryObject, DirectoryObjectKind, OrgSummary } from "./directory-objects.js";
import type { HumanProfile } from "./human.js";
import type { LdapConnection } from "./external-passwords.js";
import type { Idp } from "./idps.js";
import type { LockoutChange, StoredLockoutPolicy } from "./lockout.js";
import type { DomainPolicy, Org, OrgChange, OrgDomain, OrgMember } from "./orgs.js";
import type { PersonalAccessToken } from "./personal-access-tokens.js";
import type { CodeKind } from "./secrets.js";
import type { Editor, UserEvent, UserPage, UserSearch } from "./user-queries.js";

/**
 * The ports of the domain: what it needs from storage, all in one place. src/store implements
 * each (named beside it); the types of the records they carry are here or in the domain module
 * that owns them.
 */

/** User states as stored; the API layers map them to their own enum numbers. */
export type UserState = "ACTIVE" | "INACTIVE" | "LOCKED" | "INITIAL";

/** A user as the domain reads it. Never carries the password hash. */
export interface User {
  instanceId: string;
  id: string;
  orgId: string;
  type: "human" | "machine";
  state: UserState;
  username: string;
  createdAt: number;
  changedAt: number;
  /** The user's own event count: the sequence its next change builds on and commands answer with. */
  sequence: number;
  /**
   * The sequence and change date reads answer with, when the store read them: those of the last
   * event ZITADEL's users projection dates the user by (see src/domain/user-details.ts).
   */
  projected?: { sequence: number; changedAt: number };
  human?: {
    profile: HumanProfile;
    email: { address: string; verified: boolean };
    phone: { number: string; verified: boolean };
    passwordSet: boolean;
    passwordChangeRequired: boolean;
    passwordChangedAt: number | undefined;
  };
  machine?: { name: string; description: string };
  /**
   * Login names, when the store read them: the username, or `username@<domain>` for each verified
   * domain of the organisation when its domain policy requires domain login names.
   */
  loginNames?: string[];
  /** The login name with the primary domain (or the username), when the store read it. */
  preferredLoginName?: string;
}

/** What decides how a username is claimed in an organisation (its domain policy, other orgs' domains). */
export interface UsernameRules {
  /** The organisation's domain policy requires domain login names: usernames are unique per organisation. */
  orgScoped: boolean;
  /** The organisation that verified the domain after the username's last "@", if any. */
  domainOwner: string | undefined;
}

/** An event appended to a user's audit trail. Payloads never hold secrets or hashes. */
export interface NewEvent {
  type: string;
  payload: Record<string, unknown>;
}

/** A one-time code to store, already sealed (encrypted) by the domain. */
export interface NewCode {
  id: string;
  kind: CodeKind;
  sealedCode: string;
  expiresAt: number;
  returned: boolean;
  urlTemplate?: string;
}

/** A code as stored: still sealed. */
export interface StoredCode {
  id: string;
  kind: CodeKind;
  sealedCode: string;
  expiresAt: number;
  createdAt: number;
  usedAt: number | undefined;
}

/** Everything a user creation writes, in one atomic change. */
export interface NewUser {
  user: User;
  passwordHash: string | undefined;
  /** An active TOTP secret, sealed by the domain. */
  sealedTotpSecret?: string;
  /** Folded values that must be unique in the instance, by kind (e.g. "username", see `usernameClaim`). */
  uniques: Array<{ kind: string; value: string }>;
  events: NewEvent[];
  /** The sequence of the first event: 1, or one past the events of a removed user with the same id. */
  firstSequence: number;
  codes: NewCode[];
  /** Messages the creation causes (init or verification mails), enqueued in the same transaction. */
  outbox?: OutboxMessage[];
  creator: string;
  /** Links to accounts at identity providers; their uniqueness claims are among `uniques`. */
  idpLinks?: IdpLink[];
  metadata?: MetadataEntry[];
}

/** A user's link to its account at an identity provider. */
export interface IdpLink {
  idpId: string;
  externalUserId: string;
  displayName: string;
}

/** A metadata entry of a user: a key and arbitrary bytes. */
export interface MetadataEntry {
  key: string;
  value: Uint8Array;
}

export interface StoredMetadata extends MetadataEntry {
  createdAt: number;
  changedAt: number;
  /** The user's sequence after the entry was last set. */
  sequence: number;
}

/**
 * A change of an existing user: its events and what they change in the read model, written
 * together or not at all, and only if nobody changed the user since `expectedSequence` (the
 * first event takes the next sequence number, which the store keeps unique per user, so a
 * concurrent change makes it fail with `UniqueViolation("sequence")`).
 */
export interface UserUpdate {
  instanceId: string;
  userId: string;
  expectedSequence: number;
  events: NewEvent[];
  at: number;
  creator: string;
  /** New values of the user's columns (search keys follow). */
  set?: {
    username?: string;
    email?: string;
    emailVerified?: boolean;
    phone?: string;
    phoneVerified?: boolean;
    state?: UserState;
    /** A new password hash; its change time is the update's `at`. Null removes the password (PingOne's Set Gateway to an LDAP authority). */
    passwordHash?: string | null;
    passwordChangeRequired?: boolean;
    /** A new profile (names, display name, language, gender), already normalised. */
    profile?: HumanProfile;
    /** Moves the user to another organisation (PingOne's population move). */
    orgId?: string;
  };
  /** A code that this update consumes: it is marked used, so it never verifies again. */
  useCode?: string;
  /** Unique claims given up: one value, or every claim of the kind the user holds. */
  release?: Array<{ kind: string; value?: string }>;
  /** Unique claims taken; a taken value fails with `UniqueViolation(kind)`. */
  claim?: Array<{ kind: string; value: string }>;
  /** Codes of these kinds are dropped before `codes` are stored (a new init code replaces the old). */
  replaceCodes?: CodeKind[];
  codes?: NewCode[];
  addLinks?: IdpLink[];
  removeLinks?: Array<{ idpId: string; externalUserId: string }>;
  setMetadata?: MetadataEntry[];
  removeMetadata?: string[];
  /** Messages to deliver because of this update (an init mail, say). */
  outbox?: OutboxMessage[];
}

/** What a notification tells the user; each has its own template. */
export type NotificationKind = "init" | "email_verification" | "phone_verification" | "password_reset" | "passwordless_registration";

/**
 * A message for the outbox, rendered by the domain (src/domain/notifications.ts). The body holds
 * the code, so it is sealed; only the recipient and subject are readable at rest.
 */
export interface OutboxMessage {
  id: string;
  instanceId: string;
  userId: string;
  kind: NotificationKind;
  channel: "email" | "sms";
  recipient: string;
  /** False when no transport for the channel exists (SMS): kept, never sent. */
  deliverable: boolean;
  subject: string;
  /** `SecretBox.seal(JSON.stringify({ text, html }))`. */
  sealedBody: string;
  createdAt: number;
}

/** Thrown by a store when a write hits a uniqueness rule; `kind` says which one. */
export class UniqueViolation extends Error {
  override readonly name = "UniqueViolation";
  constructor(readonly kind: string) {
    super(`unique constraint violated: ${kind}`);
  }
}

/**
 * The request a command works for, as far as the store is concerned: whether it has ended before
 * its answer (its deadline passed, its client went away). Every write of the store takes it and
 * refuses to start for an ended request, so that a command whose caller gave up while it hashed a
 * password or read the store writes nothing; a write already handed to the commit queue still
 * commits (as with any gRPC server, DEADLINE_EXCEEDED does not mean that nothing happened).
 * Work of no request (start-up, the mail dispatcher, a job's background batches) passes none.
 *
 * Passed explicitly, as ZITADEL's Go commands pass their `context.Context`, rather than kept in
 * an AsyncLocalStorage: on Node 20 one of those makes every promise of the process pay for
 * async hooks (BENCHMARKS.md, "Import throughput").
 */
export interface RequestState {
  readonly ended: boolean;
}

/** The input of a command that writes: the request it works for, if any (see {@link RequestState}). */
export interface RequestScoped {
  request?: RequestState;
}

/**
 * The store refused to start a write because the request it belongs to has already ended (its
 * deadline passed or its client went away): nothing of the command was written.
 */
export class RequestEnded extends Error {
  override readonly name = "RequestEnded";
  constructor() {
    super("the request ended before its changes were written");
  }
}

/**
 * A change to an existing user, written only if nobody changed the user since `expectedSequence`:
 * its event takes the next sequence number, which the store keeps unique per user, so a
 * concurrent change makes it fail with `UniqueViolation("sequence")`.
 */
export interface UserChange {
  instanceId: string;
  userId: string;
  expectedSequence: number;
  event: NewEvent;
  at: number;
  creator: string;
  /** The new state, or "removed" to delete the user and release its username and links. */
  state: UserState | "removed";
  /** Forgets the failed password and TOTP checks, so the lockout counts from 0 again (an unlock). */
  resetFailedChecks?: boolean;
  /** Codes the change creates (e.g. a new init code), written with it. */
  codes?: NewCode[];
  /** Messages the change causes, enqueued in the same transaction. */
  outbox?: OutboxMessage[];
}

/** What the domain needs from storage; src/store implements it on SQL. */
export interface UserStore {
  /** Writes the user, its unique claims, events and codes atomically; resolves once durable. */
  createUser(change: NewUser, request?: RequestState): Promise<void>;
  /** Applies one change atomically; resolves once durable. */
  changeUser(change: UserChange, request?: RequestState): Promise<void>;
  /** Applies one update atomically; resolves once durable. */
  updateUser(update: UserUpdate, request?: RequestState): Promise<void>;
  listIdpLinks(instanceId: string, userId: string): Promise<IdpLink[]>;
  listMetadata(instanceId: string, userId: string): Promise<StoredMetadata[]>;
  getUser(instanceId: string, userId: string): Promise<User | undefined>;
  /** How a username is claimed in an organisation. */
  usernameRules(instanceId: string, orgId: string, username: string): Promise<UsernameRules>;
  /** The newest code of a kind a user has (used or not), if any. */
  findCode(instanceId: string, userId: string, kind: CodeKind): Promise<StoredCode | undefined>;
  /** The sequence of the last event of a user id (0 if none): removed users keep their events. */
  lastSequence(instanceId: string, userId: string): Promise<number>;
}

/** An outbox message a dispatcher holds until `claimToken`'s lease ends. */
export interface ClaimedMessage {
  id: string;
  kind: NotificationKind;
  recipient: string;
  subject: string;
  sealedBody: string;
  /** Failed attempts so far. */
  attempts: number;
  claimToken: string;
}

/** The outbox as its dispatcher sees it; messages are enqueued with the changes that cause them. */
export interface OutboxStore {
  /** Claims up to `limit` deliverable messages that are due and held by nobody, for `leaseMs`. */
  claimDue(now: number, limit: number, leaseMs: number): Promise<ClaimedMessage[]>;
  /** Records that the server accepted the message; a message lost to another claimant stays as it is. */
  markSent(message: ClaimedMessage, at: number): Promise<void>;
  /** Records a failed attempt and when to try again; `error` must not contain the message. */
  markFailed(message: ClaimedMessage, failure: { nextAttemptAt: number; error: string }): Promise<void>;
  /** Gives a claimed message back untried. */
  release(message: ClaimedMessage): Promise<void>;
  /** Messages not sent yet (including undeliverable ones). */
  countUnsent(): Promise<number>;
}

// ---- Sessions and credential checks (src/store/session-store.ts) ----

/** A user with what a sign-in checks; only the session commands ever read these. */
export interface UserCredentials {
  user: User;
  /** The encoded password hash, if the user has a password. */
  passwordHash: string | undefined;
  /** Password checks failed since the last successful one. */
  failedAttempts: number;
  /** TOTP checks failed since the last successful one (or the last unlock). */
  otpFailedAttempts: number;
  /** The active TOTP secret, sealed (SecretBox), if any. */
  sealedTotpSecret: string | undefined;
}

/** The lockout policy in effect for an organisation; 0 means no lockout. */
export interface LockoutPolicy {
  maxPasswordAttempts: number;
  maxOtpAttempts: number;
}

/**
 * A change of a user's credentials (a check, a new password): its events follow the user's
 * `expectedSequence`, so a concurrent change of the same user makes it fail with
 * `UniqueViolation("sequence")`.
 */
export interface CredentialChange {
  instanceId: string;
  userId: string;
  expectedSequence: number;
  events: NewEvent[];
  at: number;
  creator: string;
  set: {
    passwordHash?: string;
    passwordChangeRequired?: boolean;
    /** Set with a new password, not with a rehash. */
    passwordChangedAt?: number;
    failedAttempts?: number;
    otpFailedAttempts?: number;
    state?: UserState;
  };
  /** A one-time code used up by this change (e.g. a password reset code). */
  usedCodeId?: string;
  /** Passkeys the change adds or updates (by id), and ids of passkeys it removes. */
  passkeys?: { put?: Passkey[]; remove?: string[] };
  /** Password reset and passkey registration codes to store (sealed by the domain). */
  newCode?: { id: string; kind: "password" | "passwordless"; sealedCode: string; expiresAt: number; returned: boolean; urlTemplate?: string };
  /** Messages the change causes (a reset mail), enqueued in the same transaction. */
  outbox?: OutboxMessage[];
}

/** A session's open WebAuthN challenge (ZITADEL's session.webAuthN.challenged). */
export interface WebAuthNChallenge {
  /** base64url, as the client data echoes it. */
  challenge: string;
  rpId: string;
  userVerification: "required" | "preferred" | "discouraged";
}

/**
 * A passkey (ZITADEL's passwordless WebAuthN token). NOT_READY between RegisterPasskey and
 * VerifyPasskeyRegistration, holding the registration's challenge; READY with the credential.
 */
export interface Passkey {
  id: string;
  userId: string;
  state: "NOT_READY" | "READY";
  name: string;
  /** The registration challenge (base64url). */
  challenge: string;
  rpId: string;
  userVerification: string;
  /** "platform", "cross-platform" or "" for either. */
  authenticatorAttachment: string;
  /** base64url; set once READY. */
  credentialId: string | undefined;
  /** The COSE public key, base64url; set once READY. */
  publicKey: string | undefined;
  signCount: number;
  transports: string[];
  aaguid: string;
  attestationType: string;
  createdAt: number;
  changedAt: number;
}

/** A session as stored. Times are epoch ms; undefined when a factor was not checked. */
export interface SessionRecord {
  instanceId: string;
  id: string;
  creator: string;
  userId: string;
  userOrgId: string;
  userCheckedAt: number | undefined;
  passwordCheckedAt: number | undefined;
  totpCheckedAt: number | undefined;
  /** The open WebAuthN challenge (CreateSession/SetSession `challenges.webAuthN`), until a check answers it. */
  webAuthNChallenge?: WebAuthNChallenge | undefined;
  webAuthNCheckedAt?: number | undefined;
  webAuthNUserVerified?: boolean | undefined;
  tokenDigest: string;
  userAgent: SessionUserAgent;
  /** Values base64-encoded. */
  metadata: Record<string, string>;
  expiresAt: number | undefined;
  terminated: boolean;
  createdAt: number;
  changedAt: number;
  sequence: number;
}

export interface SessionUserAgent {
  fingerprintId?: string;
  ip?: string;
  description?: string;
  header?: Record<string, string[]>;
}

/** A session write: the new state of the row and the session events to append after `fromSequence`. */
export interface SessionWrite {
  session: SessionRecord;
  /** The session's sequence before this write (0 for a new session). */
  fromSequence: number;
  events: NewEvent[];
}

/** Filters of ListSessions; all must match. */
export interface SessionFilter {
  ids?: string[];
  userId?: string;
  creator?: string;
  createdAt?: { method: TimeComparison; at: number };
  expiresAt?: { method: TimeComparison; at: number };
  fingerprintId?: string;
}

export type TimeComparison = "=" | ">" | ">=" | "<" | "<=";

/** What the session and password commands need from storage; src/store implements it. */
export interface SessionStore {
  credentials(instanceId: string, userId: string): Promise<UserCredentials | undefined>;
  /** The user a login name belongs to (see src/store/session-store.ts for the forms accepted). */
  userIdByLoginName(instanceId: string, loginName: string): Promise<string | undefined>;
  /** Writes the credential change and the session write (either may be absent) atomically. */
  write(change: { credentials?: CredentialChange; session?: SessionWrite }, request?: RequestState): Promise<void>;
  session(instanceId: string, sessionId: string): Promise<SessionRecord | undefined>;
  /** Sessions matching the filter that `visible` admits, newest first unless `asc`. */
  listSessions(
    instanceId: string,
    filter: SessionFilter,
    page: { offset: number; limit: number; asc: boolean },
    visible: { creator: string; userId: string; orgIds: string[] | "all" },
  ): Promise<{ total: number; sessions: SessionRecord[] }>;
  /** The user's passkeys, ready or not, oldest first. */
  passkeys(instanceId: string, userId: string): Promise<Passkey[]>;
  /** A code of the user by its id, used or not. */
  codeById(
    instanceId: string,
    userId: string,
    codeId: string,
  ): Promise<{ id: string; kind: string; sealedCode: string; expiresAt: number; used: boolean } | undefined>;
  /** The user's newest code of `kind` (a newer one replaces older ones), used or not. */
  latestCode(instanceId: string, userId: string, kind: string): Promise<{ id: string; sealedCode: string; expiresAt: number; used: boolean } | undefined>;
}

/** What the organisation commands need from storage; src/store/org-store.ts implements it. */
export interface OrgStore {
  getOrg(instanceId: string, orgId: string): Promise<Org | undefined>;
  /** Writes the organisation, its generated domain (claimed), its name claim, its owner and its events. */
  createOrg(
    creation: { org: Org; domain: OrgDomain; owner: { userId: string; roles: string[] }; events: NewEvent[]; creator: string },
    request?: RequestState,
  ): Promise<void>;
  changeOrg(change: OrgChange, request?: RequestState): Promise<void>;
  listDomains(instanceId: string, orgId: string): Promise<OrgDomain[]>;
  /** The custom domain policy of the organisation, if it has one. */
  customDomainPolicy(instanceId: string, orgId: string): Promise<DomainPolicy | undefined>;
  listMembers(instanceId: string, orgId: string): Promise<OrgMember[]>;
  getUser(instanceId: string, userId: string): Promise<User | undefined>;
}

/** What the lockout commands need from storage; src/store/lockout-store.ts implements it. */
export interface LockoutStore {
  /** The stored policy of the organisation, or with `orgId` "" of the instance. */
  storedPolicy(instanceId: string, orgId: string): Promise<StoredLockoutPolicy | undefined>;
  /** The owner's event count: the organisation's, or with `orgId` "" the instance aggregate's. */
  ownerSequence(instanceId: string, orgId: string): Promise<number>;
  write(change: LockoutChange, request?: RequestState): Promise<void>;
}

/** Where identity providers are kept; src/store implements it. */
export interface IdpStore {
  /**
   * Writes the provider with its secret sealed, and its event on the owner's aggregate as the
   * next sequence after `previousSequence` (a concurrent event makes it `UniqueViolation("sequence")`),
   * advancing the owner's sequence.
   */
  createIdp(idp: Idp, sealedClientSecret: string, event: NewEvent, previousSequence: number, creator: string, request?: RequestState): Promise<void>;
  getIdp(instanceId: string, id: string): Promise<Idp | undefined>;
  /** The providers of these owners ("" is the instance). */
  listIdps(instanceId: string, ownerIds: readonly string[]): Promise<Idp[]>;
  /** The sequence of the last event of an organisation, 0 if none. */
  lastSequence(instanceId: string, orgId: string): Promise<number>;
}

/** What the token commands need from storage; src/store/org-store.ts implements it. */
export interface PersonalAccessTokenStore {
  getUser(instanceId: string, userId: string): Promise<User | undefined>;
  listTokens(instanceId: string, userId: string): Promise<PersonalAccessToken[]>;
  /** Adds (or with `token` undefined and `removeId` set, removes) a token, with the user's event. */
  changeTokens(
    change: {
      instanceId: string;
      userId: string;
      expectedSequence: number;
      event: NewEvent;
      at: number;
      creator: string;
      add?: PersonalAccessToken & { digest: string };
      removeId?: string;
    },
    request?: RequestState,
  ): Promise<void>;
}

/** The instance's administrators, to whom `userport token` issues a token (src/admin-token.ts); src/store/access-store.ts implements it. */
export interface AdministratorStore {
  /** The id of the instance the store holds (the first one created), if there is one yet. */
  instanceId(): Promise<string | undefined>;
  /** The active service users holding IAM_OWNER on the instance, the oldest first. */
  activeInstanceOwners(instanceId: string): Promise<Array<{ id: string; username: string; orgId: string }>>;
}

/** Where callers' credentials are looked up: implemented by the store (src/store/access-store.ts). */
export interface CredentialStore {
  /** The caller behind a personal access token's digest, if the token exists, is unexpired and its user is active. */
  tokenOwner(digest: string, now: number): Promise<{ principal: Principal; tokenExpiresAt: number } | undefined>;
  /** The session behind a session token's digest, if there is one; {@link principalOfSession} decides what it may do. */
  sessionCredential(digest: string): Promise<SessionCredential | undefined>;
  /** Whether the organisation exists. */
  orgExists(instanceId: string, orgId: string): Promise<boolean>;
  /** The organisation that verified `domain` (verified domains are claimed instance-wide). */
  orgOfVerifiedDomain(instanceId: string, domain: string): Promise<string | undefined>;
}

/** What a replica tells the others (and hears from them) about what they may remember. */
export type ReplicaNotice =
  /** Callers may have changed (a token removed, a user deactivated, a role taken away): forget every remembered caller. */
  | { forget: "callers" }
  /** The organisation was removed: forget that it exists. */
  | { forget: "org"; instanceId: string; orgId: string }
  /** Notices may have been missed (the listening connection was lost): forget everything remembered. */
  | { forget: "everything" };

/**
 * How replicas sharing one store keep what they remember of callers and organisations in step:
 * each change that can affect a caller is announced to every replica. src/store/replica-notices.ts
 * implements it on PostgreSQL (LISTEN/NOTIFY); the embedded SQLite store has no replicas.
 */
export interface ReplicaNotices {
  /** Whether this replica hears every notice now (its listening connection is up): only then may it remember. */
  listening(): boolean;
  /** Announces `notice` to every replica, this one included; resolves once the store took it. */
  send(notice: ReplicaNotice): Promise<void>;
  /** Calls `heard` with each notice, and with `{ forget: "everything" }` whenever notices may have been missed. */
  onNotice(heard: (notice: ReplicaNotice) => void): void;
}

/**
 * Bounds how often one user's credentials (a password, a one-time code) may be checked within a
 * time window, so that neither a guesser nor a flood of requests spread over many sources makes
 * the server spend unbounded CPU on one user. The per-source limit sits at the edge (src/edge/rate-limits.ts);
 * this one lives here, where the user is known. src/edge/rate-limits.ts implements it.
 */
export interface AttemptLimiter {
  /** Counts an attempt for `key`; resolves false when the key has used up its window's budget. */
  take(key: string): Promise<boolean>;
}

/** What the directory objects and populations need from storage; src/store/directory-store.ts implements it. */
export interface DirectoryStore {
  getObject(instanceId: string, kind: DirectoryObjectKind, id: string): Promise<DirectoryObject | undefined>;
  listObjects(instanceId: string, kind: DirectoryObjectKind): Promise<DirectoryObject[]>;
  /**
   * Writes the object (inserting or replacing), claiming its folded name as unique kind
   * `<kind>_name` (the old name released); a taken name fails with `UniqueViolation("<kind>_name")`.
   */
  putObject(instanceId: string, object: DirectoryObject, replaces: DirectoryObject | undefined, request?: RequestState): Promise<void>;
  removeObject(instanceId: string, object: DirectoryObject, request?: RequestState): Promise<void>;

  /** When the instance was created and its default organisation. */
  instance(instanceId: string): Promise<{ createdAt: number; defaultOrgId: string } | undefined>;
  /** Whether the organisation exists (without counting its users). */
  orgExists(instanceId: string, orgId: string): Promise<boolean>;
  /** The instance's organisations with their user counts, by creation. */
  listOrgs(instanceId: string): Promise<OrgSummary[]>;
  getOrgSummary(instanceId: string, orgId: string): Promise<OrgSummary | undefined>;
  setDefaultOrg(instanceId: string, orgId: string, at: number, creator: string, request?: RequestState): Promise<void>;
  /** Renames the organisation: its name claim moves; a taken one fails with `UniqueViolation("org_name")`. */
  renameOrg(
    change: { instanceId: string; orgId: string; expectedSequence: number; name: string; at: number; creator: string; event: NewEvent },
    request?: RequestState,
  ): Promise<void>;
  /** Removes an organisation that has no users: its rows, domains, members, claims and objects. */
  removeOrg(change: { instanceId: string; orgId: string; expectedSequence: number; at: number; creator: string }, request?: RequestState): Promise<void>;
}

/** What the read side needs from storage; src/store/user-search.ts implements it. */
export interface UserReadStore {
  searchUsers(search: UserSearch): Promise<UserPage>;
  /** Whether some user of the instance has the username (case-insensitively, as claimed) and the email (exactly); blank criteria are left out. */
  userExists(instanceId: string, criteria: { username: string; email: string }, orgId?: string): Promise<boolean>;
  /** The organisation owning a user, also after its removal; undefined if there never was such a user. */
  ownerOf(instanceId: string, userId: string): Promise<string | undefined>;
  /** A user's events with a sequence above `after`, oldest or newest first. */
  userEvents(instanceId: string, userId: string, page: { after: number; limit: number; asc: boolean }): Promise<UserEvent[]>;
  /** The editors among existing users, by id. */
  editors(instanceId: string, userIds: readonly string[]): Promise<Map<string, Editor>>;
}

// ---- Bulk import jobs (src/store/bulk-store.ts) ----

export type ConflictPolicy = "fail" | "skip" | "update";
export type ImportOutcome = "created" | "updated" | "skipped" | "failed";
export type ImportJobState = "OPEN" | "RUNNING" | "COMPLETED" | "CANCELLED";

/** An import job as stored: it belongs to its organisation and its creator. */
export interface ImportJob {
  instanceId: string;
  id: string;
  orgId: string;
  creator: string;
  state: ImportJobState;
  onConflict: ConflictPolicy;
  /** Every record before this index has a stored result: where a resumed job continues. */
  nextIndex: number;
  expectedRecords: number;
  createdAt: number;
  startedAt: number | undefined;
  finishedAt: number | undefined;
  /** When the current (or last) stream or upload began, and the index it began at: for the rate. */
  runStartedAt: number | undefined;
  runStartIndex: number;
  changedAt: number;
}

/** Why a record failed: the domain error's kind, ZITADEL id and message (never a secret). */
export interface RecordError {
  kind: ErrorKind;
  id: string;
  message: string;
}

/** The result of one record of a job, as stored and as answered. */
export interface RecordResult {
  index: number;
  key: string;
  outcome: ImportOutcome;
  /** The created or updated user, or the stored user a skipped record conflicted with. */
  userId: string;
  error?: RecordError;
  /** An earlier result of the key, answered again: nothing was written. */
  replayed?: boolean;
}

export type OutcomeCounts = Record<ImportOutcome, number>;

/**
 * What one record writes when it succeeds: the user's creation (or update) and its result, under
 * one savepoint, so that a user is never stored without the job knowing, nor the other way.
 */
export interface BulkUnit {
  result: RecordResult;
  /** The key has a stored failure, which this result replaces. */
  replacesFailure?: boolean;
  creation?: NewUser;
  update?: UserUpdate;
}

/**
 * Units of work already in the store's own form, to be committed later (`BulkStore.stageUnits`),
 * once. Opaque: only the store that made them reads them.
 */
export interface StagedUnits {
  /** How many units. */
  readonly count: number;
}

/** Storage of import jobs and their results (src/store/bulk-store.ts). */
export interface BulkStore {
  createJob(job: ImportJob, request?: RequestState): Promise<void>;
  getJob(instanceId: string, jobId: string): Promise<ImportJob | undefined>;
  /** A creator's jobs in an organisation, newest first. */
  listJobs(instanceId: string, orgId: string, creator: string, offset: number, limit: number): Promise<{ total: number; jobs: ImportJob[] }>;
  /** Jobs of the organisation that are neither completed nor cancelled. */
  countActiveJobs(instanceId: string, orgId: string): Promise<number>;
  updateJob(
    instanceId: string,
    jobId: string,
    set: Partial<Pick<ImportJob, "state" | "nextIndex" | "startedAt" | "finishedAt" | "runStartedAt" | "runStartIndex" | "expectedRecords">>,
    at: number,
    request?: RequestState,
  ): Promise<void>;
  /** The stored results of these keys in the job. */
  findResults(instanceId: string, jobId: string, keys: readonly string[]): Promise<Map<string, RecordResult>>;
  /** The highest index with a stored result, or -1. */
  lastIndex(instanceId: string, jobId: string): Promise<number>;
  /**
   * Commits the units in one transaction, each under its own savepoint; resolves once durable
   * with each unit's error (undefined when it committed). Rejects when the transaction failed.
   */
  commitUnits(
    instanceId: string,
    jobId: string | undefined,
    units: readonly BulkUnit[],
    /** What `finishBatch` would write for earlier batches, written in the same transaction instead. */
    finished?: { results: readonly RecordResult[]; nextIndex: number; at: number },
    /**
     * `unordered`: none of the units claims a value (username, user id, IdP link) that units
     * committed earlier and not yet durable claim too, so the store need not run them after
     * those (see `WriteQueue.runStaged` in src/store/db.ts).
     */
    options?: { unordered?: boolean; request?: RequestState },
  ): Promise<unknown[]>;
  /**
   * The units turned into the store's own form now (for SQLite, the text its writer thread
   * reads), so that a caller building a large batch a part at a time can let each part's
   * objects go before the next: `commitStaged` commits them later.
   */
  stageUnits(instanceId: string, jobId: string | undefined, units: readonly BulkUnit[]): StagedUnits;
  /** `commitUnits` of units staged in parts, in one transaction; the outcomes in the parts' order. */
  commitStaged(
    instanceId: string,
    jobId: string | undefined,
    staged: readonly StagedUnits[],
    finished?: { results: readonly RecordResult[]; nextIndex: number; at: number },
    options?: { unordered?: boolean; request?: RequestState },
  ): Promise<unknown[]>;
  /**
   * Stores results that wrote no user (failed, skipped; a failed key's earlier failure is
   * replaced) and moves the job's next index, in one transaction.
   */
  finishBatch(instanceId: string, jobId: string, results: readonly RecordResult[], nextIndex: number, at: number, request?: RequestState): Promise<void>;
  countResults(instanceId: string, jobId: string): Promise<OutcomeCounts>;
  listResults(
    instanceId: string,
    jobId: string,
    outcome: ImportOutcome | undefined,
    offset: number,
    limit: number,
  ): Promise<{ total: number; results: RecordResult[] }>;
  /** The owners of unique claims (usernames, links, user ids) already stored, by `kind value`. */
  claimOwners(instanceId: string, claims: ReadonlyArray<{ kind: string; value: string }>): Promise<Map<string, string>>;
  /** Which of these user ids exist (for caller-chosen ids in a dry run). */
  existingUserIds(instanceId: string, ids: readonly string[]): Promise<Set<string>>;
}

// ---- Machine secrets and external password directories ----

export interface MachineSecretStore {
  /** The user holding the claim of kind MACHINE_SECRET_CLAIM with this digest, if any. */
  secretOwner(instanceId: string, digest: string): Promise<string | undefined>;
  /** Whether the user holds a secret. */
  hasSecret(instanceId: string, userId: string): Promise<boolean>;
}

/**
 * The directory itself (src/ldap/directory.ts): over connections bound with the gateway's
 * account, finds the one entry under `baseDn` whose attribute equals the value (the first
 * attribute, in order, that finds one), then binds as that entry with the password. "mismatch" is a wrong password; a
 * directory that cannot be reached or is too slow throws an Unavailable DomainError, one whose
 * answers show a misconfiguration (the account refused, no entry, several entries, a TLS
 * certificate refused) a FailedPrecondition; neither is a wrong password.
 */
export interface PasswordDirectory {
  verify(
    connection: LdapConnection,
    lookup: { baseDn: string; correlation: Array<[attribute: string, value: string]> },
    password: string,
  ): Promise<"match" | "mismatch">;
  /**
   * Just-in-time migration (a user type's newUserLookup): searches `baseDn` with the filter
   * `pattern` in which every `${identifier}` stands for `identifier` (escaped as a filter value,
   * RFC 4515), and binds as the first entry found with the password. "none" when nothing
   * matches; on a match, the entry's DN and the first value of each of `attributes` it has.
   */
  lookup(
    connection: LdapConnection,
    search: { baseDn: string; pattern: string; identifier: string; attributes: string[] },
    password: string,
  ): Promise<{ outcome: "none" } | { outcome: "mismatch" } | { outcome: "match"; dn: string; attributes: Record<string, string> }>;
}
