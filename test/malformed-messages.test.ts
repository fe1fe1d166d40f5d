/**
 * A request message that does not decode is the client's mistake, on every protocol:
 * INVALID_ARGUMENT (HTTP 400 over Connect and REST), a message saying the body could not be
 * decoded, nothing of the parser's words, and never INTERNAL / HTTP 500. The same for frames that
 * lie: a compressed flag without negotiated compression, a length prefix shorter or longer than
 * the body. Decoding comes before authentication (as in grpc-go, whose generated handlers decode
 * before any interceptor runs), so these requests carry no token.
 *
 * grpc-gateway's runtime answers JSON it cannot decode with InvalidArgument; grpc-go answers a
 * binary body it cannot unmarshal with Internal, which userport deliberately does not follow.
 */
import http from "node:http";
import http2 from "node:http2";
import { create, toBinary, toJson } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AddHumanUserRequestSchema } from "../gen/zitadel/management_pb.js";
import { V1 } from "./helpers/clients.js";
import { useUserport } from "./helpers/fixtures.js";
import {
  connectStreamStatus,
  connectUnaryStatus,
  frame,
  grpcStatus,
  grpcWebStatus,
  h1Request,
  h2Request,
  type RawResponse,
  type WireStatus,
} from "./helpers/raw-wire.js";

const up = useUserport();

const ADD_HUMAN = "/zitadel.management.v1.ManagementService/AddHumanUser";
const V2_ADD_HUMAN = "/zitadel.user.v2.UserService/AddHumanUser";
const INVALID_ARGUMENT = 3;

/** Bytes that do not parse as a protobuf message, and the words protobuf-es uses for them. */
const GARBAGE: Array<[string, Buffer]> = [
  ["ff ff ff ff ff (premature EOF)", Buffer.from("ffffffffff", "hex")],
  ["ef 77 (illegal tag: field no 1917 wire type 7)", Buffer.from("ef77", "hex")],
  ["0a 05 61 (a string promising 5 bytes, holding 1)", Buffer.from("0a0561", "hex")],
];

/** Words of the parser or of Connect's protocol layer that must never reach a client. */
const PARSER_WORDS = /premature EOF|illegal tag|wire type|parse binary|envelope|decompress|JSON at position|Unexpected (token|end)|is not valid JSON/i;

function expectUndecodable(status: WireStatus | undefined, typeName = "zitadel.management.v1.AddHumanUserRequest") {
  expect(status, "an error status").toBeDefined();
  expect(status!.code).toBe(INVALID_ARGUMENT);
  expect(status!.message).toContain(`the request body could not be decoded as ${typeName}`);
  expect(status!.message).not.toMatch(PARSER_WORDS);
}

/** The response carries no grpc-status-details-bin left over from the parser's error. */
function expectNoParserDetails(response: RawResponse) {
  const details = response.trailers["grpc-status-details-bin"] ?? response.headers["grpc-status-details-bin"];
  if (details !== undefined) expect(Buffer.from(details, "base64").toString("latin1")).not.toMatch(PARSER_WORDS);
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

describe("Connect unary with a binary body that does not parse", () => {
  it.each(GARBAGE)("answers %s with HTTP 400 invalid_argument over HTTP/1.1 and HTTP/2", async (_name, body) => {
    const request = { path: ADD_HUMAN, headers: { "content-type": "application/proto" }, body };
    for (const response of [await h1Request(up.server.url, agent, request), await h2Request(session, request)]) {
      expect(response.status).toBe(400);
      expect(response.headers["content-type"]).toBe("application/json");
      expectUndecodable(connectUnaryStatus(response));
    }
  });

  it("answers the same with a token, and for a v2 RPC", async () => {
    const response = await h1Request(up.server.url, agent, {
      path: V2_ADD_HUMAN,
      headers: { "content-type": "application/proto", authorization: `Bearer ${up.server.token}` },
      body: GARBAGE[0]![1],
    });
    expect(response.status).toBe(400);
    expectUndecodable(connectUnaryStatus(response), "zitadel.user.v2.AddHumanUserRequest");
  });
});

describe("Connect unary with a JSON body that does not decode", () => {
  it("answers truncated JSON with HTTP 400 invalid_argument, without the parser's words", async () => {
    const response = await h1Request(up.server.url, agent, {
      path: ADD_HUMAN,
      headers: { "content-type": "application/json" },
      body: Buffer.from('{"userName": "ada", "password": "Secret-Value-123'),
    });
    expect(response.status).toBe(400);
    expectUndecodable(connectUnaryStatus(response));
    expect(response.body.toString()).not.toContain("Secret-Value-123");
  });

  it("names a field with a wrong value but never echoes the value", async () => {
    const response = await h1Request(up.server.url, agent, {
      path: ADD_HUMAN,
      headers: { "content-type": "application/json" },
      body: Buffer.from(JSON.stringify({ userName: "ada", initialPassword: 987654321 })),
    });
    expect(response.status).toBe(400);
    const status = connectUnaryStatus(response);
    expectUndecodable(status);
    expect(status!.message).toMatch(/initial_password/);
    expect(response.body.toString()).not.toContain("987654321");
  });
});

describe("gRPC with a message that does not parse", () => {
  it.each(GARBAGE)("answers %s sent by grpc-js with INVALID_ARGUMENT", async (_name, body) => {
    const client = new grpc.Client(new URL(up.server.url).host, grpc.credentials.createInsecure());
    try {
      const error = await new Promise<grpc.ServiceError | null>((resolve) => {
        client.makeUnaryRequest(
          ADD_HUMAN,
          () => body, // grpc-js frames whatever the serializer returns
          (bytes: Buffer) => bytes,
          {},
          new grpc.Metadata(),
          { deadline: Date.now() + 20_000 },
          (err) => resolve(err),
        );
      });
      expect(error?.code).toBe(grpc.status.INVALID_ARGUMENT);
      expectUndecodable({ code: error!.code, message: error!.details });
    } finally {
      client.close();
    }
  });

  const valid = Buffer.from(toBinary(AddHumanUserRequestSchema, create(AddHumanUserRequestSchema, { userName: "framed" })));
  it.each<[string, Buffer, Record<string, string>?]>([
    ["a frame flagged compressed when no compression was negotiated", frame(valid, 1)],
    ["a frame flagged compressed as gzip whose payload is not gzip", frame(valid, 1), { "grpc-encoding": "gzip" }],
    ["a length prefix shorter than the body", frame(valid, 0, valid.length - 3)],
    ["a length prefix longer than the body", frame(valid, 0, valid.length + 10)],
    ["two messages for a unary RPC", Buffer.concat([frame(valid), frame(valid)])],
    ["no message at all", Buffer.alloc(0)],
  ])("answers %s with INVALID_ARGUMENT", async (_name, body, headers = {}) => {
    const response = await h2Request(session, { path: ADD_HUMAN, headers: { "content-type": "application/grpc", te: "trailers", ...headers }, body });
    expect(response.status).toBe(200);
    expectUndecodable(grpcStatus(response));
    expectNoParserDetails(response);
  });

  it("answers a length prefix of 4 GiB with RESOURCE_EXHAUSTED, as Connect does: the size is what is wrong", async () => {
    const response = await h2Request(session, {
      path: ADD_HUMAN,
      headers: { "content-type": "application/grpc", te: "trailers" },
      body: frame(valid, 0, 0xffffffff),
    });
    expect(grpcStatus(response)?.code).toBe(8);
  });

  it("still answers a well-formed frame with a real status (here: no token)", async () => {
    const response = await h2Request(session, { path: ADD_HUMAN, headers: { "content-type": "application/grpc", te: "trailers" }, body: frame(valid) });
    expect(grpcStatus(response)?.code).toBe(16);
  });
});

describe("gRPC-Web with a message that does not parse", () => {
  it.each(GARBAGE)("answers %s with INVALID_ARGUMENT in the trailer frame, over HTTP/1.1 and HTTP/2", async (_name, body) => {
    const request = { path: ADD_HUMAN, headers: { "content-type": "application/grpc-web+proto" }, body: frame(body) };
    for (const response of [await h1Request(up.server.url, agent, request), await h2Request(session, request)]) {
      expect(response.status).toBe(200);
      expectUndecodable(grpcWebStatus(response));
    }
  });

  it("answers a frame flagged compressed without negotiated compression with INVALID_ARGUMENT", async () => {
    const response = await h1Request(up.server.url, agent, {
      path: ADD_HUMAN,
      headers: { "content-type": "application/grpc-web+proto" },
      body: frame(GARBAGE[0]![1], 1),
    });
    expectUndecodable(grpcWebStatus(response));
  });
});

describe("a JSON message whose decoder complaint quotes a lone surrogate", () => {
  // protobuf-es quotes short string values in its complaint; "\ud800" is no character, and
  // Connect's percent-encoding of grpc-message threw on it, leaving the response unwritten (an
  // HTTP/1.1 connection hung).
  const body = frame(Buffer.from('{"userName":"ada","email":{"isEmailVerified":"\\ud800"}}'));
  it.each([
    ["gRPC", "application/grpc+json", grpcStatus],
    ["gRPC-Web", "application/grpc-web+json", grpcWebStatus],
  ] as const)("is answered over %s (HTTP/1.1 and HTTP/2) with INVALID_ARGUMENT", async (_name, contentType, statusOf) => {
    const request = { path: ADD_HUMAN, headers: { "content-type": contentType, te: "trailers" }, body };
    for (const response of [await h1Request(up.server.url, agent, request), await h2Request(session, request)]) {
      expect(response.status).toBe(200);
      expectUndecodable(statusOf(response));
    }
  });
});

describe("Connect streaming (grpc.health.v1.Health/Watch) with a message that does not parse", () => {
  it("answers INVALID_ARGUMENT in the end-of-stream message", async () => {
    const response = await h1Request(up.server.url, agent, {
      path: "/grpc.health.v1.Health/Watch",
      headers: { "content-type": "application/connect+proto" },
      body: frame(GARBAGE[1]![1]),
    });
    expect(response.status).toBe(200);
    expectUndecodable(connectStreamStatus(response), "grpc.health.v1.HealthCheckRequest");
  });
});

describe("a string holding a NUL character (PostgreSQL text cannot hold it; bcrypt would end a password at it)", () => {
  it("REST: a path id %00 is 400 code 3 naming the field, on either store", async () => {
    const response = await h1Request(up.server.url, agent, {
      path: "/management/v1/users/%00/_deactivate",
      headers: { authorization: `Bearer ${up.server.token}` },
    });
    expect(response.status).toBe(400);
    const body = JSON.parse(response.body.toString()) as { code: number; message: string; details: unknown[] };
    expect(body).toEqual({ code: 3, message: "invalid value for field id: it contains a NUL character", details: [] });
  });

  it.each([
    ["Connect JSON", "application/json"],
    ["Connect binary", "application/proto"],
  ])("%s: a nested string with NUL is INVALID_ARGUMENT naming the field", async (_name, contentType) => {
    const message = create(AddHumanUserRequestSchema, { userName: "nul-user", profile: { firstName: "A\u0000da", lastName: "L" } });
    const body =
      contentType === "application/json"
        ? Buffer.from(JSON.stringify(toJson(AddHumanUserRequestSchema, message)))
        : Buffer.from(toBinary(AddHumanUserRequestSchema, message));
    const response = await h1Request(up.server.url, agent, {
      path: ADD_HUMAN,
      headers: { "content-type": contentType, authorization: `Bearer ${up.server.token}` },
      body,
    });
    expect(response.status).toBe(400);
    expect(connectUnaryStatus(response)).toEqual({ code: INVALID_ARGUMENT, message: "invalid value for field profile.firstName: it contains a NUL character" });
  });

  it("gRPC: a password with NUL is INVALID_ARGUMENT, and nothing is written", async () => {
    const message = create(AddHumanUserRequestSchema, {
      userName: "nul-password",
      profile: { firstName: "Ada", lastName: "Lovelace" },
      email: { email: "nul-password@example.com", isEmailVerified: true },
      initialPassword: "Secr3t-Pass\u0000word!",
    });
    const response = await h2Request(session, {
      path: ADD_HUMAN,
      headers: { "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${up.server.token}` },
      body: frame(toBinary(AddHumanUserRequestSchema, message)),
    });
    expect(grpcStatus(response)).toEqual({ code: INVALID_ARGUMENT, message: "invalid value for field initialPassword: it contains a NUL character" });
    expect(await up.server.db.selectFrom("users").select("id").where("username", "=", "nul-password").execute()).toEqual([]);
  });
});

describe("REST with a body that does not decode", () => {
  it("answers truncated JSON with 400 code 3 in the gateway's shape, without the parser's words", async () => {
    const response = await h1Request(up.server.url, agent, {
      path: "/management/v1/users/human",
      headers: { "content-type": "application/json", authorization: `Bearer ${up.server.token}` },
      body: Buffer.from('{"userName": "ada", "password": "Secret-Value-123'),
    });
    expect(response.status).toBe(400);
    const body = JSON.parse(response.body.toString()) as { code: number; message: string; details: unknown[] };
    expect(body).toEqual({ code: 3, message: expect.stringMatching(/JSON/), details: [] });
    expect(body.message).not.toMatch(/position|Unexpected/);
    expect(response.body.toString()).not.toContain("Secret-Value-123");
  });
});

it("keeps serving real calls after all of this", async () => {
  const result = await up.caller("grpc-js").call(V1.getMyOrg, {});
  expect(result.ok).toBe(true);
});
