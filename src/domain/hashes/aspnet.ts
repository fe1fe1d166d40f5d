/**
 * ASP.NET Identity's password hashes (aspnetcore's src/Identity/Extensions.Core/src/PasswordHasher.cs),
 * the base64 blobs of the `PasswordHash` column of `AspNetUsers`:
 * - v2 (format marker 0x00): salt (16 bytes) ‖ PBKDF2-HMAC-SHA1 subkey (32 bytes), 1,000 iterations;
 * - v3 (format marker 0x01): PRF (uint32 big-endian: 0 HMAC-SHA1, 1 HMAC-SHA256, 2 HMAC-SHA512),
 *   iteration count, salt length (uint32 each), salt, subkey (the rest).
 * PasswordHasher.cs reads salts and subkeys of at least 16 bytes; so do we. The password is
 * hashed as its UTF-8 bytes, as KeyDerivation.Pbkdf2 does.
 *
 * The blob has no prefix, so a string is taken as one only if it is strict base64 whose first
 * byte is a format marker and which is at least as long as a v3 header with minimal salt and
 * subkey; bare hex (md5plain) comes first in the registry's order.
 */
import { checkBounds, decodeBase64, malformed, safeEqual } from "./codec.js";
import type { HashFamily } from "./family.js";
import { pbkdf2Key } from "./pbkdf2.js";

const PRFS = ["sha1", "sha256", "sha512"] as const;
const BASE64 = /^[A-Za-z0-9+/]{40,}={0,2}$/;

export const aspnetFamily: HashFamily = {
  name: "aspnet",
  description: "ASP.NET Identity v2 and v3 (base64 blobs)",
  prefixes: [],
  recognizes(encoded) {
    if (!BASE64.test(encoded)) return false;
    const first = Buffer.from(encoded.slice(0, 4), "base64")[0];
    return first === 0 || first === 1;
  },
  parse(encoded, limits) {
    const blob = decodeBase64("ASP.NET Identity hash", encoded);
    let digest: string;
    let iterations: number;
    let salt: Buffer;
    let subkey: Buffer;
    if (blob[0] === 0) {
      if (blob.length !== 1 + 16 + 32) throw malformed("ASP.NET Identity v2 hash is not 49 bytes");
      digest = "sha1";
      iterations = 1000;
      salt = blob.subarray(1, 17);
      subkey = blob.subarray(17);
    } else {
      if (blob.length < 13) throw malformed("ASP.NET Identity v3 hash is shorter than its header");
      const prf = PRFS[blob.readUInt32BE(1)];
      if (prf === undefined) throw malformed("ASP.NET Identity v3 hash names an unknown PRF");
      digest = prf;
      iterations = blob.readUInt32BE(5);
      const saltLength = blob.readUInt32BE(9);
      if (saltLength < 16) throw malformed("ASP.NET Identity v3 salt is shorter than 16 bytes");
      if (blob.length < 13 + saltLength + 16) throw malformed("ASP.NET Identity v3 subkey is shorter than 16 bytes");
      salt = blob.subarray(13, 13 + saltLength);
      subkey = blob.subarray(13 + saltLength);
    }
    checkBounds("ASP.NET Identity iterations", iterations, limits.pbkdf2.minRounds, limits.pbkdf2.maxRounds);
    return async (password) => safeEqual(await pbkdf2Key(password, salt, iterations, subkey.length, digest), subkey);
  },
};
