/**
 * Unary calls over the Connect protocol whose body is one uncompressed `application/json` or
 * `application/proto` message (src/edge/connect-fast-path.ts), and over binary gRPC-Web with one
 * uncompressed message (src/edge/grpc-fast-path.ts), take leaner paths to the same implementation
 * (`serveFast` in src/edge/rpc-routes.ts); every other request goes through Connect's handler.
 * Both must answer alike: the same status, headers and body, errors and their details included.
 * The comparison is with the same request under a content type the fast path leaves to Connect
 * and Connect reads the same way (`application/json; charset=utf-8`, `Application/Proto`,
 * `Application/Grpc-Web+Proto`), over HTTP/1.1 and HTTP/2.
 */
import http from "node:http";
import http2 from "node:http2";
import { gunzipSync } from "node:zlib";
import { fromBinary, fromJson, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ImportHumanUserRequestSchema, ListUsersRequestSchema, ListUsersResponseSchema } from "../gen/zitadel/management_pb.js";
import { GOOD_PASSWORD, useUserport, v1AddBody, v1ImportBody } from "./helpers/fixtures.js";
import { connectUnaryStatus, frame, frames, grpcWebStatus, h1Request, h2Request, type RawRequest, type RawResponse } from "./helpers/raw-wire.js";

const up = useUserport({ bcryptCost: 11, bodyLimitBytes: 64 * 1024 });
const IMPORT = "/zitadel.management.v1.ManagementService/ImportHumanUser";
const ADD_HUMAN = "/zitadel.management.v1.ManagementService/AddHumanUser";
const LIST_USERS = "/zitadel.management.v1.ManagementService/ListUsers";

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

type Send = (request: RawRequest) => Promise<RawResponse>;
const transports: Array<[string, Send]> = [
  ["HTTP/1.1", (request) => h1Request(up.server.url, agent, request)],
  ["HTTP/2", (request) => h2Request(session, request)],
];

/** The content types of each format: the first taken by the fast path, the second left to Connect. */
const FORMATS = {
  json: ["application/json", "application/json; charset=utf-8"],
  proto: ["application/proto", "Application/Proto"],
} as const;

/** What must not differ between the two paths: everything but the request id, the date and the connection's own headers. */
function comparable(response: RawResponse) {
  const { "x-request-id": _id, date: _date, connection: _connection, "keep-alive": _keepAlive, ...headers } = response.headers;
  return { status: response.status, headers, body: response.body.toString("utf8") };
}

function importBody(format: keyof typeof FORMATS, json: Record<string, unknown> = v1ImportBody()): Buffer {
  if (format === "json") return Buffer.from(JSON.stringify(json));
  return Buffer.from(toBinary(ImportHumanUserRequestSchema, fromJson(ImportHumanUserRequestSchema, json as never)));
}

/** An import whose message is over the server's 64 KiB limit, as one gRPC-Web frame. */
function bigMessage(): Buffer {
  const json = v1ImportBody();
  return frame(importBody("proto", { ...json, profile: { ...(json.profile as object), nickName: "x".repeat(70 * 1024) } }));
}

/** The same call on both paths, one after the other. */
async function bothPaths(send: Send, format: keyof typeof FORMATS, path: string, body: () => Buffer, headers: Record<string, string>) {
  const [fastType, connectType] = FORMATS[format];
  const fast = await send({ path, headers: { "content-type": fastType, ...headers }, body: body() });
  const connect = await send({ path, headers: { "content-type": connectType, ...headers }, body: body() });
  return { fast, connect };
}

describe.each(transports)("over %s, the Connect fast path answers as Connect's handler does", (_name, send) => {
  for (const format of ["json", "proto"] as const) {
    it(`${format}: a username taken, ALREADY_EXISTS with ZITADEL's details: the same status, headers and error body`, async () => {
      const json = v1ImportBody();
      const first = await send({ path: IMPORT, headers: { "content-type": FORMATS[format][0], ...auth() }, body: importBody(format, json) });
      expect(first.status).toBe(200);
      const { fast, connect } = await bothPaths(send, format, IMPORT, () => importBody(format, json), auth());
      expect(fast.status).toBe(409);
      expect(connectUnaryStatus(fast)?.code).toBe(6);
      expect(JSON.parse(fast.body.toString("utf8")).details).toHaveLength(1);
      expect(comparable(fast)).toEqual(comparable(connect));
    });

    it(`${format}: a call without a token: UNAUTHENTICATED alike`, async () => {
      const { fast, connect } = await bothPaths(send, format, IMPORT, () => importBody(format), {});
      expect(fast.status).toBe(401);
      expect(comparable(fast)).toEqual(comparable(connect));
    });

    it(`${format}: a request the protos' rules refuse: INVALID_ARGUMENT alike`, async () => {
      const { fast, connect } = await bothPaths(send, format, IMPORT, () => importBody(format, v1ImportBody({ userName: "" })), auth());
      expect(fast.status).toBe(400);
      expect(comparable(fast)).toEqual(comparable(connect));
    });

    it(`${format}: a success: the same status and headers, the body's own length, the user stored`, async () => {
      const { fast, connect } = await bothPaths(send, format, IMPORT, () => importBody(format), auth());
      expect(fast.status).toBe(200);
      expect(fast.headers["content-type"]).toBe(FORMATS[format][0]);
      expect(fast.headers["content-length"]).toBe(String(fast.body.byteLength));
      // Two users' answers differ in length (their ids, sequences and dates): the rest must not differ.
      const withoutLength = (response: RawResponse) => {
        const { body: _body, headers, ...rest } = comparable(response);
        const { "content-length": _length, ...others } = headers;
        return { ...rest, headers: others };
      };
      expect(withoutLength(fast)).toEqual(withoutLength(connect));
      expect(connect.headers["content-length"]).toBe(String(connect.body.byteLength));
    });
  }

  it("a body that is not JSON: Connect's answer, corrected to INVALID_ARGUMENT, quoting nothing", async () => {
    const { fast, connect } = await bothPaths(send, "json", IMPORT, () => Buffer.from('{"userName": "secret-value'), auth());
    expect(fast.status).toBe(400);
    expect(fast.body.toString("utf8")).not.toContain("secret-value");
    expect(comparable(fast)).toEqual(comparable(connect));
  });

  it("a body over the size limit: Connect's RESOURCE_EXHAUSTED, the server goes on serving", async () => {
    const big = () => Buffer.from(JSON.stringify({ ...v1ImportBody(), nickName: "x".repeat(70 * 1024) }));
    const { fast, connect } = await bothPaths(send, "json", IMPORT, big, auth());
    expect(connectUnaryStatus(fast)?.code).toBe(8);
    expect(comparable(fast)).toEqual(comparable(connect));
    const after = await send({ path: IMPORT, headers: { "content-type": "application/json", ...auth() }, body: importBody("json") });
    expect(after.status).toBe(200);
  });

  it("a response over Connect's compression threshold: gzip when accepted, alike", async () => {
    for (let i = 0; i < 8; i++) {
      const stored = await send({ path: IMPORT, headers: { "content-type": "application/json", ...auth() }, body: importBody("json") });
      expect(stored.status).toBe(200);
    }
    const list = () => Buffer.from(JSON.stringify({ query: { limit: 8 } }));
    const { fast, connect } = await bothPaths(send, "json", LIST_USERS, list, { ...auth(), "accept-encoding": "gzip" });
    expect(fast.status).toBe(200);
    expect(fast.headers["content-encoding"]).toBe("gzip");
    expect(fast.headers["content-length"]).toBe(String(fast.body.byteLength));
    const { body: _fastBody, ...fastRest } = comparable(fast);
    const { body: _connectBody, ...connectRest } = comparable(connect);
    expect(fastRest).toEqual({ ...connectRest, headers: { ...connectRest.headers, "content-length": fast.headers["content-length"] } });
    const users = (response: RawResponse) =>
      (JSON.parse(gunzipSync(response.body).toString("utf8")) as { result: Array<{ id: string }> }).result.map((u) => u.id);
    expect(users(fast)).toHaveLength(8);
    expect(users(fast)).toEqual(users(connect));
  });
});

describe.each(transports)("over %s, the gRPC-Web fast path answers as Connect's handler does", (_name, send) => {
  const FAST = "application/grpc-web+proto";
  const CONNECT = "Application/Grpc-Web+Proto";
  const web = (type: string, path: string, body: Buffer, headers: Record<string, string>) =>
    send({ path, headers: { "content-type": type, "x-grpc-web": "1", ...headers }, body });

  it("a username taken: ALREADY_EXISTS with ZITADEL's details in the trailer frame, the same headers and body", async () => {
    const json = v1ImportBody();
    expect(grpcWebStatus(await web(FAST, IMPORT, frame(importBody("proto", json)), auth()))?.code).toBe(0);
    const fast = await web(FAST, IMPORT, frame(importBody("proto", json)), auth());
    const connect = await web(CONNECT, IMPORT, frame(importBody("proto", json)), auth());
    expect(grpcWebStatus(fast)?.code).toBe(6);
    expect(fast.body.toString("latin1")).toContain("grpc-status-details-bin");
    expect(comparable(fast)).toEqual(comparable(connect));
  });

  it("a call without a token: UNAUTHENTICATED alike", async () => {
    const fast = await web(FAST, IMPORT, frame(importBody("proto")), {});
    const connect = await web(CONNECT, IMPORT, frame(importBody("proto")), {});
    expect(grpcWebStatus(fast)?.code).toBe(16);
    expect(comparable(fast)).toEqual(comparable(connect));
  });

  it("a success: the same headers, a message frame and a trailer frame with grpc-status 0", async () => {
    const fast = await web(FAST, IMPORT, frame(importBody("proto")), auth());
    const connect = await web(CONNECT, IMPORT, frame(importBody("proto")), auth());
    expect(grpcWebStatus(fast)?.code).toBe(0);
    expect(frames(fast.body).map((f) => f.flags)).toEqual([0, 0x80]);
    const { body: _fastBody, ...fastRest } = comparable(fast);
    const { body: _connectBody, ...connectRest } = comparable(connect);
    expect(fastRest).toEqual(connectRest);
    expect(frames(fast.body)[1]!.data.toString("latin1")).toBe(frames(connect.body)[1]!.data.toString("latin1"));
  });

  it("a frame whose length prefix lies: Connect's answer, alike", async () => {
    const message = importBody("proto");
    const fast = await web(FAST, IMPORT, frame(message, 0, message.byteLength + 10), auth());
    const connect = await web(CONNECT, IMPORT, frame(message, 0, message.byteLength + 10), auth());
    expect(grpcWebStatus(fast)?.code).toBe(3);
    expect(comparable(fast)).toEqual(comparable(connect));
  });

  it("a message over the size limit: Connect's RESOURCE_EXHAUSTED (the fast path hands it over), the server goes on serving", async () => {
    const fast = await web(FAST, IMPORT, bigMessage(), auth());
    expect(grpcWebStatus(fast)).toEqual({ code: 8, message: expect.stringMatching(/larger than configured readMaxBytes 65536/) });
    expect(grpcWebStatus(await web(FAST, IMPORT, frame(importBody("proto")), auth()))?.code).toBe(0);
  });

  it("a response over the compression threshold: a gzip message frame when accepted, alike", async () => {
    for (let i = 0; i < 8; i++) {
      expect(grpcWebStatus(await web(FAST, IMPORT, frame(importBody("proto")), auth()))?.code).toBe(0);
    }
    const list = () => frame(toBinary(ListUsersRequestSchema, fromJson(ListUsersRequestSchema, { query: { limit: 8 } })));
    const headers = { ...auth(), "grpc-accept-encoding": "gzip" };
    const fast = await web(FAST, LIST_USERS, list(), headers);
    const connect = await web(CONNECT, LIST_USERS, list(), headers);
    expect(grpcWebStatus(fast)?.code).toBe(0);
    expect(fast.headers["grpc-encoding"]).toBe("gzip");
    expect(frames(fast.body).map((f) => f.flags)).toEqual([1, 0x80]);
    const { body: _fastBody, ...fastRest } = comparable(fast);
    const { body: _connectBody, ...connectRest } = comparable(connect);
    expect(fastRest).toEqual(connectRest);
    const users = (response: RawResponse) => fromBinary(ListUsersResponseSchema, gunzipSync(frames(response.body)[0]!.data)).result.map((u) => u.id);
    expect(users(fast)).toHaveLength(8);
    expect(users(fast)).toEqual(users(connect));
  });
});

// Over HTTP/2, Connect's own handler answers before it read the body, which the client, held by
// flow control, never finishes sending: the stream is ended once answered (src/edge/one-port.ts).
it.each(transports)("over %s, a gRPC-Web message over the size limit gets the same answer on both paths", async (_name, send) => {
  const web = (type: string) => send({ path: IMPORT, headers: { "content-type": type, "x-grpc-web": "1", ...auth() }, body: bigMessage() });
  const fast = await web("application/grpc-web+proto");
  const connect = await web("Application/Grpc-Web+Proto");
  expect(grpcWebStatus(fast)?.code).toBe(8);
  expect(comparable(fast)).toEqual(comparable(connect));
});

describe("a Connect call whose client goes away while the password is hashed", () => {
  it("writes nothing, and the server goes on serving", async () => {
    const json = v1AddBody({ initialPassword: GOOD_PASSWORD });
    const body = Buffer.from(JSON.stringify(json));
    await new Promise<void>((resolve) => {
      const req = http.request(new URL(ADD_HUMAN, up.server.url), {
        method: "POST",
        headers: { "content-type": "application/json", "content-length": String(body.byteLength), ...auth() },
      });
      req.on("error", () => resolve());
      req.end(body);
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 30);
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    await up.server.settled();
    const rows = await up.server.db
      .selectFrom("users")
      .select("id")
      .where("username", "=", json.userName as string)
      .execute();
    expect(rows).toEqual([]);
    const after = await h1Request(up.server.url, agent, { path: IMPORT, headers: { "content-type": "application/json", ...auth() }, body: importBody("json") });
    expect(after.status).toBe(200);
  });
});
