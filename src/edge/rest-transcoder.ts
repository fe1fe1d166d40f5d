import type { IncomingHttpHeaders } from "node:http";
import {
  create,
  type DescField,
  type DescMessage,
  type DescMethod,
  type DescService,
  fromJson,
  getOption,
  hasOption,
  type JsonObject,
  type JsonValue,
  ScalarType,
  toJson,
} from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues, type HandlerContext } from "@connectrpc/connect";
import { parseTimeout } from "@connectrpc/connect/protocol-grpc";
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from "fastify";
import { http } from "../../gen/google/api/annotations_pb.js";
import type { HttpRule } from "../../gen/google/api/http_pb.js";
import { options as v2Options } from "../../gen/zitadel/protoc_gen_zitadel/v2/options_pb.js";
import type { Calls } from "./calls.js";
import { httpStatusOf, restErrorBody, toConnectError } from "./errors.js";
import { FastCall } from "./grpc-fast-path.js";
import { refuseNulCharacters } from "./nul-characters.js";

type UnaryHandler = (req: unknown, ctx: HandlerContext) => Promise<unknown>;

/** Runs a call's implementation under its signal (src/edge/calls.ts). */
export type CallRunner = Pick<Calls, "run">;

/** A service to expose over REST: its descriptor, its (secured) implementation and a path prefix. */
export interface RestService {
  service: DescService;
  impl: object;
  /** Prepended to the paths of the service's rules, e.g. "/management/v1". */
  prefix: string;
}

/** One REST route derived from a `google.api.http` rule. */
interface RestRoute {
  httpMethod: HTTPMethods;
  /** The rule's path under the prefix, with `{field.path}` variables as fastify `:pN` params. */
  url: string;
  /** Field paths (proto names) bound by the path variables, in the order of the params. */
  pathFields: string[][];
  /** "*" for the whole request, a field name, or "" for no body. */
  body: string;
  service: DescService;
  method: DescMethod;
  handler: UnaryHandler;
  successCode: number;
  matches: RegExp;
}

/**
 * Serves grpc-gateway style REST for every unary method that has a `google.api.http` rule, by
 * calling the same implementation that Connect serves.
 *
 * The request message is built from the JSON body (per the rule's `body`), the path variables and,
 * for the remaining fields, the query string; protojson rules apply (camelCase or proto names,
 * unknown fields ignored). The response is protojson with zero values omitted; errors are
 * grpc-gateway's `{code, message, details}` with its HTTP status.
 */
export function registerRestRoutes(
  app: FastifyInstance,
  services: RestService[],
  contextValues: (request: FastifyRequest) => ContextValues,
  calls: CallRunner,
): RestRoute[] {
  const routes = services.flatMap(deriveRoutes);
  for (const route of routes) {
    app.route({
      method: route.httpMethod,
      url: route.url,
      handler: (request, reply) => handle(route, request, reply, contextValues, calls),
    });
  }
  return routes;
}

function deriveRoutes({ service, impl, prefix }: RestService): RestRoute[] {
  const routes: RestRoute[] = [];
  for (const method of service.methods) {
    if (method.methodKind !== "unary" || !hasOption(method, http)) continue;
    const handler = (impl as Record<string, UnaryHandler>)[method.localName];
    if (!handler) continue;
    const rules = [getOption(method, http), ...getOption(method, http).additionalBindings];
    for (const rule of rules) {
      const binding = bindingOf(rule);
      if (!binding) continue;
      const { url, pathFields, matches } = compileTemplate(prefix + binding.path);
      routes.push({
        httpMethod: binding.method,
        url,
        pathFields,
        body: rule.body,
        service,
        method,
        handler: handler.bind(impl),
        successCode: hasOption(method, v2Options) ? getOption(method, v2Options).httpResponse?.successCode || 200 : 200,
        matches,
      });
    }
  }
  return routes;
}

function bindingOf(rule: HttpRule): { method: HTTPMethods; path: string } | undefined {
  switch (rule.pattern.case) {
    case "get":
    case "post":
    case "put":
    case "delete":
    case "patch":
      return { method: rule.pattern.case.toUpperCase() as HTTPMethods, path: rule.pattern.value };
    case "custom":
      return { method: rule.pattern.value.kind.toUpperCase() as HTTPMethods, path: rule.pattern.value.path };
    default:
      return undefined;
  }
}

/** Turns "/users/{user_id}/_lock" into a fastify path "/users/:p0/_lock" plus the bound fields. */
function compileTemplate(template: string): { url: string; pathFields: string[][]; matches: RegExp } {
  const pathFields: string[][] = [];
  let pattern = "";
  const url = template.replace(/\{([^}=]+)(?:=[^}]*)?\}|[^{]+/g, (part, variable: string | undefined) => {
    if (variable === undefined) {
      pattern += part.replace(/[.*+?^$()|[\]\\]/g, "\\$&");
      return part.replaceAll(":", "::");
    }
    pattern += "[^/]+";
    pathFields.push(variable.split("."));
    return `:p${pathFields.length - 1}`;
  });
  return { url, pathFields, matches: new RegExp(`^${pattern}$`) };
}

async function handle(
  route: RestRoute,
  request: FastifyRequest,
  reply: FastifyReply,
  contextValues: (request: FastifyRequest) => ContextValues,
  calls: CallRunner,
) {
  const { call, finish } = restCall(request, reply, contextValues(request));
  try {
    const input = readRequest(route, request);
    refuseNulCharacters(input);
    const ctx = call.context(route.method);
    // Implementations may return an init object, as Connect allows: make it a message first.
    const output = create(route.method.output, (await calls.run(call, ctx.values, () => route.handler(input, ctx))) as never);
    await reply
      .code(route.successCode)
      .type("application/json")
      .send(JSON.stringify(toJson(route.method.output, output)));
  } catch (err) {
    const error = toConnectError(err, request.log);
    await reply.code(httpStatusOf(error.code)).type("application/json").send(restErrorBody(error));
  } finally {
    finish();
  }
}

/**
 * A REST call, with the gRPC fast path's lazy handler context (src/edge/grpc-fast-path.ts): it
 * ends when the client goes away before the response is written, or when the deadline of a
 * `Grpc-Timeout` header passes (grpc-gateway's runtime reads that header on REST requests too,
 * and answers a malformed one with INVALID_ARGUMENT). The service sees only the headers the
 * gateway forwards.
 */
function restCall(request: FastifyRequest, reply: FastifyReply, values: ContextValues) {
  const header = request.headers["grpc-timeout"];
  const timeout = typeof header === "string" ? parseTimeout(header, Number.MAX_SAFE_INTEGER) : undefined;
  const call = new FastCall({
    protocol: REST,
    requestMethod: request.method,
    requestHeaders: forwardedHeaders(request.headers),
    url: () => request.url,
    timeoutMs: timeout?.timeoutMs,
    values,
  });
  if (timeout?.error) call.abort(new ConnectError(`invalid grpc-timeout: ${header}`, Code.InvalidArgument));
  const onClose = () => {
    if (!reply.raw.writableFinished) call.abort(new ConnectError("the client went away", Code.Canceled));
  };
  reply.raw.once("close", onClose);
  const finish = () => {
    reply.raw.off("close", onClose);
    call.done();
  };
  return { call, finish };
}

const REST = { name: "rest", contentType: "application/json" } as const;

/** The request headers the service sees (see {@link isForwarded}). */
function forwardedHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const forwarded: IncomingHttpHeaders = {};
  for (const name in headers) if (isForwarded(name)) forwarded[name] = headers[name];
  return forwarded;
}

/**
 * The HTTP headers that reach the service, as ZITADEL's gateway forwards them as gRPC metadata:
 * authorization, ZITADEL's own `x-zitadel-*`, and the gateway's `grpc-metadata-*` convention.
 */
function isForwarded(name: string): boolean {
  return name === "authorization" || name.startsWith("x-zitadel-") || name.startsWith("grpc-metadata-");
}

/** Builds the request message from body, path variables and query string. */
function readRequest(route: RestRoute, request: FastifyRequest) {
  const input = route.method.input;
  let json: JsonObject = {};
  if (route.body !== "") {
    const body = request.body ?? {};
    if (typeof body !== "object" || Array.isArray(body)) throw badRequest("the request body must be a JSON object");
    if (route.body === "*") json = body as JsonObject;
    else json[resolvePath(input, [route.body])![0]!.jsonName] = body as JsonValue;
  }
  const params = request.params as Record<string, string>;
  route.pathFields.forEach((path, i) => {
    setField(json, input, path, params[`p${i}`] ?? "", route.method);
  });
  if (route.body !== "*") {
    for (const [key, value] of Object.entries(request.query as Record<string, string | string[]>)) {
      const path = key.split(".");
      if (resolvePath(input, path)) setField(json, input, path, value, route.method);
    }
  }
  try {
    return fromJson(input, json, { ignoreUnknownFields: true });
  } catch (err) {
    // protobuf-es names the field and may quote the value; only the field name goes back, since
    // the value could be a password.
    const field = /field ([\w.]+)/.exec(String((err as Error).message))?.[1];
    throw badRequest(field ? `invalid value for field ${field}` : `invalid ${input.typeName}`);
  }
}

function badRequest(message: string) {
  return new ConnectError(message, Code.InvalidArgument);
}

/** The fields along a dotted path, each found by its proto name or JSON name. */
function resolvePath(message: DescMessage, path: string[]): DescField[] | undefined {
  const fields: DescField[] = [];
  let current: DescMessage | undefined = message;
  for (const name of path) {
    const field: DescField | undefined = current?.fields.find((f) => f.name === name || f.jsonName === name);
    if (!field) return undefined;
    fields.push(field);
    current = field.fieldKind === "message" ? field.message : undefined;
  }
  return fields;
}

/**
 * Sets a path or query value into the JSON object at the field path, converted to what
 * protojson expects for the field's type (booleans and repeated values need it).
 */
function setField(json: JsonObject, message: DescMessage, path: string[], raw: string | string[], method: DescMethod) {
  const fields = resolvePath(message, path);
  if (!fields) throw badRequest(`unknown field ${path.join(".")} in ${method.name} request`);
  let target = json;
  for (const field of fields.slice(0, -1)) {
    const next = target[field.jsonName];
    if (!next || typeof next !== "object" || Array.isArray(next)) target[field.jsonName] = {};
    target = target[field.jsonName] as JsonObject;
  }
  const leaf = fields[fields.length - 1]!;
  const values = Array.isArray(raw) ? raw : [raw];
  const convert = (value: string): JsonValue => (leaf.scalar === ScalarType.BOOL ? value === "true" || value === "1" : value);
  target[leaf.jsonName] = leaf.fieldKind === "list" ? values.map(convert) : convert(values[values.length - 1]!);
}
