import { createCipheriv, createDecipheriv, createHash, randomBytes, randomInt } from "node:crypto";

const UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER = "abcdefghijklmnopqrstuvwxyz";
const DIGITS = "0123456789";

/** How a kind of one-time code looks and how long it lives (ZITADEL's default generators). */
export interface CodeGenerator {
  readonly length: number;
  readonly alphabet: string;
  readonly expirySeconds: number;
}

export const CODE_GENERATORS = {
  init: { length: 6, alphabet: UPPER + DIGITS, expirySeconds: 72 * 3600 },
  email: { length: 6, alphabet: UPPER + DIGITS, expirySeconds: 3600 },
  phone: { length: 6, alphabet: UPPER + DIGITS, expirySeconds: 3600 },
  passwordless: { length: 12, alphabet: LOWER + UPPER + DIGITS, expirySeconds: 3600 },
  /** ZITADEL's PasswordVerificationCode generator (password reset). */
  password: { length: 6, alphabet: UPPER + DIGITS, expirySeconds: 3600 },
} as const satisfies Record<string, CodeGenerator>;

export type CodeKind = keyof typeof CODE_GENERATORS;

/** A uniformly random code from the generator's alphabet (rejection-free via randomInt). */
export function generateCode(generator: CodeGenerator): string {
  let code = "";
  for (let i = 0; i < generator.length; i++) code += generator.alphabet[randomInt(generator.alphabet.length)];
  return code;
}

/** A new bearer token: 32 random bytes, base64url. Only its digest is ever stored. */
export function generateToken(): string {
  return randomBytes(32).toString("base64url");
}

/** The stored form of a token: tokens are high-entropy, so a plain SHA-256 is enough. */
export function tokenDigest(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** Encrypts codes at rest (AES-256-GCM), so they can still be mailed later, unlike a hash. */
export interface SecretBox {
  seal(plaintext: string): string;
  open(sealed: string): string;
}

export function createSecretBox(key: Buffer): SecretBox {
  if (key.length !== 32) throw new Error("the encryption key must be 32 bytes");
  return {
    seal(plaintext) {
      const iv = randomBytes(12);
      const cipher = createCipheriv("aes-256-gcm", key, iv);
      const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
      return Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64");
    },
    open(sealed) {
      const raw = Buffer.from(sealed, "base64");
      const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, 12));
      decipher.setAuthTag(raw.subarray(12, 28));
      return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString("utf8");
    },
  };
}
