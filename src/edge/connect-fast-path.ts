import type { IncomingHttpHeaders } from "node:http";
import { Code, ConnectError, type MethodImplSpec } from "@connectrpc/connect";
import { createMethodSerializationLookup, validateUniversalHandlerOptions } from "@connectrpc/connect/protocol";
import * as connect from "@connectrpc/connect/protocol-connect";
import { type FastCall, type FastPathOptions, invokeUnary, type NodeHeaders, responseCompressions } from "./grpc-fast-path.js";

/**
 * A leaner hosting of Connect's own unary handler for the Connect protocol, for the requests that
 * make nearly all of its traffic: a POST of one uncompressed message, `application/json` or
 * `application/proto`. src/edge/rpc-routes.ts reads the body and answers from here; the gRPC
 * half of the same idea is src/edge/grpc-fast-path.ts, whose call context and
 * {@link invokeUnary} this path shares.
 *
 * Why it exists: Connect's handler makes every call's request `Headers`, URL, three linked
 * AbortControllers and response `Headers`, and its node adapter reads the body and writes the
 * answer through async iterables. Measured on the import of one user (BENCHMARKS.md, "Import
 * throughput"), that cost a Connect call twice the server time of the same call over REST.
 *
 * What it keeps identical: the implementation and its interceptors run as in Connect's
 * `invokeUnaryImplementation`, with the same handler context (deadline from
 * `connect-timeout-ms`, cancellation when the client goes away, headers, trailers, values); the
 * message is parsed and serialized by Connect's own serialization lookup, with the same JSON
 * options; an error is rendered by Connect's own `errorToJsonBytes` with the HTTP status of
 * `codeToHttpStatus`, its metadata as headers; trailers travel as `trailer-` headers, as
 * Connect's `trailerMux` sends them; the response is compressed as Connect would, with the
 * encoding negotiated from `accept-encoding` by Connect's own function.
 *
 * What it leaves to Connect: everything else. A GET, another content type (a `charset`
 * parameter, a streaming type), a compressed request, a `connect-timeout-ms` that does not
 * parse, a body over the size limit, a message that does not parse: Connect's handler answers
 * them as before, with the bytes read so far replayed (src/edge/undecodable.ts included).
 */
export interface ConnectFastPath {
  /** The largest message Connect's handler would read. */
  readonly readMaxBytes: number;
  /** What a POST with these headers carries, when this path can take it; undefined: Connect's handler answers it. */
  accepts(headers: IncomingHttpHeaders): ConnectRequestShape | undefined;
  /** The message of a body, or undefined when it does not parse: Connect's handler answers that. */
  decode(body: Uint8Array, binary: boolean): unknown;
  /** Runs the implementation on a decoded message and returns what to write. */
  answer(message: unknown, call: FastCall, binary: boolean): Promise<ConnectFastResponse>;
}

export interface ConnectRequestShape {
  /** `application/proto` (else `application/json`). */
  binary: boolean;
  /** The response's content type before an error replaces it: the request's own. */
  contentType: string;
  /** From `connect-timeout-ms`; undefined: no deadline. */
  timeoutMs: number | undefined;
}

export interface ConnectFastResponse {
  status: number;
  header: NodeHeaders;
  body: Uint8Array;
}

export function createConnectFastPath(spec: MethodImplSpec, options: FastPathOptions): ConnectFastPath | undefined {
  if (spec.kind !== "unary") return undefined;
  const opt = validateUniversalHandlerOptions(options);
  // Refusing calls without `connect-protocol-version` is Connect's handler's to do.
  if (opt.requireConnectProtocolHeader) return undefined;
  const serialization = createMethodSerializationLookup(spec.method, opt.binaryOptions, opt.jsonOptions, opt);
  const responseCompression = responseCompressions(opt.acceptCompression, connect.headerUnaryAcceptEncoding);

  return {
    readMaxBytes: opt.readMaxBytes,

    accepts(headers) {
      const contentType = headers["content-type"];
      if (contentType !== connect.contentTypeUnaryJson && contentType !== connect.contentTypeUnaryProto) return undefined;
      const encoding = headers["content-encoding"];
      if (encoding !== undefined && encoding !== "identity") return undefined;
      const timeoutHeader = headers["connect-timeout-ms"];
      if (Array.isArray(timeoutHeader)) return undefined;
      const timeout = connect.parseTimeout(timeoutHeader ?? null, opt.maxTimeoutMs);
      if (timeout.error) return undefined;
      return { binary: contentType === connect.contentTypeUnaryProto, contentType, timeoutMs: timeout.timeoutMs };
    },

    decode(body, binary) {
      try {
        return serialization.getI(binary).parse(body);
      } catch {
        return undefined;
      }
    },

    async answer(message, call, binary) {
      const context = call.context(spec.method);
      const compression = responseCompression(call.requestHeaderValue(connect.headerUnaryAcceptEncoding));
      let status = 200;
      let body: Uint8Array;
      try {
        body = serialization.getO(binary).serialize(await invokeUnary(spec, context, message, opt.interceptors));
      } catch (err) {
        const error = err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal, undefined, undefined, err);
        call.abort(error);
        status = connect.codeToHttpStatus(error.code);
        const header = context.responseHeader;
        header.set(connect.headerContentType, connect.contentTypeUnaryJson);
        error.metadata.forEach((value, key) => {
          header.set(key, value);
        });
        body = connect.errorToJsonBytes(error, opt.jsonOptions);
      }
      const header = call.responseHeader();
      if (compression && body.byteLength >= opt.compressMinBytes) {
        body = await compression.compress(body);
        header["content-encoding"] = compression.name;
      }
      for (const [name, value] of Object.entries(call.responseTrailer())) header[`trailer-${name}`] = value;
      header["content-length"] = String(body.byteLength);
      return { status, header, body };
    },
  };
}
