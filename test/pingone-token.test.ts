/**
 * PingOne's token endpoint `POST /{envID}/as/token` (client_credentials; client_secret_basic and
 * client_secret_post, as golang.org/x/oauth2 sends them for pingone-go-sdk-v2 pingone/client.go)
 * for machine users with a secret from management v1 GenerateMachineSecret (ZITADEL's
 * internal/command/user_machine_secret.go): the token is a bearer on PingOne's and ZITADEL's APIs.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { beforeAll, describe, expect, it } from "vitest";
import { type Caller, createCallers, V1 } from "./helpers/clients.js";
import { expectCode, expectOk } from "./helpers/expectations.js";
import { createApiCaller, uniqueName, useUserport } from "./helpers/fixtures.js";
import { EXTERNAL_URL, PingOneClient } from "./helpers/pingone.js";

const up = useUserport({ externalUrl: EXTERNAL_URL });
let env = "";

beforeAll(async () => {
  const p1 = new PingOneClient(up.server.url, up.server.token);
  env = String(((await p1.get("/v1/environments")).body!._embedded as { environments: Array<{ id: string }> }).environments[0]!.id);
});

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString("base64")}`;

async function token(form: Record<string, string>, headers: Record<string, string> = {}, envId = env) {
  const response = await fetch(`${up.server.url}/${envId}/as/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
    body: new URLSearchParams(form).toString(),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown>, cacheControl: response.headers.get("cache-control") };
}

/** An ORG_USER_MANAGER machine user of its own organisation with a fresh secret. */
async function workerWithSecret(transport: "grpc-js" | "rest" = "grpc-js") {
  const worker = await createApiCaller(up, "ORG_USER_MANAGER");
  const generated = expectOk(
    await up.caller(transport).call(V1.generateMachineSecret, { userId: worker.userId }, { headers: { "x-zitadel-orgid": worker.orgId } }),
  );
  expect(generated.clientId).toBe(worker.userName);
  expect(String(generated.clientSecret).length).toBeGreaterThanOrEqual(32);
  return { worker, clientId: String(generated.clientId), clientSecret: String(generated.clientSecret) };
}

describe("GenerateMachineSecret / RemoveMachineSecret", () => {
  it("generates a secret over gRPC and REST (PUT /management/v1/users/{id}/secret), with events and only a digest stored", async () => {
    for (const transport of ["grpc-js", "rest"] as const) {
      const { worker, clientSecret } = await workerWithSecret(transport);
      const events = await up.eventTypes(worker.userId);
      expect(events.at(-1)).toBe("user.machine.secret.set");
      const claims = await up.server.db.selectFrom("unique_constraints").selectAll().where("owner_id", "=", worker.userId).execute();
      expect(JSON.stringify(claims)).not.toContain(clientSecret);
    }
  });

  it("refuses a human user and a user of another organisation (FAILED_PRECONDITION COMMAND-x8910n), and removing a missing secret (COMMAND-coi82n)", async () => {
    const worker = await createApiCaller(up, undefined);
    const other = await createApiCaller(up, undefined);
    const inOrg = { headers: { "x-zitadel-orgid": worker.orgId } };
    const caller = up.caller("grpc-js");
    expect(expectCode(await caller.call(V1.generateMachineSecret, { userId: other.userId }, inOrg), Code.FailedPrecondition).message).toContain(
      "COMMAND-x8910n",
    );
    const human = expectOk(
      await caller.call(V1.addHumanUser, { userName: uniqueName("h"), profile: { firstName: "H", lastName: "U" }, email: { email: "h@example.com" } }, inOrg),
    );
    expectCode(await caller.call(V1.generateMachineSecret, { userId: String(human.userId) }, inOrg), Code.FailedPrecondition);
    expect(expectCode(await caller.call(V1.removeMachineSecret, { userId: worker.userId }, inOrg), Code.FailedPrecondition).message).toContain(
      "COMMAND-coi82n",
    );
    expectCode(await caller.call(V1.generateMachineSecret, { userId: "" }, inOrg), Code.InvalidArgument);
  });
});

describe("POST /{envID}/as/token", () => {
  it("issues a one-hour bearer token for client_secret_basic and client_secret_post that works on PingOne's and ZITADEL's APIs", async () => {
    const { worker, clientId, clientSecret } = await workerWithSecret();
    for (const attempt of [
      () => token({ grant_type: "client_credentials" }, { authorization: basic(clientId, clientSecret) }),
      () => token({ grant_type: "client_credentials", client_id: clientId, client_secret: clientSecret }),
      () => token({ grant_type: "client_credentials", client_id: worker.userId, client_secret: clientSecret }),
    ]) {
      const issued = await attempt();
      expect(issued.status, JSON.stringify(issued.body)).toBe(200);
      expect(issued.body).toMatchObject({ token_type: "Bearer", expires_in: 3600 });
      expect(issued.cacheControl).toBe("no-store");
      const bearer = String(issued.body.access_token);
      // PingOne's API: the worker manages the users of its own population.
      const p1 = new PingOneClient(up.server.url, bearer);
      const created = await p1.post(`/v1/environments/${env}/users`, { username: uniqueName("by-worker"), population: { id: worker.orgId } });
      expect(created.status, created.raw).toBe(201);
      // ZITADEL's API over gRPC.
      const callers = createCallers(up.server.url, bearer);
      const grpc = callers.get("grpc-js") as Caller;
      const me = expectOk(await grpc.call(V1.getUserByID, { id: String(created.body!.id) }));
      expect((me.user as JsonObject).id).toBe(created.body!.id);
      for (const caller of callers.values()) caller.close();
    }
  });

  it("answers RFC 6749 errors: a wrong secret or unknown client is 401 invalid_client, another grant type unsupported_grant_type, another environment 404", async () => {
    const { clientId, clientSecret } = await workerWithSecret();
    const wrong = await token({ grant_type: "client_credentials" }, { authorization: basic(clientId, `${clientSecret}x`) });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toBe("invalid_client");
    expect((await token({ grant_type: "client_credentials", client_id: "nobody", client_secret: clientSecret })).status).toBe(401);
    expect((await token({ grant_type: "client_credentials" })).body.error).toBe("invalid_client");
    expect((await token({ grant_type: "password", username: "x", password: "y" }, { authorization: basic(clientId, clientSecret) })).body.error).toBe(
      "unsupported_grant_type",
    );
    expect((await token({ grant_type: "client_credentials" }, { authorization: basic(clientId, clientSecret) }, crypto.randomUUID())).status).toBe(404);
    expect(JSON.stringify(wrong.body)).not.toContain(clientSecret);
  });

  it("a removed secret, a new secret and a deactivated worker: the old secret stops working at once", async () => {
    const { worker, clientId, clientSecret } = await workerWithSecret();
    const inOrg = { headers: { "x-zitadel-orgid": worker.orgId } };
    const renewed = expectOk(await up.caller("grpc-js").call(V1.generateMachineSecret, { userId: worker.userId }, inOrg));
    expect((await token({ grant_type: "client_credentials" }, { authorization: basic(clientId, clientSecret) })).status).toBe(401);
    const fresh = String(renewed.clientSecret);
    expect((await token({ grant_type: "client_credentials" }, { authorization: basic(clientId, fresh) })).status).toBe(200);
    expectOk(await up.caller("grpc-js").call(V1.deactivateUser, { id: worker.userId }, inOrg));
    expect((await token({ grant_type: "client_credentials" }, { authorization: basic(clientId, fresh) })).status).toBe(401);
    expectOk(await up.caller("grpc-js").call(V1.reactivateUser, { id: worker.userId }, inOrg));
    expectOk(await up.caller("rest").call(V1.removeMachineSecret, { userId: worker.userId }, inOrg));
    expect(await up.eventTypes(worker.userId)).toContain("user.machine.secret.removed");
    expect((await token({ grant_type: "client_credentials" }, { authorization: basic(clientId, fresh) })).status).toBe(401);
  });
});
