import { HashErrors } from "../error-catalogue.js";
import { argon2Family } from "./argon2.js";
import { aspnetFamily } from "./aspnet.js";
import { bcryptFamily } from "./bcrypt.js";
import { md5CryptFamily, shaCryptFamily } from "./crypt.js";
import { djangoFamily } from "./django.js";
import { DEFAULT_HASH_LIMITS, HASH_FAMILY_NAMES, type Checker, type HashFamily, type HashFamilyName, type HashLimits } from "./family.js";
import { firebaseScryptFamily } from "./firebase.js";
import { ldapArgon2Family, ldapBcryptFamily, ldapCryptFamily, ldapDigestFamily, ldapPbkdf2Family, ldapScryptFamily, sshaFamily } from "./ldap.js";
import { md5PlainFamily, md5SaltedFamily } from "./md5.js";
import { pbkdf2Family } from "./pbkdf2.js";
import { drupal7Family, phpassFamily } from "./phpass.js";
import { scryptFamily } from "./scrypt.js";

/** Every family, by name. Their notations are disjoint, so at most one recognises a string. */
const FAMILIES: Record<HashFamilyName, HashFamily> = {
  bcrypt: bcryptFamily,
  argon2: argon2Family,
  scrypt: scryptFamily,
  pbkdf2: pbkdf2Family,
  md5: md5CryptFamily,
  sha2: shaCryptFamily,
  phpass: phpassFamily,
  drupal7: drupal7Family,
  md5plain: md5PlainFamily,
  md5salted: md5SaltedFamily,
  ssha: sshaFamily,
  "ldap-bcrypt": ldapBcryptFamily,
  "ldap-argon2": ldapArgon2Family,
  "ldap-scrypt": ldapScryptFamily,
  "ldap-pbkdf2": ldapPbkdf2Family,
  "ldap-digest": ldapDigestFamily,
  "ldap-crypt": ldapCryptFamily,
  "firebase-scrypt": firebaseScryptFamily,
  django: djangoFamily,
  aspnet: aspnetFamily,
};

export interface HashRegistryOptions {
  /**
   * The families accepted besides bcrypt, which is always on (ZITADEL's `Verifiers`, whose
   * default is empty). Unknown names throw.
   */
  enabled?: Iterable<HashFamilyName>;
  /** Bounds for the encoded cost parameters; each one left out keeps DEFAULT_HASH_LIMITS. */
  limits?: { [K in keyof HashLimits]?: Partial<HashLimits[K]> };
}

export interface HashFamilyInfo {
  readonly name: HashFamilyName;
  readonly description: string;
  readonly prefixes: readonly string[];
}

/** Recognises, validates and verifies imported password hashes of the enabled families. */
export interface HashRegistry {
  /** The enabled families, in HASH_FAMILY_NAMES order (bcrypt first). */
  families(): HashFamilyInfo[];
  /** The family whose notation `encoded` is in, enabled or not; undefined when none is. */
  identify(encoded: string): HashFamilyName | undefined;
  /**
   * Checks an encoded hash before it is stored, without hashing anything. Throws `USER-JDk4t`
   * for an encoding no enabled family reads, `CRYPT-r8Qm2` for one that does not parse and
   * `CRYPT-5uV9n` for a cost parameter outside the limits.
   */
  validate(encoded: string): void;
  /**
   * Whether `password` matches `encoded`; throws as `validate` does for an encoding it cannot
   * check. Slow families run off the event loop: the bindings and node:crypto's pbkdf2 and scrypt
   * on libuv's thread pool, the hand-written iterated ones on worker threads (digest-pool.ts).
   * Only single-digest families (md5plain, md5salted, {SSHA*}) hash inline: one MD5 or SHA is a
   * few microseconds. Every comparison is constant-time.
   */
  verify(password: string, encoded: string): Promise<boolean>;
}

/**
 * Reads a comma- or space-separated list of family names (e.g. an environment variable); `all`
 * stands for every family, for migrations that bring several.
 */
export function parseHashFamilyList(text: string): HashFamilyName[] {
  const names = text.split(/[\s,]+/).filter((name) => name !== "");
  const unknown = names.filter((name) => name !== "all" && !(HASH_FAMILY_NAMES as readonly string[]).includes(name));
  if (unknown.length > 0) {
    throw new Error(`unknown password hash families: ${unknown.join(", ")} (known: all, ${HASH_FAMILY_NAMES.join(", ")})`);
  }
  return names.includes("all") ? [...HASH_FAMILY_NAMES] : (names as HashFamilyName[]);
}

export function createHashRegistry(options: HashRegistryOptions = {}): HashRegistry {
  const enabled = new Set<HashFamilyName>(["bcrypt"]);
  for (const name of options.enabled ?? []) {
    if (!(name in FAMILIES)) throw new Error(`unknown password hash family ${JSON.stringify(name)}`);
    enabled.add(name);
  }
  const limits = Object.fromEntries(
    Object.entries(DEFAULT_HASH_LIMITS).map(([key, defaults]) => [key, { ...defaults, ...options.limits?.[key as keyof HashLimits] }]),
  ) as unknown as HashLimits;

  const identify = (encoded: string) => HASH_FAMILY_NAMES.find((name) => FAMILIES[name].recognizes(encoded));

  function parse(encoded: string): Checker {
    const name = identify(encoded);
    if (name === undefined) throw HashErrors.encodingNotSupported();
    if (!enabled.has(name)) {
      throw HashErrors.familyNotEnabled(name);
    }
    return FAMILIES[name].parse(encoded, limits);
  }

  return {
    families: () =>
      HASH_FAMILY_NAMES.filter((name) => enabled.has(name)).map((name) => {
        const { description, prefixes } = FAMILIES[name];
        return { name, description, prefixes };
      }),
    identify,
    validate: (encoded) => void parse(encoded),
    verify: async (password, encoded) => parse(encoded)(password),
  };
}
