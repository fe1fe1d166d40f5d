/**
 * The names an operator can enable. Those ZITADEL knows (its `SystemDefaults.PasswordHasher.Verifiers`)
 * keep ZITADEL's names, so a ZITADEL configuration carries over: `md5` is md5-crypt (`$1$`) and
 * `sha2` is sha256/sha512-crypt (`$5$`/`$6$`). The `ssha` and `ldap-*` families are the LDAP
 * `{SCHEME}` forms PingOne, PingDirectory and OpenLDAP export, which ZITADEL does not read;
 * `firebase-scrypt`, `django` and `aspnet` are the notations of those systems. The order is the
 * order in which the registry tries them: `aspnet` (bare base64) comes after `md5plain` (bare hex).
 */
export const HASH_FAMILY_NAMES = [
  "bcrypt",
  "argon2",
  "scrypt",
  "pbkdf2",
  "md5",
  "sha2",
  "phpass",
  "drupal7",
  "md5plain",
  "md5salted",
  "ssha",
  "ldap-bcrypt",
  "ldap-argon2",
  "ldap-scrypt",
  "ldap-pbkdf2",
  "ldap-digest",
  "ldap-crypt",
  "firebase-scrypt",
  "django",
  "aspnet",
] as const;

export type HashFamilyName = (typeof HASH_FAMILY_NAMES)[number];

/** Checks a password against one parsed encoded hash; resolves to whether it matches. */
export type Checker = (password: string) => Promise<boolean>;

/** One way of encoding password hashes. */
export interface HashFamily {
  readonly name: HashFamilyName;
  /** One line for listings. */
  readonly description: string;
  /** The prefixes it recognises (md5plain has none: it takes bare hex). */
  readonly prefixes: readonly string[];
  /** Whether `encoded` is in this family's notation: a prefix test, nothing more. */
  recognizes(encoded: string): boolean;
  /**
   * Parses a recognised encoding and checks its parameters against `limits`; throws
   * `CRYPT-r8Qm2` (malformed) or `CRYPT-5uV9n` (out of bounds). Cheap: no hashing.
   */
  parse(encoded: string, limits: HashLimits): Checker;
}

/** Bounds for the cost parameters carried in an encoded hash (ZITADEL's `HashLimitsConfig`). */
export interface HashLimits {
  bcrypt: { minCost: number; maxCost: number };
  /** memory in KiB, as the PHC string writes it */
  argon2: { minTime: number; maxTime: number; minMemory: number; maxMemory: number; minThreads: number; maxThreads: number };
  /** ln is log2(N) */
  scrypt: { minLN: number; maxLN: number; minR: number; maxR: number; minP: number; maxP: number };
  pbkdf2: { minRounds: number; maxRounds: number };
  sha2: { minRounds: number; maxRounds: number };
  /** log2 of the iteration count, as the character after `$P$`/`$H$` encodes it */
  phpass: { minRounds: number; maxRounds: number };
  /** the iteration count itself; the encoding stores its log2, so only powers of two occur */
  drupal7: { minIterations: number; maxIterations: number };
  /** Firebase's per-project parameters: rounds is scrypt's r, mem_cost is log2 of N (p is 1) */
  firebaseScrypt: { minRounds: number; maxRounds: number; minMemCost: number; maxMemCost: number };
}

/**
 * The bounds of newest ZITADEL's `ValidateEncodedHash` (ZITADEL's internal/crypto/passwap.go, github.com/zitadel/passwap), except bcrypt.
 *
 * bcrypt: ZITADEL allows cost 10–16. We keep bcrypt's own range, 4–31 (what the `bcrypt`
 * binding computes, and what userport has accepted from the start), because migrations bring
 * hashes made below 10 (older PHP, Node and Rails apps used 8 and less), and refusing them would
 * lock those users out instead of rehashing them at their first sign-in.
 *
 * drupal7: ZITADEL counts iterations (1,000–500,000); the encoding holds log2 of the count, so
 * this admits 2^10–2^18, which covers Drupal 7's default 2^15 and Drupal 8+'s 2^16.
 *
 * argon2: ZITADEL's lower memory bound is 8,192 KiB; we take 7,168 KiB, Keycloak's default
 * (org.keycloak.crypto.hash.Argon2Parameters: m=7168, t=5, p=1, OWASP's second recommended
 * setting), so that users of a Keycloak realm with argon2 hashing can sign in after a migration.
 *
 * firebaseScrypt: the ranges Firebase accepts for a project's hash configuration (firebase-admin's
 * user-import-builder: rounds 1–8, memoryCost 1–14); N = 2^14 with r = 8 is 16 MiB at most.
 */
export const DEFAULT_HASH_LIMITS: HashLimits = {
  bcrypt: { minCost: 4, maxCost: 31 },
  argon2: { minTime: 1, maxTime: 10, minMemory: 7168, maxMemory: 524_288, minThreads: 1, maxThreads: 16 },
  scrypt: { minLN: 14, maxLN: 20, minR: 8, maxR: 32, minP: 1, maxP: 16 },
  pbkdf2: { minRounds: 1000, maxRounds: 10_000_000 },
  sha2: { minRounds: 1000, maxRounds: 999_999_999 },
  phpass: { minRounds: 7, maxRounds: 31 },
  drupal7: { minIterations: 1000, maxIterations: 500_000 },
  firebaseScrypt: { minRounds: 1, maxRounds: 8, minMemCost: 1, maxMemCost: 14 },
};
