import { scrypt } from "node:crypto";
import { checkBounds, CRYPT_CHARS, decodeBase64, encode64LittleEndian, itoa64Index, malformed, parseDecimal, safeEqual } from "./codec.js";
import type { Checker, HashFamily, HashLimits } from "./family.js";

/**
 * node:crypto's scrypt (OpenSSL, on libuv's thread pool). Its default memory cap is 32 MiB, less
 * than the bounds allow, so the cap is raised to what these parameters need (OpenSSL counts
 * 128·r·(N + p + 2) bytes) plus slack.
 */
export function scryptKey(password: Buffer | string, salt: Buffer, ln: number, r: number, p: number, keyLength: number): Promise<Buffer> {
  const N = 2 ** ln;
  const maxmem = 128 * r * (N + p + 2) + 1024 * 1024;
  return new Promise((resolve, reject) => scrypt(password, salt, keyLength, { N, r, p, maxmem }, (err, key) => (err ? reject(err) : resolve(key))));
}

export function checkScryptBounds(ln: number, r: number, p: number, limits: HashLimits["scrypt"]): void {
  checkBounds("scrypt ln", ln, limits.minLN, limits.maxLN);
  checkBounds("scrypt r", r, limits.minR, limits.maxR);
  checkBounds("scrypt p", p, limits.minP, limits.maxP);
}

/**
 * passlib's notation, `$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<key>` with standard base64
 * without padding (padding tolerated). passwap reads the same notation under `$7$` as well,
 * so `$7$ln=…` is taken here too.
 */
function parsePasslib(encoded: string, limits: HashLimits["scrypt"]): Checker {
  const parts = encoded.split("$");
  const params = /^ln=([0-9]+),r=([0-9]+),p=([0-9]+)$/.exec(parts[2] ?? "");
  if (parts.length !== 5 || !params) throw malformed("not an scrypt string ($scrypt$ln=,r=,p=$salt$key)");
  const ln = parseDecimal("scrypt ln", params[1]);
  const r = parseDecimal("scrypt r", params[2]);
  const p = parseDecimal("scrypt p", params[3]);
  const salt = decodeBase64("scrypt salt", parts[3]!);
  const key = decodeBase64("scrypt key", parts[4]!);
  if (salt.length === 0) throw malformed("scrypt salt is empty");
  if (key.length < 16) throw malformed("scrypt key is shorter than 16 bytes");
  checkScryptBounds(ln, r, p, limits);
  return async (password) => safeEqual(await scryptKey(password, salt, ln, r, p, key.length), key);
}

/** crypt(3)'s 30-bit little-endian number in five characters (scrypt `$7$`'s r and p). */
function decode30Bit(text: string): number {
  let value = 0;
  for (let i = 4; i >= 0; i--) value = value * 64 + itoa64Index(text[i]);
  return value;
}

/**
 * The crypt(3) notation of libxcrypt and libsodium (Colin Percival's original `$7$`):
 * `$7$` + log2 N (one character) + r and p (five characters each, little-endian) + salt +
 * `$` + 43 characters of the 32-byte key, all in crypt's base64. The salt goes into scrypt as
 * the characters written, not decoded.
 */
function parseCrypt7(encoded: string, limits: HashLimits["scrypt"]): Checker {
  const match = /^\$7\$([./0-9A-Za-z])([./0-9A-Za-z]{5})([./0-9A-Za-z]{5})([^$]*)\$([./0-9A-Za-z]{43})$/.exec(encoded);
  if (!match) throw malformed("not an scrypt $7$ string");
  const [, lnChar, rText, pText, saltText, keyText] = match as unknown as [string, string, string, string, string, string];
  if (saltText.length === 0 || !CRYPT_CHARS.test(saltText)) throw malformed("scrypt $7$ salt must be crypt base64 characters");
  const ln = itoa64Index(lnChar);
  const r = decode30Bit(rText);
  const p = decode30Bit(pText);
  checkScryptBounds(ln, r, p, limits);
  const salt = Buffer.from(saltText, "latin1");
  return async (password) => {
    const key = await scryptKey(password, salt, ln, r, p, 32);
    return safeEqual(Buffer.from(encode64LittleEndian(key)), Buffer.from(keyText));
  };
}

export const scryptFamily: HashFamily = {
  name: "scrypt",
  description: "scrypt, passlib's $scrypt$ and crypt's $7$",
  prefixes: ["$scrypt$", "$7$"],
  recognizes: (encoded) => encoded.startsWith("$scrypt$") || encoded.startsWith("$7$"),
  parse: (encoded, limits) =>
    encoded.startsWith("$scrypt$") || encoded.startsWith("$7$ln=") ? parsePasslib(encoded, limits.scrypt) : parseCrypt7(encoded, limits.scrypt),
};
