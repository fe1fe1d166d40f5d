/**
 * md5-crypt (`$1$`) and sha256/sha512-crypt (`$5$`/`$6$`), written here from their published
 * descriptions over node:crypto's MD5 and SHA-2: the npm packages for them are unmaintained
 * (or bind a C crypt(3) that is not on every platform), and both algorithms are short. Their
 * rounds run on worker threads (digest-worker.cjs); parsing, the output encoding and the
 * comparison are here. They are tested against libxcrypt and `openssl passwd`
 * (test/fixtures/hashes/).
 */
import { b64From24Bit, checkBounds, CRYPT_CHARS, malformed, parseDecimal, safeEqual } from "./codec.js";
import { runDigest } from "./digest-pool.js";
import type { HashFamily } from "./family.js";

/** md5-crypt's output: the final sum's bytes in crypt(3)'s order (FreeBSD's crypt-md5.c). */
function encodeMd5Crypt(f: Buffer): string {
  return (
    b64From24Bit(f[0]!, f[6]!, f[12]!, 4) +
    b64From24Bit(f[1]!, f[7]!, f[13]!, 4) +
    b64From24Bit(f[2]!, f[8]!, f[14]!, 4) +
    b64From24Bit(f[3]!, f[9]!, f[15]!, 4) +
    b64From24Bit(f[4]!, f[10]!, f[5]!, 4) +
    b64From24Bit(0, 0, f[11]!, 2)
  );
}

export const md5CryptFamily: HashFamily = {
  name: "md5",
  description: "md5-crypt ($1$)",
  prefixes: ["$1$"],
  recognizes: (encoded) => encoded.startsWith("$1$"),
  parse(encoded) {
    // crypt(3) reads at most 8 salt characters and never writes more.
    const match = /^\$1\$([^$]{0,8})\$([./0-9A-Za-z]{22})$/.exec(encoded);
    if (!match) throw malformed("not an md5-crypt string ($1$ salt of up to 8 characters $ 22 characters)");
    const salt = match[1]!;
    const expected = Buffer.from(match[2]!);
    return async (password) => safeEqual(Buffer.from(encodeMd5Crypt(await runDigest("md5Crypt", { password, salt }))), expected);
  },
};

/** Where sha-crypt's output takes each digest byte from, three at a time (SHA-crypt.txt step 22). */
const SHA256_ORDER = [
  [0, 10, 20],
  [21, 1, 11],
  [12, 22, 2],
  [3, 13, 23],
  [24, 4, 14],
  [15, 25, 5],
  [6, 16, 26],
  [27, 7, 17],
  [18, 28, 8],
  [9, 19, 29],
] as const;
const SHA512_ORDER = [
  [0, 21, 42],
  [22, 43, 1],
  [44, 2, 23],
  [3, 24, 45],
  [25, 46, 4],
  [47, 5, 26],
  [6, 27, 48],
  [28, 49, 7],
  [50, 8, 29],
  [9, 30, 51],
  [31, 52, 10],
  [53, 11, 32],
  [12, 33, 54],
  [34, 55, 13],
  [56, 14, 35],
  [15, 36, 57],
  [37, 58, 16],
  [59, 17, 38],
  [18, 39, 60],
  [40, 61, 19],
  [62, 20, 41],
] as const;

/** SHA-crypt.txt step 22: the digest C in crypt base64. */
function encodeShaCrypt(algorithm: "sha256" | "sha512", c: Buffer): string {
  let out = "";
  for (const [b2, b1, b0] of algorithm === "sha256" ? SHA256_ORDER : SHA512_ORDER) {
    out += b64From24Bit(c[b2]!, c[b1]!, c[b0]!, 4);
  }
  return algorithm === "sha256" ? out + b64From24Bit(0, c[31]!, c[30]!, 3) : out + b64From24Bit(0, 0, c[63]!, 2);
}

export const shaCryptFamily: HashFamily = {
  name: "sha2",
  description: "sha256-crypt and sha512-crypt ($5$, $6$, optional rounds=)",
  prefixes: ["$5$", "$6$"],
  recognizes: (encoded) => encoded.startsWith("$5$") || encoded.startsWith("$6$"),
  parse(encoded, limits) {
    const algorithm = encoded[1] === "5" ? "sha256" : "sha512";
    let rest = encoded.slice(3);
    let rounds = 5000;
    if (rest.startsWith("rounds=")) {
      const end = rest.indexOf("$");
      rounds = parseDecimal("sha-crypt rounds", end < 0 ? undefined : rest.slice("rounds=".length, end));
      rest = rest.slice(end + 1);
    }
    const hashLength = algorithm === "sha256" ? 43 : 86;
    const parts = rest.split("$");
    // crypt(3) reads at most 16 salt characters and never writes more.
    if (parts.length !== 2 || !/^[^$:\n]{0,16}$/.test(parts[0]!)) {
      throw malformed("not a sha-crypt string ($5$ or $6$, optional rounds=N$, salt of up to 16 characters, $, hash)");
    }
    if (parts[1]!.length !== hashLength || !CRYPT_CHARS.test(parts[1]!)) {
      throw malformed(`sha-crypt hash must be ${hashLength} crypt base64 characters`);
    }
    // crypt(3) raises a smaller rounds= to 1,000 and writes that, so a smaller one was never made by it.
    checkBounds("sha-crypt rounds", rounds, limits.sha2.minRounds, limits.sha2.maxRounds);
    const salt = parts[0]!;
    const expected = Buffer.from(parts[1]!);
    return async (password) => {
      const c = await runDigest("shaCrypt", { algorithm, password, salt, rounds });
      return safeEqual(Buffer.from(encodeShaCrypt(algorithm, c)), expected);
    };
  },
};
