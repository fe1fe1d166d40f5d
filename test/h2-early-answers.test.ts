/**
 * HTTP/2 requests answered before their body was read (here, bodies over the size limit): the
 * client gets the whole answer, the stream then ends although the client was still held by flow
 * control, and the server's graceful close is not held up by the stream, before or after its
 * client went (src/edge/one-port.ts, resetWhenAnswered).
 */
import http2 from "node:http2";
import { afterEach, expect, it } from "vitest";
import { v1ImportBody } from "./helpers/fixtures.js";
import { frame, grpcWebStatus } from "./helpers/raw-wire.js";
import { startTestServer, type TestServer } from "./helpers/server.js";

const LIMIT = 64 * 1024;
const oversized = () => Buffer.from(JSON.stringify({ ...v1ImportBody(), nickName: "x".repeat(LIMIT + 6 * 1024) }));

const cases = [
  {
    name: "gRPC-Web as JSON (Connect's own handler): RESOURCE_EXHAUSTED",
    path: "/zitadel.management.v1.ManagementService/ImportHumanUser",
    headers: { "content-type": "application/grpc-web+json", "x-grpc-web": "1" },
    body: () => frame(oversized()),
    check: (status: number, body: Buffer, headers: http2.IncomingHttpHeaders) => {
      expect(status).toBe(200);
      expect(grpcWebStatus({ status, headers: headers as Record<string, string>, trailers: {}, body })?.code).toBe(8);
    },
  },
  {
    name: "REST: HTTP 413",
    path: "/management/v1/users/human/_import",
    headers: { "content-type": "application/json" },
    body: oversized,
    check: (status: number) => expect(status).toBe(413),
  },
];

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** Resolves with what `promise` gave, or "timed out" after `ms`. */
const within = <T>(promise: Promise<T>, ms: number) =>
  Promise.race([promise, new Promise<"timed out">((resolve) => setTimeout(() => resolve("timed out"), ms))]);

for (const { name, path, headers, body, check } of cases) {
  it(`${name}; the stream ends, and the server still closes once the client has gone`, async () => {
    server = await startTestServer({ bodyLimitBytes: LIMIT });
    const session = http2.connect(server.url);
    session.on("error", () => {});
    const stream = session.request({ ":method": "POST", ":path": path, authorization: `Bearer ${server.token}`, ...headers });
    stream.on("error", () => {});
    const closed = new Promise((resolve) => stream.once("close", () => resolve("closed")));
    const answer = new Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: Buffer }>((resolve) => {
      const chunks: Buffer[] = [];
      let response: http2.IncomingHttpHeaders = {};
      stream.on("response", (h) => (response = h));
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", () => resolve({ status: Number(response[":status"]), headers: response, body: Buffer.concat(chunks) }));
    });
    stream.end(body());
    const { status, headers: responseHeaders, body: responseBody } = await answer;
    check(status, responseBody, responseHeaders);
    // The client is still held by flow control with most of its body unsent: the server ends the stream.
    expect(await within(closed, 5000)).toBe("closed");
    session.destroy();
    const running = server;
    server = undefined;
    expect(
      await within(
        running.close().then(() => "closed"),
        10_000,
      ),
    ).toBe("closed");
  });
}
