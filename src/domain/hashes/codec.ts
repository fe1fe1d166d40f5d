import { HashErrors } from "../error-catalogue.js";
import { timingSafeEqual } from "node:crypto";

/** Anything that does not parse: ZITADEL's ValidateEncodedHash answers CRYPT-r8Qm2. */
export const malformed = (detail: string) => HashErrors.malformed(detail);

/** A cost parameter outside the configured bounds: CRYPT-5uV9n. */
export const outOfBounds = (detail: string) => HashErrors.costOutOfRange(detail);

/** Throws CRYPT-5uV9n unless min <= value <= max. */
export function checkBounds(what: string, value: number, min: number, max: number): void {
  if (!(value >= min && value <= max)) throw outOfBounds(`${what} ${value} is not within ${min}-${max}`);
}

/** A decimal number without sign or leading zeros, as the MCF formats write them; else CRYPT-r8Qm2. */
export function parseDecimal(what: string, text: string | undefined): number {
  if (text === undefined || !/^(0|[1-9][0-9]{0,11})$/.test(text)) throw malformed(`${what} is not a number`);
  return Number(text);
}

/** Equal length and equal bytes, in time independent of where they differ. */
export function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

const STD_BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Strict standard base64 (RFC 4648 §4), padding optional: every character in the alphabet,
 * a length base64 can have, and no stray bits in the last character (Go's `Strict()`), so one
 * byte string has exactly one accepted spelling. Node's own decoder skips what it does not know.
 */
export function decodeBase64(what: string, text: string): Buffer {
  const bad = () => malformed(`${what} is not base64`);
  if (!STD_BASE64.test(text)) throw bad();
  const unpadded = text.replace(/=+$/, "");
  if (unpadded.length % 4 === 1) throw bad();
  if (unpadded.length !== text.length && text.length % 4 !== 0) throw bad();
  const bytes = Buffer.from(unpadded, "base64");
  if (bytes.toString("base64").replace(/=+$/, "") !== unpadded) throw bad();
  return bytes;
}

/**
 * passlib's "adapted base64" (pbkdf2): the standard alphabet with `.` for `+`, no padding.
 * `+` and `=` padding are tolerated too; they mean the same bytes.
 */
export function decodeAdaptedBase64(what: string, text: string): Buffer {
  if (!/^[A-Za-z0-9+./]*={0,2}$/.test(text)) throw malformed(`${what} is not (adapted) base64`);
  return decodeBase64(what, text.replaceAll(".", "+"));
}

/** The alphabet of crypt(3)'s base64 (md5-crypt, sha-crypt, phpass, Drupal, scrypt `$7$`, bcrypt's order differs). */
export const ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
export const CRYPT_CHARS = /^[./0-9A-Za-z]*$/;

/** Index of a character in ITOA64, or -1. */
export const itoa64Index = (char: string | undefined) => (char === undefined || char === "" ? -1 : ITOA64.indexOf(char));

/**
 * crypt(3)'s `b64_from_24bit(B2, B1, B0, n)`: the 24-bit value B2<<16 | B1<<8 | B0 as n
 * characters, least significant six bits first (md5-crypt and sha-crypt).
 */
export function b64From24Bit(b2: number, b1: number, b0: number, n: number): string {
  let w = (b2 << 16) | (b1 << 8) | b0;
  let out = "";
  for (let i = 0; i < n; i++) {
    out += ITOA64[w & 0x3f];
    w >>>= 6;
  }
  return out;
}

/**
 * phpass's `encode64` (also Drupal 7's and scrypt `$7$`'s): bytes in little-endian groups of
 * three, each group as up to four characters, least significant six bits first.
 */
export function encode64LittleEndian(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const rest = bytes.length - i;
    const value = bytes[i]! | ((rest > 1 ? bytes[i + 1]! : 0) << 8) | ((rest > 2 ? bytes[i + 2]! : 0) << 16);
    out += b64From24Bit(value >>> 16, (value >>> 8) & 0xff, value & 0xff, rest >= 3 ? 4 : rest + 1);
  }
  return out;
}
