/**
 * The LDAP `userPassword` forms `{SCHEME}value` (RFC 2307) that PingOne accepts and exports
 * (developer.pingidentity.com, "Password encoding"), as PingDirectory writes them. Scheme names
 * are case-insensitive, as in LDAP.
 */
import { createHash, createHmac } from "node:crypto";
import { parseArgon2 } from "./argon2.js";
import { parseBcrypt } from "./bcrypt.js";
import { checkBounds, decodeAdaptedBase64, decodeBase64, malformed, parseDecimal, safeEqual } from "./codec.js";
import { md5CryptFamily, shaCryptFamily } from "./crypt.js";
import type { Checker, HashFamily, HashLimits } from "./family.js";
import { pbkdf2Key } from "./pbkdf2.js";
import { checkScryptBounds, scryptKey } from "./scrypt.js";

/** `{SCHEME}` at the start of `encoded`, upper-cased, or undefined. */
function schemeOf(encoded: string): { scheme: string; value: string } | undefined {
  const match = /^\{([A-Za-z0-9_-]+)\}/.exec(encoded);
  return match ? { scheme: match[1]!.toUpperCase(), value: encoded.slice(match[0].length) } : undefined;
}

const hasScheme =
  (...schemes: string[]) =>
  (encoded: string) => {
    const found = schemeOf(encoded);
    return found !== undefined && schemes.includes(found.scheme);
  };

const SSHA_DIGESTS: Record<string, { algorithm: string; size: number }> = {
  SSHA: { algorithm: "sha1", size: 20 },
  SSHA256: { algorithm: "sha256", size: 32 },
  SSHA384: { algorithm: "sha384", size: 48 },
  SSHA512: { algorithm: "sha512", size: 64 },
};

/** Salted SHA: base64(H(password ‖ salt) ‖ salt), the salt of any length after the digest. */
export const sshaFamily: HashFamily = {
  name: "ssha",
  description: "LDAP salted SHA ({SSHA}, {SSHA256}, {SSHA384}, {SSHA512})",
  prefixes: ["{SSHA}", "{SSHA256}", "{SSHA384}", "{SSHA512}"],
  recognizes: hasScheme(...Object.keys(SSHA_DIGESTS)),
  parse(encoded) {
    const { scheme, value } = schemeOf(encoded)!;
    const { algorithm, size } = SSHA_DIGESTS[scheme]!;
    const decoded = decodeBase64(`{${scheme}} value`, value);
    if (decoded.length <= size) throw malformed(`{${scheme}} value holds no salt after its ${size}-byte digest`);
    const expected = decoded.subarray(0, size);
    const salt = decoded.subarray(size);
    return async (password) => safeEqual(createHash(algorithm).update(password).update(salt).digest(), expected);
  },
};

/** `{BCRYPT}` followed by the usual bcrypt string. */
export const ldapBcryptFamily: HashFamily = {
  name: "ldap-bcrypt",
  description: "{BCRYPT} and a bcrypt string",
  prefixes: ["{BCRYPT}"],
  recognizes: hasScheme("BCRYPT"),
  parse: (encoded, limits) => parseBcrypt(schemeOf(encoded)!.value, limits.bcrypt),
};

/** `{ARGON2}` followed by an argon2i/argon2id PHC string. */
export const ldapArgon2Family: HashFamily = {
  name: "ldap-argon2",
  description: "{ARGON2} and an argon2 PHC string",
  prefixes: ["{ARGON2}"],
  recognizes: hasScheme("ARGON2"),
  parse: (encoded, limits) => parseArgon2(schemeOf(encoded)!.value, limits.argon2),
};

const SCRYPT_MAGIC = Buffer.from("scrypt\0");

/**
 * `{SCRYPT}` + base64 of the 96-byte header of Colin Percival's scrypt data format, the form
 * PingDirectory documents as "c2NyeXB0": "scrypt", version 0, log2 N, r and p (big-endian),
 * a 32-byte salt, the first 16 bytes of SHA-256 over the 48 bytes before, then HMAC-SHA256 over
 * the 64 bytes before, keyed with bytes 32–63 of scrypt(password, salt, N, r, p, 64).
 */
export const ldapScryptFamily: HashFamily = {
  name: "ldap-scrypt",
  description: "{SCRYPT} and a base64 scrypt header (PingDirectory's c2NyeXB0 form)",
  prefixes: ["{SCRYPT}"],
  recognizes: hasScheme("SCRYPT"),
  parse(encoded, limits) {
    const header = decodeBase64("{SCRYPT} value", schemeOf(encoded)!.value);
    if (header.length !== 96 || !header.subarray(0, 7).equals(SCRYPT_MAGIC)) {
      throw malformed("{SCRYPT} value is not a 96-byte scrypt header");
    }
    const checksum = createHash("sha256").update(header.subarray(0, 48)).digest().subarray(0, 16);
    if (!checksum.equals(header.subarray(48, 64))) throw malformed("{SCRYPT} header checksum does not match");
    const ln = header[7]!;
    const r = header.readUInt32BE(8);
    const p = header.readUInt32BE(12);
    checkScryptBounds(ln, r, p, limits.scrypt);
    const salt = header.subarray(16, 48);
    const signed = header.subarray(0, 64);
    const expected = header.subarray(64, 96);
    return async (password) => {
      const key = await scryptKey(password, salt, ln, r, p, 64);
      return safeEqual(createHmac("sha256", key.subarray(32)).update(signed).digest(), expected);
    };
  },
};

/**
 * PingOne's `{PBKDF2}` + base64 of: version (1 byte; 0 is HMAC-SHA1, the only one known), salt
 * length (1 byte, 8–127), salt, iteration count (2 bytes, big-endian), derived key (the rest).
 * PingOne's page names the fields version-hex, salt-length-hex, salt, iterations-hex, key; the
 * widths and the version's meaning follow a public PingOne conversion helper. UNCONFIRMED
 * against PingOne itself: check with a real export before relying on it.
 */
function parsePingOnePbkdf2(value: string, limits: HashLimits): Checker {
  const raw = decodeBase64("{PBKDF2} value", value);
  const version = raw[0];
  const saltLength = raw[1] ?? 0;
  if (version !== 0) throw malformed("{PBKDF2} version is not 0 (HMAC-SHA1)");
  if (saltLength < 8 || saltLength > 127) throw malformed("{PBKDF2} salt length is not 8-127 bytes");
  const key = raw.subarray(2 + saltLength + 2);
  if (raw.length < 2 + saltLength + 2 || key.length < 16) throw malformed("{PBKDF2} value is too short for its salt and key");
  const salt = raw.subarray(2, 2 + saltLength);
  const iterations = raw.readUInt16BE(2 + saltLength);
  checkBounds("{PBKDF2} iterations", iterations, limits.pbkdf2.minRounds, limits.pbkdf2.maxRounds);
  return async (password) => safeEqual(await pbkdf2Key(password, salt, iterations, key.length, "sha1"), key);
}

/** OpenLDAP's pw-pbkdf2 module (contrib/slapd-modules/passwd/pbkdf2): the scheme's digest. */
const OPENLDAP_PBKDF2: Record<string, { digest: string; size: number }> = {
  PBKDF2: { digest: "sha1", size: 20 },
  "PBKDF2-SHA1": { digest: "sha1", size: 20 },
  "PBKDF2-SHA256": { digest: "sha256", size: 32 },
  "PBKDF2-SHA512": { digest: "sha512", size: 64 },
};

/**
 * OpenLDAP's pw-pbkdf2 form (what `slappasswd -o module-load=pw-pbkdf2 -h {PBKDF2-SHA256}` writes):
 * `{SCHEME}<iterations>$<salt>$<key>`, salt and key in passlib's adapted base64, the key as long
 * as the digest.
 */
function parseOpenLdapPbkdf2(scheme: string, value: string, limits: HashLimits): Checker {
  const { digest, size } = OPENLDAP_PBKDF2[scheme]!;
  const parts = value.split("$");
  if (parts.length !== 3) throw malformed(`not an OpenLDAP {${scheme}} value (iterations$salt$key)`);
  const iterations = parseDecimal(`{${scheme}} iterations`, parts[0]);
  const salt = decodeAdaptedBase64(`{${scheme}} salt`, parts[1]!);
  const key = decodeAdaptedBase64(`{${scheme}} key`, parts[2]!);
  if (salt.length === 0) throw malformed(`{${scheme}} salt is empty`);
  if (key.length !== size) throw malformed(`{${scheme}} key is not ${size} bytes`);
  checkBounds(`{${scheme}} iterations`, iterations, limits.pbkdf2.minRounds, limits.pbkdf2.maxRounds);
  return async (password) => safeEqual(await pbkdf2Key(password, salt, iterations, size, digest), key);
}

/**
 * PBKDF2 in LDAP: OpenLDAP's `{PBKDF2}`, `{PBKDF2-SHA1}`, `{PBKDF2-SHA256}`, `{PBKDF2-SHA512}`
 * (`iterations$salt$key`), and PingOne's binary `{PBKDF2}` (one base64 value, which has no `$`).
 */
export const ldapPbkdf2Family: HashFamily = {
  name: "ldap-pbkdf2",
  description: "{PBKDF2}, {PBKDF2-SHA1}, {PBKDF2-SHA256}, {PBKDF2-SHA512} (OpenLDAP's pw-pbkdf2, and PingOne's binary {PBKDF2})",
  prefixes: ["{PBKDF2}", "{PBKDF2-SHA1}", "{PBKDF2-SHA256}", "{PBKDF2-SHA512}"],
  recognizes: hasScheme(...Object.keys(OPENLDAP_PBKDF2)),
  parse(encoded, limits) {
    const { scheme, value } = schemeOf(encoded)!;
    return scheme === "PBKDF2" && !value.includes("$") ? parsePingOnePbkdf2(value, limits) : parseOpenLdapPbkdf2(scheme, value, limits);
  },
};

const PLAIN_DIGESTS: Record<string, { algorithm: string; size: number; salted: boolean }> = {
  MD5: { algorithm: "md5", size: 16, salted: false },
  SMD5: { algorithm: "md5", size: 16, salted: true },
  SHA: { algorithm: "sha1", size: 20, salted: false },
  SHA256: { algorithm: "sha256", size: 32, salted: false },
  SHA384: { algorithm: "sha384", size: 48, salted: false },
  SHA512: { algorithm: "sha512", size: 64, salted: false },
};

/**
 * RFC 2307's unsalted `{MD5}` and `{SHA}` (base64 of the digest; `{SHA256}`… from OpenLDAP's
 * pw-sha2 module), and `{SMD5}` (base64 of MD5(password ‖ salt) ‖ salt), as slappasswd writes them.
 * One digest each: they are checked inline.
 */
export const ldapDigestFamily: HashFamily = {
  name: "ldap-digest",
  description: "LDAP plain digests ({MD5}, {SMD5}, {SHA}, {SHA256}, {SHA384}, {SHA512})",
  prefixes: Object.keys(PLAIN_DIGESTS).map((scheme) => `{${scheme}}`),
  recognizes: hasScheme(...Object.keys(PLAIN_DIGESTS)),
  parse(encoded) {
    const { scheme, value } = schemeOf(encoded)!;
    const { algorithm, size, salted } = PLAIN_DIGESTS[scheme]!;
    const decoded = decodeBase64(`{${scheme}} value`, value);
    if (salted ? decoded.length <= size : decoded.length !== size) {
      throw malformed(salted ? `{${scheme}} value holds no salt after its ${size}-byte digest` : `{${scheme}} value is not ${size} bytes`);
    }
    const expected = decoded.subarray(0, size);
    const salt = decoded.subarray(size);
    return async (password) => safeEqual(createHash(algorithm).update(password).update(salt).digest(), expected);
  },
};

/**
 * `{CRYPT}` and a crypt(3) string: md5-crypt (`$1$`), sha256/sha512-crypt (`$5$`, `$6$`) or
 * bcrypt (`$2?$`), checked as those families check them. Traditional DES crypt (13 characters,
 * slappasswd's default without `-c`) is not read: those users set a new password.
 */
export const ldapCryptFamily: HashFamily = {
  name: "ldap-crypt",
  description: "{CRYPT} and an md5-crypt, sha-crypt or bcrypt string",
  prefixes: ["{CRYPT}"],
  recognizes: hasScheme("CRYPT"),
  parse(encoded, limits) {
    const { value } = schemeOf(encoded)!;
    if (md5CryptFamily.recognizes(value)) return md5CryptFamily.parse(value, limits);
    if (shaCryptFamily.recognizes(value)) return shaCryptFamily.parse(value, limits);
    if (value.startsWith("$2")) return parseBcrypt(value, limits.bcrypt);
    throw malformed("{CRYPT} value is not md5-crypt ($1$), sha-crypt ($5$, $6$) or bcrypt ($2?$); DES crypt is not supported");
  },
};
