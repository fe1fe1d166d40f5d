/**
 * Firebase Authentication's modified scrypt (https://github.com/firebase/scrypt, README
 * "Password Hashing"): the derived key is scrypt(password, salt ‖ salt separator, N = 2^mem_cost,
 * r = rounds, p = 1, 64 bytes); its first 32 bytes are the AES-256-CTR key (zero IV) that
 * encrypts the project's signer key, and that ciphertext is the user's "passwordHash".
 *
 * Firebase keeps the signer key, salt separator, rounds and mem_cost per project, not per user,
 * so an export's hash cannot be checked on its own. The converter (`userport import --format
 * firebase --hash-key … --salt-separator … --rounds … --mem-cost …`) writes what the check needs
 * into every user's hash, in this userport-specific PHC-like notation, so that the verifier needs
 * no server setting:
 *
 *   $firebase-scrypt$m=<mem_cost>,r=<rounds>$<salt>$<salt separator>$<keystream>
 *
 * (standard base64, padding optional). CTR encryption is an XOR with the keystream, so
 * passwordHash ⊕ signer key is AES-256-CTR's keystream under the derived key; its first 32 bytes
 * are stored, and a password matches when the keystream it derives starts with them. That is
 * Firebase's own comparison over the first two AES blocks, it keeps the project's signer key out of
 * the user store, and it keeps the string within ZITADEL's 200 characters for `HashedPassword.hash`
 * (the signer key and hash in full would not fit).
 */
import { createCipheriv } from "node:crypto";
import { checkBounds, decodeBase64, malformed, parseDecimal, safeEqual } from "./codec.js";
import type { HashFamily } from "./family.js";
import { scryptKey } from "./scrypt.js";

export const FIREBASE_SCRYPT_PREFIX = "$firebase-scrypt$";
/** How many bytes of the keystream the notation keeps. */
const KEYSTREAM_BYTES = 32;

/**
 * The notation for one exported user: its `passwordHash` and `salt` and the project's hash
 * parameters, as `firebase auth:export` and the console print them (standard base64). Throws an
 * Error naming the field that does not fit.
 */
export function encodeFirebaseScrypt(user: { passwordHash: string; salt: string }, project: FirebaseHashParameters): string {
  const decode = (what: string, text: string) => {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw new Error(`${what} is not base64`);
    return Buffer.from(text, "base64");
  };
  const signerKey = decode("the signer key (--hash-key)", project.signerKey);
  const hash = decode("passwordHash", user.passwordHash);
  const salt = decode("salt", user.salt);
  const separator = decode("the salt separator (--salt-separator)", project.saltSeparator);
  if (signerKey.length < KEYSTREAM_BYTES) throw new Error(`the signer key (--hash-key) is shorter than ${KEYSTREAM_BYTES} bytes`);
  if (hash.length !== signerKey.length) throw new Error("passwordHash is not as long as the signer key (--hash-key)");
  if (salt.length === 0) throw new Error("salt is empty");
  const keystream = Buffer.alloc(KEYSTREAM_BYTES);
  for (let i = 0; i < KEYSTREAM_BYTES; i++) keystream[i] = hash[i]! ^ signerKey[i]!;
  const b64 = (bytes: Buffer) => bytes.toString("base64");
  return `${FIREBASE_SCRYPT_PREFIX}m=${project.memCost},r=${project.rounds}$${b64(salt)}$${b64(separator)}$${b64(keystream)}`;
}

/** A Firebase project's "Password Hash Parameters" (console, Users tab). */
export interface FirebaseHashParameters {
  /** base64_signer_key */
  signerKey: string;
  /** base64_salt_separator */
  saltSeparator: string;
  rounds: number;
  memCost: number;
}

export const firebaseScryptFamily: HashFamily = {
  name: "firebase-scrypt",
  description: "Firebase's modified scrypt with the project's parameters ($firebase-scrypt$, written by userport import)",
  prefixes: [FIREBASE_SCRYPT_PREFIX],
  recognizes: (encoded) => encoded.startsWith(FIREBASE_SCRYPT_PREFIX),
  parse(encoded, limits) {
    const parts = encoded.split("$");
    const params = /^m=([0-9]+),r=([0-9]+)$/.exec(parts[2] ?? "");
    if (parts.length !== 6 || !params) {
      throw malformed("not a firebase-scrypt string ($firebase-scrypt$m=,r=$salt$separator$keystream)");
    }
    const memCost = parseDecimal("firebase-scrypt mem_cost", params[1]);
    const rounds = parseDecimal("firebase-scrypt rounds", params[2]);
    const salt = decodeBase64("firebase-scrypt salt", parts[3]!);
    const separator = decodeBase64("firebase-scrypt salt separator", parts[4]!);
    const expected = decodeBase64("firebase-scrypt keystream", parts[5]!);
    if (salt.length === 0) throw malformed("firebase-scrypt salt is empty");
    if (expected.length !== KEYSTREAM_BYTES) throw malformed(`firebase-scrypt keystream is not ${KEYSTREAM_BYTES} bytes`);
    const bounds = limits.firebaseScrypt;
    checkBounds("firebase-scrypt mem_cost", memCost, bounds.minMemCost, bounds.maxMemCost);
    checkBounds("firebase-scrypt rounds", rounds, bounds.minRounds, bounds.maxRounds);
    const fullSalt = Buffer.concat([salt, separator]);
    return async (password) => {
      const derived = await scryptKey(password, fullSalt, memCost, rounds, 1, 64);
      const cipher = createCipheriv("aes-256-ctr", derived.subarray(0, 32), Buffer.alloc(16));
      return safeEqual(cipher.update(Buffer.alloc(KEYSTREAM_BYTES)), expected);
    };
  },
};
