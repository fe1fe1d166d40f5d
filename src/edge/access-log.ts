import { randomUUID } from "node:crypto";
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import { performance } from "node:perf_hooks";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { principalKey } from "./access.js";

/**
 * What is known of one request, gathered while it runs: the RPC and its code are set by the
 * service wrapper (`observeService`), the protocol from the request.
 */
export interface RequestRecord {
  log: FastifyBaseLogger;
  rpc?: string;
  code?: string;
  caller?: string;
}

/**
 * The record of the request a call belongs to, in the call's context values: every protocol's
 * edge puts it there (src/server.ts, src/edge/grpc-stream.ts), so that what runs the call finds
 * it through its handler context. Not an AsyncLocalStorage: on Node 20 one of those makes every
 * promise of the process pay for async hooks (BENCHMARKS.md, "Import throughput").
 */
export const requestRecordKey = createContextKey<RequestRecord | undefined>(undefined);

const RECORD = Symbol("userport.request");
type WithRecord = FastifyRequest & { [RECORD]?: RequestRecord };

/** A request id from a client is taken when it is short and plain; otherwise a new one is made. */
const CLIENT_ID = /^[\w.:@/+=-]{1,128}$/;

/** fastify's `genReqId`: the client's `x-request-id`, or a new UUID. */
export function requestId(req: IncomingMessage): string {
  return requestIdOf(req.headers);
}

function requestIdOf(headers: IncomingHttpHeaders): string {
  const given = headers["x-request-id"];
  return typeof given === "string" && CLIENT_ID.test(given) ? given : randomUUID();
}

/** The record of a request served by fastify, made when its call's context values are. */
export function requestRecord(request: FastifyRequest): RequestRecord {
  const withRecord = request as WithRecord;
  withRecord[RECORD] ??= { log: request.log };
  return withRecord[RECORD];
}

/** The logger of the request a call belongs to (its lines carry its `reqId`), if it has one. */
export function requestLogOf(ctx: HandlerContext): FastifyBaseLogger | undefined {
  return ctx.values.get(requestRecordKey)?.log;
}

/** pino's level numbers: a line is written when its level is at least the logger's. */
const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Number.POSITIVE_INFINITY };

/** Paths probed by load balancers and Prometheus: their lines go out at debug, not info. */
const PROBES = new Set(["/healthz", "/readyz", "/metrics"]);

export interface AccessLogOptions {
  /** `"METHOD url"` of each REST route (fastify's route url) to the RPC it calls. */
  restRpcs: Map<string, string>;
  /** Told of every answered request: RPC (or route), protocol, code and seconds. */
  onResponse(rpc: string, protocol: string, code: string, seconds: number): void;
}

/**
 * Request ids and the access log: every request gets an id (the client's `x-request-id`, or a
 * new one), returned in `x-request-id` and carried by every log line of the request as `reqId`,
 * errors included. When the response is done, one line at info says what was called, how (the
 * protocol), the outcome (gRPC code and HTTP status), how long it took and who called, and never
 * a secret: no query string (it can hold a session token), no headers, no bodies.
 */
export function registerAccessLog(app: FastifyInstance, options: AccessLogOptions): StreamCallLog {
  /**
   * Counts a request and writes its line, at info (probes at debug) when `level` lets it through.
   * `log` is asked for only when the line is written: a call served off the stream makes its
   * logger then.
   */
  const finish = (outcome: Outcome, level: string, log: () => FastifyBaseLogger, probe: boolean) => {
    const { rpc, protocol, code, ms, caller } = outcome;
    options.onResponse(rpc, protocol, code, ms / 1000);
    if ((LEVELS[level] ?? 0) > (probe ? LEVELS.debug! : LEVELS.info!)) return;
    const line = {
      method: outcome.method,
      path: outcome.path,
      rpc,
      protocol,
      status: outcome.status,
      code,
      durationMs: Math.round(ms * 100) / 100,
      ...(caller ? { caller } : {}),
    };
    if (probe) log().debug(line, "request");
    else log().info(line, "request");
  };
  app.addHook("onRequest", (request, reply, done) => {
    // The Connect handlers see the id too (it is part of the request's headers).
    request.raw.headers["x-request-id"] = request.id;
    void reply.header("x-request-id", request.id);
    done();
  });
  app.addHook("onResponse", (request, reply, done) => {
    const record = (request as WithRecord)[RECORD] ?? { log: request.log };
    const path = request.url.split("?")[0]!;
    const route = request.routeOptions.url;
    const restRpc = route === undefined ? undefined : options.restRpcs.get(`${request.method} ${route}`);
    const protocol = restRpc ? "rest" : protocolOf(request);
    const rpc = record.rpc ?? restRpc ?? (protocol === "http" ? `${request.method} ${route ?? "unmatched"}` : path.slice(1));
    const code = record.code ?? codeOf(reply, protocol);
    const outcome = { method: request.method, path, rpc, protocol, status: reply.statusCode, code, ms: reply.elapsedTime, caller: record.caller };
    finish(outcome, request.log.level, () => request.log, PROBES.has(path));
    done();
  });
  return {
    start(headers, path) {
      const id = requestIdOf(headers);
      // As the onRequest hook does: the implementation sees the id in the request's headers.
      headers["x-request-id"] = id;
      const record = new StreamRecord(app.log, id);
      const started = performance.now();
      return {
        id,
        record,
        finish(grpcCode, cancelled) {
          const code = cancelled ? "CANCELLED" : (record.code ?? codeName(Number(grpcCode ?? 0)));
          const rpc = record.rpc ?? path.slice(1);
          finish(
            { method: "POST", path, rpc, protocol: "grpc", status: 200, code, ms: performance.now() - started, caller: record.caller },
            app.log.level,
            () => record.log,
            false,
          );
        },
      };
    },
  };
}

/** What the access log and the metrics say of a finished request. */
interface Outcome {
  method: string;
  path: string;
  rpc: string;
  protocol: string;
  status: number;
  code: string;
  ms: number;
  caller: string | undefined;
}

/**
 * The access log of gRPC calls served straight off the HTTP/2 stream, without fastify
 * (src/edge/grpc-stream.ts): the same request id (the client's `x-request-id`, or a new one,
 * seen by the implementation in the request's headers), the same record for `observeService`
 * and `requestLogOf`, and the same line and metrics as the hooks above give a gRPC call
 * (method POST, the path, the RPC, protocol "grpc", HTTP status 200, the gRPC code, the duration
 * from the request's arrival to the stream's close, the caller).
 */
export interface StreamCallLog {
  /** Starts the record of one call: `headers` get its id in `x-request-id`. */
  start(headers: IncomingHttpHeaders, path: string): StreamCall;
}

export interface StreamCall {
  /** The request id, to return in `x-request-id`. */
  readonly id: string;
  /** The call's record, for its context values under {@link requestRecordKey}. */
  readonly record: RequestRecord;
  /**
   * Writes the line and counts the call: the outcome the service recorded, else `grpcCode` (the
   * status sent; absent: OK); CANCELLED when the client went away before it was answered.
   */
  finish(grpcCode: string | undefined, cancelled: boolean): void;
}

/** A call's record whose logger (a pino child with the `reqId`) is only made when a line is written. */
class StreamRecord implements RequestRecord {
  rpc?: string;
  code?: string;
  caller?: string;
  #log: FastifyBaseLogger | undefined;
  constructor(
    private readonly root: FastifyBaseLogger,
    private readonly id: string,
  ) {}
  get log(): FastifyBaseLogger {
    // As fastify makes a request's logger (its default childLoggerFactory, requestIdLogLabel "reqId").
    this.#log ??= this.root.child({ reqId: this.id });
    return this.#log;
  }
}

/**
 * Wraps a (secured) service implementation so that its unary methods record their RPC name,
 * outcome and caller on the request being handled; the same object serves Connect and REST.
 */
export function observeService<T extends object>(service: DescService, impl: T): T {
  const wrapped: Record<string, unknown> = { ...(impl as Record<string, unknown>) };
  for (const method of service.methods) {
    const original = (impl as Record<string, unknown>)[method.localName];
    if (method.methodKind !== "unary" || typeof original !== "function") continue;
    const rpc = `${service.typeName}/${method.name}`;
    wrapped[method.localName] = async (req: unknown, ctx: HandlerContext) => {
      const record = ctx.values.get(requestRecordKey);
      if (record) record.rpc = rpc;
      try {
        const out = await (original as (req: unknown, ctx: HandlerContext) => Promise<unknown>).call(impl, req, ctx);
        if (record) record.code = "OK";
        return out;
      } catch (err) {
        if (record) record.code = codeName(ConnectError.from(err).code);
        throw err;
      } finally {
        if (record) record.caller = ctx.values.get(principalKey)?.userId;
      }
    };
  }
  return wrapped as unknown as T;
}

function protocolOf(request: FastifyRequest): string {
  const type = String(request.headers["content-type"] ?? "");
  if (type.startsWith("application/grpc-web")) return "grpc-web";
  if (type.startsWith("application/grpc")) return "grpc";
  if (
    request.headers["connect-protocol-version"] !== undefined ||
    (/^application\/(connect\+)?(proto|json)/.test(type) && request.method === "POST" && /^\/[\w.]+\/\w+$/.test(request.url))
  ) {
    return "connect";
  }
  if (request.method === "GET" && /[?&]connect=v1/.test(request.url)) return "connect";
  return "http";
}

/** The outcome when no service method ran: the gRPC status header, or the HTTP status. */
function codeOf(reply: FastifyReply, protocol: string): string {
  const status = reply.getHeader("grpc-status");
  if (status !== undefined) return codeName(Number(status));
  if (protocol === "http") return String(reply.statusCode);
  return reply.statusCode < 400 ? "OK" : codeName(HTTP_TO_CODE[reply.statusCode] ?? Code.Unknown);
}

const HTTP_TO_CODE: Record<number, Code> = {
  400: Code.InvalidArgument,
  401: Code.Unauthenticated,
  403: Code.PermissionDenied,
  404: Code.NotFound,
  405: Code.Unimplemented,
  408: Code.DeadlineExceeded,
  409: Code.AlreadyExists,
  413: Code.ResourceExhausted,
  415: Code.InvalidArgument,
  429: Code.ResourceExhausted,
  499: Code.Canceled,
  500: Code.Internal,
  501: Code.Unimplemented,
  503: Code.Unavailable,
  504: Code.DeadlineExceeded,
};

/** gRPC's upper-case code names, as grpc-go and Prometheus exporters label them. */
function codeName(code: Code): string {
  if ((code as number) === 0) return "OK";
  const name = Code[code];
  return name === undefined ? String(code) : name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}
