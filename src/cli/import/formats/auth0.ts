/**
 * `auth0`: Auth0's user export (the export job's NDJSON: `user_id`, `email`, `email_verified`,
 * `username`, `given_name`, `family_name`, `name`, `nickname`, `phone_number`, `phone_verified`,
 * `user_metadata`, `app_metadata`, `identities`, …) joined with the password-hash export that
 * Auth0 support hands out (`--passwords`: NDJSON of `{"_id": {"$oid": …}, "email", "passwordHash",
 * "connection", …}`, bcrypt). A user's hash is found by its database id (`auth0|<oid>`), else by
 * its email. The hash export is read into memory first (about 150 bytes per user); the user
 * export is streamed.
 *
 * `identities` of other connections become IdP links where `--idp <connection>=<idpId>` names
 * the IdP; `user_metadata` and `app_metadata` become metadata entries
 * `user_metadata.<key>` / `app_metadata.<key>` (strings as they are, other values as JSON).
 */
import type { Readable } from "node:stream";
import { ndjson } from "./lines.js";
import { describe, metadataOf, toRecord } from "./record.js";
import type { Converted, ConvertOptions } from "./types.js";

type Json = Record<string, unknown>;
const str = (value: unknown) => (typeof value === "string" ? value : undefined);

/** oid → hash and lower-cased email → hash from the password-hash export. */
async function readPasswords(input: Readable): Promise<{ byId: Map<string, string>; byEmail: Map<string, string> }> {
  const byId = new Map<string, string>();
  const byEmail = new Map<string, string>();
  for await (const { line, value, error } of ndjson(input)) {
    if (error !== undefined) throw new Error(`--passwords line ${line}: ${error}`);
    const entry = (value ?? {}) as Json;
    const hash = str(entry.passwordHash);
    if (!hash) continue;
    const id = entry._id;
    const oid = typeof id === "string" ? id : str((id as Json | undefined)?.$oid);
    if (oid) byId.set(oid, hash);
    const email = str(entry.email);
    if (email) byEmail.set(email.toLowerCase(), hash);
  }
  return { byId, byEmail };
}

export async function* convertAuth0(input: Readable, options: ConvertOptions = {}): AsyncGenerator<Converted> {
  const passwords = options.passwords ? await readPasswords(options.passwords) : undefined;
  for await (const { line, value, error } of ndjson(input)) {
    if (error !== undefined) {
      yield { line, error };
      continue;
    }
    const user = (value ?? {}) as Json;
    const key = str(user.user_id) ?? str(user.email);
    try {
      const userId = str(user.user_id) ?? "";
      const identities = Array.isArray(user.identities) ? (user.identities as Json[]) : [];
      const email = str(user.email);
      const oid = userId.startsWith("auth0|") ? userId.slice("auth0|".length) : undefined;
      const hash = (oid !== undefined ? passwords?.byId.get(oid) : undefined) ?? (email ? passwords?.byEmail.get(email.toLowerCase()) : undefined);
      const idpLinks = identities.flatMap((identity) => {
        const idpId = options.idps?.[str(identity.connection) ?? ""];
        const externalId = str(identity.user_id) ?? (typeof identity.user_id === "number" ? String(identity.user_id) : undefined);
        return idpId && externalId ? [{ idpId, userId: externalId, userName: email ?? str(user.username) ?? externalId }] : [];
      });
      const record = toRecord({
        username: str(user.username),
        email,
        emailVerified: user.email_verified === true,
        givenName: str(user.given_name),
        familyName: str(user.family_name),
        displayName: str(user.name) !== email ? str(user.name) : undefined,
        nickName: str(user.nickname),
        phone: str(user.phone_number),
        phoneVerified: user.phone_verified === true,
        hash,
        idpLinks,
        metadata: [...metadataOf("user_metadata.", user.user_metadata), ...metadataOf("app_metadata.", user.app_metadata)],
        orgId: options.orgId,
      });
      yield { line, key: key ?? `line ${line}`, record };
    } catch (err) {
      yield { line, ...(key !== undefined ? { key } : {}), error: describe(err) };
    }
  }
}
