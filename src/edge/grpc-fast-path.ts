import type { IncomingHttpHeaders } from "node:http2";
import type { DescMethod } from "@bufbuild/protobuf";
import { create, type DescMessage } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import {
  type Compression,
  compressionNegotiate,
  createMethodSerializationLookup,
  encodeEnvelope,
  envelopeCompress,
  validateUniversalHandlerOptions,
} from "@connectrpc/connect/protocol";
import * as grpc from "@connectrpc/connect/protocol-grpc";
import * as grpcWeb from "@connectrpc/connect/protocol-grpc-web";
import { type CallCancellation, cancellationKey } from "./calls.js";

/**
 * A leaner hosting of Connect's own unary gRPC handler, for the one case that dominates gRPC
 * traffic: a unary call over HTTP/2 with one uncompressed binary message. It is served straight
 * off the HTTP/2 stream by src/edge/grpc-stream.ts; this module is the Connect half of it.
 *
 * Why it exists: Connect's universal gRPC handler runs every call, unary ones included, through
 * its streaming machinery (a pipe of async-generator transforms that split, decompress and parse
 * envelopes, invoke the implementation, serialize, compress and join them again, then
 * `universalResponseToNodeResponse` iterating the result). Measured on a trivial Health/Check
 * (BENCHMARKS.md, "gRPC fast path"), that machinery costs several times what node:http2 needs
 * for the call, and it is most of the difference between a gRPC import and a REST import of the
 * same user. It is not configurable.
 *
 * What it keeps identical: the implementation and its interceptors run as in Connect's own
 * `invokeUnaryImplementation` ({@link invokeUnary}), with a handler context holding what Connect's `createHandlerContext`
 * would (deadline from `grpc-timeout`, cancellation when the client resets the stream, request
 * headers, response headers and trailers, the context values); the message is parsed and
 * serialized by Connect's own serialization lookup; errors become trailers through Connect's own
 * `setTrailerStatus`; compression is negotiated and applied with Connect's own functions, so
 * `grpc-encoding` and compressed responses are what Connect would send.
 *
 * What it leaves to Connect: everything else. A request that is not exactly one complete,
 * uncompressed envelope within the size limit, whose message does not parse, whose timeout header
 * does not parse, whose compression is not identity, or that does not end before its deadline, is
 * handed to Connect's handler (with the bytes read so far replayed in front of the rest of the
 * body), and Connect answers it exactly as before (src/edge/undecodable.ts included).
 */
export interface GrpcFastPath {
  /** The largest message Connect's handler would read. */
  readonly readMaxBytes: number;
  /**
   * The call's `grpc-timeout` in milliseconds (undefined: none), or null when the header does
   * not parse: Connect's handler answers that.
   */
  timeout(header: string | undefined): number | undefined | null;
  /** The message of a body of exactly one uncompressed envelope, or undefined: Connect's handler answers it. */
  decode(body: Uint8Array): unknown;
  /** Runs the implementation on a decoded message and returns what to write: headers, body, trailers. */
  answer(message: unknown, call: FastCall): Promise<FastResponse>;
  /** As {@link answer}, for gRPC-Web (src/edge/rpc-routes.ts): the trailers follow the message in the body, in a frame of their own. */
  answerWeb(message: unknown, call: FastCall): Promise<{ header: NodeHeaders; body: Uint8Array }>;
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
  const unary = spec;
  const opt = validateUniversalHandlerOptions(options);
  const serialization = createMethodSerializationLookup(spec.method, opt.binaryOptions, opt.jsonOptions, opt);
  const input = serialization.getI(true);
  const output = serialization.getO(true);
  const method: DescMethod = spec.method;
  const responseCompression = responseCompressions(opt.acceptCompression, grpc.headerAcceptEncoding);

  return {
    readMaxBytes: opt.readMaxBytes,

    timeout(header) {
      const timeout = grpc.parseTimeout(header ?? null, opt.maxTimeoutMs);
      return timeout.error ? null : timeout.timeoutMs;
    },

    decode(bytes) {
      if (bytes.byteLength < 5 || bytes[0] !== 0) return undefined;
      const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(1);
      if (length !== bytes.byteLength - 5 || length > opt.readMaxBytes) return undefined;
      try {
        return input.parse(bytes.subarray(5));
      } catch {
        return undefined;
      }
    },

    async answer(message, call) {
      const { body } = await run(message, call);
      return { header: call.responseHeader(), body, trailer: call.responseTrailer() };
    },

    async answerWeb(message, call) {
      const { body, compression } = await run(message, call);
      // Connect's gRPC-Web handler: the trailers as a frame of their own, compressed as a message would be.
      const trailer = await envelopeCompress(
        { flags: grpcWeb.trailerFlag, data: grpcWeb.trailerSerialize(fromNodeHeaders(call.responseTrailer())) },
        compression,
        opt.compressMinBytes,
      );
      const frame = encodeEnvelope(trailer.flags, trailer.data);
      return { header: call.responseHeader(), body: body ? Buffer.concat([body, frame]) : frame };
    },
  };

  /** Runs the implementation: the response's one message frame (none after an error, whose status is in the trailers). */
  async function run(message: unknown, call: FastCall): Promise<{ body: Uint8Array | undefined; compression: Compression | null }> {
    const context = call.context(method);
    // Only identity requests come here: the response's compression depends on the accepted ones alone.
    const compression = responseCompression(call.requestHeaderValue(grpc.headerAcceptEncoding));
    if (compression) call.setResponseEncoding(compression.name);
    try {
      const result = await invokeUnary(unary, context, message, opt.interceptors);
      const envelope = await envelopeCompress({ flags: 0, data: output.serialize(result) }, compression, opt.compressMinBytes);
      return { body: encodeEnvelope(envelope.flags, envelope.data), compression };
    } catch (err) {
      const error = err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal, undefined, undefined, err);
      call.abort(error);
      grpc.setTrailerStatus(context.responseTrailer, error);
      return { body: undefined, compression };
    }
  }
}

/**
 * The response compression for a request without compression of its own, by the value of its
 * accept-encoding header (`headerName`), as Connect's `compressionNegotiate` picks it: negotiated
 * once per value, since a client sends the same one on every call.
 */
export function responseCompressions(available: Compression[], headerName: string): (accepted: string | null) => Compression | null {
  const negotiated = new Map<string | null, Compression | null>();
  return (accepted) => {
    let compression = negotiated.get(accepted);
    if (compression === undefined) {
      compression = compressionNegotiate(available, null, accepted, headerName).response;
      if (negotiated.size >= 64) negotiated.clear();
      negotiated.set(accepted, compression);
    }
    return compression;
  };
}

/**
 * Connect's `invokeUnaryImplementation` (@connectrpc/connect, protocol/invoke-implementation.js):
 * the interceptors around the implementation, the request and response objects they see, the
 * implementation's context, the output made a full message, and the response headers and
 * trailers an interceptor replaced copied into the call's. The one difference: the request's and
 * the context's `signal`, `url` and headers, and the response's headers and trailers, are read
 * from the call when asked for, not copied when the objects are made. Connect's copies made a
 * call's AbortController, its request Headers and both response Headers on every call, whether
 * anything read them or not (a trivial Health/Check reads none): a tenth of such a call's server
 * time in the profiles (BENCHMARKS.md, "Import throughput").
 */
export async function invokeUnary(spec: MethodImplSpec & { kind: "unary" }, context: HandlerContext, input: unknown, interceptors: Interceptor[] | undefined) {
  const { method } = spec;
  let own: UnaryResponse | undefined;
  const anyFn = async (req: UnaryRequest): Promise<UnaryResponse> => {
    const output = await spec.impl(req.message as never, implementationContext(context, req));
    own = {
      message: create(method.output as DescMessage, output as never),
      stream: false,
      method,
      service: method.parent,
      get header() {
        return context.responseHeader;
      },
      get trailer() {
        return context.responseTrailer;
      },
    } as UnaryResponse;
    return own;
  };
  let next = anyFn as (req: UnaryRequest) => Promise<UnaryResponse>;
  if (interceptors) for (let i = interceptors.length - 1; i >= 0; i--) next = interceptors[i]!(next as never) as typeof next;
  const req = {
    stream: false,
    message: input,
    method,
    requestMethod: context.requestMethod,
    get url() {
      return context.url;
    },
    get signal() {
      return context.signal;
    },
    get header() {
      return context.requestHeader;
    },
    service: method.parent,
    contextValues: context.values,
  } as UnaryRequest;
  const res = await next(req);
  // An interceptor that made a response of its own may have given it other headers: Connect copies them over the call's.
  if (res !== own) {
    copyHeaders(res.header, context.responseHeader);
    copyHeaders(res.trailer, context.responseTrailer);
  }
  return res.message;
}

/** The implementation's context, as Connect's `mergeRequest` makes it from the call's and the (intercepted) request. */
function implementationContext(context: HandlerContext, req: UnaryRequest): HandlerContext {
  return {
    service: req.service,
    method: context.method,
    requestMethod: context.requestMethod,
    protocolName: context.protocolName,
    timeoutMs: context.timeoutMs,
    values: req.contextValues,
    get url() {
      return context.url;
    },
    get signal() {
      return req.signal;
    },
    get requestHeader() {
      return req.header;
    },
    get responseHeader() {
      return context.responseHeader;
    },
    get responseTrailer() {
      return context.responseTrailer;
    },
  };
}

/** Connect's `copyHeaders`: `to` becomes a copy of `from`. */
function copyHeaders(from: Headers, to: Headers): void {
  if (from === to) return;
  for (const key of [...to.keys()]) to.delete(key);
  for (const [key, value] of from) to.set(key, value);
}

export interface FastCallInit {
  /**
   * A call over another protocol than gRPC over HTTP/2, and its response's content type: gRPC-Web
   * (trailers `grpc-status: 0`, as gRPC), the Connect protocol (src/edge/connect-fast-path.ts), or
   * REST (src/edge/rest-transcoder.ts); neither of the last two has trailers until the
   * implementation sets some. Absent: gRPC, `application/grpc+proto`.
   */
  protocol?: { name: "grpc-web" | "connect" | "rest"; contentType: string };
  requestMethod: string;
  /** The request's headers as node:http2 gives them (pseudo-headers are left out of the context's). */
  requestHeaders: IncomingHttpHeaders;
  /** The URL received, as Connect's node adapter builds it (only made when asked for). */
  url(): string;
  timeoutMs: number | undefined;
  values: ContextValues;
}

/** The reason the signal of a call that ended normally carries (Connect aborts it then too). */
const CALL_ENDED = new ConnectError("the call ended", Code.Canceled);

/**
 * The handler context of one call, built more cheaply than Connect's `createHandlerContext`, which
 * makes three AbortControllers linked by listeners (deadline, request, context), three Headers
 * objects, and a DOMException when the call ends (an abort without a reason): a sizeable share of
 * a trivial call in the profiles (BENCHMARKS.md). Here the call ends once, by the deadline, by the
 * client going away ({@link FastCall.abort}) or when the call is done ({@link FastCall.done}),
 * always with a ConnectError reason as Connect's would carry (DEADLINE_EXCEEDED "the operation
 * timed out", the reset's code). Its AbortSignal, its request headers and its response headers and
 * trailers are made only when something asks for them; src/edge/calls.ts, which every call runs
 * through, follows the end through the call itself ({@link CallCancellation}, under
 * {@link cancellationKey} in the context values), not through the signal.
 */
export class FastCall implements CallCancellation {
  readonly #init: FastCallInit;
  #controller: AbortController | undefined;
  #reason: ConnectError | undefined;
  #listeners: (() => void)[] | undefined;
  #timer: NodeJS.Timeout | undefined;
  #deadline: number | undefined;
  #requestHeader: Headers | undefined;
  #responseHeader: Headers | undefined;
  /** The response's `grpc-encoding` while no response Headers were made. */
  #responseEncoding: string | undefined;
  #responseTrailer: Headers | undefined;

  constructor(init: FastCallInit) {
    this.#init = init;
    init.values.set(cancellationKey, this);
    const { timeoutMs } = init;
    if (timeoutMs !== undefined) {
      this.#deadline = Date.now() + timeoutMs;
      const expire = () => this.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
      if (timeoutMs <= 0) expire();
      // Beyond setTimeout's range (grpc-timeout allows 99999999H) the call has no timer, as in Connect.
      else if (timeoutMs <= MAX_TIMER_MS) this.#timer = setTimeout(expire, timeoutMs);
    }
  }

  get aborted(): boolean {
    return this.#reason !== undefined;
  }

  get reason(): ConnectError | undefined {
    return this.#reason;
  }

  /** Called once when the call ends (as an AbortSignal's "abort" listener, never after it ended). */
  addEventListener(_type: "abort", listener: () => void): void {
    if (this.#reason !== undefined) return;
    this.#listeners ??= [];
    this.#listeners.push(listener);
  }

  removeEventListener(_type: "abort", listener: () => void): void {
    const index = this.#listeners?.indexOf(listener) ?? -1;
    if (index >= 0) this.#listeners!.splice(index, 1);
  }

  /** The call's AbortSignal, made when first asked for (aborted already when the call has ended). */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#reason !== undefined) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /** The Connect handler context of the call, for `method`. */
  context(method: DescMethod): HandlerContext {
    const call = this;
    const init = this.#init;
    const deadline = this.#deadline;
    return {
      service: method.parent,
      method,
      requestMethod: init.requestMethod,
      protocolName: init.protocol?.name ?? "grpc",
      get url() {
        return init.url();
      },
      get signal() {
        return call.signal;
      },
      timeoutMs: deadline === undefined ? () => undefined : () => deadline - Date.now(),
      get requestHeader() {
        call.#requestHeader ??= fromNodeHeaders(init.requestHeaders);
        return call.#requestHeader;
      },
      get responseHeader() {
        call.#responseHeader ??= new Headers(call.#initialResponseHeader());
        return call.#responseHeader;
      },
      get responseTrailer() {
        call.#responseTrailer ??= new Headers(call.#initialResponseTrailer());
        return call.#responseTrailer;
      },
      values: init.values,
    };
  }

  /** A request header's value as `Headers.get` gives it (repeated ones joined), without making the Headers. */
  requestHeaderValue(name: string): string | null {
    // Node's header names are lower case; Connect's constants are not (`Grpc-Accept-Encoding`).
    const value = this.#init.requestHeaders[name.toLowerCase()];
    if (value === undefined) return null;
    return typeof value === "string" ? value : value.join(", ");
  }

  /** The response headers as Node writes them (repeated ones as a list). */
  responseHeader(): NodeHeaders {
    return this.#responseHeader ? toNodeHeaders(this.#responseHeader) : this.#initialResponseHeader();
  }

  /** Sets the response's `grpc-encoding` (in the response Headers if they were made). */
  setResponseEncoding(name: string): void {
    if (this.#responseHeader) this.#responseHeader.set(grpc.headerEncoding, name);
    else this.#responseEncoding = name;
  }

  /** The response headers before the implementation set any, in Node's form (lower case, as Headers gives them). */
  #initialResponseHeader(): NodeHeaders {
    const type = this.#init.protocol?.contentType ?? grpc.contentTypeProto;
    const encoding = this.#responseEncoding;
    return encoding === undefined ? { "content-type": type } : { "content-type": type, "grpc-encoding": encoding };
  }

  /** The response trailers before the implementation set any: gRPC's status OK, nothing over Connect. */
  #initialResponseTrailer(): NodeHeaders {
    const name = this.#init.protocol?.name;
    return name === "connect" || name === "rest" ? {} : { "grpc-status": grpc.grpcStatusOk };
  }

  /** The response trailers as Node writes them. */
  responseTrailer(): NodeHeaders {
    return this.#responseTrailer ? toNodeHeaders(this.#responseTrailer) : this.#initialResponseTrailer();
  }

  /** Ends the call (the first reason wins), e.g. when the client reset the stream. */
  abort(reason: ConnectError): void {
    clearTimeout(this.#timer);
    if (this.#reason !== undefined) return;
    this.#reason = reason;
    this.#controller?.abort(reason);
    const listeners = this.#listeners;
    this.#listeners = undefined;
    if (listeners) for (const listener of listeners) listener();
  }

  /** Ends the call: its deadline timer stops and its signal aborts, as Connect's does once a call completes. */
  done(): void {
    this.abort(CALL_ENDED);
  }
}

/** Node's headers as a Headers object, pseudo-headers left out. */
function fromNodeHeaders(headers: IncomingHttpHeaders | NodeHeaders): Headers {
  const header = new Headers();
  for (const name in headers) {
    if (name.charCodeAt(0) === 58 /* ":" */) continue;
    const value = headers[name];
    if (typeof value === "string") header.append(name, value);
    else if (value !== undefined) for (const each of value) header.append(name, each);
  }
  return header;
}

/** Headers as Node writes them, as Connect's node adapter converts them (repeated ones as a list). */
export function toNodeHeaders(headers: Headers): NodeHeaders {
  const out: NodeHeaders = {};
  headers.forEach((value, key) => {
    const existing = out[key];
    if (existing === undefined) out[key] = value;
    else if (Array.isArray(existing)) existing.push(value);
    else out[key] = [existing, value];
  });
  return out;
}
