import bcrypt from "bcrypt";
import { checkBounds, malformed } from "./codec.js";
import type { Checker, HashFamily, HashLimits } from "./family.js";

/** `$2` + minor, two-digit cost, 22 salt and 31 digest characters of bcrypt's own base64 order. */
const BCRYPT = /^\$2([abxy]?)\$([0-9]{2})\$([./A-Za-z0-9]{22})([./A-Za-z0-9]{31})$/;

/**
 * Parses a bcrypt string and returns its checker (also used behind `{BCRYPT}`).
 *
 * The `bcrypt` binding knows `$2$`, `$2a$` and `$2b$`. The others are handed to it relabelled:
 * - `$2y$` is crypt_blowfish's name for the correct algorithm, which is `$2b$` (both read at most
 *   72 bytes and append the NUL);
 * - `$2x$` marks hashes made with crypt_blowfish's old sign-extension bug; for passwords of
 *   ASCII bytes it equals `$2a$`, which is what we check. Passwords with bytes >= 0x80 under
 *   `$2x$` do not verify (the buggy key schedule is not reproduced): such users reset.
 * `$2a$` goes to the binding as `$2b$` too: OpenBSD's `$2a$` wraps the length of passwords over
 * 255 bytes, a bug crypt_blowfish (PHP, libxcrypt), where nearly all `$2a$` hashes come from,
 * never had. `$2$` (no NUL appended) is passed as it is.
 */
export function parseBcrypt(encoded: string, limits: HashLimits["bcrypt"]): Checker {
  const match = BCRYPT.exec(encoded);
  if (!match) throw malformed("not a bcrypt string ($2?$cc$ with 53 characters of salt and digest)");
  const [, minor, cost] = match;
  checkBounds("bcrypt cost", Number(cost), limits.minCost, limits.maxCost);
  const forBinding = minor === "" ? encoded : `$2b$${encoded.slice(4)}`;
  return (password) => bcrypt.compare(password, forBinding);
}

export const bcryptFamily: HashFamily = {
  name: "bcrypt",
  description: "bcrypt ($2$, $2a$, $2b$, $2x$, $2y$)",
  prefixes: ["$2"],
  recognizes: (encoded) => encoded.startsWith("$2"),
  parse: (encoded, limits) => parseBcrypt(encoded, limits.bcrypt),
};
