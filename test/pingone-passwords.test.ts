/**
 * PingOne's password operations (PingOne docs "User Passwords": password-check, update-password-set,
 * update-password-self, force-change-password, password-unlock) over ZITADEL's password commands:
 * one failure count and one lockout policy for PingOne's check and ZITADEL's CreateSession.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { SESSIONS, V2 } from "./helpers/clients.js";
import { expectCode, expectOk } from "./helpers/expectations.js";
import { uniqueName, useUserport } from "./helpers/fixtures.js";
import { EXTERNAL_URL, MEDIA, PingOneClient, type PingOneResponse, ssha512, UUID } from "./helpers/pingone.js";

const up = useUserport({ externalUrl: EXTERNAL_URL, passwordVerifiers: ["ssha"], maxPasswordAttempts: 3 });
const CHECK = "application/vnd.pingidentity.password.check+json";
const SET = "application/vnd.pingidentity.password.set+json";
const RESET = "application/vnd.pingidentity.password.reset+json";
const PASSWORD = "Sample-Passw0rd!";
let p1: PingOneClient;
let users = "";
let population = "";

beforeAll(async () => {
  p1 = new PingOneClient(up.server.url, up.server.token);
  const env = String(((await p1.get("/v1/environments")).body!._embedded as { environments: Array<{ id: string }> }).environments[0]!.id);
  users = `/v1/environments/${env}/users`;
  population = up.defaultOrgId;
});

async function importUser(password = PASSWORD): Promise<{ id: string; username: string; path: string }> {
  const username = uniqueName("pw");
  const created = await p1.post(users, { username, population: { id: population }, password: { value: ssha512(password), forceChange: false } }, MEDIA.import);
  expect(created.status, created.raw).toBe(201);
  const id = String(created.body!.id);
  return { id, username, path: `${users}/${id}/password` };
}

function expectError(response: PingOneResponse, status: number, code: string, detail: string, target: string) {
  expect(response.status, response.raw).toBe(status);
  expect(response.body!.id).toMatch(UUID);
  expect(response.body!.code).toBe(code);
  const first = (response.body!.details as Array<Record<string, unknown>>)[0]!;
  expect(first).toMatchObject({ code: detail, target });
  return first;
}

describe("password check", () => {
  it("accepts the imported password (status OK, the {SSHA512} hash upgraded) and never echoes it", async () => {
    const user = await importUser();
    const checked = await p1.post(user.path, { password: PASSWORD }, CHECK);
    expect(checked.status, checked.raw).toBe(200);
    expect(checked.body).toMatchObject({ status: "OK", user: { id: user.id } });
    expect(checked.raw).not.toContain(PASSWORD);
    const row = await up.server.db.selectFrom("users").select("password_hash").where("id", "=", user.id).executeTakeFirstOrThrow();
    expect(row.password_hash).toMatch(/^\$2b\$04\$/);
  });

  it("counts wrong passwords with ZITADEL's CreateSession against one lockout policy: failuresRemaining, then PASSWORD_LOCKED_OUT, unlock", async () => {
    const user = await importUser();
    const first = expectError(await p1.post(user.path, { password: "wrong-1" }, CHECK), 400, "INVALID_DATA", "INVALID_VALUE", "password");
    expect(first).toMatchObject({ message: "The provided password did not match provisioned password", innerError: { failuresRemaining: 2 } });
    // The second failure through ZITADEL's session API counts on the same user.
    expectCode(
      await up.caller("grpc-js").call(SESSIONS.createSession, { checks: { user: { userId: user.id }, password: { password: "wrong-2" } } }),
      Code.InvalidArgument,
    );
    const third = expectError(await p1.post(user.path, { password: "wrong-3" }, CHECK), 400, "INVALID_DATA", "INVALID_VALUE", "password");
    expect(third.innerError).toEqual({ failuresRemaining: 0 });

    const state = await p1.get(user.path);
    expect(state.body).toMatchObject({ status: "PASSWORD_LOCKED_OUT" });
    const v2 = expectOk(await up.caller("grpc-js").call(V2.getUserByID, { userId: user.id }));
    expect((v2.user as JsonObject).state).toBe("USER_STATE_LOCKED");
    // Even the right password is refused while locked.
    expectError(await p1.post(user.path, { password: PASSWORD }, CHECK), 400, "INVALID_DATA", "ACCOUNT_NOT_USABLE", "password");

    const unlocked = await p1.post(user.path, "", "application/vnd.pingidentity.password.unlock");
    expect(unlocked.status, unlocked.raw).toBe(200);
    expect(unlocked.body).toMatchObject({ status: "OK" });
    expect((await p1.post(user.path, { password: PASSWORD }, CHECK)).status).toBe(200);
  });

  it("refuses an empty password, a user without one, and a wrong media type", async () => {
    const user = await importUser();
    expectError(await p1.post(user.path, { password: "" }, CHECK), 400, "INVALID_DATA", "EMPTY_VALUE", "password");
    const bare = await p1.post(users, { username: uniqueName() });
    expectError(await p1.post(`${users}/${bare.body!.id}/password`, { password: "x" }, CHECK), 400, "INVALID_DATA", "NO_PASSWORD", "password");
    expect((await p1.post(user.path, { password: PASSWORD }, "application/json")).status).toBe(415);
  });
});

describe("password set, self change and force change", () => {
  it("sets a password (forceChange: MUST_CHANGE_PASSWORD) that ZITADEL's CreateSession then accepts; the policy error is PingOne's", async () => {
    const user = await importUser();
    const weak = expectError(await p1.put(user.path, { value: "short", forceChange: false }, SET), 400, "INVALID_DATA", "INVALID_VALUE", "password");
    expect((weak.innerError as { unsatisfiedRequirements: string[] }).unsatisfiedRequirements).toEqual(["length"]);
    const set = await p1.put(user.path, { value: "Brand-New-Passw0rd!", forceChange: true }, SET);
    expect(set.status, set.raw).toBe(200);
    expect(set.body).toMatchObject({ status: "MUST_CHANGE_PASSWORD", lastChangedAt: expect.any(String) });
    expectOk(
      await up
        .caller("grpc-js")
        .call(SESSIONS.createSession, { checks: { user: { loginName: user.username }, password: { password: "Brand-New-Passw0rd!" } } }),
      201,
    );
  });

  it("changes the password with the current one (reset+json), refusing a wrong current password", async () => {
    const user = await importUser();
    expectError(
      await p1.put(user.path, { currentPassword: "nope", newPassword: "Another-Passw0rd!" }, RESET),
      400,
      "INVALID_DATA",
      "INVALID_VALUE",
      "currentPassword",
    );
    expectError(await p1.put(user.path, { currentPassword: PASSWORD, newPassword: "short" }, RESET), 400, "INVALID_DATA", "INVALID_VALUE", "newPassword");
    const changed = await p1.put(user.path, { currentPassword: PASSWORD, newPassword: "Another-Passw0rd!" }, RESET);
    expect(changed.status, changed.raw).toBe(200);
    expect((await p1.post(user.path, { password: "Another-Passw0rd!" }, CHECK)).status).toBe(200);
  });

  it("forces a change (media type without +json) keeping the password", async () => {
    const user = await importUser();
    const forced = await p1.post(user.path, "", "application/vnd.pingidentity.password.forceChange");
    expect(forced.status, forced.raw).toBe(200);
    expect(forced.body).toMatchObject({ status: "MUST_CHANGE_PASSWORD" });
    expect((await p1.post(user.path, { password: PASSWORD }, CHECK)).status).toBe(200);
  });

  it("sends a recovery code and refuses a wrong one", async () => {
    const user = await importUser();
    expect((await p1.post(user.path, "", "application/vnd.pingidentity.password.sendRecoveryCode+json")).status).toBe(200);
    const wrong = await p1.post(
      user.path,
      { recoveryCode: "WRONG123", newPassword: "Recovered-Passw0rd!" },
      "application/vnd.pingidentity.password.recover+json",
    );
    expect(wrong.status, wrong.raw).toBe(400);
    expect(wrong.body!.code).toBe("INVALID_DATA");
  });
});
