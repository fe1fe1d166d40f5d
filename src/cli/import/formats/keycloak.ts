/**
 * `keycloak`: a realm export (`kc.sh export --file realm-export.json`, or the per-user files of
 * `--users different_files`, `<realm>-users-<n>.json`; both hold `users: […]`; a file with an
 * array of realms works too). Per user: `username`, `email`, `emailVerified`, `firstName`,
 * `lastName`, `attributes` (→ metadata; `locale` → preferred language, `phoneNumber` → phone),
 * `federatedIdentities` (→ IdP links where `--idp <alias>=<idpId>` names the IdP),
 * `requiredActions` (`UPDATE_PASSWORD` → password change required) and the `password` credential,
 * converted by keycloakCredentialHash.
 */
import type { Readable } from "node:stream";
import { jsonValues, type JsonPath } from "./json-stream.js";
import { describe, RecordError, toRecord } from "./record.js";
import type { Converted, ConvertOptions } from "./types.js";

type Json = Record<string, unknown>;
const str = (value: unknown) => (typeof value === "string" ? value : undefined);
const b64ToAb64 = (value: string) => Buffer.from(value, "base64").toString("base64").replace(/=+$/, "").replaceAll("+", ".");
const b64NoPad = (value: string) => Buffer.from(value, "base64").toString("base64").replace(/=+$/, "");
const parseJson = (text: unknown, what: string): Json => {
  if (typeof text !== "string") return (text ?? {}) as Json;
  try {
    return JSON.parse(text) as Json;
  } catch {
    throw new RecordError(`credential ${what} is not JSON`);
  }
};
/** Keycloak keeps additionalParameters as lists of strings: `{"memory": ["7168"]}`. */
const param = (params: Json, name: string) => {
  const value = params[name];
  return str(Array.isArray(value) ? value[0] : value);
};

const PBKDF2: Record<string, string> = { pbkdf2: "pbkdf2", "pbkdf2-sha256": "pbkdf2-sha256", "pbkdf2-sha512": "pbkdf2-sha512" };

/**
 * A Keycloak password credential as an encoded hash: `secretData` `{"value", "salt"}` (base64)
 * and `credentialData` `{"hashIterations", "algorithm", "additionalParameters"}`, both JSON
 * strings in an export (Keycloak 11+), or the older flat `{hashedSaltedValue, salt,
 * hashIterations, algorithm}`.
 * - pbkdf2 (HMAC-SHA1), pbkdf2-sha256, pbkdf2-sha512 (Keycloak's Pbkdf2PasswordHashProvider: UTF-8
 *   password, 512-bit key) → passlib's `$pbkdf2-sha256$<rounds>$<salt>$<key>` (family pbkdf2);
 * - argon2 (Argon2PasswordHashProvider: type id/i, version 1.3, memory in KiB, iterations,
 *   parallelism, hash length) → the PHC string `$argon2id$v=19$m=,t=,p=$<salt>$<hash>` (family argon2).
 */
export function keycloakCredentialHash(credential: Json): string {
  const secret = parseJson(credential.secretData, "secretData");
  const data = parseJson(credential.credentialData, "credentialData");
  const value = str(secret.value) ?? str(credential.hashedSaltedValue) ?? str(credential.value);
  const salt = str(secret.salt) ?? str(credential.salt);
  const algorithm = str(data.algorithm) ?? str(credential.algorithm) ?? "pbkdf2-sha256";
  const iterations = Number(data.hashIterations ?? credential.hashIterations);
  if (!value || salt === undefined) throw new RecordError("password credential has no value or salt");
  if (!Number.isInteger(iterations) || iterations <= 0) throw new RecordError("password credential has no hashIterations");
  if (algorithm in PBKDF2) return `$${PBKDF2[algorithm]}$${iterations}$${b64ToAb64(salt)}$${b64ToAb64(value)}`;
  if (algorithm === "argon2") {
    const params = (data.additionalParameters ?? {}) as Json;
    const type = param(params, "type") ?? "id";
    const version = param(params, "version") ?? "1.3";
    if (type !== "id" && type !== "i") throw new RecordError(`argon2 type ${type} is not supported (id, i)`);
    if (version !== "1.3") throw new RecordError(`argon2 version ${version} is not supported (1.3)`);
    const memory = param(params, "memory") ?? "7168";
    const parallelism = param(params, "parallelism") ?? "1";
    return `$argon2${type}$v=19$m=${memory},t=${iterations},p=${parallelism}$${b64NoPad(salt)}$${b64NoPad(value)}`;
  }
  throw new RecordError(`password algorithm ${algorithm} is not supported (pbkdf2, pbkdf2-sha256, pbkdf2-sha512, argon2)`);
}

const isUser = (path: JsonPath) =>
  (path.length === 2 && path[0] === "users" && typeof path[1] === "number") ||
  (path.length === 3 && typeof path[0] === "number" && path[1] === "users" && typeof path[2] === "number");

export async function* convertKeycloak(input: Readable, options: ConvertOptions = {}): AsyncGenerator<Converted> {
  for await (const event of jsonValues(input, isUser)) {
    if (event.kind === "error") {
      yield { line: event.line, error: event.message };
      continue;
    }
    if (event.kind !== "value") continue;
    const user = (event.value ?? {}) as Json;
    const key = str(user.id) ?? str(user.username);
    try {
      const attributes = (user.attributes ?? {}) as Record<string, unknown>;
      const attribute = (name: string) => param(attributes, name);
      const credentials = Array.isArray(user.credentials) ? (user.credentials as Json[]) : [];
      const password = credentials.find((credential) => credential.type === "password");
      const identities = Array.isArray(user.federatedIdentities) ? (user.federatedIdentities as Json[]) : [];
      const actions = Array.isArray(user.requiredActions) ? user.requiredActions : [];
      const record = toRecord({
        username: str(user.username),
        email: str(user.email),
        emailVerified: user.emailVerified === true,
        givenName: str(user.firstName),
        familyName: str(user.lastName),
        preferredLanguage: attribute("locale"),
        phone: attribute("phoneNumber") ?? attribute("phone_number"),
        phoneVerified: attribute("phoneNumberVerified") === "true",
        hash: password ? keycloakCredentialHash(password) : undefined,
        passwordChangeRequired: actions.includes("UPDATE_PASSWORD"),
        idpLinks: identities.flatMap((identity) => {
          const idpId = options.idps?.[str(identity.identityProvider) ?? ""];
          const externalId = str(identity.userId);
          return idpId && externalId ? [{ idpId, userId: externalId, userName: str(identity.userName) ?? externalId }] : [];
        }),
        metadata: Object.entries(attributes)
          .filter(([name]) => !["locale", "phoneNumber", "phone_number", "phoneNumberVerified"].includes(name))
          .map(([name, value]) => ({
            key: name,
            value: Array.isArray(value) && value.length === 1 && typeof value[0] === "string" ? value[0] : JSON.stringify(value),
          })),
        orgId: options.orgId,
      });
      yield { line: event.line, key: key ?? `line ${event.line}`, record };
    } catch (err) {
      yield { line: event.line, ...(key !== undefined ? { key } : {}), error: describe(err) };
    }
  }
}
