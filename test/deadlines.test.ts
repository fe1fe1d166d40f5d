/**
 * Deadlines and cancellation. A call whose deadline passes is answered DEADLINE_EXCEEDED by the
 * server itself (`grpc-timeout` over gRPC and gRPC-Web, `connect-timeout-ms` over Connect, and
 * `Grpc-Timeout` over REST as grpc-gateway's runtime reads it), and the command it started writes
 * nothing: the store refuses to start a write for a request that has ended. The same holds for a
 * call whose client went away.
 *
 * The slow path is a plaintext password hashed with bcrypt at cost 11 (hundreds of milliseconds)
 * before the user is written; every deadline here is 1 ms.
 */
import http from "node:http";
import http2 from "node:http2";
import { fromJson, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AddHumanUserRequestSchema, ManagementService } from "../gen/zitadel/management_pb.js";
import { V1 } from "./helpers/clients.js";
import { GOOD_PASSWORD, useUserport, v1AddBody } from "./helpers/fixtures.js";
import { connectUnaryStatus, frame, grpcStatus, grpcWebStatus, h1Request, h2Request } from "./helpers/raw-wire.js";

const up = useUserport({ bcryptCost: 11 });

const ADD_HUMAN = "/zitadel.management.v1.ManagementService/AddHumanUser";
const DEADLINE_EXCEEDED = 4;

/** An AddHumanUser request whose password must be hashed first, and its username. */
function slowAdd() {
  const json = v1AddBody({ initialPassword: GOOD_PASSWORD });
  return { json, userName: json.userName as string, message: fromJson(AddHumanUserRequestSchema, json) };
}

/** Waits until every call's work has finished (also work whose caller is gone), then reads the store. */
async function expectNotWritten(userName: string) {
  await up.server.settled();
  const rows = await up.server.db.selectFrom("users").select("id").where("username", "=", userName).execute();
  expect(rows, `user ${userName} must not have been written`).toEqual([]);
  const claims = await up.server.db.selectFrom("unique_constraints").select("value").where("value", "=", userName.toLowerCase()).execute();
  expect(claims).toEqual([]);
}

let session: http2.ClientHttp2Session;
const agent = new http.Agent({ keepAlive: true });
beforeAll(() => {
  session = http2.connect(up.server.url);
});
afterAll(() => {
  session.close();
  agent.destroy();
});

const auth = () => ({ authorization: `Bearer ${up.server.token}` });

// The client libraries enforce the deadline themselves as well (and may give up before the request
// is on the wire): these show what their users see. The tests below send the deadline header
// without a client-side timer, so only the server can answer DEADLINE_EXCEEDED there.
describe("a 1 ms deadline, set by the client library", () => {
  it("grpc-js: DEADLINE_EXCEEDED, and nothing is written", async () => {
    const client = new grpc.Client(new URL(up.server.url).host, grpc.credentials.createInsecure());
    try {
      // A first call opens the channel, so the deadline call is sent at once.
      expect((await up.caller("grpc-js").call(V1.getMyOrg, {})).ok).toBe(true);
      await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 10_000, (err) => (err ? reject(err) : resolve())));
      const { userName, message } = slowAdd();
      const metadata = new grpc.Metadata();
      metadata.set("authorization", auth().authorization);
      const error = await new Promise<grpc.ServiceError | null>((resolve) => {
        client.makeUnaryRequest(
          ADD_HUMAN,
          () => Buffer.from(toBinary(AddHumanUserRequestSchema, message)),
          (bytes: Buffer) => bytes,
          {},
          metadata,
          { deadline: Date.now() + 1 },
          (err) => resolve(err),
        );
      });
      expect(error?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
      await expectNotWritten(userName);
    } finally {
      client.close();
    }
  });

  it.each(["1.1", "2"] as const)("Connect over HTTP/%s (timeoutMs: 1): DEADLINE_EXCEEDED, and nothing is written", async (httpVersion) => {
    const client = createClient(ManagementService, createConnectTransport({ baseUrl: up.server.url, httpVersion }));
    const { userName, message } = slowAdd();
    const error = await client.addHumanUser(message, { headers: auth(), timeoutMs: 1 }).then(
      () => undefined,
      (err: unknown) => ConnectError.from(err),
    );
    expect(error?.code).toBe(Code.DeadlineExceeded);
    await expectNotWritten(userName);
  });
});

describe("a 1 ms deadline the server must honour itself (the client waits for the answer)", () => {
  it("gRPC, grpc-timeout: 1m: grpc-status 4, and nothing is written", async () => {
    const { userName, message } = slowAdd();
    const response = await h2Request(session, {
      path: ADD_HUMAN,
      headers: { "content-type": "application/grpc", te: "trailers", "grpc-timeout": "1m", ...auth() },
      body: frame(toBinary(AddHumanUserRequestSchema, message)),
    });
    expect(grpcStatus(response)?.code).toBe(DEADLINE_EXCEEDED);
    await expectNotWritten(userName);
  });

  it("gRPC, grpc-timeout: 1000n (1 µs): grpc-status 4, and nothing is written", async () => {
    const { userName, message } = slowAdd();
    const response = await h2Request(session, {
      path: ADD_HUMAN,
      headers: { "content-type": "application/grpc", te: "trailers", "grpc-timeout": "1000n", ...auth() },
      body: frame(toBinary(AddHumanUserRequestSchema, message)),
    });
    expect(grpcStatus(response)?.code).toBe(DEADLINE_EXCEEDED);
    await expectNotWritten(userName);
  });

  it("gRPC-Web over HTTP/1.1, grpc-timeout: 1m: status 4 in the trailer frame, and nothing is written", async () => {
    const { userName, message } = slowAdd();
    const response = await h1Request(up.server.url, agent, {
      path: ADD_HUMAN,
      headers: { "content-type": "application/grpc-web+proto", "grpc-timeout": "1m", ...auth() },
      body: frame(toBinary(AddHumanUserRequestSchema, message)),
    });
    expect(grpcWebStatus(response)?.code).toBe(DEADLINE_EXCEEDED);
    await expectNotWritten(userName);
  });

  it("Connect JSON over HTTP/1.1, connect-timeout-ms: 1: HTTP 504 deadline_exceeded, and nothing is written", async () => {
    const { userName, json } = slowAdd();
    const response = await h1Request(up.server.url, agent, {
      path: ADD_HUMAN,
      headers: { "content-type": "application/json", "connect-timeout-ms": "1", ...auth() },
      body: Buffer.from(JSON.stringify(json)),
    });
    expect(response.status).toBe(504);
    expect(connectUnaryStatus(response)?.code).toBe(DEADLINE_EXCEEDED);
    await expectNotWritten(userName);
  });

  it("REST, Grpc-Timeout: 1m (read by grpc-gateway's runtime): HTTP 504 code 4, and nothing is written", async () => {
    const { userName, json } = slowAdd();
    const response = await h1Request(up.server.url, agent, {
      path: "/management/v1/users/human",
      headers: { "content-type": "application/json", "grpc-timeout": "1m", ...auth() },
      body: Buffer.from(JSON.stringify(json)),
    });
    expect(response.status).toBe(504);
    expect(JSON.parse(response.body.toString())).toEqual({ code: DEADLINE_EXCEEDED, message: expect.any(String), details: [] });
    await expectNotWritten(userName);
  });

  it("REST, a Grpc-Timeout that does not parse: HTTP 400 code 3, and nothing is written", async () => {
    const { userName, json } = slowAdd();
    const response = await h1Request(up.server.url, agent, {
      path: "/management/v1/users/human",
      headers: { "content-type": "application/json", "grpc-timeout": "soon", ...auth() },
      body: Buffer.from(JSON.stringify(json)),
    });
    expect(response.status).toBe(400);
    expect(JSON.parse(response.body.toString())).toMatchObject({ code: 3 });
    await expectNotWritten(userName);
  });
});

describe("other commands under a 1 ms deadline write nothing either", () => {
  // Each command hands its request to the store's writes (RequestState in src/domain/ports.ts):
  // these are commands whose request the services pass on by hand rather than in the target of
  // the call's organisation, after a bcrypt hash or check at cost 11.
  async function userWithPassword() {
    const json = v1AddBody({ initialPassword: GOOD_PASSWORD });
    const added = await up.caller("connect-grpc").call(V1.addHumanUser, json);
    if (!added.ok) throw new Error(JSON.stringify(added));
    return { userId: added.json.userId as string, userName: json.userName as string };
  }
  const eventTypes = async (userId: string) =>
    (await up.server.db.selectFrom("events").select("type").where("aggregate_id", "=", userId).execute()).map((row) => row.type);

  it("v2 SetPassword over REST: HTTP 504, and neither the password nor its event is written", async () => {
    const { userId } = await userWithPassword();
    const before = await eventTypes(userId);
    const hash = async () => (await up.server.db.selectFrom("users").select("password_hash").where("id", "=", userId).executeTakeFirstOrThrow()).password_hash;
    const hashBefore = await hash();
    const response = await h1Request(up.server.url, agent, {
      path: `/v2/users/${userId}/password`,
      headers: { "content-type": "application/json", "grpc-timeout": "1m", ...auth() },
      body: Buffer.from(JSON.stringify({ newPassword: { password: "An0ther-Passw0rd!", changeRequired: false } })),
    });
    expect(response.status).toBe(504);
    await up.server.settled();
    expect(await eventTypes(userId)).toEqual(before);
    expect(await hash()).toBe(hashBefore);
  });

  it("v2 CreateSession with a password check over REST: HTTP 504, and no session is written", async () => {
    const { userId, userName } = await userWithPassword();
    const before = await eventTypes(userId);
    const response = await h1Request(up.server.url, agent, {
      path: "/v2/sessions",
      headers: { "content-type": "application/json", "grpc-timeout": "1m", ...auth() },
      body: Buffer.from(JSON.stringify({ checks: { user: { loginName: userName }, password: { password: GOOD_PASSWORD } } })),
    });
    expect(response.status).toBe(504);
    await up.server.settled();
    expect(await up.server.db.selectFrom("sessions").select("id").where("user_id", "=", userId).execute()).toEqual([]);
    expect(await eventTypes(userId)).toEqual(before);
  });
});

describe("deadlines that do not pass", () => {
  it("REST, a Grpc-Timeout beyond setTimeout's range (99999999H, the largest gRPC allows): the call completes", async () => {
    const { userName, json } = slowAdd();
    const response = await h1Request(up.server.url, agent, {
      path: "/management/v1/users/human",
      headers: { "content-type": "application/json", "grpc-timeout": "99999999H", ...auth() },
      body: Buffer.from(JSON.stringify(json)),
    });
    expect(response.status).toBe(200);
    expect(await up.server.db.selectFrom("users").select("id").where("username", "=", userName).execute()).toHaveLength(1);
  });

  it("a generous deadline lets the call complete over gRPC, Connect and REST", async () => {
    const grpcAdd = slowAdd();
    const grpcResponse = await h2Request(session, {
      path: ADD_HUMAN,
      headers: { "content-type": "application/grpc", te: "trailers", "grpc-timeout": "60S", ...auth() },
      body: frame(toBinary(AddHumanUserRequestSchema, grpcAdd.message)),
    });
    expect(grpcStatus(grpcResponse)?.code).toBe(0);
    const connectAdd = slowAdd();
    const connectResponse = await h1Request(up.server.url, agent, {
      path: ADD_HUMAN,
      headers: { "content-type": "application/json", "connect-timeout-ms": "60000", ...auth() },
      body: Buffer.from(JSON.stringify(connectAdd.json)),
    });
    expect(connectResponse.status).toBe(200);
    const restAdd = slowAdd();
    const restResponse = await h1Request(up.server.url, agent, {
      path: "/management/v1/users/human",
      headers: { "content-type": "application/json", "grpc-timeout": "60S", ...auth() },
      body: Buffer.from(JSON.stringify(restAdd.json)),
    });
    expect(restResponse.status).toBe(200);
    for (const { userName } of [grpcAdd, connectAdd, restAdd]) {
      expect(await up.server.db.selectFrom("users").select("id").where("username", "=", userName).execute()).toHaveLength(1);
    }
  });
});

describe("a client that goes away", () => {
  // The stream is reset once the request is on its way; the password hash takes far longer, so
  // the server is still hashing when the reset arrives.
  it("gRPC: a stream reset while the password is hashed leaves nothing written", async () => {
    const { userName, message } = slowAdd();
    const stream = session.request({ ":method": "POST", ":path": ADD_HUMAN, "content-type": "application/grpc", te: "trailers", ...auth() });
    stream.on("error", () => {});
    stream.end(frame(toBinary(AddHumanUserRequestSchema, message)));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const closed = new Promise((resolve) => stream.once("close", resolve));
    stream.close(http2.constants.NGHTTP2_CANCEL);
    await closed;
    await expectNotWritten(userName);
  });

  it("REST: a connection closed while the password is hashed leaves nothing written", async () => {
    const { userName, json } = slowAdd();
    const body = JSON.stringify(json);
    const request = http.request(new URL("/management/v1/users/human", up.server.url), {
      method: "POST",
      headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...auth() },
    });
    request.on("error", () => {});
    request.end(body);
    await new Promise((resolve) => setTimeout(resolve, 50));
    request.destroy();
    await expectNotWritten(userName);
  });
});

it("the server is healthy afterwards: a call without a deadline succeeds", async () => {
  const result = await up.caller("connect-grpc").call(V1.addHumanUser, v1AddBody({ initialPassword: GOOD_PASSWORD }));
  expect(result.ok).toBe(true);
});
