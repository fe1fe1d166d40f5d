import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ConnectRouterOptions,
  type ContextValues,
  createConnectRouter,
  createContextValues,
  createServiceImplSpec,
  type MethodImplSpec,
} from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import * as connect from "@connectrpc/connect/protocol-connect";
import * as grpc from "@connectrpc/connect/protocol-grpc";
import * as grpcWeb from "@connectrpc/connect/protocol-grpc-web";
import type { IncomingHttpHeaders } from "node:http";
import { Readable } from "node:stream";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { decodedKey } from "./calls.js";
import { type ConnectFastPath, createConnectFastPath } from "./connect-fast-path.js";
import { envelopeAligned } from "./envelope-chunks.js";
import { createGrpcFastPath, FastCall, type FastCallInit, type GrpcFastPath, type NodeHeaders } from "./grpc-fast-path.js";
import { resetError } from "./grpc-stream.js";
import { correctUndecodable, errorResponse, undecodable } from "./undecodable.js";

export interface RpcRoutesOptions extends ConnectRouterOptions {
  routes(router: ConnectRouter): void;
  /** The context values a call starts with (e.g. the client's address), as connect-fastify's option. */
  contextValues?(request: FastifyRequest): ContextValues;
}

/**
 * Serves the Connect router's RPCs (gRPC, gRPC-Web, Connect) as fastify routes. The same glue as
 * `fastifyConnectPlugin` of @connectrpc/connect-fastify, plus one step it has no hook for: a
 * request whose message did not decode is answered as the client's mistake
 * (src/edge/undecodable.ts). Returns the paths served, e.g. "/grpc.health.v1.Health/Check", and the
 * leaner path of each unary method (src/edge/grpc-fast-path.ts), which src/edge/grpc-stream.ts
 * serves off the HTTP/2 stream before fastify sees the call; what it leaves comes here. Unary
 * calls over the Connect protocol (src/edge/connect-fast-path.ts) and binary gRPC-Web take leaner
 * paths of their own here (`serveFast`), and what they leave goes on to Connect's handler.
 */
export function registerRpcRoutes(app: FastifyInstance, options: RpcRoutesOptions): { paths: string[]; fastPaths: Map<string, GrpcFastPath> } {
  const routerOptions = { acceptCompression: [compressionGzip, compressionBrotli], ...options };
  const router = createConnectRouter(routerOptions);
  // The implementations as registered, for the gRPC fast path: it calls them as Connect's handler does.
  const implementations = new Map<string, MethodImplSpec>();
  options.routes({
    ...router,
    service(service, implementation, serviceOptions) {
      if (serviceOptions === undefined) {
        for (const spec of Object.values(createServiceImplSpec(service, implementation).methods)) {
          implementations.set(`/${service.typeName}/${spec.method.name}`, spec);
        }
      }
      router.service(service, implementation, serviceOptions);
      return this;
    },
  });
  // Connect reads the body itself; fastify must leave it alone.
  app.addContentTypeParser(
    [
      connect.contentTypeUnaryJson,
      connect.contentTypeStreamJson,
      grpcWeb.contentTypeProto,
      grpcWeb.contentTypeJson,
      grpc.contentTypeProto,
      grpc.contentTypeJson,
    ],
    (_request, _payload, done) => done(null, undefined),
  );
  for (const pattern of [grpc.contentTypeRegExp, grpcWeb.contentTypeRegExp, connect.contentTypeRegExp]) {
    app.addContentTypeParser(pattern, (_request, _payload, done) => done(null, undefined));
  }
  const fastPaths = new Map<string, GrpcFastPath>();
  for (const handler of router.handlers) {
    const implementation = implementations.get(handler.requestPath);
    const fast = implementation && createGrpcFastPath(implementation, routerOptions);
    if (fast) fastPaths.set(handler.requestPath, fast);
    const connectFast = implementation && createConnectFastPath(implementation, routerOptions);
    const fastRoutes = [...(connectFast ? [connectRoute(connectFast)] : []), ...(fast ? [grpcWebRoute(fast)] : [])];
    app.all(handler.requestPath, async (request, reply) => {
      let replay: AsyncIterable<Uint8Array> | undefined;
      if (fastRoutes.length > 0 && request.method === "POST") {
        const served = await serveFast(fastRoutes, request, reply, options);
        if (served === true) return;
        replay = served;
      }
      const contextValues = options.contextValues?.(request) ?? createContextValues();
      const universalRequest = universalRequestFromNodeRequest(request.raw, reply.raw, request.body as undefined, contextValues);
      if (replay) universalRequest.body = replay;
      let response: Awaited<ReturnType<typeof handler>>;
      try {
        response = await handler(universalRequest);
        if (response.status === 505) {
          // Connect refuses a bidirectional stream over HTTP/1.1 with 505: the client's choice of
          // transport, so answered as its mistake in the protocol's framing, not as a server fault.
          response = errorResponse(
            universalRequest.header,
            new ConnectError(`${handler.method.name} is a bidirectional stream: it needs HTTP/2`, Code.InvalidArgument),
          );
        } else if (!contextValues.get(decodedKey)) {
          response = await correctUndecodable(response, universalRequest.header, handler.method);
        }
      } catch (err) {
        // Connect failed to render its own answer: answer in the protocol's framing here.
        const decoded = contextValues.get(decodedKey);
        if (decoded) request.log.error({ err, rpc: `${handler.service.typeName}/${handler.method.name}` }, "an RPC failed to answer");
        const error = decoded ? new ConnectError("Internal error", Code.Internal) : undecodable(handler.method, "");
        response = errorResponse(universalRequest.header, error);
      }
      try {
        copyReplyHeaders(reply);
        await universalResponseToNodeResponse(response, reply.raw);
      } catch (err) {
        // Never leave a connection waiting for the rest of a response that failed half-way.
        if (!reply.raw.writableEnded) reply.raw.destroy();
        // The client went away while the response was written: nobody is left to answer.
        if (ConnectError.from(err).code === Code.Aborted) return;
        request.log.error({ err, rpc: `${handler.service.typeName}/${handler.method.name}` }, "writing an RPC response failed");
      }
    });
  }
  return { paths: router.handlers.map((handler) => handler.requestPath), fastPaths };
}

/** fastify keeps headers set on the reply (CORS, `x-request-id`) until reply.send, which is not used here. */
function copyReplyHeaders(reply: FastifyReply): void {
  for (const [name, value] of Object.entries(reply.getHeaders())) {
    if (value !== undefined) reply.raw.setHeader(name, value);
  }
}

/** A unary method's leaner path for one protocol: which POSTs it takes, how it reads them, what it answers. */
interface FastRoute {
  readonly readMaxBytes: number;
  /** The call a POST with these headers makes on this path; undefined: Connect's handler answers it. */
  accepts(headers: IncomingHttpHeaders): FastRequest | undefined;
  /** The message of a body, or undefined when it does not decode: Connect's handler answers that. */
  decode(body: Buffer, request: FastRequest): unknown;
  answer(message: unknown, call: FastCall, request: FastRequest): Promise<{ status: number; header: NodeHeaders; body: Uint8Array }>;
  /** The body Connect's handler reads instead of the request's, made of the bytes read so far and the rest. */
  handOver(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array>;
}

interface FastRequest {
  protocol: NonNullable<FastCallInit["protocol"]>;
  binary: boolean;
  timeoutMs: number | undefined;
}

/** Unary calls over the Connect protocol (src/edge/connect-fast-path.ts). */
function connectRoute(fast: ConnectFastPath): FastRoute {
  return {
    readMaxBytes: fast.readMaxBytes,
    accepts(headers) {
      const shape = fast.accepts(headers);
      return shape && { protocol: { name: "connect", contentType: shape.contentType }, binary: shape.binary, timeoutMs: shape.timeoutMs };
    },
    decode: (body, request) => fast.decode(body, request.binary),
    answer: (message, call, request) => fast.answer(message, call, request.binary),
    handOver: (body) => body,
  };
}

/**
 * Unary calls over gRPC-Web, binary: the gRPC fast path's (src/edge/grpc-fast-path.ts), with the
 * trailers in the body as gRPC-Web carries them. gRPC-Web's text format and compressed requests
 * are Connect's handler's.
 */
function grpcWebRoute(fast: GrpcFastPath): FastRoute {
  return {
    readMaxBytes: fast.readMaxBytes,
    accepts(headers) {
      const type = headers["content-type"];
      if (type !== grpcWeb.contentTypeProto && type !== "application/grpc-web") return undefined;
      const encoding = headers["grpc-encoding"];
      if (encoding !== undefined && encoding !== "identity") return undefined;
      const timeout = headers["grpc-timeout"];
      const timeoutMs = Array.isArray(timeout) ? null : fast.timeout(timeout);
      if (timeoutMs === null) return undefined;
      return { protocol: { name: "grpc-web", contentType: grpcWeb.contentTypeProto }, binary: true, timeoutMs };
    },
    decode: (body) => fast.decode(body),
    answer: async (message, call) => ({ status: 200, ...(await fast.answerWeb(message, call)) }),
    // As alignEnvelopeChunks (src/edge/envelope-chunks.ts) gives Connect's handler every enveloped body.
    handOver: (body) => envelopeAligned(body),
  };
}

/**
 * Answers a unary POST on a leaner path, or says what Connect's handler gets instead: undefined
 * when no path takes the request (its body unread), else the body read so far followed by the rest.
 */
async function serveFast(
  routes: FastRoute[],
  request: FastifyRequest,
  reply: FastifyReply,
  options: RpcRoutesOptions,
): Promise<true | AsyncIterable<Uint8Array> | undefined> {
  const arrived = Date.now();
  let route: FastRoute | undefined;
  let shape: FastRequest | undefined;
  for (const each of routes) {
    shape = each.accepts(request.headers);
    if (shape) {
      route = each;
      break;
    }
  }
  if (!route || !shape) return undefined;
  if (Number(request.headers["content-length"] ?? 0) > route.readMaxBytes) return undefined;
  const read = await readBody(request.raw, route.readMaxBytes);
  if (!Array.isArray(read)) return route.handOver(read);
  const message = route.decode(read.length === 1 ? read[0]! : Buffer.concat(read), shape);
  if (message === undefined) return route.handOver(replayed(read));
  // The deadline counts from the request's arrival, as in Connect's handlers (their context is made before the read).
  const timeoutMs = shape.timeoutMs === undefined ? undefined : shape.timeoutMs - (Date.now() - arrived);
  const raw = request.raw;
  const call = new FastCall({
    protocol: shape.protocol,
    requestMethod: "POST",
    requestHeaders: request.headers,
    url: () => urlOf(request),
    timeoutMs,
    values: options.contextValues?.(request) ?? createContextValues(),
  });
  // A client that goes away before it is answered cancels the call, as Connect's node adapter
  // does (over HTTP/2, the reset's code as a ConnectError).
  const onClose = () => {
    if (reply.raw.writableFinished || call.aborted) return;
    const stream = (raw as { stream?: { rstCode?: number } }).stream;
    call.abort(stream ? resetError(stream.rstCode) : new ConnectError("the client went away", Code.Canceled));
  };
  reply.raw.once("close", onClose);
  try {
    const { status, header, body } = await route.answer(message, call, shape);
    if (reply.raw.destroyed) return true;
    copyReplyHeaders(reply);
    reply.raw.writeHead(status, header);
    reply.raw.end(body);
  } catch (err) {
    // Writing failed half-way: never leave the client waiting for the rest.
    if (!reply.raw.writableEnded) reply.raw.destroy();
    request.log.error({ err, rpc: request.url.slice(1) }, "writing an RPC response failed");
  } finally {
    reply.raw.off("close", onClose);
    call.done();
  }
  return true;
}

/**
 * The request's body, whole, as the chunks it came in; or, when it is larger than `limit` or the
 * request failed before it ended, the body Connect's handler reads instead: the chunks read so
 * far, then the rest of the request (its failure included), so that it answers as it always did.
 */
function readBody(raw: FastifyRequest["raw"], limit: number): Promise<Buffer[] | AsyncIterable<Uint8Array>> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.byteLength;
      if (size > limit) {
        raw.pause();
        detach();
        resolve(readingOn(chunks, raw));
      }
    };
    const onEnd = () => {
      detach();
      resolve(chunks);
    };
    const onFailure = (err?: Error) => {
      detach();
      resolve(failingAfter(chunks, err ?? Object.assign(new Error("the request closed before it ended"), { code: "ERR_STREAM_PREMATURE_CLOSE" })));
    };
    const onClose = () => onFailure(raw.errored ?? undefined);
    const detach = () => {
      raw.off("data", onData);
      raw.off("end", onEnd);
      raw.off("error", onFailure);
      raw.off("close", onClose);
    };
    raw.on("data", onData);
    raw.once("end", onEnd);
    raw.once("error", onFailure);
    raw.once("close", onClose);
  });
}

async function* replayed(chunks: Buffer[]): AsyncGenerator<Uint8Array> {
  yield* chunks;
}

async function* readingOn(chunks: Buffer[], raw: Readable): AsyncGenerator<Uint8Array> {
  yield* chunks;
  // The stream's own iterator (not the envelope-aligned one of alignEnvelopeChunks, which would
  // start afresh mid-envelope): a paused stream keeps what it has not handed out.
  for await (const chunk of Readable.prototype[Symbol.asyncIterator].call(raw)) yield chunk as Uint8Array;
}

async function* failingAfter(chunks: Buffer[], failure: Error): AsyncGenerator<Uint8Array> {
  yield* chunks;
  throw failure;
}

/** The URL received, as Connect's node adapter builds it. */
function urlOf(request: FastifyRequest): string {
  const raw = request.raw as FastifyRequest["raw"] & { authority?: string };
  const encrypted = (raw.socket as { encrypted?: boolean } | null)?.encrypted === true;
  const authority = raw.authority ?? raw.headers.host ?? "";
  return new URL(raw.url ?? "", `${encrypted ? "https" : "http"}://${authority}`).toString();
}
