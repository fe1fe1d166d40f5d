/**
 * Raw HTTP/1.1 and HTTP/2 requests, for bodies and frames no well-behaved client library sends,
 * and the gRPC status read back from whichever place the protocol puts it (trailers, a
 * trailers-only header block, gRPC-Web's trailer frame, Connect's end-of-stream message).
 */
import http from "node:http";
import http2 from "node:http2";

export interface RawRequest {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: Uint8Array;
  /**
   * For a stream that may stay open (grpc.health.v1.Health/Watch): settle with the first chunk of
   * the response body and cancel the rest, instead of waiting for the end.
   */
  untilFirstData?: boolean;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  trailers: Record<string, string>;
  body: Buffer;
}

function flatten(headers: Record<string, unknown>): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !name.startsWith(":")) flat[name.toLowerCase()] = Array.isArray(value) ? value.join(", ") : String(value);
  }
  return flat;
}

/** One request on an HTTP/2 session (h2c). */
export function h2Request(session: http2.ClientHttp2Session, request: RawRequest): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    // node ends GET and HEAD streams at once unless told otherwise; garbage may come with a body.
    const stream = session.request(
      { ":method": request.method ?? "POST", ":path": request.path, ...request.headers },
      { endStream: request.body === undefined },
    );
    let status = 0;
    let headers: Record<string, string> = {};
    let trailers: Record<string, string> = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      headers = flatten(h);
    });
    stream.on("trailers", (t) => (trailers = flatten(t)));
    stream.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      if (request.untilFirstData) {
        resolve({ status, headers, trailers, body: Buffer.concat(chunks) });
        stream.close(http2.constants.NGHTTP2_CANCEL);
      }
    });
    stream.on("end", () => resolve({ status, headers, trailers, body: Buffer.concat(chunks) }));
    stream.on("error", reject);
    stream.end(request.body === undefined ? undefined : Buffer.from(request.body));
  });
}

/** One request over HTTP/1.1 (kept-alive connections of `agent`). */
export function h1Request(url: string, agent: http.Agent, request: RawRequest): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const target = new URL(request.path, url);
    // node sends a GET's or DELETE's body without framing unless the length is given.
    const length = request.body === undefined ? {} : { "content-length": String(request.body.byteLength) };
    const req = http.request(target, { method: request.method ?? "POST", headers: { ...length, ...request.headers }, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => {
        chunks.push(chunk);
        if (request.untilFirstData) {
          resolve({ status: res.statusCode ?? 0, headers: flatten(res.headers), trailers: {}, body: Buffer.concat(chunks) });
          req.destroy();
        }
      });
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: flatten(res.headers), trailers: flatten(res.trailers), body: Buffer.concat(chunks) }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(request.body === undefined ? undefined : Buffer.from(request.body));
  });
}

/** A length-prefixed frame (gRPC, gRPC-Web, Connect streaming); `length` may lie. */
export function frame(payload: Uint8Array, flags = 0, length = payload.byteLength): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(length >>> 0, 1);
  return Buffer.concat([head, Buffer.from(payload)]);
}

/** The frames of an enveloped body (as far as they are complete). */
export function frames(body: Buffer): Array<{ flags: number; data: Buffer }> {
  const found: Array<{ flags: number; data: Buffer }> = [];
  for (let offset = 0; offset + 5 <= body.length; ) {
    const length = body.readUInt32BE(offset + 1);
    found.push({ flags: body[offset]!, data: body.subarray(offset + 5, offset + 5 + length) });
    offset += 5 + length;
  }
  return found;
}

export interface WireStatus {
  code: number;
  message: string;
}

function decodeMessage(value: string | undefined): string {
  if (value === undefined) return "";
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** The gRPC status of a gRPC response: from the trailers, or from the headers of a trailers-only response. */
export function grpcStatus(response: RawResponse): WireStatus | undefined {
  const source = response.trailers["grpc-status"] !== undefined ? response.trailers : response.headers;
  if (source["grpc-status"] === undefined) return undefined;
  return { code: Number(source["grpc-status"]), message: decodeMessage(source["grpc-message"]) };
}

/** The gRPC status of a gRPC-Web response: from its trailer frame, or its headers (trailers-only). */
export function grpcWebStatus(response: RawResponse): WireStatus | undefined {
  const trailer = frames(response.body).find((f) => (f.flags & 0x80) === 0x80);
  if (!trailer) return grpcStatus(response);
  const lines = trailer.data.toString("latin1").split("\r\n");
  const fields = Object.fromEntries(
    lines.filter((line) => line.includes(":")).map((line) => [line.slice(0, line.indexOf(":")).trim().toLowerCase(), line.slice(line.indexOf(":") + 1).trim()]),
  );
  if (fields["grpc-status"] === undefined) return undefined;
  return { code: Number(fields["grpc-status"]), message: decodeMessage(fields["grpc-message"]) };
}

const CONNECT_CODES: Record<string, number> = {
  canceled: 1,
  unknown: 2,
  invalid_argument: 3,
  deadline_exceeded: 4,
  not_found: 5,
  already_exists: 6,
  permission_denied: 7,
  resource_exhausted: 8,
  failed_precondition: 9,
  aborted: 10,
  out_of_range: 11,
  unimplemented: 12,
  internal: 13,
  unavailable: 14,
  data_loss: 15,
  unauthenticated: 16,
};

/** The error of a Connect unary response (its JSON body), or undefined for a success. */
export function connectUnaryStatus(response: RawResponse): WireStatus | undefined {
  if (response.status === 200) return undefined;
  const body = JSON.parse(response.body.toString("utf8")) as { code?: string; message?: string };
  return { code: CONNECT_CODES[body.code ?? ""] ?? -1, message: body.message ?? "" };
}

/** The error of a Connect streaming response (its end-of-stream message), or undefined. */
export function connectStreamStatus(response: RawResponse): WireStatus | undefined {
  const end = frames(response.body).find((f) => (f.flags & 0x02) === 0x02);
  if (!end) return undefined;
  const json = JSON.parse(end.data.toString("utf8")) as { error?: { code?: string; message?: string } };
  if (!json.error) return undefined;
  return { code: CONNECT_CODES[json.error.code ?? ""] ?? -1, message: json.error.message ?? "" };
}
