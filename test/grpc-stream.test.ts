/**
 * Unary binary gRPC calls are served straight off the HTTP/2 stream, before fastify
 * (src/edge/grpc-stream.ts); what that path leaves goes to fastify and Connect. Both must look the
 * same from outside: the request id, the access log line, the metrics, and the answers to
 * requests the stream path hands over after reading part or all of their body.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromJson, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ImportHumanUserRequestSchema } from "../gen/zitadel/management_pb.js";
import { dropTestDatabase, testDatabaseUrl } from "./helpers/database.js";
import { GOOD_PASSWORD, v1ImportBody } from "./helpers/fixtures.js";
import { freePort, type Served, serveProcess } from "./helpers/process.js";
import { frame, grpcStatus, h2Request, type RawResponse } from "./helpers/raw-wire.js";

const IMPORT = "/zitadel.management.v1.ManagementService/ImportHumanUser";
const RPC = "zitadel.management.v1.ManagementService/ImportHumanUser";
/** Small, so that a body over the limit is quick to send. */
const BODY_LIMIT = 4000;

interface Line {
  level: number;
  msg: string;
  reqId?: string;
  [key: string]: unknown;
}

let dataDir: string;
let served: Served;
let session: http2.ClientHttp2Session;
let token: string;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "userport-grpc-stream-"));
  const databaseUrl = await testDatabaseUrl(dataDir);
  served = await serveProcess(await freePort(), {
    USERPORT_DATA_DIR: dataDir,
    ...(databaseUrl ? { USERPORT_DATABASE_URL: databaseUrl } : {}),
    // Slow enough hashing that a call is still running when its client resets it.
    USERPORT_BCRYPT_COST: "12",
    USERPORT_LOG_LEVEL: "info",
    USERPORT_BODY_LIMIT: String(BODY_LIMIT),
  });
  token = readFileSync(join(dataDir, "admin.pat"), "utf8").trim();
  session = http2.connect(served.url);
});

afterAll(async () => {
  session?.close();
  served?.child.kill("SIGKILL");
  await dropTestDatabase(dataDir);
  rmSync(dataDir, { recursive: true, force: true });
});

const grpcHeaders = (extra: Record<string, string> = {}) => ({
  "content-type": "application/grpc",
  te: "trailers",
  authorization: `Bearer ${token}`,
  ...extra,
});

const importMessage = (extra = {}) => toBinary(ImportHumanUserRequestSchema, fromJson(ImportHumanUserRequestSchema, v1ImportBody(extra)));

const logLines = (): Line[] =>
  served
    .output()
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Line);

/** The access log line of the request with id `reqId`, once it is written (the log is a pipe). */
async function requestLine(reqId: string): Promise<Line> {
  for (let i = 0; i < 200; i++) {
    const line = logLines().find((l) => l.msg === "request" && l.reqId === reqId);
    if (line) return line;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`no access log line for request ${reqId}`);
}

async function metricValue(labels: string): Promise<number> {
  const text = await (await fetch(`${served.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`userport_requests_total{${labels}}`));
  return line === undefined ? 0 : Number(line.split(" ").pop());
}

/** Sends `body` in DATA frames of `pieces`' sizes, each after the previous was written. */
function piecewise(headers: Record<string, string>, body: Buffer, pieces: number[]): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": IMPORT, ...headers });
    let status = 0;
    let responseHeaders: Record<string, string> = {};
    let trailers: Record<string, string> = {};
    const chunks: Buffer[] = [];
    const flat = (h: Record<string, unknown>) =>
      Object.fromEntries(
        Object.entries(h)
          .filter(([k]) => !k.startsWith(":"))
          .map(([k, v]) => [k, String(v)]),
      );
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      responseHeaders = flat(h);
    });
    stream.on("trailers", (t) => (trailers = flat(t)));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => resolve({ status, headers: responseHeaders, trailers, body: Buffer.concat(chunks) }));
    stream.on("error", reject);
    let at = 0;
    const next = () => {
      const size = pieces.shift();
      if (size === undefined || at + size >= body.length) {
        stream.end(body.subarray(at));
        return;
      }
      stream.write(body.subarray(at, at + size), () => setTimeout(next, 20));
      at += size;
    };
    next();
  });
}

describe("a gRPC call served off the stream", () => {
  it("takes the client's x-request-id, returns it, and writes the access log line and the metrics of a gRPC call", async () => {
    const before = await metricValue(`rpc="${RPC}",protocol="grpc",code="OK"`);
    const response = await h2Request(session, { path: IMPORT, headers: grpcHeaders({ "x-request-id": "stream-call-1" }), body: frame(importMessage()) });
    expect(grpcStatus(response)?.code).toBe(0);
    expect(response.headers["x-request-id"]).toBe("stream-call-1");
    expect(response.headers["content-type"]).toBe("application/grpc+proto");
    const line = await requestLine("stream-call-1");
    expect(line).toMatchObject({ level: 30, method: "POST", path: IMPORT, rpc: RPC, protocol: "grpc", status: 200, code: "OK" });
    expect(typeof line.durationMs).toBe("number");
    expect(line.caller).toMatch(/^\d+$/);
    expect(await metricValue(`rpc="${RPC}",protocol="grpc",code="OK"`)).toBe(before + 1);

    // Without one (or with one that is not plain): a new id.
    const generated = await h2Request(session, { path: IMPORT, headers: grpcHeaders({ "x-request-id": "not plain!" }), body: frame(importMessage()) });
    expect(generated.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(await requestLine(generated.headers["x-request-id"]!)).toMatchObject({ rpc: RPC, code: "OK" });
  });

  it("logs a service's gRPC code, and an unobserved service's (Health) from its trailers", async () => {
    const taken = await h2Request(session, {
      path: IMPORT,
      headers: grpcHeaders({ "x-request-id": "stream-call-2" }),
      body: frame(importMessage({ userName: "stream-taken" })),
    });
    expect(grpcStatus(taken)?.code).toBe(0);
    const again = await h2Request(session, {
      path: IMPORT,
      headers: grpcHeaders({ "x-request-id": "stream-call-3" }),
      body: frame(importMessage({ userName: "stream-taken" })),
    });
    expect(grpcStatus(again)?.code).toBe(6);
    expect(await requestLine("stream-call-3")).toMatchObject({ rpc: RPC, code: "ALREADY_EXISTS", status: 200 });

    // grpc.health.v1.HealthCheckRequest{service: "no.such.Service"}: NOT_FOUND.
    const service = Buffer.from("no.such.Service");
    const health = await h2Request(session, {
      path: "/grpc.health.v1.Health/Check",
      headers: grpcHeaders({ "x-request-id": "stream-health-1" }),
      body: frame(Buffer.concat([Buffer.from([0x0a, service.length]), service])),
    });
    expect(grpcStatus(health)?.code).toBe(5);
    expect(await requestLine("stream-health-1")).toMatchObject({ rpc: "grpc.health.v1.Health/Check", protocol: "grpc", code: "NOT_FOUND" });
  });

  it("whose client resets the stream while the implementation runs: logged as CANCELLED, no error line, the server goes on", async () => {
    const stream = session.request({ ":method": "POST", ":path": IMPORT, ...grpcHeaders({ "x-request-id": "stream-reset-1" }) });
    stream.on("error", () => undefined);
    // A plain password: the import hashes it (cost 12), well after the reset below arrives.
    stream.end(frame(importMessage({ password: GOOD_PASSWORD })));
    await new Promise((resolve) => setTimeout(resolve, 30));
    stream.close(http2.constants.NGHTTP2_CANCEL);
    expect(await requestLine("stream-reset-1")).toMatchObject({ rpc: RPC, protocol: "grpc", code: "CANCELLED" });

    const after = await h2Request(session, { path: IMPORT, headers: grpcHeaders(), body: frame(importMessage()) });
    expect(grpcStatus(after)?.code).toBe(0);
    expect(logLines().filter((line) => line.level >= 50)).toEqual([]);
  });
});

describe("a burst of calls on one session, more than start in one turn of the event loop", () => {
  it("answers every call; a call reset while it waited for its turn is logged as CANCELLED, never answered", async () => {
    const answered = 20;
    const reset = 10;
    const ids = Array.from({ length: answered + reset }, (_, i) => `stream-burst-${i}`);
    const responses: Promise<RawResponse>[] = [];
    const resetStreams: http2.ClientHttp2Stream[] = [];
    // All written in one tick, so that they reach the server together.
    for (const [i, id] of ids.entries()) {
      if (i < answered) {
        responses.push(h2Request(session, { path: IMPORT, headers: grpcHeaders({ "x-request-id": id }), body: frame(importMessage()) }));
        continue;
      }
      const stream = session.request({ ":method": "POST", ":path": IMPORT, ...grpcHeaders({ "x-request-id": id }) });
      stream.on("error", () => undefined);
      // A plain password (cost 12): were the call started before its reset arrived, it would still be hashing.
      stream.end(frame(importMessage({ password: GOOD_PASSWORD })));
      resetStreams.push(stream);
    }
    for (const stream of resetStreams) stream.close(http2.constants.NGHTTP2_CANCEL);

    const done = await Promise.all(responses);
    expect(done.map((response) => grpcStatus(response)?.code)).toEqual(Array(answered).fill(0));
    for (const id of ids.slice(0, answered)) expect(await requestLine(id)).toMatchObject({ rpc: RPC, code: "OK" });
    for (const id of ids.slice(answered)) expect(await requestLine(id)).toMatchObject({ rpc: RPC, code: "CANCELLED" });
    // One line per call.
    expect(logLines().filter((line) => line.msg === "request" && ids.includes(String(line.reqId)))).toHaveLength(ids.length);

    const after = await h2Request(session, { path: IMPORT, headers: grpcHeaders(), body: frame(importMessage()) });
    expect(grpcStatus(after)?.code).toBe(0);
    expect(logLines().filter((line) => line.level >= 50)).toEqual([]);
  });
});

describe("a request the stream path hands over after reading its body", () => {
  /** The answer Connect's handler gives the same bytes: `grpc-encoding: gzip` sends a request straight to fastify. */
  const viaConnect = (body: Buffer) =>
    h2Request(session, { path: IMPORT, headers: grpcHeaders({ "grpc-encoding": "gzip", "grpc-accept-encoding": "gzip" }), body });
  const comparable = (r: RawResponse) => ({ status: r.status, code: grpcStatus(r)?.code, message: grpcStatus(r)?.message, body: r.body.toString("hex") });

  it("a message that does not parse, split over DATA frames: Connect's answer to the whole of it", async () => {
    // Field 1 as a length-delimited value running past the end of the message.
    const broken = frame(Buffer.from([0x0a, 0x7f, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66]));
    const split = await piecewise(grpcHeaders({ "grpc-accept-encoding": "gzip" }), broken, [3, 4]);
    expect(grpcStatus(split)?.code).toBe(3);
    expect(comparable(split)).toEqual(comparable(await viaConnect(broken)));
  });

  it("a body over the size limit, in pieces: read on by Connect's handler, which names the limit", async () => {
    const big = frame(importMessage({ profile: { firstName: "Minnie", lastName: "Mouse", nickName: "n".repeat(2 * BODY_LIMIT) } }));
    const split = await piecewise(grpcHeaders({ "grpc-accept-encoding": "gzip" }), big, [1000, 1000, 1000, 1000, 1000]);
    expect(grpcStatus(split)?.code).toBe(8);
    expect(comparable(split)).toEqual(comparable(await viaConnect(big)));
  });

  it("a body that ends after its deadline: DEADLINE_EXCEEDED from Connect, and nothing is written", async () => {
    const userName = "stream-late-user";
    const late = frame(importMessage({ userName }));
    const response = await new Promise<RawResponse>((resolve, reject) => {
      const stream = session.request({ ":method": "POST", ":path": IMPORT, ...grpcHeaders({ "grpc-timeout": "100m" }) });
      let trailers: Record<string, string> = {};
      stream.on("trailers", (t) => (trailers = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, String(v)]))));
      stream.on("data", () => undefined);
      stream.on("end", () => resolve({ status: 200, headers: {}, trailers, body: Buffer.alloc(0) }));
      stream.on("error", reject);
      stream.write(late.subarray(0, 10));
      setTimeout(() => {
        if (!stream.closed) stream.end(late.subarray(10));
      }, 400);
    });
    expect(grpcStatus(response)?.code).toBe(4);
    const lookup = await h2Request(session, {
      path: "/zitadel.management.v1.ManagementService/IsUserUnique",
      headers: grpcHeaders(),
      // IsUserUniqueRequest{user_name}
      body: frame(Buffer.concat([Buffer.from([0x0a, userName.length]), Buffer.from(userName)])),
    });
    expect(grpcStatus(lookup)?.code).toBe(0);
    // IsUserUniqueResponse{is_unique: true} is field 1 = 1.
    expect(lookup.body.subarray(5).toString("hex")).toBe("0801");
  });
});
