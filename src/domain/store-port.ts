import type { HumanProfile } from "./human.js";
import type { CodeKind } from "./secrets.js";

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
  sequence: number;
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
    /** A new password hash; its change time is the update's `at`. */
    passwordHash?: string;
    passwordChangeRequired?: boolean;
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
export type NotificationKind = "init" | "email_verification" | "phone_verification" | "password_reset";

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
  createUser(change: NewUser): Promise<void>;
  /** Applies one change atomically; resolves once durable. */
  changeUser(change: UserChange): Promise<void>;
  /** Applies one update atomically; resolves once durable. */
  updateUser(update: UserUpdate): Promise<void>;
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
