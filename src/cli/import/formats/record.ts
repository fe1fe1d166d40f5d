/**
 * What every converter shares: turning the fields it read into the protobuf-JSON of ZITADEL v2
 * `AddHumanUserRequest`, the message the bulk migration API takes as it is, and checking it
 * there and then, so that a user who cannot be imported fails in the converter with its line
 * number instead of at the server.
 */
import { type JsonObject, fromJson } from "@bufbuild/protobuf";
import { AddHumanUserRequestSchema } from "../../../../gen/zitadel/user/v2/user_service_pb.js";
import { isDomainError } from "../../../domain/errors.js";
import { createHashRegistry, HASH_FAMILY_NAMES } from "../../../domain/hashes/index.js";

/** A user that cannot be converted; the message says what to fix and never holds a secret. */
export class RecordError extends Error {}

/** Every family: the converter checks notation and bounds; which are enabled is the server's business. */
const registry = createHashRegistry({ enabled: HASH_FAMILY_NAMES });

/** The fields a source may give; everything is optional here and checked by toRecord. */
export interface UserFields {
  userId?: string;
  username?: string;
  givenName?: string;
  familyName?: string;
  displayName?: string;
  nickName?: string;
  preferredLanguage?: string;
  email?: string;
  emailVerified?: boolean;
  phone?: string;
  phoneVerified?: boolean;
  /** An encoded hash in a family of src/domain/hashes. */
  hash?: string;
  /** A plaintext password (PingOne's tool and CSV files may carry one). */
  password?: string;
  passwordChangeRequired?: boolean;
  /** Values as text (stored as their UTF-8 bytes) or bytes. */
  metadata?: Array<{ key: string; value: string | Uint8Array }>;
  idpLinks?: Array<{ idpId: string; userId: string; userName: string }>;
  orgId?: string;
}

const clean = (value: string | undefined) => {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === "" ? undefined : trimmed;
};

/** "Ada King Lovelace" → Ada King / Lovelace; a single word is both names. */
export function splitName(name: string | undefined): { givenName?: string; familyName?: string } {
  const words = clean(name)?.split(/\s+/);
  if (!words) return {};
  if (words.length === 1) return { givenName: words[0]!, familyName: words[0]! };
  return { givenName: words.slice(0, -1).join(" "), familyName: words.at(-1)! };
}

/** The part of an email address before the @. */
const localPart = (email: string | undefined) => clean(email?.split("@")[0]);

/**
 * Checks an encoded hash as the server will (notation and cost bounds), against every family.
 * Throws a RecordError naming the family's complaint; the hash itself is never quoted.
 */
export function checkHash(hash: string): void {
  if (registry.identify(hash) === undefined) throw new RecordError("password hash is in no supported family");
  try {
    registry.validate(hash);
  } catch (err) {
    if (isDomainError(err)) throw new RecordError(`password hash: ${err.message}`);
    throw err;
  }
  if (hash.length > 200) throw new RecordError("password hash is longer than 200 characters");
}

const bytesOf = (value: string | Uint8Array) => (typeof value === "string" ? Buffer.from(value) : Buffer.from(value));

/**
 * The AddHumanUserRequest JSON for `fields`. The names fall back as ZITADEL's own migration tools
 * do: given/family name from the display name, else both from the username or the email's local
 * part, since v2 requires both. Throws RecordError for what the server would refuse.
 */
export function toRecord(fields: UserFields): JsonObject {
  const email = clean(fields.email);
  if (!email) throw new RecordError("user has no email address (AddHumanUser requires one)");
  const split = splitName(fields.displayName);
  const fallback = clean(fields.username) ?? localPart(email);
  const givenName = clean(fields.givenName) ?? split.givenName ?? fallback;
  const familyName = clean(fields.familyName) ?? split.familyName ?? fallback;
  const record: JsonObject = {};
  if (clean(fields.userId)) record.userId = clean(fields.userId)!;
  if (clean(fields.username)) record.username = clean(fields.username)!;
  if (clean(fields.orgId)) record.organization = { orgId: clean(fields.orgId)! };
  const profile: JsonObject = { givenName: givenName!, familyName: familyName! };
  if (clean(fields.nickName)) profile.nickName = clean(fields.nickName)!;
  if (clean(fields.displayName)) profile.displayName = clean(fields.displayName)!;
  if (clean(fields.preferredLanguage)) profile.preferredLanguage = clean(fields.preferredLanguage)!;
  record.profile = profile;
  record.email = { email, isVerified: fields.emailVerified === true };
  const phone = clean(fields.phone);
  // v2 takes a phone either verified or with a code to send; an unverified imported phone gets
  // the code step (ZITADEL's rule: is_verified may only be true).
  if (phone) record.phone = fields.phoneVerified ? { phone, isVerified: true } : { phone };
  const hash = clean(fields.hash);
  if (hash) {
    checkHash(hash);
    record.hashedPassword = { hash, changeRequired: fields.passwordChangeRequired === true };
  } else if (fields.password !== undefined && fields.password !== "") {
    if ([...fields.password].length > 200) throw new RecordError("password is longer than 200 characters");
    record.password = { password: fields.password, changeRequired: fields.passwordChangeRequired === true };
  }
  const metadata = (fields.metadata ?? []).filter((entry) => bytesOf(entry.value).length > 0);
  if (metadata.length > 0) {
    record.metadata = metadata.map((entry) => {
      if (entry.key.length === 0 || entry.key.length > 200) throw new RecordError(`metadata key "${entry.key.slice(0, 40)}" is not 1-200 characters`);
      const value = bytesOf(entry.value);
      if (value.length > 500_000) throw new RecordError(`metadata ${entry.key} is larger than 500,000 bytes`);
      return { key: entry.key, value: value.toString("base64") };
    });
  }
  if (fields.idpLinks && fields.idpLinks.length > 0) {
    record.idpLinks = fields.idpLinks.map((link) => ({ idpId: link.idpId, userId: link.userId, userName: link.userName || link.userId }));
  }
  for (const [what, value] of [
    ["given name", givenName],
    ["family name", familyName],
    ["email", email],
    ["username", fields.username],
  ] as const) {
    if (value !== undefined && [...value].length > 200) throw new RecordError(`${what} is longer than 200 characters`);
  }
  try {
    fromJson(AddHumanUserRequestSchema, record);
  } catch (err) {
    throw new RecordError(`not a valid AddHumanUserRequest: ${(err as Error).message}`);
  }
  return record;
}

/** The error text of a failed conversion: a RecordError's message, or a generic one (no internals). */
export function describe(err: unknown): string {
  if (err instanceof RecordError) return err.message;
  if (err instanceof SyntaxError) return `not valid JSON: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

/** Metadata entries for an object's top-level members: strings as they are, anything else as JSON. */
export function metadataOf(prefix: string, object: unknown): Array<{ key: string; value: string }> {
  if (object === null || typeof object !== "object" || Array.isArray(object)) return [];
  return Object.entries(object as Record<string, unknown>)
    .filter(([, value]) => value !== null && value !== undefined)
    .map(([key, value]) => ({ key: `${prefix}${key}`, value: typeof value === "string" ? value : JSON.stringify(value) }));
}
