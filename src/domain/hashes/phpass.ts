/**
 * Portable phpass (`$P$` WordPress, `$H$` phpBB3) and Drupal 7 (`$S$`), written here from
 * phpass's PasswordHash::crypt_private and Drupal 7's `_password_crypt` over node:crypto's MD5
 * and SHA-512. The npm ports of them are unmaintained and synchronous; the algorithm is ten
 * lines. The iterations run on worker threads (digest-worker.cjs's iteratedDigest). Tested
 * against vectors built independently in Python (test/fixtures/hashes/).
 */
import { checkBounds, CRYPT_CHARS, encode64LittleEndian, itoa64Index, malformed, safeEqual } from "./codec.js";
import { runDigest } from "./digest-pool.js";
import type { HashFamily } from "./family.js";

export const phpassFamily: HashFamily = {
  name: "phpass",
  description: "portable phpass ($P$ WordPress, $H$ phpBB3)",
  prefixes: ["$P$", "$H$"],
  recognizes: (encoded) => encoded.startsWith("$P$") || encoded.startsWith("$H$"),
  parse(encoded, limits) {
    // identifier, log2 count, 8 salt characters, 22 characters of the 16-byte MD5.
    if (encoded.length !== 34 || !CRYPT_CHARS.test(encoded.slice(3))) {
      throw malformed("not a phpass string ($P$ or $H$ and 31 crypt base64 characters)");
    }
    const log2 = itoa64Index(encoded[3]);
    checkBounds("phpass rounds (log2)", log2, limits.phpass.minRounds, limits.phpass.maxRounds);
    const salt = encoded.slice(4, 12);
    const expected = Buffer.from(encoded.slice(12));
    return async (password) => {
      const sum = await runDigest("iteratedDigest", { algorithm: "md5", password, salt, log2 });
      return safeEqual(Buffer.from(encode64LittleEndian(sum)), expected);
    };
  },
};

export const drupal7Family: HashFamily = {
  name: "drupal7",
  description: "Drupal 7 ($S$)",
  prefixes: ["$S$"],
  recognizes: (encoded) => encoded.startsWith("$S$"),
  parse(encoded, limits) {
    // Drupal stores the first 55 characters (DRUPAL_HASH_LENGTH): identifier, log2 count,
    // 8 salt characters and 43 of the 86 characters of the SHA-512.
    if (encoded.length !== 55 || !CRYPT_CHARS.test(encoded.slice(3))) {
      throw malformed("not a Drupal 7 string ($S$ and 52 crypt base64 characters)");
    }
    const log2 = itoa64Index(encoded[3]);
    const { minIterations, maxIterations } = limits.drupal7;
    checkBounds("drupal7 iterations", 2 ** log2, minIterations, maxIterations);
    const salt = encoded.slice(4, 12);
    const expected = Buffer.from(encoded.slice(12));
    return async (password) => {
      const sum = await runDigest("iteratedDigest", { algorithm: "sha512", password, salt, log2 });
      return safeEqual(Buffer.from(encode64LittleEndian(sum).slice(0, 43)), expected);
    };
  },
};
