import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, createHandlerContext, type Interceptor, type MethodImplSpec } from "@connectrpc/connect";
import {
  type Compression,
  compressionNegotiate,
  createMethodSerializationLookup,
  envelopeCompress,
  invokeUnaryImplementation,
  type UniversalServerRequest,
  validateUniversalHandlerOptions,
} from "@connectrpc/connect/protocol";
import * as grpc from "@connectrpc/connect/protocol-grpc";

/**
 * A leaner hosting of Connect's own unary gRPC handler, for the one case that dominates gRPC
 * traffic: a unary call over HTTP/2 with one uncompressed binary message.
 *
 * Why it exists: Connect's universal gRPC handler runs every call, unary ones included, through
 * its streaming machinery (a pipe of async-generator transforms that split, decompress and parse
 * envelopes, invoke the implementation, serialize, compress and join them again, then
 * `universalResponseToNodeResponse` iterating the result). Measured on a trivial Health/Check
 * (BENCHMARKS.md, "gRPC fast path"), that machinery costs several times what node:http2 needs
 * for the call, and it is most of the difference between a gRPC import and a REST import of the
 * same user. It is not configurable.
 *
 * What it keeps identical: the implementation and its interceptors run through Connect's own
 * `invokeUnaryImplementation` with a context from Connect's own `createHandlerContext` (deadline
 * from `grpc-timeout`, cancellation when the client resets the stream, request headers, response
 * headers and trailers); the message is parsed and serialized by Connect's own serialization
 * lookup; errors become trailers through Connect's own `setTrailerStatus`; compression is
 * negotiated and applied with Connect's own functions, so `grpc-encoding` and compressed
 * responses are what Connect would send. The response goes out through the same Node response
 * object (so the `grpc-message` re-encoding of src/edge/grpc-message.ts, the access log and the
 * metrics see it as before).
 *
 * What it leaves to Connect: everything else. The body is read first; a request that is not
 * exactly one complete, uncompressed envelope within the size limit, whose message does not
 * parse, whose timeout header does not parse, whose compression is not identity, that does not
 * end before its deadline, or whose client goes away while it is read, is handed to Connect's
 * handler with the bytes read so far replayed in front of the rest of the body, and Connect
 * answers it exactly as before (src/edge/undecodable.ts included).
 */
export interface GrpcFastPath {
  /** Whether `headers` describe a call this path may take (binary gRPC, identity encoding, HTTP/2). */
  applies(httpVersion: string, headers: Record<string, string | string[] | undefined>): boolean;
  /**
   * Reads the request. Resolves with a function that answers the call, or with the body to hand
   * to Connect's handler instead (the bytes read, then the rest).
   */
  read(request: UniversalServerRequest, body: AsyncIterator<Uint8Array>): Promise<Decoded | { fallback: AsyncIterable<Uint8Array> }>;
}

export interface Decoded {
  /** Runs the implementation and returns what to write: status, headers, body, trailers. */
  answer(): Promise<FastResponse>;
  /** To call once the response was written (or failed to be): ends the call's context. */
  done(reason?: unknown): void;
}

export type NodeHeaders = Record<string, string | string[]>;

export interface FastResponse {
  header: NodeHeaders;
  body: Uint8Array | undefined;
  trailer: NodeHeaders;
}

export interface FastPathOptions {
  interceptors?: Interceptor[];
  acceptCompression?: Compression[];
  readMaxBytes?: number;
  writeMaxBytes?: number;
  compressMinBytes?: number;
  maxTimeoutMs?: number;
}

/** The longest delay setTimeout takes (a longer one fires at once, with a warning). */
const MAX_TIMER_MS = 2 ** 31 - 1;

export function createGrpcFastPath(spec: MethodImplSpec, options: FastPathOptions): GrpcFastPath | undefined {
  if (spec.kind !== "unary") return undefined;
  const opt = validateUniversalHandlerOptions(options);
  const serialization = createMethodSerializationLookup(spec.method, opt.binaryOptions, opt.jsonOptions, opt);
  const input = serialization.getI(true);
  const output = serialization.getO(true);
  const method: DescMethod = spec.method;

  return {
    applies(httpVersion, headers) {
      if (httpVersion !== "2.0") return false;
      const contentType = headers["content-type"];
      if (contentType !== grpc.contentTypeProto && contentType !== "application/grpc") return false;
      const encoding = headers[grpc.headerEncoding];
      return encoding === undefined || encoding === "identity";
    },

    async read(request, body) {
      const timeout = grpc.parseTimeout(request.header.get(grpc.headerTimeout), opt.maxTimeoutMs);
      const chunks: Uint8Array[] = [];
      let pending: Promise<IteratorResult<Uint8Array>> | undefined;
      const fallback = () => ({ fallback: replay(chunks, pending, body) });
      if (timeout.error) return fallback();
      // The read must not outlive the caller's deadline or the caller: Connect's handler then
      // answers (DEADLINE_EXCEEDED, CANCELLED) as it always did.
      let timer: NodeJS.Timeout | undefined;
      const interrupted = new Promise<"interrupted">((resolve) => {
        // Beyond setTimeout's range (grpc-timeout allows 99999999H) the read has no deadline of its own.
        if (timeout.timeoutMs !== undefined && timeout.timeoutMs <= MAX_TIMER_MS) timer = setTimeout(() => resolve("interrupted"), timeout.timeoutMs);
        if (request.signal.aborted) resolve("interrupted");
        else request.signal.addEventListener("abort", () => resolve("interrupted"), { once: true });
      });
      let size = 0;
      try {
        for (;;) {
          pending = body.next();
          // A body that fails to read (the stream was reset) is Connect's to answer, as before.
          const next = await Promise.race([pending.catch(() => "interrupted" as const), interrupted]);
          if (next === "interrupted") return fallback();
          pending = undefined;
          if (next.done) break;
          chunks.push(next.value);
          size += next.value.byteLength;
          // More than one envelope at the size limit: Connect says which limit it broke.
          if (size > opt.readMaxBytes + 5) return fallback();
        }
      } finally {
        clearTimeout(timer);
      }
      const bytes = chunks.length === 1 ? chunks[0]! : concat(chunks, size);
      if (bytes.byteLength < 5 || bytes[0] !== 0) return fallback();
      const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(1);
      if (length !== bytes.byteLength - 5 || length > opt.readMaxBytes) return fallback();
      let message: ReturnType<typeof input.parse>;
      try {
        message = input.parse(bytes.subarray(5));
      } catch {
        return fallback();
      }
      const context = createHandlerContext({
        service: method.parent,
        method,
        requestMethod: request.method,
        protocolName: "grpc",
        timeoutMs: timeout.timeoutMs,
        shutdownSignal: opt.shutdownSignal,
        requestSignal: request.signal,
        requestHeader: request.header,
        url: request.url,
        responseHeader: { [grpc.headerContentType]: grpc.contentTypeProto },
        responseTrailer: { [grpc.headerGrpcStatus]: grpc.grpcStatusOk },
        contextValues: request.contextValues,
      });
      const compression = compressionNegotiate(
        opt.acceptCompression,
        request.header.get(grpc.headerEncoding),
        request.header.get(grpc.headerAcceptEncoding),
        grpc.headerAcceptEncoding,
      );
      if (compression.response) context.responseHeader.set(grpc.headerEncoding, compression.response.name);
      return {
        async answer() {
          let body: Uint8Array | undefined;
          try {
            const result = await invokeUnaryImplementation(spec, context, message, opt.interceptors);
            const envelope = await envelopeCompress({ flags: 0, data: output.serialize(result) }, compression.response, opt.compressMinBytes);
            body = new Uint8Array(5 + envelope.data.byteLength);
            body[0] = envelope.flags;
            new DataView(body.buffer).setUint32(1, envelope.data.byteLength);
            body.set(envelope.data, 5);
          } catch (err) {
            context.abort(err);
            const error = err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal, undefined, undefined, err);
            grpc.setTrailerStatus(context.responseTrailer, error);
          }
          return { header: toNodeHeaders(context.responseHeader), body, trailer: toNodeHeaders(context.responseTrailer) };
        },
        done(reason) {
          context.abort(reason);
        },
      };
    },
  };
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
}

/** The chunks read, then the read still under way, then the rest of the body. */
async function* replay(chunks: Uint8Array[], pending: Promise<IteratorResult<Uint8Array>> | undefined, body: AsyncIterator<Uint8Array>) {
  yield* chunks;
  let next = pending ?? body.next();
  for (;;) {
    const result = await next;
    if (result.done) return;
    yield result.value;
    next = body.next();
  }
}

/** Headers as Node writes them, as Connect's node adapter converts them (repeated ones as a list). */
function toNodeHeaders(headers: Headers): NodeHeaders {
  const out: NodeHeaders = {};
  headers.forEach((value, key) => {
    const existing = out[key];
    if (existing === undefined) out[key] = value;
    else if (Array.isArray(existing)) existing.push(value);
    else out[key] = [existing, value];
  });
  return out;
}
