/**
 * Django's `<algorithm>$…` password strings (django/contrib/auth/hashers.py), as they sit in the
 * `password` column of `auth_user`:
 * - `pbkdf2_sha256$<iterations>$<salt>$<base64 key>` and `pbkdf2_sha1$…`: PBKDF2-HMAC with the
 *   salt's characters as the salt, the key as long as the digest;
 * - `argon2$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>`: argon2-cffi's PHC string after `argon2`;
 * - `bcrypt_sha256$$2b$…`: bcrypt of the hex SHA-256 of the password; `bcrypt$$2b$…`: plain bcrypt;
 * - `scrypt$<N>$<salt>$<r>$<p>$<base64 64-byte key>` (Django 4.0 and later);
 * - the legacy `sha1$<salt>$<hex>` and `md5$<salt>$<hex>`, H(salt ‖ password), which Django still
 *   verifies; its unsalted SHA-1 is `sha1$$<hex>`, its unsalted MD5 `md5$$<hex>` or bare hex (md5plain).
 * Their cost parameters are held to the bounds of the matching plain family (pbkdf2, argon2,
 * bcrypt, scrypt). Django's `crypt$` (DES crypt) is not read.
 */
import { createHash } from "node:crypto";
import { parseArgon2 } from "./argon2.js";
import { parseBcrypt } from "./bcrypt.js";
import { checkBounds, decodeBase64, malformed, parseDecimal, safeEqual } from "./codec.js";
import type { Checker, HashFamily, HashLimits } from "./family.js";
import { pbkdf2Key } from "./pbkdf2.js";
import { checkScryptBounds, scryptKey } from "./scrypt.js";

const PBKDF2_DIGESTS: Record<string, { digest: string; size: number }> = {
  pbkdf2_sha256: { digest: "sha256", size: 32 },
  pbkdf2_sha1: { digest: "sha1", size: 20 },
};
const LEGACY_DIGESTS: Record<string, { digest: string; size: number }> = {
  sha1: { digest: "sha1", size: 20 },
  md5: { digest: "md5", size: 16 },
};
const PREFIXES = ["pbkdf2_sha256$", "pbkdf2_sha1$", "argon2$", "bcrypt_sha256$", "bcrypt$", "scrypt$", "sha1$", "md5$"];

function parsePbkdf2(algorithm: string, rest: string, limits: HashLimits): Checker {
  const { digest, size } = PBKDF2_DIGESTS[algorithm]!;
  const parts = rest.split("$");
  if (parts.length !== 3) throw malformed(`not a Django ${algorithm} string (${algorithm}$iterations$salt$hash)`);
  const iterations = parseDecimal(`Django ${algorithm} iterations`, parts[0]);
  const salt = parts[1]!;
  const key = decodeBase64(`Django ${algorithm} hash`, parts[2]!);
  if (salt === "") throw malformed(`Django ${algorithm} salt is empty`);
  if (key.length !== size) throw malformed(`Django ${algorithm} hash is not ${size} bytes`);
  checkBounds(`Django ${algorithm} iterations`, iterations, limits.pbkdf2.minRounds, limits.pbkdf2.maxRounds);
  const saltBytes = Buffer.from(salt);
  return async (password) => safeEqual(await pbkdf2Key(password, saltBytes, iterations, size, digest), key);
}

function parseScrypt(rest: string, limits: HashLimits): Checker {
  const parts = rest.split("$");
  if (parts.length !== 5) throw malformed("not a Django scrypt string (scrypt$N$salt$r$p$hash)");
  const n = parseDecimal("Django scrypt N", parts[0]);
  const ln = Math.log2(n);
  if (!Number.isInteger(ln)) throw malformed("Django scrypt N is not a power of two");
  const r = parseDecimal("Django scrypt r", parts[2]);
  const p = parseDecimal("Django scrypt p", parts[3]);
  const salt = parts[1]!;
  const key = decodeBase64("Django scrypt hash", parts[4]!);
  if (salt === "") throw malformed("Django scrypt salt is empty");
  if (key.length < 16) throw malformed("Django scrypt hash is shorter than 16 bytes");
  checkScryptBounds(ln, r, p, limits.scrypt);
  const saltBytes = Buffer.from(salt);
  return async (password) => safeEqual(await scryptKey(password, saltBytes, ln, r, p, key.length), key);
}

function parseLegacy(algorithm: string, rest: string): Checker {
  const { digest, size } = LEGACY_DIGESTS[algorithm]!;
  const parts = rest.split("$");
  if (parts.length !== 2) throw malformed(`not a Django ${algorithm} string (${algorithm}$salt$hex)`);
  const [salt, hex] = parts as [string, string];
  if (!new RegExp(`^[0-9a-f]{${size * 2}}$`).test(hex)) throw malformed(`Django ${algorithm} hash is not ${size * 2} hex digits`);
  const expected = Buffer.from(hex, "hex");
  return async (password) => safeEqual(createHash(digest).update(salt).update(password).digest(), expected);
}

export const djangoFamily: HashFamily = {
  name: "django",
  description: "Django (pbkdf2_sha256$, pbkdf2_sha1$, argon2$, bcrypt_sha256$, bcrypt$, scrypt$, sha1$, md5$)",
  prefixes: PREFIXES,
  recognizes: (encoded) => PREFIXES.some((prefix) => encoded.startsWith(prefix)),
  parse(encoded, limits) {
    const cut = encoded.indexOf("$");
    const algorithm = encoded.slice(0, cut);
    const rest = encoded.slice(cut + 1);
    if (algorithm in PBKDF2_DIGESTS) return parsePbkdf2(algorithm, rest, limits);
    if (algorithm in LEGACY_DIGESTS) return parseLegacy(algorithm, rest);
    if (algorithm === "scrypt") return parseScrypt(rest, limits);
    // argon2-cffi's encoded string follows `argon2`, starting with its own `$`.
    if (algorithm === "argon2") return parseArgon2(encoded.slice("argon2".length), limits.argon2);
    if (algorithm === "bcrypt") return parseBcrypt(rest, limits.bcrypt);
    // bcrypt_sha256: the password goes into bcrypt as the 64 hex digits of its SHA-256.
    const check = parseBcrypt(rest, limits.bcrypt);
    return (password) => check(createHash("sha256").update(password).digest("hex"));
  },
};
