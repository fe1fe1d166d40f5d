import type { NewEvent, OutboxMessage, User, UserState } from "./store-port.js";

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
  /** Password reset codes to store (sealed by the domain). */
  newCode?: { id: string; kind: "password"; sealedCode: string; expiresAt: number; returned: boolean; urlTemplate?: string };
  /** Messages the change causes (a reset mail), enqueued in the same transaction. */
  outbox?: OutboxMessage[];
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
  write(change: { credentials?: CredentialChange; session?: SessionWrite }): Promise<void>;
  session(instanceId: string, sessionId: string): Promise<SessionRecord | undefined>;
  /** Sessions matching the filter that `visible` admits, newest first unless `asc`. */
  listSessions(
    instanceId: string,
    filter: SessionFilter,
    page: { offset: number; limit: number; asc: boolean },
    visible: { creator: string; userId: string; orgIds: string[] | "all" },
  ): Promise<{ total: number; sessions: SessionRecord[] }>;
  /** The user's newest code of `kind` (a newer one replaces older ones), used or not. */
  latestCode(
    instanceId: string,
    userId: string,
    kind: string,
  ): Promise<{ id: string; sealedCode: string; expiresAt: number; used: boolean } | undefined>;
}
