import { readFileSync } from "node:fs";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { V1, V2 } from "./helpers/clients.js";
import { expectErrorId, expectOk } from "./helpers/expectations.js";
import { useUserport, v1ImportBody } from "./helpers/fixtures.js";

interface Vector {
  id: string;
  family: string;
  encoded: string;
}
const { vectors } = JSON.parse(readFileSync(new URL("./fixtures/hashes/vectors.json", import.meta.url), "utf8")) as {
  vectors: Vector[];
};
const vector = (id: string) => vectors.find((v) => v.id === id)!;

describe("imported hash families follow USERPORT_PASSWORD_VERIFIERS", () => {
  describe("by default (bcrypt only, as ZITADEL's empty Verifiers list)", () => {
    const up = useUserport();

    it.each(["argon2id", "pbkdf2-sha256", "sha512-crypt"])("refuses a %s hash on import with USER-JDk4t", async (id) => {
      const result = await up.caller("rest").call(V1.importHumanUser, v1ImportBody({ hashedPassword: { value: vector(id).encoded } }));
      expectErrorId(result, Code.InvalidArgument, "USER-JDk4t");
    });
  });

  describe("with argon2 and pbkdf2 enabled", () => {
    const up = useUserport({ passwordVerifiers: ["argon2", "pbkdf2"] });

    it.each(["argon2id", "pbkdf2-sha256"])("imports a %s hash made by an independent tool over every API", async (id) => {
      const v1 = expectOk(await up.caller("grpc-js").call(V1.importHumanUser, v1ImportBody({ hashedPassword: { value: vector(id).encoded } })));
      expect(v1.userId).toMatch(/^\d+$/);
      const v2 = expectOk(
        await up.caller("rest").call(V2.addHumanUser, {
          profile: { givenName: "Hash", familyName: "Import" },
          email: { email: `${id}-${Date.now()}@example.com`, isVerified: true },
          hashedPassword: { hash: vector(id).encoded },
        }),
      );
      expect(v2.userId).toMatch(/^\d+$/);
    });

    it("still refuses families that are not enabled", async () => {
      const result = await up.caller("rest").call(V1.importHumanUser, v1ImportBody({ hashedPassword: { value: vector("sha512-crypt").encoded } }));
      expectErrorId(result, Code.InvalidArgument, "USER-JDk4t");
    });
  });
});
