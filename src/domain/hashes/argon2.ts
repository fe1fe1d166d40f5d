import argon2 from "argon2";
import { checkBounds, decodeBase64, malformed, parseDecimal, safeEqual } from "./codec.js";
import type { Checker, HashFamily, HashLimits } from "./family.js";

/** Argon2 v1.3, the only version ZITADEL (golang.org/x/crypto/argon2) reads. */
const VERSION = 0x13;

/**
 * Parses an argon2i/argon2id PHC string, `$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>`
 * (salt and hash in base64 without padding), and returns its checker (also used behind `{ARGON2}`).
 *
 * The parameters may come in any order (node-argon2 writes `m,p,t`, the reference tool `m,t,p`),
 * each exactly once; `keyid` and `data` are refused. argon2d is refused as in ZITADEL. The
 * password is hashed by node-argon2 (the reference C code, on libuv's thread pool) with the same
 * parameters and compared here in constant time.
 */
export function parseArgon2(encoded: string, limits: HashLimits["argon2"]): Checker {
  const parts = encoded.split("$");
  if (parts.length !== 6 || parts[0] !== "") throw malformed("not an argon2 PHC string ($argon2id$v=19$m=,t=,p=$salt$hash)");
  const [, id, version, paramText, saltText, hashText] = parts as [string, string, string, string, string, string];
  if (id !== "argon2i" && id !== "argon2id") throw malformed(`argon2 variant ${id} is not supported (argon2i, argon2id)`);
  if (version !== `v=${VERSION}`) throw malformed("argon2 version must be v=19");

  const params = new Map<string, number>();
  for (const pair of paramText.split(",")) {
    const [key, value, extra] = pair.split("=");
    if (key === undefined || extra !== undefined || !["m", "t", "p"].includes(key) || params.has(key)) {
      throw malformed("argon2 parameters must be m, t and p, once each");
    }
    params.set(key, parseDecimal(`argon2 parameter ${key}`, value));
  }
  const memory = params.get("m");
  const time = params.get("t");
  const threads = params.get("p");
  if (memory === undefined || time === undefined || threads === undefined) {
    throw malformed("argon2 parameters must be m, t and p, once each");
  }
  const salt = decodeBase64("argon2 salt", saltText);
  const hash = decodeBase64("argon2 hash", hashText);
  // The algorithm's own minimums (RFC 9106 §3.1): 8-byte salt, 4-byte tag, 8 KiB per lane.
  if (salt.length < 8) throw malformed("argon2 salt is shorter than 8 bytes");
  if (hash.length < 4) throw malformed("argon2 hash is shorter than 4 bytes");
  checkBounds("argon2 time", time, limits.minTime, limits.maxTime);
  checkBounds("argon2 memory (KiB)", memory, limits.minMemory, limits.maxMemory);
  checkBounds("argon2 threads", threads, limits.minThreads, limits.maxThreads);
  if (memory < 8 * threads) throw malformed("argon2 memory is less than 8 KiB per thread");

  return async (password) => {
    const computed = await argon2.hash(password, {
      raw: true,
      type: id === "argon2i" ? argon2.argon2i : argon2.argon2id,
      version: VERSION,
      salt,
      hashLength: hash.length,
      timeCost: time,
      memoryCost: memory,
      parallelism: threads,
    });
    return safeEqual(computed, hash);
  };
}

export const argon2Family: HashFamily = {
  name: "argon2",
  description: "argon2i and argon2id, PHC string ($argon2i$, $argon2id$)",
  prefixes: ["$argon2i$", "$argon2id$"],
  // ZITADEL's prefix is "$argon2", so $argon2d$ is recognised and then refused as malformed.
  recognizes: (encoded) => encoded.startsWith("$argon2"),
  parse: (encoded, limits) => parseArgon2(encoded, limits.argon2),
};
