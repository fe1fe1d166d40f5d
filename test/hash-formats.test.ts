/**
 * Imported password hashes (src/domain/hashes/): every family against known-answer vectors that
 * other implementations made (test/fixtures/hashes/generate.py says which made what), the
 * ZITADEL error for every kind of bad encoding, which families are accepted, and that verifying
 * a slow hash leaves the event loop free.
 */
import { pbkdf2Sync } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { isDomainError } from "../src/domain/errors.js";
import { createHashRegistry, DEFAULT_HASH_LIMITS, HASH_FAMILY_NAMES, type HashFamilyName, parseHashFamilyList } from "../src/domain/hashes/index.js";
import { digestPool } from "../src/domain/hashes/digest-pool.js";
import { validateEncodedHash } from "../src/domain/password.js";

interface Vector {
  id: string;
  family: HashFamilyName;
  tool: string;
  password: string;
  wrongPassword: string;
  encoded: string;
}
interface Invalid {
  family: HashFamilyName;
  error: "CRYPT-r8Qm2" | "CRYPT-5uV9n";
  why: string;
  encoded: string;
}
const fixture = JSON.parse(readFileSync(new URL("./fixtures/hashes/vectors.json", import.meta.url), "utf8")) as {
  families: HashFamilyName[];
  vectors: Vector[];
  slow: Vector[];
  invalid: Invalid[];
  unknown: string[];
};

const everything = createHashRegistry({ enabled: HASH_FAMILY_NAMES });

/** The error id `fn` throws (or rejects with), failing the test if it does not throw a domain error. */
async function errorId(fn: () => unknown): Promise<string> {
  try {
    await fn();
  } catch (err) {
    if (!isDomainError(err)) throw err;
    expect(err.kind).toBe("InvalidArgument");
    return err.id;
  }
  throw new Error("expected a domain error, nothing was thrown");
}

describe("the known-answer fixtures", () => {
  it("cover every family with vectors and with bad encodings, and every cost with an out-of-range one", () => {
    expect(new Set(fixture.families)).toEqual(new Set(HASH_FAMILY_NAMES));
    const withoutCost = new Set<HashFamilyName>(["md5", "md5plain", "md5salted", "ssha", "ldap-digest"]);
    for (const family of HASH_FAMILY_NAMES) {
      expect(
        fixture.vectors.filter((v) => v.family === family),
        family,
      ).not.toHaveLength(0);
      const bad = fixture.invalid.filter((v) => v.family === family);
      expect(
        bad.some((v) => v.error === "CRYPT-r8Qm2"),
        `${family} malformed`,
      ).toBe(true);
      if (!withoutCost.has(family))
        expect(
          bad.some((v) => v.error === "CRYPT-5uV9n"),
          `${family} out of range`,
        ).toBe(true);
    }
  });
});

describe("verifying each family's vectors", () => {
  it("fit in v2's HashedPassword.hash (at most 200 characters, ZITADEL's rule), so the bulk API takes them", () => {
    for (const v of [...fixture.vectors, ...fixture.slow]) expect(v.encoded.length, v.id).toBeLessThanOrEqual(200);
  });

  it.each(fixture.vectors.map((v) => [v.id, v] as const))("%s: right password matches, a wrong one does not", async (_, v) => {
    expect(everything.identify(v.encoded)).toBe(v.family);
    expect(() => everything.validate(v.encoded)).not.toThrow();
    expect(await everything.verify(v.password, v.encoded)).toBe(true);
    expect(await everything.verify(v.wrongPassword, v.encoded)).toBe(false);
  });

  it("tells passwords apart that differ only in their last byte (within bcrypt's 72)", async () => {
    for (const v of fixture.vectors.filter((v) => !v.id.endsWith("-long"))) {
      const last = v.password.slice(-1);
      const other = v.password.slice(0, -1) + (last === "!" ? "?" : "!");
      expect(await everything.verify(other, v.encoded), v.id).toBe(false);
    }
  });

  it("reads only bcrypt's first 72 bytes, like every bcrypt", async () => {
    const v = fixture.vectors.find((v) => v.id === "bcrypt-2b-long")!;
    expect(Buffer.byteLength(v.password)).toBeGreaterThan(72);
    expect(await everything.verify(`${v.password.slice(0, 72)}anything`, v.encoded)).toBe(true);
  });

  it("keeps $2$'s own rule: without the trailing NUL, a short password's $2$ hash is not its $2b$ hash", async () => {
    const v = fixture.vectors.find((v) => v.id === "bcrypt-2b")!;
    expect(await everything.verify(v.password, `$2$${v.encoded.slice(4)}`)).toBe(false);
  });
});

describe("refusing bad encodings", () => {
  it.each(fixture.invalid.map((v) => [v.family, v.why, v.error, v] as const))("%s, %s: %s", async (_, __, error, v) => {
    expect(everything.identify(v.encoded)).toBe(v.family);
    expect(await errorId(() => everything.validate(v.encoded))).toBe(error);
    // verify refuses them the same way, before hashing anything
    expect(await errorId(() => everything.verify("password", v.encoded))).toBe(error);
  });

  it.each(fixture.unknown.map((u) => [JSON.stringify(u), u] as const))(
    "%s, which no family reads, is USER-JDk4t even with every family enabled",
    async (_, encoded) => {
      expect(everything.identify(encoded)).toBeUndefined();
      expect(await errorId(() => everything.validate(encoded))).toBe("USER-JDk4t");
    },
  );
});

describe("which families are accepted", () => {
  const vectorsOf = (family: HashFamilyName) => fixture.vectors.filter((v) => v.family === family);

  it("is bcrypt alone by default, as ZITADEL's empty Verifiers list", async () => {
    const registry = createHashRegistry();
    expect(registry.families().map((f) => f.name)).toEqual(["bcrypt"]);
    for (const v of fixture.vectors) {
      if (v.family === "bcrypt") {
        expect(await registry.verify(v.password, v.encoded), v.id).toBe(true);
        continue;
      }
      expect(registry.identify(v.encoded), v.id).toBe(v.family);
      expect(await errorId(() => registry.validate(v.encoded)), v.id).toBe("USER-JDk4t");
      expect(await errorId(() => registry.verify(v.password, v.encoded)), v.id).toBe("USER-JDk4t");
    }
  });

  it("keeps validateEncodedHash (imports) at bcrypt alone unless given another registry", async () => {
    const argon = vectorsOf("argon2")[0]!;
    expect(await errorId(() => validateEncodedHash(argon.encoded))).toBe("USER-JDk4t");
    expect(() => validateEncodedHash(vectorsOf("bcrypt")[0]!.encoded)).not.toThrow();
    expect(() => validateEncodedHash(argon.encoded, createHashRegistry({ enabled: ["argon2"] }))).not.toThrow();
  });

  it.each(HASH_FAMILY_NAMES.filter((name) => name !== "bcrypt"))("enabling %s accepts it and nothing else but bcrypt", async (family) => {
    const registry = createHashRegistry({ enabled: [family] });
    expect(registry.families().map((f) => f.name)).toEqual(["bcrypt", family]);
    for (const v of fixture.vectors) {
      if (v.family === family || v.family === "bcrypt") {
        expect(() => registry.validate(v.encoded), v.id).not.toThrow();
      } else {
        const error = await errorId(() => registry.validate(v.encoded));
        expect(error, v.id).toBe("USER-JDk4t");
      }
    }
    expect(await registry.verify(vectorsOf(family)[0]!.password, vectorsOf(family)[0]!.encoded)).toBe(true);
  });

  it("says which family is not enabled, in the message after ZITADEL's text", () => {
    try {
      createHashRegistry().validate(vectorsOf("scrypt")[0]!.encoded);
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).toBe("Password hash encoding not supported: scrypt hashes are not enabled");
    }
  });

  it("lists the enabled families with their prefixes, in a fixed order", () => {
    const registry = createHashRegistry({ enabled: ["ssha", "md5plain", "argon2"] });
    expect(registry.families()).toEqual([
      { name: "bcrypt", description: expect.any(String), prefixes: ["$2"] },
      { name: "argon2", description: expect.any(String), prefixes: ["$argon2i$", "$argon2id$"] },
      { name: "md5plain", description: expect.any(String), prefixes: [] },
      { name: "ssha", description: expect.any(String), prefixes: ["{SSHA}", "{SSHA256}", "{SSHA384}", "{SSHA512}"] },
    ]);
  });

  it("reads a configured list of names and refuses unknown ones", () => {
    expect(parseHashFamilyList(" argon2, scrypt md5plain,,ldap-pbkdf2 ")).toEqual(["argon2", "scrypt", "md5plain", "ldap-pbkdf2"]);
    expect(parseHashFamilyList("")).toEqual([]);
    expect(() => parseHashFamilyList("argon2,sha1")).toThrow(/unknown password hash families: sha1/);
    expect(() => createHashRegistry({ enabled: ["nope" as HashFamilyName] })).toThrow(/unknown password hash family/);
  });

  it("reads `all` as every family, and still refuses unknown names beside it", async () => {
    expect(parseHashFamilyList("all")).toEqual([...HASH_FAMILY_NAMES]);
    expect(parseHashFamilyList("argon2, all")).toEqual([...HASH_FAMILY_NAMES]);
    expect(() => parseHashFamilyList("all,sha1")).toThrow(/unknown password hash families: sha1/);
    const registry = createHashRegistry({ enabled: parseHashFamilyList("all") });
    expect(registry.families().map((f) => f.name)).toEqual([...HASH_FAMILY_NAMES]);
    for (const v of fixture.vectors) expect(() => registry.validate(v.encoded), v.id).not.toThrow();
  });
});

describe("limits", () => {
  it("default to newest ZITADEL's, with bcrypt's own 4-31 and argon2 from Keycloak's 7168 KiB", () => {
    expect(DEFAULT_HASH_LIMITS).toEqual({
      bcrypt: { minCost: 4, maxCost: 31 },
      // ZITADEL's is 8192 KiB; 7168 is Keycloak's default (see family.ts)
      argon2: { minTime: 1, maxTime: 10, minMemory: 7168, maxMemory: 524288, minThreads: 1, maxThreads: 16 },
      scrypt: { minLN: 14, maxLN: 20, minR: 8, maxR: 32, minP: 1, maxP: 16 },
      pbkdf2: { minRounds: 1000, maxRounds: 10_000_000 },
      sha2: { minRounds: 1000, maxRounds: 999_999_999 },
      phpass: { minRounds: 7, maxRounds: 31 },
      drupal7: { minIterations: 1000, maxIterations: 500_000 },
      firebaseScrypt: { minRounds: 1, maxRounds: 8, minMemCost: 1, maxMemCost: 14 },
    });
  });

  it("can be narrowed: ZITADEL's bcrypt 10-16 refuses the cost-8 vector", async () => {
    const v = fixture.vectors.find((v) => v.id === "bcrypt-2b-cost8")!;
    const zitadel = createHashRegistry({ limits: { bcrypt: { minCost: 10, maxCost: 16 } } });
    expect(await errorId(() => zitadel.validate(v.encoded))).toBe("CRYPT-5uV9n");
    expect(await createHashRegistry().verify(v.password, v.encoded)).toBe(true);
  });

  it("can be widened: the out-of-range Drupal and phpass hashes are real and then verify", async () => {
    const wide = createHashRegistry({
      enabled: ["drupal7", "phpass"],
      limits: { drupal7: { minIterations: 128 }, phpass: { minRounds: 6 } },
    });
    const drupal = fixture.invalid.find((v) => v.family === "drupal7" && v.why.startsWith("2^9"))!;
    const phpass = fixture.invalid.find((v) => v.family === "phpass" && v.why.startsWith("2^6"))!;
    // generate.py made both from "correct horse battery staple"
    expect(await wide.verify("correct horse battery staple", drupal.encoded)).toBe(true);
    expect(await wide.verify("correct horse battery staple", phpass.encoded)).toBe(true);
  });
});

/**
 * Starts `work`, then counts turns of the event loop (a chain of setImmediate callbacks) until it
 * settles. A verification that computes on the calling thread finishes before the first turn and
 * counts 0; one on libuv's thread pool or on the digest worker threads lets the loop turn.
 * This counts turns, not milliseconds, so a slow or busy machine does not change the outcome.
 */
async function turnsWhile<T>(work: () => Promise<T>): Promise<{ result: T; turns: number }> {
  let turns = 0;
  let done = false;
  const pending = work();
  const spin = () => {
    if (done) return;
    turns++;
    setImmediate(spin);
  };
  setImmediate(spin);
  try {
    return { result: await pending, turns };
  } finally {
    done = true;
  }
}

describe("verifying slow hashes leaves the event loop running", () => {
  it("(the check itself: a verification on the calling thread lets no turn pass)", async () => {
    const blocking = async () => pbkdf2Sync("password", "salt", 200_000, 32, "sha512").length > 0;
    const { result, turns } = await turnsWhile(blocking);
    expect(result).toBe(true);
    expect(turns).toBe(0);
  });

  it.each(fixture.slow.map((v) => [v.id, v] as const))("%s", async (_, v) => {
    const { result, turns } = await turnsWhile(() => everything.verify(v.password, v.encoded));
    expect(result).toBe(true);
    expect(turns).toBeGreaterThan(0);
  });
});

/**
 * A verification that yielded between slices would let the loop turn too, while still taking the
 * main thread for every round. So the hand-written families are shown to run as tasks of the
 * digest pool: tinypool counts each task a worker thread completed, before it settles the task's
 * promise. (A fast check may come back from its worker before the loop reaches a setImmediate, so
 * turns are counted for the slow vectors only, above.)
 */
describe("the hand-written iterated families verify on worker threads", () => {
  const ON_WORKERS = new Set<HashFamilyName>(["md5", "sha2", "phpass", "drupal7"]);
  const all = [...fixture.vectors, ...fixture.slow];

  it.each(all.filter((v) => ON_WORKERS.has(v.family)).map((v) => [v.id, v] as const))("%s: one task on the digest pool per check", async (_, v) => {
    const before = digestPool().completed;
    expect(await everything.verify(v.password, v.encoded)).toBe(true);
    expect(digestPool().completed).toBe(before + 1);
    expect(await everything.verify(v.wrongPassword, v.encoded)).toBe(false);
    expect(digestPool().completed).toBe(before + 2);
  });

  it("runs concurrent checks side by side, each to its own answer", async () => {
    const handWritten = fixture.vectors.filter((v) => ON_WORKERS.has(v.family));
    const before = digestPool().completed;
    const results = await Promise.all(handWritten.flatMap((v) => [everything.verify(v.password, v.encoded), everything.verify(v.wrongPassword, v.encoded)]));
    expect(results).toEqual(handWritten.flatMap(() => [true, false]));
    expect(digestPool().completed).toBe(before + 2 * handWritten.length);
  });

  it.each(fixture.vectors.filter((v) => ["md5plain", "md5salted", "ssha", "ldap-digest"].includes(v.family)).map((v) => [v.id, v] as const))(
    "%s: a single digest, computed inline (no task)",
    async (_, v) => {
      const before = digestPool().completed;
      expect(await everything.verify(v.password, v.encoded)).toBe(true);
      expect(digestPool().completed).toBe(before);
    },
  );
});
