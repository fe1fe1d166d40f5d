import type { Generated } from "kysely";

/**
 * The tables of the store. Times are epoch milliseconds and booleans are 0/1 integers, so the
 * same rows work on SQLite and PostgreSQL.
 */
export interface Database {
  instances: InstanceTable;
  orgs: OrgTable;
  users: UserTable;
  unique_constraints: UniqueConstraintTable;
  events: EventTable;
  codes: CodeTable;
  personal_access_tokens: PersonalAccessTokenTable;
  members: MemberTable;
  outbox: OutboxTable;
  idps: IdpTable;
  user_idp_links: UserIdpLinkTable;
  user_metadata: UserMetadataTable;
  org_domains: OrgDomainTable;
  domain_policies: DomainPolicyTable;
  sessions: SessionTable;
  lockout_policies: LockoutPolicyTable;
  directory_objects: DirectoryObjectTable;
  import_jobs: ImportJobTable;
  import_job_records: ImportJobRecordTable;
  passkeys: PasskeyTable;
}

/** An object of PingOne's API without a ZITADEL table (src/domain/directory-objects.ts). */
export interface DirectoryObjectTable {
  instance_id: string;
  kind: string;
  id: string;
  name: string;
  /** JSON. */
  body: string;
  sealed_secret: string | null;
  created_at: number;
  changed_at: number;
}

/** A bulk import job (src/domain/bulk-port.ts). */
export interface ImportJobTable {
  instance_id: string;
  id: string;
  org_id: string;
  creator: string;
  state: string;
  on_conflict: string;
  next_index: number;
  expected_records: number;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  run_started_at: number | null;
  run_start_index: number;
  changed_at: number;
}

/** The result of one record of a job, by the record's key; never a secret. */
export interface ImportJobRecordTable {
  instance_id: string;
  job_id: string;
  key: string;
  idx: number;
  /** "created", "updated", "skipped" or "failed". */
  outcome: string;
  user_id: string;
  /** The failure's kind, ZITADEL id and message; "" when the record did not fail. */
  error_kind: string;
  error_id: string;
  error_message: string;
}

export interface InstanceTable {
  id: string;
  default_org_id: string;
  created_at: number;
}

export interface OrgTable {
  instance_id: string;
  id: string;
  name: string;
  created_at: number;
  state: Generated<"ACTIVE" | "INACTIVE">;
  changed_at: Generated<number>;
  /** The organisation's own event count: its `details.sequence`. */
  sequence: Generated<number>;
  /**
   * The effective `userLoginMustBeDomain` (the custom policy's, else the instance default's),
   * kept here so that every user read and search can tell how login names are formed.
   */
  user_login_must_be_domain: Generated<number>;
}

/** A domain of an organisation; verified domains are also claimed instance-wide (kind "org_domain"). */
export interface OrgDomainTable {
  instance_id: string;
  org_id: string;
  /** Lower-cased. */
  domain: string;
  verified: number;
  is_primary: number;
  /** ZITADEL's DomainValidationType number. */
  validation_type: number;
  created_at: number;
  changed_at: number;
}

/** A custom domain policy of an organisation, or the instance default (org_id ""). */
export interface DomainPolicyTable {
  instance_id: string;
  org_id: string;
  user_login_must_be_domain: number;
  validate_org_domains: number;
  smtp_sender_address_matches_instance_domain: number;
  created_at: number;
  changed_at: number;
}

/** The read model of a user, human or machine; human columns are empty strings for machines. */
export interface UserTable {
  instance_id: string;
  id: string;
  org_id: string;
  type: "human" | "machine";
  state: UserStateName;
  username: string;
  given_name: string;
  family_name: string;
  nick_name: string;
  display_name: string;
  preferred_language: string;
  gender: number;
  email: string;
  email_verified: number;
  phone: string;
  phone_verified: number;
  password_hash: string | null;
  password_change_required: number;
  password_changed_at: number | null;
  machine_name: string;
  machine_description: string;
  created_at: number;
  changed_at: number;
  /** The user's own event count: ZITADEL's `details.sequence` of commands. */
  sequence: number;
  /**
   * The sequence and date of the last event that dates the user in ZITADEL's users projection
   * (src/domain/user-details.ts): the `details` of reads. Null on rows written before migration
   * 0011 filled them, and on rows written around the store (tests); reads then use the above.
   */
  details_sequence: number | null;
  details_changed_at: number | null;
  /**
   * Search keys: the columns above case-folded by `foldCase` (src/domain/user-queries.ts) when
   * the row is written, since SQLite's lower() folds ASCII only. Every write of the source
   * column must write its key too (`withSearchKeys` in src/store/search-keys.ts).
   */
  username_lower: string;
  given_name_lower: string;
  family_name_lower: string;
  nick_name_lower: string;
  display_name_lower: string;
  email_lower: string;
  /** Password checks failed since the last success; the lockout policy counts them. */
  password_failed_attempts: Generated<number>;
  /** TOTP checks failed since the last success or unlock; the lockout policy counts them. */
  otp_failed_attempts: Generated<number>;
  /** An active TOTP secret (base32), sealed with the master key; null when none. */
  totp_secret: string | null;
}

export type UserStateName = "ACTIVE" | "INACTIVE" | "LOCKED" | "INITIAL";

/**
 * Values that must be unique within an instance (usernames, IdP links), lower-cased by the
 * domain; the primary key makes the database, not a read-then-write, the judge.
 */
export interface UniqueConstraintTable {
  instance_id: string;
  kind: string;
  value: string;
  owner_id: string;
}

/** The append-only audit trail; `sequence` counts per aggregate. */
export interface EventTable {
  position: Generated<number>;
  instance_id: string;
  aggregate_type: string;
  aggregate_id: string;
  sequence: number;
  type: string;
  payload: string;
  creator: string;
  created_at: number;
  /**
   * The organisation owning the aggregate, written with the aggregate's creation events. An
   * owner never changes, so readers take it from the aggregate's first event that has it; later
   * events may leave it empty ("").
   */
  resource_owner: Generated<string>;
}

/** One-time codes (init, email, phone, passwordless), encrypted so that they can still be sent. */
export interface CodeTable {
  instance_id: string;
  id: string;
  user_id: string;
  kind: string;
  sealed_code: string;
  expires_at: number;
  created_at: number;
  /** 1 when the code went back to the caller in the response, so it must not be sent. */
  returned: number;
  url_template: string | null;
  used_at: number | null;
}

export interface PersonalAccessTokenTable {
  instance_id: string;
  id: string;
  user_id: string;
  /** SHA-256 of the token; the token itself is never stored. */
  digest: string;
  expires_at: number;
  created_at: number;
}

/** Role assignments; `org_id` is "" for instance-level roles such as IAM_OWNER. */
export interface MemberTable {
  instance_id: string;
  org_id: string;
  user_id: string;
  /** Space-separated role names. */
  roles: string;
  created_at: Generated<number>;
  changed_at: Generated<number>;
}

/**
 * Messages to deliver (mails; SMS kept but not deliverable), written in the same transaction as
 * the change that caused them. The body holds a code, so it is sealed (SecretBox) at rest; the
 * delivery state lives here too, so a restart resumes where the last run stopped.
 */
export interface OutboxTable {
  id: string;
  instance_id: string;
  user_id: string;
  /** What it tells: "init", "email_verification", "phone_verification", "password_reset". */
  kind: string;
  /** "email" or "sms". */
  channel: string;
  recipient: string;
  /** 0 when no transport for the channel exists (SMS): kept for the record, never claimed. */
  deliverable: number;
  subject: string;
  /** The rendered text and HTML bodies as JSON, sealed with the SecretBox. */
  sealed_body: string;
  created_at: number;
  attempts: number;
  next_attempt_at: number;
  /** A dispatcher owns the message until then; another may claim it after (a crashed sender). */
  claimed_until: number;
  claim_token: string | null;
  sent_at: number | null;
  /** Why the last attempt failed (SMTP code and reply class), never the message or its code. */
  last_error: string | null;
}

/** v2 sessions: which factors a user proved, and when (epoch ms; null when not checked). */
export interface SessionTable {
  instance_id: string;
  id: string;
  /** The caller that created the session. */
  creator: string;
  /** The checked user, "" until one is checked. */
  user_id: string;
  user_org_id: string;
  user_checked_at: number | null;
  password_checked_at: number | null;
  totp_checked_at: number | null;
  /** The open WebAuthN challenge as JSON (challenge, rpId, userVerification), null when none is open. */
  webauthn_challenge: string | null;
  webauthn_checked_at: number | null;
  webauthn_user_verified: number | null;
  /** SHA-256 of the current session token. */
  token_digest: string;
  /** The user agent as JSON (`{fingerprintId?, ip?, description?, header?}`). */
  user_agent: string;
  /** Metadata as JSON, values base64. */
  metadata: string;
  expires_at: number | null;
  /** 1 once DeleteSession ended it. */
  terminated: number;
  created_at: number;
  changed_at: number;
  sequence: number;
}

/** Lockout policies: org_id "" is the instance default; 0 attempts means no lockout. */
export interface LockoutPolicyTable {
  instance_id: string;
  org_id: string;
  max_password_attempts: number;
  max_otp_attempts: number;
  created_at: number;
  changed_at: number;
  sequence: number;
}

/** Identity providers; `org_id` is "" for the instance's own. Only generic OIDC ones so far. */
export interface IdpTable {
  instance_id: string;
  id: string;
  org_id: string;
  type: "oidc";
  state: "ACTIVE" | "INACTIVE";
  name: string;
  issuer: string;
  client_id: string;
  /** The client secret, encrypted with the master key (SecretBox); never returned. */
  sealed_client_secret: string;
  /** JSON array of strings. */
  scopes: string;
  is_id_token_mapping: number;
  use_pkce: number;
  is_linking_allowed: number;
  is_creation_allowed: number;
  is_auto_creation: number;
  is_auto_update: number;
  /** ZITADEL's AutoLinkingOption number. */
  auto_linking: number;
  created_at: number;
  changed_at: number;
  sequence: number;
}

/** A user's link to its account at an identity provider. */
export interface UserIdpLinkTable {
  instance_id: string;
  user_id: string;
  idp_id: string;
  external_user_id: string;
  display_name: string;
  created_at: number;
}

/** A user's metadata entry; `value` is the bytes in base64. */
export interface UserMetadataTable {
  instance_id: string;
  user_id: string;
  key: string;
  value: string;
  created_at: number;
  changed_at: number;
  /** The user's sequence after the entry was last set. */
  sequence: number;
}

/**
 * A passkey (ZITADEL's passwordless WebAuthN token). NOT_READY holds the registration's challenge
 * until the credential is verified; READY holds the credential: its id and COSE public key
 * (base64url), the authenticator's signature counter, transports (JSON) and AAGUID.
 */
export interface PasskeyTable {
  instance_id: string;
  user_id: string;
  id: string;
  state: string;
  name: string;
  challenge: string;
  rp_id: string;
  user_verification: string;
  authenticator_attachment: string;
  credential_id: string | null;
  public_key: string | null;
  sign_count: number;
  transports: string;
  aaguid: string;
  attestation_type: string;
  created_at: number;
  changed_at: number;
}
