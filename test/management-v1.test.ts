/**
 * zitadel.management.v1.ManagementService — ImportHumanUser, AddHumanUser and GetUserByID —
 * through every transport, against ZITADEL's documented behaviour (ZITADEL's internal/api/grpc/management/user.go,
 * internal/command/user_human.go, user_human_init.go).
 */
import { randomBytes } from "node:crypto";
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { type CallOptions, TRANSPORTS, V1, V2 } from "./helpers/clients.js";
import { expectErrorId, expectNotLeaked, expectOk, expectPgvError, expectZitadelError, pgvEmbedded, pgvLength } from "./helpers/expectations.js";
import { bcryptHash, GOOD_PASSWORD, RFC3339, uniqueEmail, uniqueName, USER_ID, useUserport, v1AddBody, v1ImportBody } from "./helpers/fixtures.js";

const up = useUserport();
const HASH = bcryptHash("imported-Passw0rd!");

/** Weak plaintext passwords and the policy rule each breaks first (§3.1, default policy). */
const WEAK_PASSWORDS = [
  ["Ab1!xyz", "COMMA-HuJf6", "Password is too short"],
  ["ABCDEFG1!", "COMMA-co3Xw", "Password must contain lower case"],
  ["abcdefg1!", "COMMA-VoaRj", "Password must contain upper case"],
  ["Abcdefgh!", "COMMA-ZBv4H", "Password must contain number"],
  ["Abcdefg12", "COMMA-ZDLwA", "Password must contain symbol"],
] as const;

describe.each(TRANSPORTS)("ManagementService over %s", (transport) => {
  const t = () => up.caller(transport);
  const importUser = (body: JsonObject, options?: CallOptions) => t().call(V1.importHumanUser, body, options);
  const addUser = (body: JsonObject, options?: CallOptions) => t().call(V1.addHumanUser, body, options);
  const getV1 = async (id: string) => expectOk(await t().call(V1.getUserByID, { id }), 200).user as JsonObject;
  const getV2 = async (userId: string) => expectOk(await t().call(V2.getUserByID, { userId }), 200).user as JsonObject;
  const human = (user: JsonObject) => user.human as Record<string, JsonObject>;

  describe("ImportHumanUser", () => {
    it("imports a user with a verified email and a bcrypt hash as ACTIVE; sequence 2 = added + email verified", async () => {
      const body = v1ImportBody({ hashedPassword: { value: HASH } });
      const before = Date.now();
      const result = await importUser(body);
      const res = expectOk(result, 200);

      expect(Object.keys(res).sort()).toEqual(["details", "userId"]);
      expect(res.userId).toMatch(USER_ID);
      const details = res.details as JsonObject;
      expect(Object.keys(details).sort()).toEqual(["changeDate", "creationDate", "resourceOwner", "sequence"]);
      expect(details.sequence).toBe("2");
      expect(details.resourceOwner).toBe(up.defaultOrgId);
      expect(details.creationDate).toMatch(RFC3339);
      expect(Date.parse(details.creationDate as string)).toBeGreaterThanOrEqual(before - 1000);
      expect(Date.parse(details.creationDate as string)).toBeLessThanOrEqual(Date.now() + 1000);
      expect(await up.eventTypes(res.userId as string)).toEqual(["user.human.added", "user.human.email.verified"]);
      expectNotLeaked(result, HASH);

      const user = await getV1(res.userId as string);
      expect(user.state).toBe("USER_STATE_ACTIVE");
      expect(human(user).email).toEqual({ email: (body.email as JsonObject).email, isEmailVerified: true });
      expect(human(user).passwordChanged).toMatch(RFC3339);
      expect(JSON.stringify(user)).not.toContain(HASH);
    });

    it("reads the import back: id, details, login names, profile, E.164 phone", async () => {
      const userName = uniqueName("Minnie.Mouse");
      const email = uniqueEmail("minnie");
      const res = expectOk(
        await importUser({
          userName,
          profile: { firstName: "Minnie", lastName: "Mouse", nickName: "Mini", preferredLanguage: "en", gender: "GENDER_FEMALE" },
          email: { email, isEmailVerified: true },
          phone: { phone: "+41 71 000 00 00", isPhoneVerified: true },
          hashedPassword: { value: HASH },
        }),
      );
      const user = await getV1(res.userId as string);
      expect(user).toMatchObject({
        id: res.userId,
        details: { sequence: "3", resourceOwner: up.defaultOrgId, creationDate: (res.details as JsonObject).creationDate },
        state: "USER_STATE_ACTIVE",
        userName,
        loginNames: [userName],
        preferredLoginName: userName,
      });
      expect(human(user).profile).toEqual({
        firstName: "Minnie",
        lastName: "Mouse",
        nickName: "Mini",
        displayName: "Minnie Mouse",
        preferredLanguage: "en",
        gender: "GENDER_FEMALE",
      });
      expect(human(user).phone).toEqual({ phone: "+41710000000", isPhoneVerified: true });
    });

    it("starts INITIAL with only an init code when the email is unverified, even with a password", async () => {
      const res = expectOk(await importUser(v1ImportBody({ email: { email: uniqueEmail(), isEmailVerified: false }, hashedPassword: { value: HASH } })));
      expect((res.details as JsonObject).sequence).toBe("2");
      expect(await up.eventTypes(res.userId as string)).toEqual(["user.human.added", "user.human.initialization.code.added"]);
      const user = await getV1(res.userId as string);
      expect(user.state).toBe("USER_STATE_INITIAL");
      expect(human(user).email!.isEmailVerified).toBeUndefined();
    });

    it("starts INITIAL and drops isEmailVerified when there is neither password nor passwordless (zitadel/zitadel#8422)", async () => {
      const res = expectOk(await importUser(v1ImportBody()));
      expect((res.details as JsonObject).sequence).toBe("2");
      expect(await up.eventTypes(res.userId as string)).toEqual(["user.human.added", "user.human.initialization.code.added"]);
      const user = await getV1(res.userId as string);
      expect(user.state).toBe("USER_STATE_INITIAL");
      expect(human(user).email!.isEmailVerified).toBeUndefined();
      expect(human(user).passwordChanged).toBeUndefined();
    });

    it("starts ACTIVE with passwordless registration and no password, returning a one-hour registration link", async () => {
      const res = expectOk(await importUser(v1ImportBody({ requestPasswordlessRegistration: true })));
      expect(Object.keys(res).sort()).toEqual(["details", "passwordlessRegistration", "userId"]);
      const registration = res.passwordlessRegistration as JsonObject;
      expect(registration.lifetime).toBe("3600s");
      expect(registration.expiration).toBe("3600s");
      const link = new RegExp(
        `^https?://[^/]+/ui/login/login/passwordless/init\\?userID=${res.userId}&orgID=${up.defaultOrgId}&codeID=\\d+&code=[A-Za-z0-9]{12}$`,
      );
      expect(registration.link).toMatch(link);
      expect((await getV1(res.userId as string)).state).toBe("USER_STATE_ACTIVE");
    });

    it("ignores otpCode, as ZITADEL does (UNCONFIRMED for the newest code)", async () => {
      const res = expectOk(await importUser(v1ImportBody({ hashedPassword: { value: HASH }, otpCode: "JBSWY3DPEHPK3PXP" })));
      expect((res.details as JsonObject).sequence).toBe("2");
    });

    it("rejects an empty userName with PGV's text and no error id", async () => {
      expectPgvError(await importUser(v1ImportBody({ userName: "" })), pgvLength("ImportHumanUserRequest.UserName", 1, 200));
    });

    it("rejects a blank userName with COMMAND-00p2b", async () => {
      expectZitadelError(await importUser(v1ImportBody({ userName: "   " })), Code.InvalidArgument, "COMMAND-00p2b", "Username is empty");
    });

    it("counts the userName length in runes: 200 emoji pass, 201 do not", async () => {
      // 200 emoji (400 UTF-16 units, 800 bytes); the first 16 spell a unique hex token as 🐀…🐏.
      const token = [...randomBytes(8).toString("hex")].map((digit) => String.fromCodePoint(0x1f400 + parseInt(digit, 16)));
      const userName = token.join("") + "🐭".repeat(200 - token.length);
      expect([...userName]).toHaveLength(200);
      const ok = expectOk(await importUser(v1ImportBody({ userName })));
      expect((await getV1(ok.userId as string)).userName).toBe(userName);
      expectPgvError(await importUser(v1ImportBody({ userName: "🐭".repeat(201) })), pgvLength("ImportHumanUserRequest.UserName", 1, 200));
    });

    it("rejects blank first and last names with the import ids PROFILE-RF5z2 / PROFILE-DSUkN", async () => {
      expectZitadelError(
        await importUser(v1ImportBody({ profile: { firstName: " ", lastName: "Mouse" } })),
        Code.InvalidArgument,
        "PROFILE-RF5z2",
        "Given name in profile is empty",
      );
      expectZitadelError(
        await importUser(v1ImportBody({ profile: { firstName: "Minnie", lastName: "\t" } })),
        Code.InvalidArgument,
        "PROFILE-DSUkN",
        "Family name in profile is empty",
      );
    });

    it("rejects an empty first name with PGV's embedded-message text", async () => {
      expectPgvError(
        await importUser(v1ImportBody({ profile: { firstName: "", lastName: "Mouse" } })),
        pgvEmbedded("ImportHumanUserRequest.Profile", pgvLength("ImportHumanUserRequest_Profile.FirstName", 1, 200)),
      );
    });

    it("rejects a missing profile as PGV 'value is required'", async () => {
      const { profile: _, ...body } = v1ImportBody();
      expectPgvError(await importUser(body), "invalid ImportHumanUserRequest.Profile: value is required");
    });

    it.each(WEAK_PASSWORDS)("rejects the plaintext password %j with %s", async (password, id, text) => {
      const error = expectZitadelError(await importUser(v1ImportBody({ password })), Code.InvalidArgument, id, text);
      expect(JSON.stringify(error)).not.toContain(password);
    });

    it("measures password length in bytes and counts non-ASCII letters as symbols", async () => {
      // 6 runes, 8 bytes: long enough only when counted in bytes.
      expectOk(await importUser(v1ImportBody({ password: "Ab1!éé" })));
      // No ASCII symbol, but "é" is outside [A-Za-z0-9].
      expectOk(await importUser(v1ImportBody({ password: "Abcdef1é" })));
      expectZitadelError(await importUser(v1ImportBody({ password: "Ab1éé" })), Code.InvalidArgument, "COMMA-HuJf6", "Password is too short");
    });

    it("does not check an imported hash against the complexity policy", async () => {
      const res = expectOk(await importUser(v1ImportBody({ hashedPassword: { value: bcryptHash("a", 4) } })));
      expect((await getV1(res.userId as string)).state).toBe("USER_STATE_ACTIVE");
    });

    it.each(["$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG", "$1$salt$qJH7.N4xYta3aEG/dfqo/0", "plain"])(
      "rejects the unsupported hash encoding %j with USER-JDk4t up front (newest ZITADEL; older imports stored it)",
      async (value) => {
        const error = expectErrorId(await importUser(v1ImportBody({ hashedPassword: { value } })), Code.InvalidArgument, "USER-JDk4t");
        expect(error.details[0]!.message).toMatch(/^Password hash encoding not supported/);
        expect(error.message).not.toContain(value);
      },
    );

    it("rejects a malformed bcrypt hash with CRYPT-r8Qm2 (newest ZITADEL's ValidateEncodedHash)", async () => {
      const value = "$2a$10$tooShortToBeABcryptHash";
      const error = expectErrorId(await importUser(v1ImportBody({ hashedPassword: { value } })), Code.InvalidArgument, "CRYPT-r8Qm2");
      expect(error.message).not.toContain(value);
    });

    it.each(["Bob <bob@example.com>", "<bob@example.com>", "bob@example.com (Bob)"])(
      "rejects the email %j, which is not a bare address, with EMAIL-599BI",
      async (email) => {
        expectZitadelError(
          await importUser(v1ImportBody({ email: { email, isEmailVerified: true } })),
          Code.InvalidArgument,
          "EMAIL-599BI",
          "Email is invalid",
        );
      },
    );

    it("trims the email and keeps its case", async () => {
      const email = uniqueEmail("Bob.Trim").replace("example.com", "Example.COM");
      const res = expectOk(await importUser(v1ImportBody({ email: { email: `  ${email}\t`, isEmailVerified: true }, password: GOOD_PASSWORD })));
      expect(human(await getV1(res.userId as string)).email!.email).toBe(email);
    });

    it("rejects an unparsable phone number with PHONE-so0wa", async () => {
      expectZitadelError(await importUser(v1ImportBody({ phone: { phone: "+41 abc" } })), Code.InvalidArgument, "PHONE-so0wa", "Phone is invalid");
    });

    it("rejects a phone number without '+' with PGV's prefix rule", async () => {
      expectPgvError(
        await importUser(v1ImportBody({ phone: { phone: "071 000 00 00" } })),
        pgvEmbedded("ImportHumanUserRequest.Phone", 'invalid ImportHumanUserRequest_Phone.Phone: value does not have prefix "+"'),
      );
    });

    it("defaults the display name to '<first> <last>' and trims the names", async () => {
      const res = expectOk(await importUser(v1ImportBody({ profile: { firstName: "  Daisy ", lastName: " Duck  ", displayName: "  " } })));
      const profile = human(await getV1(res.userId as string)).profile!;
      expect(profile).toMatchObject({ firstName: "Daisy", lastName: "Duck", displayName: "Daisy Duck" });
    });

    it.each([
      ["de-ch", "de-CH"],
      ["de_CH", "de-CH"],
      ["EN", "en"],
      ["", "und"],
      ["!!", "und"],
    ])("stores the preferred language %j as %j (Go's language.Parse; errors become und)", async (given, stored) => {
      const res = expectOk(await importUser(v1ImportBody({ profile: { firstName: "Lang", lastName: "Test", preferredLanguage: given } })));
      expect(human(await getV1(res.userId as string)).profile!.preferredLanguage).toBe(stored);
    });

    it.each([
      ["GENDER_MALE", "GENDER_MALE"],
      [3, "GENDER_DIVERSE"],
      [42, undefined],
    ])("stores the gender %j and reads it as %j (unknown numbers are unspecified)", async (gender, read) => {
      const res = expectOk(await importUser(v1ImportBody({ profile: { firstName: "G", lastName: "T", gender } })));
      expect(human(await getV1(res.userId as string)).profile!.gender).toBe(read);
    });

    it("honours passwordChangeRequired for a plaintext password", async () => {
      const res = expectOk(await importUser(v1ImportBody({ password: GOOD_PASSWORD, passwordChangeRequired: true })));
      expect(human(await getV2(res.userId as string)).passwordChangeRequired).toBe(true);
      const relaxed = expectOk(await importUser(v1ImportBody({ password: GOOD_PASSWORD })));
      expect(human(await getV2(relaxed.userId as string)).passwordChangeRequired).toBeUndefined();
    });

    it("drops passwordChangeRequired for an imported hash, as ZITADEL does (zitadel/zitadel#1672)", async () => {
      const res = expectOk(await importUser(v1ImportBody({ hashedPassword: { value: HASH }, passwordChangeRequired: true })));
      expect(human(await getV2(res.userId as string)).passwordChangeRequired).toBeUndefined();
    });

    it("rejects a username taken in another case with AlreadyExists V3-DKcYh", async () => {
      const userName = uniqueName("Dupe");
      expectOk(await importUser(v1ImportBody({ userName })));
      expectZitadelError(await importUser(v1ImportBody({ userName: userName.toUpperCase() })), Code.AlreadyExists, "V3-DKcYh", "User already exists");
      expectZitadelError(await importUser(v1ImportBody({ userName: ` ${userName} ` })), Code.AlreadyExists, "V3-DKcYh", "User already exists");
    });
  });

  describe("AddHumanUser", () => {
    it("creates an ACTIVE user from a verified email and an initial password; a change is always required", async () => {
      const res = expectOk(await addUser(v1AddBody({ initialPassword: GOOD_PASSWORD })), 200);
      expect(Object.keys(res).sort()).toEqual(["details", "userId"]);
      expect((res.details as JsonObject).sequence).toBe("2");
      expect((res.details as JsonObject).resourceOwner).toBe(up.defaultOrgId);
      expect(await up.eventTypes(res.userId as string)).toEqual(["user.human.added", "user.human.email.verified"]);
      expect((await getV1(res.userId as string)).state).toBe("USER_STATE_ACTIVE");
      expect(human(await getV2(res.userId as string)).passwordChangeRequired).toBe(true);
      expectNotLeaked(await t().call(V1.getUserByID, { id: res.userId as string }), GOOD_PASSWORD);
    });

    it("creates an INITIAL user when the email is unverified, even with an initial password", async () => {
      const res = expectOk(await addUser(v1AddBody({ email: { email: uniqueEmail() }, initialPassword: GOOD_PASSWORD })));
      expect((res.details as JsonObject).sequence).toBe("2");
      expect(await up.eventTypes(res.userId as string)).toEqual(["user.human.added", "user.human.initialization.code.added"]);
      expect((await getV1(res.userId as string)).state).toBe("USER_STATE_INITIAL");
    });

    it("creates an INITIAL user without an initial password; the verified email stays verified", async () => {
      const res = expectOk(await addUser(v1AddBody()));
      expect((res.details as JsonObject).sequence).toBe("3");
      expect(await up.eventTypes(res.userId as string)).toEqual(["user.human.added", "user.human.email.verified", "user.human.initialization.code.added"]);
      const user = await getV1(res.userId as string);
      expect(user.state).toBe("USER_STATE_INITIAL");
      expect(human(user).email!.isEmailVerified).toBe(true);
    });

    it("rejects blank first and last names with USER-UCej2 / USER-4hB7d", async () => {
      expectZitadelError(
        await addUser(v1AddBody({ profile: { firstName: "  ", lastName: "Mouse" } })),
        Code.InvalidArgument,
        "USER-UCej2",
        "Given name in profile is empty",
      );
      expectZitadelError(
        await addUser(v1AddBody({ profile: { firstName: "Mickey", lastName: "  " } })),
        Code.InvalidArgument,
        "USER-4hB7d",
        "Family name in profile is empty",
      );
    });

    it("rejects a blank userName with V2-zzad3, whose key has no English text (§10.1a)", async () => {
      expectZitadelError(await addUser(v1AddBody({ userName: "  " })), Code.InvalidArgument, "V2-zzad3", "Errors.Invalid.Argument");
    });

    it("rejects an empty userName with PGV's text", async () => {
      expectPgvError(await addUser(v1AddBody({ userName: "" })), pgvLength("AddHumanUserRequest.UserName", 1, 200));
    });

    it.each(WEAK_PASSWORDS)("rejects the initial password %j with %s", async (initialPassword, id, text) => {
      expectZitadelError(await addUser(v1AddBody({ initialPassword })), Code.InvalidArgument, id, text);
    });

    it("rejects a username an import already holds, in another case, with V3-DKcYh", async () => {
      const userName = uniqueName("shared");
      expectOk(await importUser(v1ImportBody({ userName })));
      expectZitadelError(await addUser(v1AddBody({ userName: userName.toUpperCase() })), Code.AlreadyExists, "V3-DKcYh", "User already exists");
    });
  });

  describe("GetUserByID", () => {
    it("answers NotFound QUERY-Dfbg2 for an unknown id", async () => {
      expectZitadelError(await t().call(V1.getUserByID, { id: "123456789012345678" }), Code.NotFound, "QUERY-Dfbg2", "User could not be found");
    });

    it.skipIf(transport === "rest")("rejects an empty id with PGV's text", async () => {
      expectPgvError(await t().call(V1.getUserByID, { id: "" }), pgvLength("GetUserByIDRequest.Id", 1, 200));
    });
  });
});

describe("status messages as grpc-js applications see them", () => {
  // connect-node percent-encodes `grpc-message` with encodeURIComponent and grpc-js decodes it
  // with decodeURI, which would leave ":" and "," as "%3A" and "%2C"; the server re-encodes the
  // message as the gRPC spec (and grpc-go) does, so grpc-js users see plain text.
  it("grpc-js shows a PGV message with ':' and ',' unescaped, as grpc-go sends it", async () => {
    const result = await up.caller("grpc-js").call(V1.importHumanUser, v1ImportBody({ userName: "" }));
    const error = expectPgvError(result, pgvLength("ImportHumanUserRequest.UserName", 1, 200));
    expect(error.clientMessage).toBe(pgvLength("ImportHumanUserRequest.UserName", 1, 200));
  });

  it("grpc-js shows a ZITADEL message without reserved characters unchanged", async () => {
    const result = await up.caller("grpc-js").call(V1.getUserByID, { id: "404404404404404404" });
    expect(expectZitadelError(result, Code.NotFound, "QUERY-Dfbg2", "User could not be found").clientMessage).toBe("User could not be found (QUERY-Dfbg2)");
  });
});
