// The iterated digests of the hand-written password hash algorithms (md5-crypt, sha256/sha512-
// crypt, phpass, Drupal 7), run on a pool of worker threads (digest-pool.ts), so that their
// thousands of rounds of MD5 or SHA-2 never run on the server's event loop: node:crypto has no
// asynchronous form of these constructions.
// Plain CommonJS because worker threads load it directly, under tsx, vitest and the build alike.
// Each task takes the password and salt as strings (hashed as their UTF-8 bytes) and returns the
// final digest as a Uint8Array of its own; the parsing, the output encoding and the constant-time
// comparison stay in crypt.ts and phpass.ts.
"use strict";
const { createHash } = require("node:crypto");

const digest = (algorithm, ...parts) => {
  const hash = createHash(algorithm);
  for (const part of parts) hash.update(part);
  return hash.digest();
};

/** The digest of `part` written `times` times over. */
function repeatedDigest(algorithm, part, times) {
  const hash = createHash(algorithm);
  for (let i = 0; i < times; i++) hash.update(part);
  return hash.digest();
}

/** `length` bytes of `block` repeated (sha-crypt's P and S sequences, md5-crypt's alternate sum). */
const repeatTo = (block, length) => Buffer.concat(Array.from({ length: Math.ceil(length / block.length) }, () => block)).subarray(0, length);

/** A copy the size of the digest: a Buffer's view may share a larger ArrayBuffer, which would be cloned whole. */
const own = (buffer) => new Uint8Array(buffer);

/** Poul-Henning Kamp's md5-crypt (FreeBSD's crypt-md5.c): 1,000 rounds of MD5; the final sum. */
function md5Crypt({ password: passwordText, salt: saltText }) {
  const password = Buffer.from(passwordText);
  const salt = Buffer.from(saltText);
  const alternate = digest("md5", password, salt, password);
  const initial = createHash("md5").update(password).update("$1$").update(salt);
  initial.update(repeatTo(alternate, password.length));
  for (let i = password.length; i > 0; i >>= 1) initial.update(i & 1 ? Buffer.of(0) : password.subarray(0, 1));
  return own(alternatingRounds("md5", 1000, password, salt, initial.digest()));
}

/**
 * The rounds md5-crypt and SHA-crypt share: each hashes the previous sum with the password and,
 * depending on the round's number, the salt, in an order that alternates.
 */
function alternatingRounds(algorithm, rounds, password, salt, sum) {
  for (let i = 0; i < rounds; i++) {
    const round = createHash(algorithm);
    round.update(i & 1 ? password : sum);
    if (i % 3) round.update(salt);
    if (i % 7) round.update(password);
    round.update(i & 1 ? sum : password);
    sum = round.digest();
  }
  return sum;
}

/**
 * Ulrich Drepper's SHA-crypt (https://www.akkadia.org/drepper/SHA-crypt.txt), steps 1–21: the
 * digest C after `rounds` rounds (up to 999,999,999: it holds this worker, not the event loop).
 */
function shaCrypt({ algorithm, password: passwordText, salt: saltText, rounds }) {
  const password = Buffer.from(passwordText);
  const salt = Buffer.from(saltText);
  const b = digest(algorithm, password, salt, password);
  const a = createHash(algorithm).update(password).update(salt).update(repeatTo(b, password.length));
  for (let i = password.length; i > 0; i >>= 1) a.update(i & 1 ? b : password);
  const c = a.digest();
  const p = repeatTo(repeatedDigest(algorithm, password, password.length), password.length);
  const s = repeatTo(repeatedDigest(algorithm, salt, 16 + c[0]), salt.length);
  return own(alternatingRounds(algorithm, rounds, p, s, c));
}

/** phpass's and Drupal 7's loop: `H(salt ‖ password)`, then 2^log2 times `H(previous ‖ password)`. */
function iteratedDigest({ algorithm, password: passwordText, salt, log2 }) {
  const password = Buffer.from(passwordText);
  let sum = createHash(algorithm).update(salt).update(password).digest();
  for (let i = 2 ** log2; i > 0; i--) sum = createHash(algorithm).update(sum).update(password).digest();
  return own(sum);
}

module.exports = { md5Crypt, shaCrypt, iteratedDigest };
