import { createHash } from "node:crypto";
import { decodeBase64, malformed, safeEqual } from "./codec.js";
import type { HashFamily } from "./family.js";

const md5 = (text: string) => createHash("md5").update(text).digest();

/** Any even-length hex string, as ZITADEL decides (its `HexSupported` check); only 16 bytes parse. */
const HEX = /^(?:[0-9a-fA-F]{2})+$/;

export const md5PlainFamily: HashFamily = {
  name: "md5plain",
  description: "unsalted MD5 as 32 hex digits",
  prefixes: [],
  recognizes: (encoded) => HEX.test(encoded),
  parse(encoded) {
    if (encoded.length !== 32) throw malformed("md5plain must be 32 hex digits");
    const expected = Buffer.from(encoded, "hex");
    return async (password) => safeEqual(md5(password), expected);
  },
};

/**
 * passwap's salted MD5: `$md5salted-prefix$<salt>$<base64 md5(salt ‖ password)>` or
 * `$md5salted-suffix$<salt>$<base64 md5(password ‖ salt)>`, the salt taken as written.
 */
export const md5SaltedFamily: HashFamily = {
  name: "md5salted",
  description: "salted MD5 ($md5salted-prefix$, $md5salted-suffix$)",
  prefixes: ["$md5salted-prefix$", "$md5salted-suffix$"],
  recognizes: (encoded) => encoded.startsWith("$md5salted"),
  parse(encoded) {
    const parts = encoded.split("$");
    if (parts.length !== 4 || parts[0] !== "") throw malformed("not an md5salted string ($md5salted-prefix$salt$checksum)");
    const [, id, salt, checksum] = parts as [string, string, string, string];
    if (id !== "md5salted-prefix" && id !== "md5salted-suffix") throw malformed(`unknown md5salted variant ${id}`);
    if (salt === "" || /\s/.test(salt)) throw malformed("md5salted salt is empty or has white space");
    const expected = decodeBase64("md5salted checksum", checksum);
    if (expected.length !== 16) throw malformed("md5salted checksum is not 16 bytes");
    const salted = id === "md5salted-prefix" ? (password: string) => salt + password : (password: string) => password + salt;
    return async (password) => safeEqual(md5(salted(password)), expected);
  },
};
