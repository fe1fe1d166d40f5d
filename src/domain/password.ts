import { PasswordErrors } from "./error-catalogue.js";
import bcrypt from "bcrypt";
import { createHashRegistry, type HashRegistry } from "./hashes/index.js";

/** The password complexity policy; userport's default is ZITADEL's instance default. */
export interface PasswordComplexityPolicy {
  minLength: number;
  hasLowercase: boolean;
  hasUppercase: boolean;
  hasNumber: boolean;
  hasSymbol: boolean;
}

export const DEFAULT_COMPLEXITY_POLICY: PasswordComplexityPolicy = {
  minLength: 8,
  hasLowercase: true,
  hasUppercase: true,
  hasNumber: true,
  hasSymbol: true,
};

/**
 * Checks a plaintext password against the policy, in ZITADEL's order and with its error ids.
 *
 * Length counts bytes, as ZITADEL does, and a "symbol" is any character outside [A-Za-z0-9], so
 * non-ASCII letters count as symbols. Hashed passwords are never checked: we cannot see them.
 */
export function checkPasswordComplexity(password: string, policy = DEFAULT_COMPLEXITY_POLICY): void {
  if (Buffer.byteLength(password) < policy.minLength) throw PasswordErrors.tooShort();
  if (policy.hasLowercase && !/[a-z]/.test(password)) throw PasswordErrors.lowerCaseMissing();
  if (policy.hasUppercase && !/[A-Z]/.test(password)) throw PasswordErrors.upperCaseMissing();
  if (policy.hasNumber && !/[0-9]/.test(password)) throw PasswordErrors.numberMissing();
  if (policy.hasSymbol && !/[^A-Za-z0-9]/.test(password)) throw PasswordErrors.symbolMissing();
}

/** bcrypt reads only the first 72 bytes; longer passwords would silently match their prefix. */
const BCRYPT_MAX_PASSWORD_BYTES = 72;

/** Turns plaintext passwords into encoded hashes (bcrypt, on libuv's thread pool). */
export interface PasswordHasher {
  hash(password: string): Promise<string>;
}

export function createBcryptHasher(cost: number): PasswordHasher & { readonly cost: number } {
  return {
    cost,
    async hash(password) {
      if (Buffer.byteLength(password) > BCRYPT_MAX_PASSWORD_BYTES) {
        throw PasswordErrors.tooLongForBcrypt();
      }
      return bcrypt.hash(password, cost);
    },
  };
}

/** Only bcrypt, as ZITADEL with its default (empty) `Verifiers` list. */
export const DEFAULT_HASH_REGISTRY: HashRegistry = createHashRegistry();

/**
 * Checks an imported encoded hash before it is stored, so a user is never created with a hash
 * nobody can verify (ZITADEL stores such hashes and fails at login; we refuse them up front).
 *
 * An encoding no enabled family reads is `USER-JDk4t`; one that does not parse is `CRYPT-r8Qm2`;
 * a cost outside the limits (bcrypt 4–31, see src/domain/hashes/family.ts) is `CRYPT-5uV9n`.
 * With the default registry only bcrypt is accepted.
 */
export function validateEncodedHash(encoded: string, registry: HashRegistry = DEFAULT_HASH_REGISTRY): void {
  registry.validate(encoded);
}
