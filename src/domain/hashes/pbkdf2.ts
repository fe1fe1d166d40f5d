import { pbkdf2 } from "node:crypto";
import { checkBounds, decodeAdaptedBase64, malformed, parseDecimal, safeEqual } from "./codec.js";
import type { HashFamily } from "./family.js";

/** node:crypto's PBKDF2 (OpenSSL, on libuv's thread pool). */
export function pbkdf2Key(password: string, salt: Buffer, rounds: number, keyLength: number, digest: string): Promise<Buffer> {
  return new Promise((resolve, reject) => pbkdf2(password, salt, rounds, keyLength, digest, (err, key) => (err ? reject(err) : resolve(key))));
}

/** passlib's identifiers: the bare `$pbkdf2$` is HMAC-SHA1. */
const DIGESTS: Record<string, string> = {
  pbkdf2: "sha1",
  "pbkdf2-sha224": "sha224",
  "pbkdf2-sha256": "sha256",
  "pbkdf2-sha384": "sha384",
  "pbkdf2-sha512": "sha512",
};

/**
 * passlib's pbkdf2 notation, `$pbkdf2-sha256$<rounds>$<salt>$<key>`, salt and key in passlib's
 * adapted base64 (`.` for `+`, no padding; `+` and padding tolerated). This is what
 * zitadel-tools writes for Keycloak exports, whose 64-byte keys are taken as they are.
 */
export const pbkdf2Family: HashFamily = {
  name: "pbkdf2",
  description: "PBKDF2-HMAC, passlib's $pbkdf2$ (SHA-1), $pbkdf2-sha224$, -sha256$, -sha384$, -sha512$",
  prefixes: ["$pbkdf2$", "$pbkdf2-sha224$", "$pbkdf2-sha256$", "$pbkdf2-sha384$", "$pbkdf2-sha512$"],
  // ZITADEL's prefix is "$pbkdf2", so "$pbkdf2-md5$" is recognised and then refused as malformed.
  recognizes: (encoded) => encoded.startsWith("$pbkdf2"),
  parse(encoded, limits) {
    const parts = encoded.split("$");
    if (parts.length !== 5 || parts[0] !== "") throw malformed("not a pbkdf2 string ($pbkdf2-<digest>$rounds$salt$key)");
    const digest = DIGESTS[parts[1]!];
    if (!digest) throw malformed(`unknown pbkdf2 digest ${parts[1]}`);
    const rounds = parseDecimal("pbkdf2 rounds", parts[2]);
    const salt = decodeAdaptedBase64("pbkdf2 salt", parts[3]!);
    const key = decodeAdaptedBase64("pbkdf2 key", parts[4]!);
    if (salt.length === 0) throw malformed("pbkdf2 salt is empty");
    if (key.length < 16) throw malformed("pbkdf2 key is shorter than 16 bytes");
    checkBounds("pbkdf2 rounds", rounds, limits.pbkdf2.minRounds, limits.pbkdf2.maxRounds);
    return async (password) => safeEqual(await pbkdf2Key(password, salt, rounds, key.length, digest), key);
  },
};
