/**
 * Unary gRPC calls over HTTP/2 with one uncompressed binary message take a leaner path to the same
 * implementation (src/edge/grpc-fast-path.ts); every other request goes through Connect's handler.
 * Both must answer alike: the same status, headers, trailers and message, errors and their details
 * included. A request whose `grpc-encoding: gzip` frame is not flagged compressed is one the fast
 * path leaves to Connect, with the same message on the wire, so it is the comparison here (both
 * accept gzip answers, so both negotiate the same response encoding).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromJson, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { AddHumanUserRequestSchema, ImportHumanUserRequestSchema } from "../gen/zitadel/management_pb.js";
import { cancellationKey } from "../src/edge/calls.js";
import { FastCall } from "../src/edge/grpc-fast-path.js";
import { dropTestDatabase, testDatabaseUrl } from "./helpers/database.js";
import { GOOD_PASSWORD, useUserport, v1AddBody, v1ImportBody } from "./helpers/fixtures.js";
import { freePort, serveProcess } from "./helpers/process.js";
import { frame, frames, grpcStatus, h2Request, type RawResponse } from "./helpers/raw-wire.js";

const up = useUserport({ bcryptCost: 11 });
const IMPORT = "/zitadel.management.v1.ManagementService/ImportHumanUser";
const ADD_HUMAN = "/zitadel.management.v1.ManagementService/AddHumanUser";

let session: http2.ClientHttp2Session;
beforeAll(() => {
  session = http2.connect(up.server.url);
});
afterAll(() => session.close());

const auth = () => ({ authorization: `Bearer ${up.server.token}` });

/** What must not differ between the two paths: everything but the request id and the date. */
function comparable(response: RawResponse) {
  const { "x-request-id": _id, date: _date, ...headers } = response.headers;
  return { status: response.status, headers, trailers: response.trailers, frames: frames(response.body).map((f) => f.flags) };
}

/** The same call on the fast path (identity) and on Connect's (gzip negotiated, frame not compressed). */
async function bothPaths(path: string, body: Uint8Array, headers: Record<string, string>) {
  // Both accept gzip, so both answers negotiate it alike (Connect answers in the request's encoding otherwise).
  const base = { "content-type": "application/grpc", te: "trailers", "grpc-accept-encoding": "gzip", ...headers };
  const fast = await h2Request(session, { path, headers: base, body: frame(body) });
  const connect = await h2Request(session, { path, headers: { ...base, "grpc-encoding": "gzip" }, body: frame(body) });
  return { fast, connect };
}

describe("the gRPC fast path answers as Connect's handler does", () => {
  it("an error with ZITADEL's details: the same status, headers and trailers (grpc-status-details-bin included)", async () => {
    // A username taken: ALREADY_EXISTS with a zitadel.v1.ErrorDetail (src/edge/errors.ts).
    const message = toBinary(ImportHumanUserRequestSchema, fromJson(ImportHumanUserRequestSchema, v1ImportBody()));
    const first = await h2Request(session, { path: IMPORT, headers: { "content-type": "application/grpc", te: "trailers", ...auth() }, body: frame(message) });
    expect(grpcStatus(first)?.code).toBe(0);
    const { fast, connect } = await bothPaths(IMPORT, message, auth());
    expect(grpcStatus(fast)?.code).toBe(6);
    expect(fast.trailers["grpc-status-details-bin"]).toBeTruthy();
    expect(comparable(fast)).toEqual(comparable(connect));
  });

  it("a call without a token: UNAUTHENTICATED alike", async () => {
    const message = toBinary(ImportHumanUserRequestSchema, fromJson(ImportHumanUserRequestSchema, v1ImportBody()));
    const { fast, connect } = await bothPaths(IMPORT, message, {});
    expect(grpcStatus(fast)?.code).toBe(16);
    expect(comparable(fast)).toEqual(comparable(connect));
  });

  it("a success: the same headers, one uncompressed message frame, grpc-status 0", async () => {
    const a = toBinary(ImportHumanUserRequestSchema, fromJson(ImportHumanUserRequestSchema, v1ImportBody()));
    const b = toBinary(ImportHumanUserRequestSchema, fromJson(ImportHumanUserRequestSchema, v1ImportBody()));
    const base = { "content-type": "application/grpc", te: "trailers", "grpc-accept-encoding": "gzip", ...auth() };
    const fast = await h2Request(session, { path: IMPORT, headers: base, body: frame(a) });
    const connect = await h2Request(session, { path: IMPORT, headers: { ...base, "grpc-encoding": "gzip" }, body: frame(b) });
    expect(grpcStatus(fast)?.code).toBe(0);
    expect(comparable(fast)).toEqual(comparable(connect));
    expect(frames(fast.body)).toHaveLength(1);
  });
});

describe("a message that arrives in pieces", () => {
  /** Sends the framed message in two DATA frames, `pauseMs` apart. */
  function splitRequest(path: string, headers: Record<string, string>, body: Buffer, pauseMs: number): Promise<RawResponse> {
    return new Promise((resolve, reject) => {
      const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...headers });
      let status = 0;
      let trailers: Record<string, string> = {};
      const chunks: Buffer[] = [];
      stream.on("response", (h) => (status = Number(h[":status"])));
      stream.on("trailers", (t) => (trailers = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, String(v)]))));
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", () => resolve({ status, headers: {}, trailers, body: Buffer.concat(chunks) }));
      stream.on("error", reject);
      const half = Math.floor(body.length / 2);
      stream.write(body.subarray(0, half));
      setTimeout(() => {
        if (!stream.closed) stream.end(body.subarray(half));
      }, pauseMs);
    });
  }

  it("is put together and answered", async () => {
    const json = v1ImportBody();
    const message = frame(toBinary(ImportHumanUserRequestSchema, fromJson(ImportHumanUserRequestSchema, json)));
    const response = await splitRequest(IMPORT, auth(), message, 100);
    expect(grpcStatus(response)?.code).toBe(0);
    const rows = await up.server.db
      .selectFrom("users")
      .select("id")
      .where("username", "=", json.userName as string)
      .execute();
    expect(rows).toHaveLength(1);
  });

  it("whose deadline passes before the rest arrives: DEADLINE_EXCEEDED, and nothing is written", async () => {
    const json = v1AddBody({ initialPassword: GOOD_PASSWORD });
    const message = frame(toBinary(AddHumanUserRequestSchema, fromJson(AddHumanUserRequestSchema, json)));
    const response = await splitRequest(ADD_HUMAN, { ...auth(), "grpc-timeout": "50m" }, message, 400);
    expect(grpcStatus(response)?.code).toBe(4);
    await up.server.settled();
    const rows = await up.server.db
      .selectFrom("users")
      .select("id")
      .where("username", "=", json.userName as string)
      .execute();
    expect(rows).toEqual([]);
  });
});

describe("a client that resets the stream while its message is being read", () => {
  it("is answered by nobody and logged as no error; the server goes on serving", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "userport-fast-reset-"));
    const databaseUrl = await testDatabaseUrl(dataDir);
    const served = await serveProcess(await freePort(), {
      USERPORT_DATA_DIR: dataDir,
      ...(databaseUrl ? { USERPORT_DATABASE_URL: databaseUrl } : {}),
      USERPORT_BCRYPT_COST: "4",
      USERPORT_LOG_LEVEL: "info",
    });
    const own = http2.connect(served.url);
    try {
      const token = readFileSync(join(dataDir, "admin.pat"), "utf8").trim();
      const message = frame(toBinary(ImportHumanUserRequestSchema, fromJson(ImportHumanUserRequestSchema, v1ImportBody())));
      for (let i = 0; i < 5; i++) {
        const stream = own.request({
          ":method": "POST",
          ":path": IMPORT,
          "content-type": "application/grpc",
          te: "trailers",
          authorization: `Bearer ${token}`,
        });
        stream.on("error", () => undefined);
        stream.write(message.subarray(0, 10));
        await new Promise((resolve) => setTimeout(resolve, 50));
        stream.close(http2.constants.NGHTTP2_CANCEL);
      }
      const after = await h2Request(own, {
        path: IMPORT,
        headers: { "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${token}` },
        body: frame(toBinary(ImportHumanUserRequestSchema, fromJson(ImportHumanUserRequestSchema, v1ImportBody()))),
      });
      expect(grpcStatus(after)?.code).toBe(0);
      const logged = served
        .output()
        .split("\n")
        .filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line) as { level: number; msg: string });
      expect(logged.filter((line) => line.level >= 50)).toEqual([]);
    } finally {
      own.close();
      served.child.kill("SIGKILL");
      await dropTestDatabase(dataDir);
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe("a fast call's end", () => {
  const init = () => ({ requestMethod: "POST", requestHeaders: {}, url: () => "http://localhost/x", timeoutMs: undefined, values: createContextValues() });
  const reset = new ConnectError("the client went away", Code.Canceled);

  it("tells each listener once, with the first reason, and offers itself to calls.ts", () => {
    const values = init().values;
    const call = new FastCall({ ...init(), values });
    expect(values.get(cancellationKey)).toBe(call);
    const heard: unknown[] = [];
    const removed = () => heard.push("removed");
    call.addEventListener("abort", () => heard.push(call.reason));
    call.addEventListener("abort", removed);
    call.removeEventListener("abort", removed);
    expect(call.aborted).toBe(false);
    call.abort(reset);
    call.done();
    expect(heard).toEqual([reset]);
    expect(call.aborted).toBe(true);
    expect(call.reason).toBe(reset);
  });

  it("makes an AbortSignal that follows it, aborted with the same reason even when asked for after the end", () => {
    const early = new FastCall(init());
    const signal = early.signal;
    expect(signal.aborted).toBe(false);
    early.abort(reset);
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBe(reset);

    const late = new FastCall(init());
    late.done();
    expect(late.signal.aborted).toBe(true);
    expect(late.signal.reason).toBeInstanceOf(ConnectError);
    expect((late.signal.reason as ConnectError).code).toBe(Code.Canceled);
  });

  it("keeps the negotiated grpc-encoding whether the response headers are made before or after it is set", () => {
    const untouched = new FastCall(init());
    untouched.setResponseEncoding("gzip");
    expect(untouched.responseHeader()).toEqual({ "content-type": "application/grpc+proto", "grpc-encoding": "gzip" });

    const before = new FastCall(init());
    before.context(Health.method.check).responseHeader.append("x-a", "1");
    before.setResponseEncoding("gzip");
    const after = new FastCall(init());
    after.setResponseEncoding("gzip");
    after.context(Health.method.check).responseHeader.append("x-a", "1");
    const expected = { "content-type": "application/grpc+proto", "grpc-encoding": "gzip", "x-a": "1" };
    expect(before.responseHeader()).toEqual(expected);
    expect(after.responseHeader()).toEqual(expected);
  });

  it("over gRPC-Web and Connect: the protocol's name, its content type, and gRPC's OK trailer only for gRPC-Web", () => {
    const web = new FastCall({ ...init(), protocol: { name: "grpc-web", contentType: "application/grpc-web+proto" } });
    expect(web.context(Health.method.check).protocolName).toBe("grpc-web");
    expect(web.responseHeader()).toEqual({ "content-type": "application/grpc-web+proto" });
    expect(web.responseTrailer()).toEqual({ "grpc-status": "0" });

    const connect = new FastCall({ ...init(), protocol: { name: "connect", contentType: "application/json" } });
    const context = connect.context(Health.method.check);
    expect(context.protocolName).toBe("connect");
    expect(connect.responseTrailer()).toEqual({});
    context.responseTrailer.set("x-b", "2");
    expect(connect.responseHeader()).toEqual({ "content-type": "application/json" });
    expect(connect.responseTrailer()).toEqual({ "x-b": "2" });
  });

  it("passes its deadline as DEADLINE_EXCEEDED to the listeners and the signal", async () => {
    const call = new FastCall({ ...init(), timeoutMs: 20 });
    const ended = new Promise<unknown>((resolve) => call.addEventListener("abort", () => resolve(call.reason)));
    const reason = await ended;
    expect((reason as ConnectError).code).toBe(Code.DeadlineExceeded);
    expect(call.signal.reason).toBe(reason);
  });
});
