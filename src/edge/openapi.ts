import { type DescEnum, type DescField, type DescMessage, type DescMethod, type DescService, ScalarType } from "@bufbuild/protobuf";

type Schema = Record<string, unknown>;

/** What the OpenAPI document needs of a route `registerRestRoutes` (rest-transcoder.ts) serves. */
export interface RestRouteInfo {
  httpMethod: string;
  /** fastify's path: `{field}` variables as `:pN`, literal colons doubled. */
  url: string;
  /** The field paths the `:pN` variables bind, by N. */
  pathFields: string[][];
  /** The rule's `body`: "*", a field name, or "" for none. */
  body: string;
  service: DescService;
  method: DescMethod;
  successCode: number;
}

/**
 * The OpenAPI 3.1 description of the REST routes, generated from the routes the transcoder
 * derived from the `google.api.http` rules of the generated descriptors, so it never differs
 * from what is served: every route, its path and query parameters, its body (the rule's `body`),
 * its success status (ZITADEL's `http_response.success_code`), the protojson schemas of its
 * messages, and grpc-gateway's error body.
 */
export function openApiDocument(routes: readonly RestRouteInfo[], info: { title: string; version: string }): Schema {
  const schemas: Record<string, Schema> = {};
  const paths: Record<string, Record<string, Schema>> = {};

  /** The JSON schema of a message, registered once under its full name. */
  const refMessage = (message: DescMessage): Schema => {
    const wkt = WELL_KNOWN[message.typeName];
    if (wkt) return wkt;
    if (!(message.typeName in schemas)) {
      schemas[message.typeName] = {}; // placeholder first: messages may refer to themselves
      const properties: Record<string, Schema> = {};
      for (const field of message.fields) properties[field.jsonName] = fieldSchema(field);
      // protojson also accepts the proto field names and ignores unknown fields: not closed.
      schemas[message.typeName] = { type: "object", properties };
    }
    return { $ref: `#/components/schemas/${message.typeName}` };
  };
  const enumSchema = (desc: DescEnum): Schema => ({ type: "string", enum: desc.values.map((v) => v.name) });
  const singular = (field: { fieldKind: string; scalar?: ScalarType; enum?: DescEnum; message?: DescMessage }): Schema => {
    if (field.scalar !== undefined) return scalarSchema(field.scalar);
    if (field.enum) return enumSchema(field.enum);
    return refMessage(field.message!);
  };
  function fieldSchema(field: DescField): Schema {
    switch (field.fieldKind) {
      case "scalar":
        return scalarSchema(field.scalar);
      case "enum":
        return enumSchema(field.enum);
      case "message":
        return refMessage(field.message);
      case "list":
        return {
          type: "array",
          items: singular(
            field.listKind === "scalar"
              ? { fieldKind: "scalar", scalar: field.scalar }
              : field.listKind === "enum"
                ? { fieldKind: "enum", enum: field.enum }
                : { fieldKind: "message", message: field.message },
          ),
        };
      case "map":
        return {
          type: "object",
          additionalProperties: singular(
            field.mapKind === "scalar"
              ? { fieldKind: "scalar", scalar: field.scalar }
              : field.mapKind === "enum"
                ? { fieldKind: "enum", enum: field.enum }
                : { fieldKind: "message", message: field.message },
          ),
        };
    }
  }

  for (const route of routes) {
    const input = route.method.input;
    const bound = new Set(route.pathFields.map((path) => path.join(".")));
    const parameters: Schema[] = route.pathFields.map((path) => ({
      name: path.join("."),
      in: "path",
      required: true,
      schema: leafSchema(input, path) ?? { type: "string" },
    }));
    if (route.body !== "*") {
      // The fields neither in the path nor in the body may be given in the query string.
      for (const [name, schema] of queryFields(input, route.body)) {
        if (!bound.has(name)) parameters.push({ name, in: "query", required: false, schema, explode: true });
      }
    }
    const operation: Schema = {
      operationId: `${route.service.name}_${route.method.name}`,
      tags: [route.service.typeName],
      summary: `${route.service.typeName}/${route.method.name}`,
      parameters,
      responses: {
        [String(route.successCode)]: {
          description: "OK",
          content: { "application/json": { schema: refMessage(route.method.output) } },
        },
        default: { $ref: "#/components/responses/Error" },
      },
    };
    if (route.body !== "") {
      const field = route.body === "*" ? undefined : input.fields.find((f) => f.name === route.body);
      operation.requestBody = {
        required: true,
        content: { "application/json": { schema: field ? fieldSchema(field) : refMessage(input) } },
      };
    }
    const path = openApiPath(route);
    paths[path] = { ...paths[path], [route.httpMethod.toLowerCase()]: operation };
  }

  return {
    openapi: "3.1.0",
    info: { ...info, description: "userport's grpc-gateway style REST routes, generated from the google.api.http rules of its protos." },
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "a personal access token" } },
      responses: {
        Error: {
          description: "grpc-gateway's error body: the gRPC code, the message and ZITADEL's error details",
          content: { "application/json": { schema: { $ref: "#/components/schemas/userport.RestError" } } },
        },
      },
      schemas: {
        ...schemas,
        "userport.RestError": {
          type: "object",
          properties: {
            code: { type: "integer", format: "int32", description: "the gRPC status code" },
            message: { type: "string" },
            details: { type: "array", items: { type: "object", properties: { "@type": { type: "string" } }, additionalProperties: true } },
          },
          required: ["code", "message", "details"],
        },
      },
    },
  };
}

/** The route's path in OpenAPI's form: `/users/{user_id}` for fastify's `/users/:p0`. */
export function openApiPath(route: Pick<RestRouteInfo, "url" | "pathFields">): string {
  return route.url.replace(/(?<!:):p(\d+)/g, (_, i: string) => `{${route.pathFields[Number(i)]!.join(".")}}`).replaceAll("::", ":");
}

/** The schema of the field at a dotted path (a path variable may name a nested field). */
function leafSchema(message: DescMessage, path: string[]): Schema | undefined {
  let current: DescMessage | undefined = message;
  let field: DescField | undefined;
  for (const name of path) {
    field = current?.fields.find((f) => f.name === name || f.jsonName === name);
    if (!field) return undefined;
    current = field.fieldKind === "message" ? field.message : undefined;
  }
  if (field?.fieldKind === "scalar") return scalarSchema(field.scalar);
  if (field?.fieldKind === "enum") return { type: "string", enum: field.enum.values.map((v) => v.name) };
  return { type: "string" };
}

/**
 * The query parameters of a route: the request's scalar, enum and repeated scalar fields, nested
 * messages by their dotted paths (a few levels), leaving out the field the body carries.
 */
function queryFields(message: DescMessage, bodyField: string, prefix = "", depth = 0, seen = new Set<string>()): Array<[string, Schema]> {
  const out: Array<[string, Schema]> = [];
  if (depth > 2 || seen.has(message.typeName)) return out;
  const inner = new Set(seen).add(message.typeName);
  for (const field of message.fields) {
    if (depth === 0 && field.name === bodyField) continue;
    const name = prefix + field.name;
    if (field.fieldKind === "scalar") out.push([name, scalarSchema(field.scalar)]);
    else if (field.fieldKind === "enum") out.push([name, { type: "string", enum: field.enum.values.map((v) => v.name) }]);
    else if (field.fieldKind === "list" && field.listKind !== "message") {
      out.push([name, { type: "array", items: field.listKind === "scalar" ? scalarSchema(field.scalar) : { type: "string" } }]);
    } else if (field.fieldKind === "message" && !WELL_KNOWN[field.message.typeName]) {
      out.push(...queryFields(field.message, bodyField, `${name}.`, depth + 1, inner));
    }
  }
  return out;
}

/** protojson's representation of each scalar type. */
function scalarSchema(scalar: ScalarType): Schema {
  switch (scalar) {
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.BYTES:
      return { type: "string", contentEncoding: "base64" };
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return { type: "number" };
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return { type: "string", format: "int64" };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return { type: "string", format: "uint64" };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { type: "integer", format: "uint32", minimum: 0 };
    default:
      return { type: "integer", format: "int32" };
  }
}

/** protojson's special forms of the well-known types. */
const WELL_KNOWN: Record<string, Schema> = {
  "google.protobuf.Timestamp": { type: "string", format: "date-time" },
  "google.protobuf.Duration": { type: "string", pattern: "^-?\\d+(\\.\\d+)?s$", description: "seconds with an s suffix, e.g. 3600s" },
  "google.protobuf.Struct": { type: "object", additionalProperties: true },
  "google.protobuf.Value": {},
  "google.protobuf.ListValue": { type: "array" },
  "google.protobuf.Any": { type: "object", properties: { "@type": { type: "string" } }, additionalProperties: true },
  "google.protobuf.Empty": { type: "object" },
  "google.protobuf.FieldMask": { type: "string" },
  "google.protobuf.StringValue": { type: "string" },
  "google.protobuf.BytesValue": { type: "string", contentEncoding: "base64" },
  "google.protobuf.BoolValue": { type: "boolean" },
  "google.protobuf.Int32Value": { type: "integer", format: "int32" },
  "google.protobuf.UInt32Value": { type: "integer", format: "uint32" },
  "google.protobuf.Int64Value": { type: "string", format: "int64" },
  "google.protobuf.UInt64Value": { type: "string", format: "uint64" },
  "google.protobuf.DoubleValue": { type: "number" },
  "google.protobuf.FloatValue": { type: "number" },
};
