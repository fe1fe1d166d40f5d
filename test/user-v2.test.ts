/**
 * zitadel.user.v2.UserService — AddHumanUser and GetUserByID — through every transport, against
 * ZITADEL's documented behaviour (ZITADEL's internal/api/grpc/user/v2/user.go,
 * internal/command/user_v2_human.go, user_human.go), plus usernames
 * claimed concurrently over every protocol and both API versions.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { type CallOptions, type CallResult, TRANSPORTS, V1, V2 } from "./helpers/clients.js";
import { expectCode, expectErrorId, expectNotLeaked, expectOk, expectPgvError, expectZitadelError, pgvEmbedded, pgvLength } from "./helpers/expectations.js";
import { bcryptHash, GOOD_PASSWORD, RFC3339, uniqueEmail, uniqueName, USER_ID, useUserport, v1AddBody, v1ImportBody, v2AddBody } from "./helpers/fixtures.js";

const up = useUserport();
const HASH = bcryptHash("v2-imported-Passw0rd!");
/** An email, phone or init code of ZITADEL's default generators: 6 of [A-Z0-9] (§4.1). */
const CODE = /^[A-Z0-9]{6}$/;

describe.each(TRANSPORTS)("UserService v2 over %s", (transport) => {
  const t = () => up.caller(transport);
  const addUser = (body: JsonObject, options?: CallOptions) => t().call(V2.addHumanUser, body, options);
  const getUser = async (userId: string) => expectOk(await t().call(V2.getUserByID, { userId }), 200);
  const human = async (userId: string) => (await getUser(userId)).user as { human: Record<string, JsonObject> } & JsonObject;

  describe("AddHumanUser", () => {
    it("creates an ACTIVE user (HTTP 201 over REST); sequence 2 = added + email verified; creationDate filled (UNCONFIRMED in ZITADEL)", async () => {
      const body = v2AddBody();
      const res = expectOk(await addUser(body), 201);
      expect(Object.keys(res).sort()).toEqual(["details", "userId"]);
      expect(res.userId).toMatch(USER_ID);
      const details = res.details as JsonObject;
      expect(details).toEqual({
        sequence: "2",
        changeDate: expect.stringMatching(RFC3339),
        creationDate: expect.stringMatching(RFC3339),
        resourceOwner: up.defaultOrgId,
      });
      expect(await up.eventTypes(res.userId as string)).toEqual(["user.human.added", "user.human.email.verified"]);

      const read = await getUser(res.userId as string);
      expect(Object.keys(read).sort()).toEqual(["details", "user"]);
      const user = read.user as JsonObject;
      expect(user).toMatchObject({
        userId: res.userId,
        details: { sequence: "2", resourceOwner: up.defaultOrgId },
        state: "USER_STATE_ACTIVE",
        username: body.username,
        loginNames: [body.username],
        preferredLoginName: body.username,
        human: {
          profile: { givenName: "Donald", familyName: "Duck", displayName: "Donald Duck", preferredLanguage: "und" },
          email: { email: (body.email as JsonObject).email, isVerified: true },
        },
      });
    });

    it("creates an ACTIVE user without password and with isVerified false: no code, email stays unverified", async () => {
      const res = expectOk(await addUser(v2AddBody({ email: { email: uniqueEmail(), isVerified: false } })));
      expect(res.emailCode).toBeUndefined();
      expect((res.details as JsonObject).sequence).toBe("1");
      expect(await up.eventTypes(res.userId as string)).toEqual(["user.human.added"]);
      const user = await human(res.userId as string);
      expect(user.state).toBe("USER_STATE_ACTIVE");
      expect(user.human.email!.isVerified).toBeUndefined();
    });

    it("returns a 6-character emailCode for returnCode; the email stays unverified", async () => {
      const res = expectOk(await addUser(v2AddBody({ email: { email: uniqueEmail(), returnCode: {} } })));
      expect(res.emailCode).toMatch(CODE);
      expect(res.phoneCode).toBeUndefined();
      expect(await up.eventTypes(res.userId as string)).toEqual(["user.human.added", "user.human.email.code.added"]);
      expect((await human(res.userId as string)).human.email!.isVerified).toBeUndefined();
    });

    it.each<JsonObject>([{ sendCode: {} }, { sendCode: { urlTemplate: "https://app.example.com/verify?user={{.UserID}}&code={{.Code}}" } }, {}])(
      "generates but does not return an email code for %j",
      async (verification) => {
        const res = expectOk(await addUser(v2AddBody({ email: { email: uniqueEmail(), ...verification } })));
        expect(res.emailCode).toBeUndefined();
        expect(await up.eventTypes(res.userId as string)).toEqual(["user.human.added", "user.human.email.code.added"]);
      },
    );

    it("returns no code for isVerified true and reads the email as verified", async () => {
      const res = expectOk(await addUser(v2AddBody()));
      expect(res.emailCode).toBeUndefined();
      expect((await human(res.userId as string)).human.email!.isVerified).toBe(true);
    });

    it("returns a phoneCode for phone returnCode; the phone stays unverified", async () => {
      const res = expectOk(await addUser(v2AddBody({ phone: { phone: "+41 79 123 45 67", returnCode: {} } })));
      expect(res.phoneCode).toMatch(CODE);
      expect(res.emailCode).toBeUndefined();
      expect((await human(res.userId as string)).human.phone).toEqual({ phone: "+41791234567" });
    });

    it("normalises a phone without country code with default region CH and keeps it verified", async () => {
      const res = expectOk(await addUser(v2AddBody({ phone: { phone: "071 000 00 00", isVerified: true } })));
      expect(res.phoneCode).toBeUndefined();
      expect((await human(res.userId as string)).human.phone).toEqual({ phone: "+41710000000", isVerified: true });
    });

    it("rejects phone isVerified false with PGV's const rule", async () => {
      expectPgvError(
        await addUser(v2AddBody({ phone: { phone: "+41791234567", isVerified: false } })),
        pgvEmbedded("AddHumanUserRequest.Phone", "invalid SetHumanPhone.IsVerified: value must equal true"),
      );
    });

    it("rejects an unparsable phone with PHONE-so0wa", async () => {
      expectZitadelError(await addUser(v2AddBody({ phone: { phone: "not a number", sendCode: {} } })), Code.InvalidArgument, "PHONE-so0wa", "Phone is invalid");
    });

    it("defaults the username to the email", async () => {
      const email = uniqueEmail("Default.User");
      const { username: _, ...body } = v2AddBody({ email: { email, isVerified: true } });
      const res = expectOk(await addUser(body));
      const user = await human(res.userId as string);
      expect(user.username).toBe(email);
      expect(user.loginNames).toEqual([email]);
    });

    it("accepts a caller-chosen user_id and reads the user by it", async () => {
      const userId = uniqueName("my-own-id");
      const res = expectOk(await addUser(v2AddBody({ userId })));
      expect(res.userId).toBe(userId);
      expect((await human(userId)).userId).toBe(userId);
    });

    it("rejects a taken user_id with FailedPrecondition COMMAND-7yiox1isql (HTTP 400; zitadel/zitadel#11175's AlreadyExists UNCONFIRMED)", async () => {
      const userId = uniqueName("taken-id");
      expectOk(await addUser(v2AddBody({ userId })));
      expectZitadelError(await addUser(v2AddBody({ userId })), Code.FailedPrecondition, "COMMAND-7yiox1isql", "Errors.User.AlreadyExisting");
    });

    it("honours changeRequired for a plaintext password and for a hash", async () => {
      const plain = expectOk(await addUser(v2AddBody({ password: { password: GOOD_PASSWORD, changeRequired: true } })));
      expect((await human(plain.userId as string)).human.passwordChangeRequired).toBe(true);
      const hashed = expectOk(await addUser(v2AddBody({ hashedPassword: { hash: HASH, changeRequired: true } })));
      expect((await human(hashed.userId as string)).human.passwordChangeRequired).toBe(true);
      const relaxed = expectOk(await addUser(v2AddBody({ password: { password: GOOD_PASSWORD } })));
      const user = await human(relaxed.userId as string);
      expect(user.human.passwordChangeRequired).toBeUndefined();
      expect(user.human.passwordChanged).toMatch(RFC3339);
    });

    it("never returns the password or the hash", async () => {
      const plain = await addUser(v2AddBody({ password: { password: GOOD_PASSWORD } }));
      const hashed = await addUser(v2AddBody({ hashedPassword: { hash: HASH } }));
      for (const result of [plain, hashed]) {
        const userId = expectOk(result).userId as string;
        expectNotLeaked(result, GOOD_PASSWORD, HASH);
        expectNotLeaked(await t().call(V2.getUserByID, { userId }), GOOD_PASSWORD, HASH);
      }
    });

    it("checks a plaintext password against the complexity policy", async () => {
      const result = await addUser(v2AddBody({ password: { password: "Abcdefg12" } }));
      expectZitadelError(result, Code.InvalidArgument, "COMMA-ZDLwA", "Password must contain symbol");
      expectNotLeaked(result, "Abcdefg12");
    });

    it("rejects an unsupported hash encoding with USER-JDk4t", async () => {
      const error = expectErrorId(
        await addUser(v2AddBody({ hashedPassword: { hash: "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG" } })),
        Code.InvalidArgument,
        "USER-JDk4t",
      );
      expect(error.details[0]!.message).toMatch(/^Password hash encoding not supported/);
    });

    it("rejects blank given and family names with USER-UCej2 / USER-4hB7d", async () => {
      expectZitadelError(
        await addUser(v2AddBody({ profile: { givenName: " ", familyName: "Duck" } })),
        Code.InvalidArgument,
        "USER-UCej2",
        "Given name in profile is empty",
      );
      expectZitadelError(
        await addUser(v2AddBody({ profile: { givenName: "Donald", familyName: " " } })),
        Code.InvalidArgument,
        "USER-4hB7d",
        "Family name in profile is empty",
      );
    });

    it("rejects an empty given name with PGV's embedded-message text", async () => {
      expectPgvError(
        await addUser(v2AddBody({ profile: { givenName: "", familyName: "Duck" } })),
        pgvEmbedded("AddHumanUserRequest.Profile", pgvLength("SetHumanProfile.GivenName", 1, 200)),
      );
    });

    it("rejects a password longer than 200 runes with PGV's embedded-message text", async () => {
      const password = `Aa1!${"x".repeat(197)}`;
      const result = await addUser(v2AddBody({ password: { password } }));
      expectPgvError(result, pgvEmbedded("AddHumanUserRequest.Password", pgvLength("Password.Password", 1, 200)));
      expectNotLeaked(result, password);
    });

    it("rejects a set but empty username with PGV's text, and a blank one with V2-zzad3", async () => {
      expectPgvError(await addUser(v2AddBody({ username: "" })), pgvLength("AddHumanUserRequest.Username", 1, 200));
      expectZitadelError(await addUser(v2AddBody({ username: "  " })), Code.InvalidArgument, "V2-zzad3", "Errors.Invalid.Argument");
    });

    it("rejects an email with a display name with EMAIL-599BI", async () => {
      expectZitadelError(
        await addUser(v2AddBody({ email: { email: "Bob <bob@example.com>", isVerified: true } })),
        Code.InvalidArgument,
        "EMAIL-599BI",
        "Email is invalid",
      );
    });

    it("rejects a username that a v1 import holds in another case with V3-DKcYh", async () => {
      const username = uniqueName("CaseDupe");
      expectOk(await t().call(V1.importHumanUser, v1ImportBody({ userName: username })));
      expectZitadelError(await addUser(v2AddBody({ username: username.toLowerCase() })), Code.AlreadyExists, "V3-DKcYh", "User already exists");
    });

    it("rejects a default username (the email) that is already a username, in another case, with V3-DKcYh", async () => {
      const email = uniqueEmail("taken");
      expectOk(await addUser(v2AddBody({ username: email.toUpperCase() })));
      const { username: _, ...body } = v2AddBody({ email: { email, isVerified: true } });
      expectZitadelError(await addUser(body), Code.AlreadyExists, "V3-DKcYh", "User already exists");
    });
  });

  describe("GetUserByID", () => {
    it("answers NotFound QUERY-Dfbg2 for an unknown id", async () => {
      expectZitadelError(await t().call(V2.getUserByID, { userId: "999999999999999999" }), Code.NotFound, "QUERY-Dfbg2", "User could not be found");
    });

    it("reads a v1 user: INITIAL as USER_STATE_INITIAL, v1 add's forced password change", async () => {
      const initial = expectOk(await t().call(V1.importHumanUser, v1ImportBody()));
      expect((await human(initial.userId as string)).state).toBe("USER_STATE_INITIAL");
      const added = expectOk(await t().call(V1.addHumanUser, v1AddBody({ initialPassword: GOOD_PASSWORD })));
      const user = await human(added.userId as string);
      expect(user.state).toBe("USER_STATE_ACTIVE");
      expect(user.human.passwordChangeRequired).toBe(true);
    });
  });
});

describe("one username claimed concurrently", () => {
  it("lets exactly one of 24 parallel creates over every protocol and API version win; the rest get AlreadyExists V3-DKcYh", async () => {
    const username = uniqueName("Race");
    const attempts: Array<Promise<CallResult>> = [];
    for (let i = 0; i < 24; i++) {
      const caller = up.caller(TRANSPORTS[i % TRANSPORTS.length]!);
      const spelling = i % 2 === 0 ? username : username.toUpperCase();
      const kind = Math.floor(i / TRANSPORTS.length) % 3;
      attempts.push(
        kind === 0
          ? caller.call(V1.importHumanUser, v1ImportBody({ userName: spelling, password: GOOD_PASSWORD }))
          : kind === 1
            ? caller.call(V1.addHumanUser, v1AddBody({ userName: spelling, initialPassword: GOOD_PASSWORD }))
            : caller.call(V2.addHumanUser, v2AddBody({ username: spelling })),
      );
    }
    const results = await Promise.all(attempts);
    const winners = results.filter((r) => r.ok);
    expect(winners).toHaveLength(1);
    for (const loser of results.filter((r) => !r.ok)) {
      expectZitadelError(loser, Code.AlreadyExists, "V3-DKcYh", "User already exists");
    }
    const winnerId = (winners[0] as { json: JsonObject }).json.userId as string;
    const read = expectOk(await up.caller("connect-grpc").call(V2.getUserByID, { userId: winnerId }));
    expect((read.user as JsonObject).username).toMatch(new RegExp(`^${username}$`, "i"));
  });

  it("lets exactly one of 12 parallel v2 creates with the same user_id win; the rest fail as taken", async () => {
    const userId = uniqueName("race-id");
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => up.caller(TRANSPORTS[i % TRANSPORTS.length]!).call(V2.addHumanUser, v2AddBody({ userId }))),
    );
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    for (const loser of results.filter((r) => !r.ok)) expectCode(loser, Code.FailedPrecondition);
  });
});
