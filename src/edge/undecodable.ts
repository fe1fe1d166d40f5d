import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { createAsyncIterable, encodeEnvelope, type UniversalServerResponse } from "@connectrpc/connect/protocol";
import * as connect from "@connectrpc/connect/protocol-connect";
import * as grpc from "@connectrpc/connect/protocol-grpc";
import * as grpcWeb from "@connectrpc/connect/protocol-grpc-web";

type Protocol = "grpc" | "grpc-web" | "connect-unary" | "connect-stream";

/** The compressions the RPC routes accept (connect-node's gzip and brotli). */
const KNOWN_ENCODINGS = new Set(["identity", "gzip", "br"]);

/** Envelope flag of a compressed frame (gRPC, gRPC-Web, Connect streaming). */
const COMPRESSED = 0x01;

/**
 * Answers a request whose message did not decode as the client's mistake: INVALID_ARGUMENT
 * (HTTP 400 over Connect) with a message saying so, instead of what Connect answers.
 *
 * Connect decodes the request before any interceptor or implementation runs, and reports what it
 * cannot decode itself: a binary message that does not parse is INTERNAL ("parse binary: premature
 * EOF", HTTP 500), so is a frame flagged compressed when no compression was negotiated; a length
 * prefix promising more bytes than were sent is INVALID_ARGUMENT, one promising fewer leaves a
 * second frame, UNIMPLEMENTED ("received extra input message"); JSON that does not decode is
 * INVALID_ARGUMENT with the parser's words, which may quote a value from the body. None of these
 * passes through an interceptor, so the response is corrected here, after Connect rendered it
 * in the protocol's own framing, for calls that never reached {@link decodedKey}.
 *
 * Kept as Connect answers them, since they name what was wrong without quoting the body: an
 * unparsable timeout header (INVALID_ARGUMENT), an unknown compression (UNIMPLEMENTED, as the gRPC
 * spec asks), a message over the size limit (RESOURCE_EXHAUSTED).
 *
 * grpc-go (and so ZITADEL) answers a body it cannot unmarshal with INTERNAL; the gateway answers
 * JSON it cannot decode with INVALID_ARGUMENT (grpc-gateway's runtime). Either way no ZITADEL
 * error id exists for it, so the error carries none, like the gateway's.
 */
export async function correctUndecodable(response: UniversalServerResponse, requestHeader: Headers, method: DescMethod): Promise<UniversalServerResponse> {
  const protocol = protocolOf(requestHeader.get("content-type") ?? "");
  const correct = (error: ConnectError | undefined) =>
    error && isUndecodable(error.code, requestHeader, protocol) ? undecodable(method, error.rawMessage) : undefined;
  switch (protocol) {
    case "grpc": {
      const trailer = response.trailer;
      const corrected = trailer && correct(grpc.findTrailerError(trailer));
      if (corrected) {
        trailer.delete(grpc.headerStatusDetailsBin);
        grpc.setTrailerStatus(trailer, corrected);
      }
      return response;
    }
    case "grpc-web":
      return rewriteLastFrame(response, grpcWeb.trailerFlag, (data) => {
        const trailer = grpcWeb.trailerParse(data);
        const corrected = correct(grpc.findTrailerError(trailer));
        if (!corrected) return undefined;
        trailer.delete(grpc.headerStatusDetailsBin);
        return grpcWeb.trailerSerialize(grpc.setTrailerStatus(trailer, corrected));
      });
    case "connect-stream":
      return rewriteLastFrame(response, connect.endStreamFlag, (data) => {
        const end = connect.endStreamFromJson(data);
        const corrected = correct(end.error);
        if (!corrected) return undefined;
        return new TextEncoder().encode(JSON.stringify(connect.endStreamToJson(end.metadata, corrected, undefined)));
      });
    case "connect-unary": {
      if (response.status === 200 || response.header?.has(connect.headerUnaryEncoding)) return response;
      const body = await readAll(response.body);
      const corrected = correct(connect.errorFromJsonBytes(body, undefined, new ConnectError("", Code.Internal)));
      if (!corrected) return { ...response, body: createAsyncIterable([body]) };
      const bytes = connect.errorToJsonBytes(corrected, undefined);
      const header = new Headers(response.header);
      header.set(connect.headerUnaryContentLength, String(bytes.byteLength));
      return { ...response, status: connect.codeToHttpStatus(corrected.code), header, body: createAsyncIterable([bytes]) };
    }
  }
}

/**
 * An error response in the framing of the request's protocol, for a call Connect failed to answer
 * at all: Connect renders its errors itself, and a message it cannot encode (a JSON decoder's
 * complaint quoting a lone surrogate breaks the `grpc-message` encoding) left the response
 * unwritten, and an HTTP/1.1 connection hanging.
 */
export function errorResponse(requestHeader: Headers, error: ConnectError): UniversalServerResponse {
  const contentType = requestHeader.get("content-type") ?? "";
  switch (protocolOf(contentType)) {
    case "grpc":
      return {
        status: 200,
        header: new Headers({ "content-type": contentType }),
        body: createAsyncIterable([]),
        trailer: grpc.setTrailerStatus(new Headers(), error),
      };
    case "grpc-web":
      return {
        status: 200,
        header: new Headers({ "content-type": contentType }),
        body: createAsyncIterable([encodeEnvelope(grpcWeb.trailerFlag, grpcWeb.trailerSerialize(grpc.setTrailerStatus(new Headers(), error)))]),
      };
    case "connect-stream": {
      const end = new TextEncoder().encode(JSON.stringify(connect.endStreamToJson(new Headers(), error, undefined)));
      return { status: 200, header: new Headers({ "content-type": contentType }), body: createAsyncIterable([encodeEnvelope(connect.endStreamFlag, end)]) };
    }
    case "connect-unary":
      return {
        status: connect.codeToHttpStatus(error.code),
        header: new Headers({ "content-type": "application/json" }),
        body: createAsyncIterable([connect.errorToJsonBytes(error, undefined)]),
      };
  }
}

function protocolOf(given: string): Protocol {
  // Media types are case-insensitive, and Connect matches them so.
  const contentType = given.toLowerCase();
  if (contentType.startsWith("application/grpc-web")) return "grpc-web";
  if (contentType.startsWith("application/grpc")) return "grpc";
  if (contentType.startsWith("application/connect+")) return "connect-stream";
  return "connect-unary";
}

/** Whether an error Connect raised before decoding the request means the body did not decode. */
function isUndecodable(code: Code, header: Headers, protocol: Protocol): boolean {
  const connectProtocol = protocol === "connect-unary" || protocol === "connect-stream";
  switch (code) {
    case Code.Internal:
    case Code.Unknown:
      return true;
    case Code.InvalidArgument: {
      // Unless it is the timeout header that does not parse.
      const timeout = header.get(connectProtocol ? connect.headerTimeout : grpc.headerTimeout);
      if (timeout === null) return true;
      const parse = connectProtocol ? connect.parseTimeout : grpc.parseTimeout;
      return parse(timeout, Number.MAX_SAFE_INTEGER).error === undefined;
    }
    case Code.Unimplemented: {
      // A missing or an extra message; unless the compression asked for is unknown.
      const encodingHeader =
        protocol === "connect-unary" ? connect.headerUnaryEncoding : protocol === "connect-stream" ? connect.headerStreamEncoding : grpc.headerEncoding;
      const encoding = header.get(encodingHeader);
      return encoding === null || KNOWN_ENCODINGS.has(encoding.toLowerCase());
    }
    default:
      return false;
  }
}

/**
 * The error a client gets for a body that did not decode. A JSON decoder's complaint about a field
 * keeps the field's name, never the value (which may be a password).
 */
export function undecodable(method: DescMethod, parserMessage: string): ConnectError {
  const field = /cannot decode field ([\w.]+) from JSON/.exec(parserMessage)?.[1];
  const what = field ? `: invalid value for field ${field}` : "";
  return new ConnectError(`the request body could not be decoded as ${method.input.typeName}${what}`, Code.InvalidArgument);
}

/**
 * Replaces the last frame of an enveloped response body (gRPC-Web's trailers, Connect's end of
 * stream) when `rewrite` returns new data for it. Only for calls that never decoded their
 * request: their body is that one small frame. A compressed frame is left alone (an error frame
 * stays under the compression threshold).
 */
async function rewriteLastFrame(
  response: UniversalServerResponse,
  flag: number,
  rewrite: (data: Uint8Array) => Uint8Array | undefined,
): Promise<UniversalServerResponse> {
  const body = await readAll(response.body);
  const frames: Array<{ flags: number; data: Uint8Array }> = [];
  for (let offset = 0; offset + 5 <= body.byteLength; ) {
    const length = new DataView(body.buffer, body.byteOffset + offset + 1, 4).getUint32(0);
    frames.push({ flags: body[offset]!, data: body.subarray(offset + 5, offset + 5 + length) });
    offset += 5 + length;
  }
  const last = frames[frames.length - 1];
  const rewritten = last && (last.flags & flag) === flag && (last.flags & COMPRESSED) === 0 ? rewrite(last.data) : undefined;
  if (!rewritten) return { ...response, body: createAsyncIterable([body]) };
  const head = body.subarray(0, body.byteLength - 5 - last!.data.byteLength);
  const tail = encodeEnvelope(last!.flags, rewritten);
  const joined = new Uint8Array(head.byteLength + tail.byteLength);
  joined.set(head, 0);
  joined.set(tail, head.byteLength);
  return { ...response, body: createAsyncIterable([joined]) };
}

async function readAll(body: AsyncIterable<Uint8Array> | undefined): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body ?? []) chunks.push(chunk);
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}
