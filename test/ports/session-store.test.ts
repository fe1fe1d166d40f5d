/**
 * The SessionStore contract (src/domain/ports.ts) as the session and password commands rely on
 * it (src/domain/sessions.ts, passwords.ts): credentials of a user, login names resolved as
 * ZITADEL resolves them, a credential change and a session write committed together or not at
 * all (each guarded by its aggregate's sequence), sessions by id and listed by filter and
 * visibility, the newest code of a kind and a code by id, and the user's passkeys (added,
 * updated and removed with a credential change; a credential id belongs to one passkey).
 */
import { describe, expect, it } from "vitest";
import type { Passkey, SessionRecord } from "../../src/domain/ports.js";
import { usernameClaim } from "../../src/domain/users.js";
import { createOrgStore } from "../../src/store/org-store.js";
import { createSessionStore } from "../../src/store/session-store.js";
import { createUserStore } from "../../src/store/user-store.js";
import { T0, ids, newHuman, newOrg, rejection, storesUnderTest, useStore } from "../helpers/stores.js";

describe.each(storesUnderTest)("SessionStore on %s", (kind) => {
  const store = useStore(kind);
  const sessions = () => createSessionStore(store());
  const users = () => createUserStore(store());

  async function human(instanceId = ids("inst"), orgId = ids("org"), overrides = {}) {
    const creation = newHuman({ instanceId, orgId }, overrides);
    await users().createUser(creation);
    return creation.user;
  }

  function session(instanceId: string, overrides: Partial<SessionRecord> = {}): SessionRecord {
    return {
      instanceId,
      id: ids("session"),
      creator: "creator-1",
      userId: "",
      userOrgId: "",
      userCheckedAt: undefined,
      passwordCheckedAt: undefined,
      totpCheckedAt: undefined,
      tokenDigest: ids("digest"),
      userAgent: { fingerprintId: "fp-1", ip: "10.0.0.1", description: "browser", header: { "accept-language": ["en"] } },
      metadata: { key: "dmFsdWU=" },
      expiresAt: undefined,
      terminated: false,
      createdAt: T0,
      changedAt: T0,
      sequence: 1,
      ...overrides,
    };
  }

  const added = [{ type: "session.added", payload: {} }];

  describe("credentials", () => {
    it("reads the user with its hash, failed check counts and TOTP secret; undefined for nobody", async () => {
      const user = await human(undefined, undefined, { passwordHash: "$argon2id$hash", sealedTotpSecret: "sealed-totp" });
      expect(await sessions().credentials(user.instanceId, user.id)).toMatchObject({
        user: { id: user.id, state: "ACTIVE", sequence: 1 },
        passwordHash: "$argon2id$hash",
        failedAttempts: 0,
        otpFailedAttempts: 0,
        sealedTotpSecret: "sealed-totp",
      });
      expect(await sessions().credentials(user.instanceId, ids("nobody"))).toBeUndefined();
    });

    it("writes a credential change as the user's next sequence", async () => {
      const user = await human(undefined, undefined, { passwordHash: "old-hash" });
      await sessions().write({
        credentials: {
          instanceId: user.instanceId,
          userId: user.id,
          expectedSequence: 1,
          events: [
            { type: "user.human.password.check.failed", payload: {} },
            { type: "user.locked", payload: {} },
          ],
          at: T0 + 100,
          creator: "system",
          set: { failedAttempts: 3, otpFailedAttempts: 1, state: "LOCKED" },
        },
      });
      await sessions().write({
        credentials: {
          instanceId: user.instanceId,
          userId: user.id,
          expectedSequence: 3,
          events: [{ type: "user.human.password.changed", payload: {} }],
          at: T0 + 200,
          creator: "admin",
          set: { passwordHash: "new-hash", passwordChangeRequired: true, passwordChangedAt: T0 + 200 },
        },
      });
      const creds = await sessions().credentials(user.instanceId, user.id);
      expect(creds).toMatchObject({
        user: { state: "LOCKED", sequence: 4, changedAt: T0 + 200, human: { passwordChangeRequired: true, passwordChangedAt: T0 + 200 } },
        passwordHash: "new-hash",
        failedAttempts: 3,
        otpFailedAttempts: 1,
      });
      expect(await users().lastSequence(user.instanceId, user.id)).toBe(4);
    });

    it("fails a credential change on a stale sequence with UniqueViolation('sequence'), writing neither it nor its session", async () => {
      const user = await human(undefined, undefined, { passwordHash: "hash-1" });
      const change = { instanceId: user.instanceId, userId: user.id, expectedSequence: 1, at: T0 + 100, creator: "system" };
      await sessions().write({ credentials: { ...change, events: [{ type: "user.human.password.check.failed", payload: {} }], set: { failedAttempts: 1 } } });
      const lost = session(user.instanceId, { userId: user.id, userOrgId: user.orgId });
      const failure = await rejection(
        sessions().write({
          credentials: {
            ...change,
            events: [{ type: "user.human.password.check.succeeded", payload: {} }],
            set: { failedAttempts: 0, passwordHash: "hash-2" },
          },
          session: { session: lost, fromSequence: 0, events: added },
        }),
      );
      expect(failure).toMatchObject({ name: "UniqueViolation", kind: "sequence" });
      expect(await sessions().credentials(user.instanceId, user.id)).toMatchObject({ passwordHash: "hash-1", failedAttempts: 1, user: { sequence: 2 } });
      expect(await sessions().session(user.instanceId, lost.id)).toBeUndefined();
    });

    it("uses a code up and stores a new one; latestCode answers the newest of a kind", async () => {
      const user = await human();
      const base = { instanceId: user.instanceId, userId: user.id, creator: "admin" };
      expect(await sessions().latestCode(user.instanceId, user.id, "password")).toBeUndefined();
      await sessions().write({
        credentials: {
          ...base,
          expectedSequence: 1,
          events: [{ type: "user.human.password.code.added", payload: {} }],
          at: T0 + 100,
          set: {},
          newCode: { id: "code-1", kind: "password", sealedCode: "sealed-1", expiresAt: T0 + 10_000, returned: false },
        },
      });
      await sessions().write({
        credentials: {
          ...base,
          expectedSequence: 2,
          events: [{ type: "user.human.password.code.added", payload: {} }],
          at: T0 + 200,
          set: {},
          newCode: { id: "code-2", kind: "password", sealedCode: "sealed-2", expiresAt: T0 + 20_000, returned: true },
        },
      });
      expect(await sessions().latestCode(user.instanceId, user.id, "password")).toEqual({
        id: "code-2",
        sealedCode: "sealed-2",
        expiresAt: T0 + 20_000,
        used: false,
      });
      await sessions().write({
        credentials: {
          ...base,
          expectedSequence: 3,
          events: [{ type: "user.human.password.changed", payload: {} }],
          at: T0 + 300,
          set: { passwordHash: "reset-hash", passwordChangedAt: T0 + 300 },
          usedCodeId: "code-2",
        },
      });
      expect(await sessions().latestCode(user.instanceId, user.id, "password")).toMatchObject({ id: "code-2", used: true });
      expect(await sessions().latestCode(user.instanceId, user.id, "email")).toBeUndefined();
    });
  });

  describe("userIdByLoginName", () => {
    it("finds a user by username, case-insensitively, and nobody by an unknown name", async () => {
      const user = await human();
      expect(await sessions().userIdByLoginName(user.instanceId, user.username.toUpperCase())).toBe(user.id);
      expect(await sessions().userIdByLoginName(user.instanceId, ids("unknown"))).toBeUndefined();
      expect(await sessions().userIdByLoginName(ids("other-instance"), user.username)).toBeUndefined();
    });

    it("finds a user by username@domain in an organisation that requires domain login names", async () => {
      const instanceId = ids("inst");
      const orgs = createOrgStore(store());
      const { org, domain } = newOrg(instanceId);
      await orgs.createOrg({ org, domain, owner: { userId: ids("owner"), roles: ["ORG_OWNER"] }, events: [{ type: "org.added", payload: {} }], creator: "c" });
      const unverified = `${ids("unverified")}.example.test`;
      await orgs.changeOrg({
        instanceId,
        orgId: org.id,
        expectedSequence: 1,
        events: [
          { type: "org.policy.domain.added", payload: {} },
          { type: "org.domain.added", payload: {} },
        ],
        writes: [
          {
            kind: "setDomainPolicy",
            policy: { userLoginMustBeDomain: true, validateOrgDomains: true, smtpSenderAddressMatchesInstanceDomain: false },
            effectiveMustBeDomain: true,
            reclaimUsernames: true,
          },
          {
            kind: "addDomain",
            domain: { orgId: org.id, domain: unverified, verified: false, primary: false, validationType: 0, createdAt: T0, changedAt: T0 },
          },
        ],
        at: T0 + 1,
        creator: "c",
      });
      const creation = newHuman({ instanceId, orgId: org.id, username: "Grace" });
      creation.uniques = [usernameClaim("Grace", org.id, true)];
      await users().createUser(creation);
      expect(await sessions().userIdByLoginName(instanceId, `grace@${domain.domain.toUpperCase()}`)).toBe(creation.user.id);
      expect(await sessions().userIdByLoginName(instanceId, `grace@${unverified}`)).toBeUndefined();
      expect(await sessions().userIdByLoginName(instanceId, "grace@elsewhere.test")).toBeUndefined();
    });

    it("does not resolve username@domain in an organisation without domain login names", async () => {
      const instanceId = ids("inst");
      const orgs = createOrgStore(store());
      const { org, domain } = newOrg(instanceId);
      await orgs.createOrg({ org, domain, owner: { userId: ids("owner"), roles: ["ORG_OWNER"] }, events: [{ type: "org.added", payload: {} }], creator: "c" });
      const user = await human(instanceId, org.id);
      expect(await sessions().userIdByLoginName(instanceId, `${user.username}@${domain.domain}`)).toBeUndefined();
    });
  });

  describe("passkeys", () => {
    const passkey = (userId: string, overrides: Partial<Passkey> = {}): Passkey => ({
      id: ids("passkey"),
      userId,
      state: "NOT_READY",
      name: "",
      challenge: "Y2hhbGxlbmdl",
      rpId: "localhost",
      userVerification: "required",
      authenticatorAttachment: "",
      credentialId: undefined,
      publicKey: undefined,
      signCount: 0,
      transports: [],
      aaguid: "",
      attestationType: "",
      createdAt: T0,
      changedAt: T0,
      ...overrides,
    });
    const change = (user: { instanceId: string; id: string }, expectedSequence: number, passkeys: { put?: Passkey[]; remove?: string[] }) => ({
      credentials: {
        instanceId: user.instanceId,
        userId: user.id,
        expectedSequence,
        events: [{ type: "user.human.passwordless.token.added", payload: {} }],
        at: T0 + expectedSequence,
        creator: "admin",
        set: {},
        passkeys,
      },
    });

    it("adds a passkey, makes it READY by its id, lists them oldest first, removes one", async () => {
      const user = await human();
      const started = passkey(user.id);
      const second = passkey(user.id, { createdAt: T0 + 5, changedAt: T0 + 5 });
      await sessions().write(change(user, 1, { put: [started, second] }));
      expect(await sessions().passkeys(user.instanceId, user.id)).toEqual([started, second]);
      const ready: Passkey = {
        ...started,
        state: "READY",
        name: "Laptop",
        credentialId: ids("cred"),
        publicKey: "pQECAyYgASFYIA",
        signCount: 7,
        transports: ["internal", "hybrid"],
        aaguid: "00000000-0000-0000-0000-000000000000",
        attestationType: "none",
        changedAt: T0 + 10,
      };
      await sessions().write(change(user, 2, { put: [ready] }));
      expect(await sessions().passkeys(user.instanceId, user.id)).toEqual([ready, second]);
      await sessions().write(change(user, 3, { remove: [second.id] }));
      expect(await sessions().passkeys(user.instanceId, user.id)).toEqual([ready]);
      expect(await sessions().passkeys(user.instanceId, ids("nobody"))).toEqual([]);
    });

    it("refuses a credential id another passkey holds with UniqueViolation('passkey_credential'), writing nothing", async () => {
      const instanceId = ids("inst");
      const alice = await human(instanceId);
      const bob = await human(instanceId);
      const credentialId = ids("cred");
      await sessions().write(change(alice, 1, { put: [passkey(alice.id, { state: "READY", credentialId, publicKey: "AA" })] }));
      const failure = await rejection(sessions().write(change(bob, 1, { put: [passkey(bob.id, { state: "READY", credentialId, publicKey: "AA" })] })));
      expect(failure).toMatchObject({ name: "UniqueViolation", kind: "passkey_credential" });
      expect(await sessions().passkeys(instanceId, bob.id)).toEqual([]);
      expect(await users().lastSequence(instanceId, bob.id)).toBe(1);
    });

    it("finds a code by its id, used or not; none of another user", async () => {
      const user = await human();
      await sessions().write({
        credentials: {
          ...change(user, 1, {}).credentials,
          newCode: { id: "pl-1", kind: "passwordless", sealedCode: "sealed", expiresAt: T0 + 3_600_000, returned: true },
        },
      });
      expect(await sessions().codeById(user.instanceId, user.id, "pl-1")).toEqual({
        id: "pl-1",
        kind: "passwordless",
        sealedCode: "sealed",
        expiresAt: T0 + 3_600_000,
        used: false,
      });
      await sessions().write({ credentials: { ...change(user, 2, {}).credentials, usedCodeId: "pl-1" } });
      expect(await sessions().codeById(user.instanceId, user.id, "pl-1")).toMatchObject({ used: true });
      expect(await sessions().codeById(user.instanceId, ids("other"), "pl-1")).toBeUndefined();
    });

    it("keeps a session's open WebAuthN challenge and its checked factor", async () => {
      const user = await human();
      const challenged = session(user.instanceId, {
        userId: user.id,
        userOrgId: user.orgId,
        userCheckedAt: T0,
        webAuthNChallenge: { challenge: "c2Vzc2lvbg", rpId: "localhost", userVerification: "preferred" },
      });
      await sessions().write({ session: { session: challenged, fromSequence: 0, events: added } });
      expect(await sessions().session(user.instanceId, challenged.id)).toMatchObject({ webAuthNChallenge: challenged.webAuthNChallenge });
      const checked = { ...challenged, webAuthNChallenge: undefined, webAuthNCheckedAt: T0 + 50, webAuthNUserVerified: false, sequence: 2 };
      await sessions().write({ session: { session: checked, fromSequence: 1, events: [{ type: "session.webAuthN.checked", payload: {} }] } });
      const read = await sessions().session(user.instanceId, challenged.id);
      expect(read).toMatchObject({ webAuthNCheckedAt: T0 + 50, webAuthNUserVerified: false });
      expect(read?.webAuthNChallenge).toBeUndefined();
    });
  });

  describe("sessions", () => {
    it("writes a session and reads it back as written", async () => {
      const user = await human();
      const written = session(user.instanceId, {
        userId: user.id,
        userOrgId: user.orgId,
        userCheckedAt: T0,
        passwordCheckedAt: T0 + 1,
        expiresAt: T0 + 3_600_000,
      });
      await sessions().write({ session: { session: written, fromSequence: 0, events: added } });
      expect(await sessions().session(user.instanceId, written.id)).toEqual(written);
      expect(await sessions().session(ids("other-instance"), written.id)).toBeUndefined();
    });

    it("writes a credential change and a session together", async () => {
      const user = await human(undefined, undefined, { passwordHash: "hash" });
      const written = session(user.instanceId, { userId: user.id, userOrgId: user.orgId, passwordCheckedAt: T0 });
      await sessions().write({
        credentials: {
          instanceId: user.instanceId,
          userId: user.id,
          expectedSequence: 1,
          events: [{ type: "user.human.password.check.succeeded", payload: {} }],
          at: T0,
          creator: "c",
          set: { failedAttempts: 0 },
        },
        session: { session: written, fromSequence: 0, events: added },
      });
      expect((await sessions().session(user.instanceId, written.id))?.passwordCheckedAt).toBe(T0);
      expect((await sessions().credentials(user.instanceId, user.id))?.user.sequence).toBe(2);
    });

    it("updates a session after its sequence, and fails a stale update with UniqueViolation('session_sequence')", async () => {
      const instanceId = ids("inst");
      const first = session(instanceId);
      await sessions().write({ session: { session: first, fromSequence: 0, events: added } });
      const checked = { ...first, totpCheckedAt: T0 + 5, changedAt: T0 + 5, sequence: 2 };
      await sessions().write({ session: { session: checked, fromSequence: 1, events: [{ type: "session.otp.checked", payload: {} }] } });
      const stale = { ...first, terminated: true, changedAt: T0 + 6, sequence: 2 };
      const failure = await rejection(
        sessions().write({ session: { session: stale, fromSequence: 1, events: [{ type: "session.terminated", payload: {} }] } }),
      );
      expect(failure).toMatchObject({ name: "UniqueViolation", kind: "session_sequence" });
      expect(await sessions().session(instanceId, first.id)).toEqual(checked);
    });

    it("lists the sessions matching a filter that the caller may see, newest first, with the total", async () => {
      const instanceId = ids("inst");
      const mine = [0, 1, 2].map((i) => session(instanceId, { creator: "me", createdAt: T0 + i * 1000, changedAt: T0 + i * 1000 }));
      const ofMyOrg = session(instanceId, { creator: "someone", userId: "u-1", userOrgId: "org-mine", createdAt: T0 + 5000 });
      const aboutMe = session(instanceId, { creator: "someone", userId: "me", userOrgId: "org-x", createdAt: T0 + 6000 });
      const hidden = session(instanceId, { creator: "someone", userId: "u-2", userOrgId: "org-other", createdAt: T0 + 7000 });
      const ended = session(instanceId, { creator: "me", terminated: true, createdAt: T0 + 8000 });
      for (const s of [...mine, ofMyOrg, aboutMe, hidden, ended]) {
        await sessions().write({ session: { session: s, fromSequence: 0, events: added } });
      }
      const visible = { creator: "me", userId: "me", orgIds: ["org-mine"] };
      const all = await sessions().listSessions(instanceId, {}, { offset: 0, limit: 10, asc: false }, visible);
      expect(all.total).toBe(5);
      expect(all.sessions.map((s) => s.id)).toEqual([aboutMe.id, ofMyOrg.id, mine[2]!.id, mine[1]!.id, mine[0]!.id]);

      const page = await sessions().listSessions(instanceId, { creator: "me" }, { offset: 1, limit: 1, asc: true }, visible);
      expect(page).toMatchObject({ total: 3, sessions: [{ id: mine[1]!.id }] });

      const everything = await sessions().listSessions(instanceId, {}, { offset: 0, limit: 10, asc: true }, { ...visible, orgIds: "all" });
      expect(everything.sessions.map((s) => s.id)).toContain(hidden.id);
      expect(everything.sessions.map((s) => s.id)).not.toContain(ended.id);
    });

    it("filters by ids, user, creation and expiry time and fingerprint", async () => {
      const instanceId = ids("inst");
      const a = session(instanceId, { userId: "ua", createdAt: T0, expiresAt: T0 + 10_000 });
      const b = session(instanceId, { userId: "ub", createdAt: T0 + 1000, expiresAt: undefined, userAgent: { fingerprintId: "fp-b" } });
      const c = session(instanceId, { userId: "ua", createdAt: T0 + 2000, expiresAt: T0 + 1_000 });
      for (const s of [a, b, c]) await sessions().write({ session: { session: s, fromSequence: 0, events: added } });
      const list = async (filter: Parameters<ReturnType<typeof sessions>["listSessions"]>[1]) =>
        (await sessions().listSessions(instanceId, filter, { offset: 0, limit: 10, asc: true }, { creator: "", userId: "", orgIds: "all" })).sessions.map(
          (s) => s.id,
        );
      expect(await list({ ids: [a.id, c.id] })).toEqual([a.id, c.id]);
      expect(await list({ ids: [] })).toEqual([]);
      expect(await list({ userId: "ua" })).toEqual([a.id, c.id]);
      expect(await list({ createdAt: { method: ">=", at: T0 + 1000 } })).toEqual([b.id, c.id]);
      // "Expires later than" also finds sessions that never expire (ZITADEL's expirationDateQueryToQuery).
      expect(await list({ expiresAt: { method: ">", at: T0 + 5_000 } })).toEqual([a.id, b.id]);
      expect(await list({ expiresAt: { method: "<", at: T0 + 5_000 } })).toEqual([c.id]);
      expect(await list({ fingerprintId: "fp-b" })).toEqual([b.id]);
    });
  });
});
