/**
 * Firebase Authentication's modified scrypt (https://github.com/firebase/scrypt, README
 * "Password Hashing"): the derived key is scrypt(password, salt ‖ salt separator, N = 2^mem_cost,
 * r = rounds, p = 1, 64 bytes); its first 32 bytes are the AES-256-CTR key (zero IV) that
 * encrypts the project's signer key, and that ciphertext is the user's "passwordHash".
 *
 * Firebase keeps the signer key, salt separator, rounds and mem_cost per project, not per user,
 * so an export's hash cannot be checked on its own. The converter (`userport import --format
 * firebase --hash-key … --salt-separator … --rounds … --mem-cost …`) writes them into every user's
 * hash, in this userport-specific PHC-like notation, so that the verifier needs no server setting:
 *
 *   $firebase-scrypt$m=<mem_cost>,r=<rounds>$<salt>$<salt separator>$<signer key>$<hash>
 *
 * with the four byte strings in standard base64 (padding optional, as Firebase prints them). The
 * signer key is thereby stored with each such user until the first sign-in replaces the hash by
 * bcrypt; it cannot sign anything by itself (Firebase uses it only as this plaintext).
 */
import { createCipheriv } from "node:crypto";
import { checkBounds, decodeBase64, malformed, parseDecimal, safeEqual } from "./codec.js";
import type { HashFamily } from "./family.js";
import { scryptKey } from "./scrypt.js";

export const FIREBASE_SCRYPT_PREFIX = "$firebase-scrypt$";

/** The encoded hash the converter writes; every byte string as standard base64. */
export function encodeFirebaseScrypt(parts: { memCost: number; rounds: number; salt: string; saltSeparator: string; signerKey: string; hash: string }): string {
  const { memCost, rounds, salt, saltSeparator, signerKey, hash } = parts;
  return `${FIREBASE_SCRYPT_PREFIX}m=${memCost},r=${rounds}$${salt}$${saltSeparator}$${signerKey}$${hash}`;
}

export const firebaseScryptFamily: HashFamily = {
  name: "firebase-scrypt",
  description: "Firebase's modified scrypt with the project's parameters ($firebase-scrypt$, written by userport import)",
  prefixes: [FIREBASE_SCRYPT_PREFIX],
  recognizes: (encoded) => encoded.startsWith(FIREBASE_SCRYPT_PREFIX),
  parse(encoded, limits) {
    const parts = encoded.split("$");
    const params = /^m=([0-9]+),r=([0-9]+)$/.exec(parts[2] ?? "");
    if (parts.length !== 7 || !params) {
      throw malformed("not a firebase-scrypt string ($firebase-scrypt$m=,r=$salt$separator$signer key$hash)");
    }
    const memCost = parseDecimal("firebase-scrypt mem_cost", params[1]);
    const rounds = parseDecimal("firebase-scrypt rounds", params[2]);
    const salt = decodeBase64("firebase-scrypt salt", parts[3]!);
    const separator = decodeBase64("firebase-scrypt salt separator", parts[4]!);
    const signerKey = decodeBase64("firebase-scrypt signer key", parts[5]!);
    const hash = decodeBase64("firebase-scrypt hash", parts[6]!);
    if (salt.length === 0) throw malformed("firebase-scrypt salt is empty");
    if (signerKey.length < 16) throw malformed("firebase-scrypt signer key is shorter than 16 bytes");
    if (hash.length !== signerKey.length) throw malformed("firebase-scrypt hash is not as long as the signer key");
    const bounds = limits.firebaseScrypt;
    checkBounds("firebase-scrypt mem_cost", memCost, bounds.minMemCost, bounds.maxMemCost);
    checkBounds("firebase-scrypt rounds", rounds, bounds.minRounds, bounds.maxRounds);
    const fullSalt = Buffer.concat([salt, separator]);
    return async (password) => {
      const derived = await scryptKey(password, fullSalt, memCost, rounds, 1, 64);
      const cipher = createCipheriv("aes-256-ctr", derived.subarray(0, 32), Buffer.alloc(16));
      return safeEqual(Buffer.concat([cipher.update(signerKey), cipher.final()]), hash);
    };
  },
};
