/**
 * The request validation from the protos' protoc-gen-validate annotations (src/edge/validation.ts),
 * over real protocols: the rule kinds ZITADEL's protos use, nested and repeated messages, and
 * where it runs in ZITADEL's interceptor chain (internal/api/grpc/server/middleware:
 * auth_interceptor.go, then validation_interceptor.go): authentication and a permission the RPC
 * declares come first, the command's own permission checks after.
 * Expected texts are PGV's Go templates (protoc-gen-validate templates/goshared/*.go) and Go's
 * net/mail errors, as ZITADEL returns them: InvalidArgument, no ZITADEL error id.
 */
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { emailError, goDuration, PLAIN_ADDRESS, parsedEmailError } from "../src/edge/validation.js";
import { SESSIONS, type TransportName, V1, V2 } from "./helpers/clients.js";
import { expectCode, expectPgvError, expectZitadelError, pgvEmbedded, pgvLength } from "./helpers/expectations.js";
import { createApiCaller, uniqueName, useUserport, v1AddBody, v1ImportBody, v2AddBody } from "./helpers/fixtures.js";

const TRANSPORTS: TransportName[] = ["grpc-js", "rest"];

describe("PGV validation", () => {
  const up = useUserport();

  describe.each(TRANSPORTS)("rule kinds over %s", (transport) => {
    const call = (...args: Parameters<ReturnType<typeof up.caller>["call"]>) => up.caller(transport).call(...args);

    it("reports the first violation in field order: the username before the missing profile", async () => {
      const result = await call(V1.importHumanUser, { userName: "", email: { email: "a@example.com" } });
      expectPgvError(result, pgvLength("ImportHumanUserRequest.UserName", 1, 200));
      const noProfile = await call(V1.importHumanUser, { userName: uniqueName("x"), email: { email: "a@example.com" } });
      expectPgvError(noProfile, "invalid ImportHumanUserRequest.Profile: value is required");
    });

    it('checks a prefix inside an embedded message (AddHumanUserRequest_Phone.Phone, prefix "+")', async () => {
      const result = await call(V1.addHumanUser, v1AddBody({ phone: { phone: "0791234567" } }));
      expectPgvError(result, pgvEmbedded("AddHumanUserRequest.Phone", 'invalid AddHumanUserRequest_Phone.Phone: value does not have prefix "+"'));
      const long = await call(V1.addHumanUser, v1AddBody({ phone: { phone: `+${"1".repeat(50)}` } }));
      expectPgvError(long, pgvEmbedded("AddHumanUserRequest.Phone", pgvLength("AddHumanUserRequest_Phone.Phone", 1, 50)));
    });

    it("refuses an enum number the enum does not define (defined_only)", async () => {
      const result = await call(V1.addMachineUser, { userName: uniqueName("m"), name: "machine", accessTokenType: 7 });
      expectPgvError(result, "invalid AddMachineUserRequest.AccessTokenType: value must be one of the defined enum values");
    });

    it("names the index of a failing repeated message and nests embedded failures", async () => {
      const result = await call(V1.listOrgMembers, { queries: [{ userIdQuery: { userId: "1" } }, {}] });
      expectPgvError(result, pgvEmbedded("ListOrgMembersRequest.Queries[1]", "invalid SearchQuery.Query: value is required"));
      const nested = await call(V1.listUsers, {
        queries: [{ andQuery: { queries: [{ notQuery: { query: { userNameQuery: { userName: "x".repeat(201) } } } }] } }],
      });
      expectPgvError(
        nested,
        pgvEmbedded(
          "ListUsersRequest.Queries[0]",
          pgvEmbedded(
            "SearchQuery.AndQuery",
            pgvEmbedded(
              "AndQuery.Queries[0]",
              pgvEmbedded(
                "SearchQuery.NotQuery",
                pgvEmbedded("NotQuery.Query", pgvEmbedded("SearchQuery.UserNameQuery", pgvLength("UserNameQuery.UserName", 0, 200))),
              ),
            ),
          ),
        ),
      );
    });

    it("counts bytes for a bytes field inside a repeated v2 message (SetMetadataEntry.Value)", async () => {
      const result = await call(V2.addHumanUser, v2AddBody({ metadata: [{ key: "k", value: "" }] }));
      expectPgvError(
        result,
        pgvEmbedded("AddHumanUserRequest.Metadata[0]", "invalid SetMetadataEntry.Value: value length must be between 1 and 500000 bytes, inclusive"),
      );
    });

    it("lets an unset proto3 optional field pass and checks a set one (AddHumanUserRequest.UserId)", async () => {
      const result = await call(V2.addHumanUser, v2AddBody({ userId: "" }));
      expectPgvError(result, pgvLength("AddHumanUserRequest.UserId", 1, 200));
    });
  });

  describe("rule kinds over grpc-js only (no REST binding in the test client)", () => {
    const call = (...args: Parameters<ReturnType<typeof up.caller>["call"]>) => up.caller("grpc-js").call(...args);

    it("ignore_empty: an empty new email is not checked, a too long one is (ResendHumanInitializationRequest.Email)", async () => {
      // Past validation, the unknown user is the handler's answer.
      expectZitadelError(
        await call(V1.resendHumanInitialization, { userId: "no-such-user", email: "" }),
        Code.NotFound,
        "COMMAND-2M9df",
        "User could not be found",
      );
      expectPgvError(
        await call(V1.resendHumanInitialization, { userId: "no-such-user", email: "x".repeat(201) }),
        pgvLength("ResendHumanInitializationRequest.Email", 1, 200),
      );
    });

    it('min_len alone: "value length must be at least 1 runes" (AddPersonalAccessTokenRequest.UserId)', async () => {
      expectPgvError(
        await call(V1.addPersonalAccessToken, { userId: "" }),
        "invalid AddPersonalAccessTokenRequest.UserId: value length must be at least 1 runes",
      );
    });

    it("repeated items with string rules (BulkRemoveUserMetadataRequest.Keys[1])", async () => {
      const result = await call(V1.bulkRemoveUserMetadata, { id: "1", keys: ["a", ""] });
      expectPgvError(result, pgvLength("BulkRemoveUserMetadataRequest.Keys[1]", 1, 200));
    });

    it("email: Go's net/mail reason after PGV's text (SetEmailRequest.Email)", async () => {
      const user = await call(V2.addHumanUser, v2AddBody());
      expect(user.ok).toBe(true);
      const userId = user.ok ? String(user.json.userId) : "";
      expectPgvError(
        await call(V2.setEmail, { userId, email: "not-an-email" }),
        "invalid SetEmailRequest.Email: value must be a valid email address | caused by: mail: missing '@' or angle-addr",
      );
      expectPgvError(
        await call(V2.setEmail, { userId, email: "bob@-example.com" }),
        "invalid SetEmailRequest.Email: value must be a valid email address | caused by: hostname parts cannot begin with hyphens",
      );
    });

    it("a required oneof left unset (CheckUser.Search) inside optional embedded messages", async () => {
      const result = await up.caller("grpc-js").call(SESSIONS.createSession, { checks: { user: {} } });
      expectPgvError(result, pgvEmbedded("CreateSessionRequest.Checks", pgvEmbedded("Checks.User", "invalid CheckUser.Search: value is required")));
    });
  });

  describe.each(TRANSPORTS)("order over %s: authentication and declared permissions first", (transport) => {
    const call = (...args: Parameters<ReturnType<typeof up.caller>["call"]>) => up.caller(transport).call(...args);

    it("answers an unauthenticated invalid request with UNAUTHENTICATED, not the PGV error", async () => {
      const result = await call(V1.addMachineUser, { userName: "" }, { token: null });
      expectCode(result, Code.Unauthenticated);
    });

    it("v1: a caller without the declared permission gets AUTH-5mWD2 for an invalid request", async () => {
      const stranger = await createApiCaller(up, undefined);
      const result = await call(V1.addMachineUser, { userName: "", name: "" }, { token: stranger.token });
      expectCode(result, Code.PermissionDenied);
      expect(result.ok ? [] : result.error.details.map((d) => d.id)).toEqual(["AUTH-5mWD2"]);
    });

    it("v2 with a declared permission on the request's organisation (AddHumanUser): permission first", async () => {
      const stranger = await createApiCaller(up, undefined);
      const result = await call(V2.addHumanUser, v2AddBody({ username: "", organization: { orgId: up.defaultOrgId } }), { token: stranger.token });
      expectCode(result, Code.PermissionDenied);
    });

    it('v2 that checks in the command (GetUserByID, "authenticated"): validation first', async () => {
      const stranger = await createApiCaller(up, undefined);
      const result = await call(V2.getUserByID, { userId: "1".repeat(201) }, { token: stranger.token });
      expectPgvError(result, pgvLength("GetUserByIDRequest.UserId", 1, 200));
    });

    it("a valid request of a permitted caller reaches the handler", async () => {
      const body = v1ImportBody();
      const result = await call(V1.importHumanUser, body);
      expect(result.ok, JSON.stringify(result)).toBe(true);
    });
  });

  it("v2 CreateUser validates before its command-level user.write check (grpc-js)", async () => {
    const stranger = await createApiCaller(up, undefined);
    const call = up.caller("grpc-js").call.bind(up.caller("grpc-js"));
    const invalid = await call(V2.createUser, { organizationId: up.defaultOrgId }, { token: stranger.token });
    expectPgvError(invalid, "invalid CreateUserRequest.UserType: value is required");
    const valid = await call(V2.createUser, { organizationId: up.defaultOrgId, machine: { name: "robot" } }, { token: stranger.token });
    expectCode(valid, Code.PermissionDenied);
  });
});

describe("PGV helpers", () => {
  it("prints durations as Go's time.Duration does", () => {
    expect(goDuration(0n)).toBe("0s");
    expect(goDuration(1_500_000_000n)).toBe("1.5s");
    expect(goDuration(300_000_000n)).toBe("300ms");
    expect(goDuration(90_000_000_000n)).toBe("1m30s");
    expect(goDuration(3_600_000_000_000n)).toBe("1h0m0s");
    expect(goDuration(-2_000n)).toBe("-2µs");
  });

  it("accepts what Go's net/mail.ParseAddress accepts and checks the domain as PGV does", () => {
    expect(emailError("bob@example.com")).toBeUndefined();
    expect(emailError("Bob <bob@example.com>")).toBeUndefined();
    expect(emailError('"Bob Smith" <bob@example.com>')).toBeUndefined();
    expect(emailError("bob@example.com (Bob)")).toBeUndefined();
    expect(emailError("")).toBe("mail: no address");
    expect(emailError("Bob Smith")).toBe("mail: no angle-addr");
    expect(emailError("<bob@example.com")).toBe("mail: unclosed angle-addr");
    expect(emailError("bob@example.com, eve@example.com")).toBe('mail: expected single address, got ", eve@example.com"');
    expect(emailError("bob@exa_mple.com")).toBe('hostname parts can only contain alphanumeric characters or hyphens, got "_"');
    expect(emailError(`${"b".repeat(65)}@example.com`)).toBe("email address local phrase cannot exceed 64 characters");
  });

  it("answers every address as the full parser does, the plain ones without it", () => {
    // Seeded, so a failure can be reproduced: addresses built from the characters where plain
    // and not plain meet (dots, hyphens, specials, spaces, non-ASCII, long labels and parts).
    let seed = 20261207;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const pieces = [
      "a",
      "Z",
      "0",
      "9",
      ".",
      "-",
      "_",
      "+",
      "'",
      "{",
      "~",
      "@",
      " ",
      '"',
      "(",
      ")",
      "<",
      ">",
      "[",
      "]",
      ",",
      ";",
      ":",
      "\\",
      "é",
      "x".repeat(63),
      "y".repeat(64),
    ];
    const part = (max: number) => Array.from({ length: 1 + random(max) }, () => pieces[random(pieces.length)]).join("");
    const plainPart = (max: number) => Array.from({ length: 1 + random(max) }, () => ["b", "7", "-", ".", "_"][random(5)]).join("");
    let plain = 0;
    for (let n = 0; n < 20000; n++) {
      const address = n % 2 === 0 ? `${part(6)}@${part(6)}` : `${plainPart(12)}@${plainPart(20)}.${["com", "ch", "x-y", "-a", "a-"][random(5)]}`;
      const fast = address.length <= 254 && PLAIN_ADDRESS.test(address) && address.indexOf("@") <= 64;
      if (fast) {
        plain++;
        expect(parsedEmailError(address), address).toBeUndefined();
      }
      expect(emailError(address), address).toBe(parsedEmailError(address));
    }
    // Both kinds were tried, many times each.
    expect(plain).toBeGreaterThan(200);
    expect(plain).toBeLessThan(19000);
    expect(PLAIN_ADDRESS.test(`${"b".repeat(65)}@example.com`)).toBe(true);
    expect(emailError(`${"b".repeat(65)}@example.com`)).toBe("email address local phrase cannot exceed 64 characters");
  });
});
