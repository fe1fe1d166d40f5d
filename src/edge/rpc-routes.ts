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
import type { FastifyInstance, FastifyRequest } from "fastify";
import { decodedKey } from "./calls.js";
import { createGrpcFastPath, type GrpcFastPath } from "./grpc-fast-path.js";
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
 * serves off the HTTP/2 stream before fastify sees the call; what it leaves comes here.
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
    app.all(handler.requestPath, async (request, reply) => {
      const contextValues = options.contextValues?.(request) ?? createContextValues();
      const universalRequest = universalRequestFromNodeRequest(request.raw, reply.raw, request.body as undefined, contextValues);
      // fastify keeps headers set on the reply (CORS) until reply.send, which is not used here.
      const copyReplyHeaders = () => {
        for (const [name, value] of Object.entries(reply.getHeaders())) {
          if (value !== undefined) reply.raw.setHeader(name, value);
        }
      };
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
        copyReplyHeaders();
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
