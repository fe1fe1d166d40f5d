/**
 * The bar for imported passwords: for every hash family, a user imported with a hash made
 * by an independent implementation (test/fixtures/hashes/vectors.json) signs in with the right
 * password — and the stored hash becomes bcrypt at the configured cost in the same step — is
 * refused a wrong one with INVALID_ARGUMENT and the failed attempts, and both hold again after
 * the upgrade.
 */
import { readFileSync } from "node:fs";
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { type CallResult, SESSIONS, TRANSPORTS, type TransportName, V1 } from "./helpers/clients.js";
import { expectCode, expectOk } from "./helpers/expectations.js";
import { useUserport, v1ImportBody } from "./helpers/fixtures.js";

interface Vector {
  id: string;
  family: string;
  tool: string;
  password: string;
  wrongPassword: string;
  encoded: string;
}
const fixture = JSON.parse(readFileSync(new URL("./fixtures/hashes/vectors.json", import.meta.url), "utf8")) as {
  families: string[];
  vectors: Vector[];
};

// Every family on, as an operator migrating from several systems would configure it.
const up = useUserport({ passwordVerifiers: fixture.families.filter((name) => name !== "bcrypt") as never });
/** The writing transports, taken in turn so that every one signs in users of several families. */
const WRITERS: readonly TransportName[] = TRANSPORTS.filter((name) => name !== "grpc-web");

function expectRefused(result: CallResult, failedAttempts: number): void {
  const error = expectCode(result, Code.InvalidArgument);
  expect(error.message).toBe("Password is invalid (COMMAND-3M0fs)");
  expect(error.credentialChecks).toEqual([{ id: "COMMAND-3M0fs", message: "Password is invalid", failedAttempts }]);
}

describe("every family of imported hash signs in and is upgraded to bcrypt", () => {
  it("covers every family of the fixtures", () => {
    expect(new Set(fixture.vectors.map((v) => v.family))).toEqual(new Set(fixture.families));
  });

  it.each(fixture.vectors.map((v, i) => [v.id, v.family, v, WRITERS[i % WRITERS.length]!] as const))("%s (%s)", async (_, __, vector, transport) => {
    const imported = expectOk(await up.caller("rest").call(V1.importHumanUser, v1ImportBody({ hashedPassword: { value: vector.encoded } })));
    const userId = String(imported.userId);
    const signIn = (password: string) =>
      up.caller(transport).call(SESSIONS.createSession, { checks: { user: { userId }, password: { password } } } as JsonObject);
    const storedHash = async () =>
      (await up.server.db.selectFrom("users").select("password_hash").where("id", "=", userId).executeTakeFirstOrThrow()).password_hash;

    expectRefused(await signIn(vector.wrongPassword), 1);
    expect(await storedHash()).toBe(vector.encoded);

    const session = expectOk(await signIn(vector.password));
    expect(session.sessionToken).toEqual(expect.any(String));
    const upgraded = await storedHash();
    if (Buffer.byteLength(vector.password) > 72) {
      // bcrypt cannot hold a password this long: the user keeps the hash that verified it.
      expect(upgraded).toBe(vector.encoded);
    } else if (/^\$2[aby]\$04\$/.test(vector.encoded)) {
      // Already bcrypt at the configured cost (4 in tests): nothing to upgrade.
      expect(upgraded).toBe(vector.encoded);
      expect((await up.eventTypes(userId)).at(-1)).toBe("user.human.password.check.succeeded");
    } else {
      expect(upgraded).toMatch(/^\$2b\$04\$[./A-Za-z0-9]{53}$/);
      const events = await up.eventTypes(userId);
      expect(events.slice(-2)).toEqual(["user.human.password.hash.updated", "user.human.password.check.succeeded"]);
    }

    // After the upgrade: the count starts again, a wrong password is still refused, the right
    // one still signs in, and the hash is left as it is.
    expectRefused(await signIn(vector.wrongPassword), 1);
    expectOk(await signIn(vector.password));
    expect(await storedHash()).toBe(upgraded);
  });
});
