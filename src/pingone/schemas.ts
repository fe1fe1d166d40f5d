import { randomUUID } from "node:crypto";
import type { DirectoryObject } from "../domain/directory-objects.js";
import { foldCase } from "../domain/user-queries.js";
import { type Call, userSchemaId } from "./context.js";
import { invalidData, MESSAGES, PingOneError } from "./errors.js";
import type { Handle } from "./index.js";
import { CORE_ATTRIBUTES } from "./users.js";

/**
 * PingOne's user schema (Platform API "Schemas"): one schema, "User", whose custom attributes
 * are created with `POST /schemas/{schemaID}/attributes` before users may carry them. Custom
 * attributes are directory objects; names are unique case-insensitively (PingOne refuses two
 * attributes differing only in case) and may not be a core attribute's. Reading needs
 * `iam.policy.read`, changing `iam.policy.write` (instance roles).
 */
const TYPES = ["STRING", "JSON", "BOOLEAN"];

function attributeResource(call: Call, attribute: DirectoryObject) {
  const schemaId = userSchemaId(call.instanceId);
  return {
    _links: { self: call.link("schemas", schemaId, "attributes", attribute.id), schema: call.link("schemas", schemaId) },
    id: attribute.id,
    environment: { id: call.envId },
    schema: { id: schemaId },
    name: attribute.name,
    ...attribute.body,
    schemaType: "CUSTOM",
    createdAt: new Date(attribute.createdAt).toISOString(),
    updatedAt: new Date(attribute.changedAt).toISOString(),
  };
}

function readAttribute(body: Record<string, unknown>) {
  if (typeof body.name !== "string" || body.name === "") {
    throw new PingOneError(400, "INVALID_DATA", MESSAGES.invalidData, [{ code: "REQUIRED_VALUE", target: "name", message: "name is required" }]);
  }
  if (!/^[A-Za-z][A-Za-z0-9_-]{0,99}$/.test(body.name)) {
    throw invalidData("name", "name must start with a letter and hold letters, digits, _ and - only", "INVALID_VALUE", {
      allowedPattern: "^[A-Za-z][A-Za-z0-9_-]{0,99}$",
    });
  }
  if ([...CORE_ATTRIBUTES].some((core) => foldCase(core) === foldCase(body.name as string))) {
    throw invalidData("name", `${body.name} is a core attribute of the user schema`, "UNIQUENESS_VIOLATION");
  }
  const type = body.type ?? "STRING";
  if (typeof type !== "string" || !TYPES.includes(type)) {
    throw invalidData("type", "type must be STRING, JSON or BOOLEAN", "INVALID_VALUE", { allowedValues: TYPES });
  }
  for (const key of ["enabled", "unique", "multiValued", "required"]) {
    if (body[key] !== undefined && typeof body[key] !== "boolean") throw invalidData(key, `${key} must be a boolean`);
  }
  return {
    name: body.name,
    body: {
      type,
      displayName: typeof body.displayName === "string" ? body.displayName : body.name,
      ...(typeof body.description === "string" ? { description: body.description } : {}),
      enabled: body.enabled !== false,
      unique: body.unique === true,
      multiValued: body.multiValued === true,
      required: false,
    },
  };
}

export function registerSchemaRoutes(handle: Handle) {
  const base = "/environments/:envId/schemas";

  const schemaResource = async (call: Call) => {
    const id = userSchemaId(call.instanceId);
    const custom = await call.deps.attributes.list(call.instanceId);
    return {
      _links: { self: call.link("schemas", id), attributes: call.link("schemas", id, "attributes") },
      id,
      environment: { id: call.envId },
      name: "User",
      description: "PingOne's user schema over userport's users",
      _embedded: { attributes: custom.map((attribute) => attributeResource(call, attribute)) },
    };
  };

  const checkSchema = (call: Call, schemaId: string | undefined) => {
    if (schemaId !== userSchemaId(call.instanceId)) throw call.notFound(`schema with ID ${schemaId}`);
  };

  handle("GET", base, async (call) => {
    call.requireInstance("iam.policy.read");
    const schema = await schemaResource(call);
    return { status: 200, body: { _links: { self: call.link("schemas") }, _embedded: { schemas: [schema] }, count: 1, size: 1 } };
  });

  handle("GET", `${base}/:schemaId`, async (call, params) => {
    call.requireInstance("iam.policy.read");
    checkSchema(call, params.schemaId);
    return { status: 200, body: await schemaResource(call) };
  });

  handle("GET", `${base}/:schemaId/attributes`, async (call, params) => {
    call.requireInstance("iam.policy.read");
    checkSchema(call, params.schemaId);
    const attributes = (await call.deps.attributes.list(call.instanceId)).map((attribute) => attributeResource(call, attribute));
    return {
      status: 200,
      body: {
        _links: { self: call.link("schemas", params.schemaId!, "attributes") },
        _embedded: { attributes },
        count: attributes.length,
        size: attributes.length,
      },
    };
  });

  handle("POST", `${base}/:schemaId/attributes`, async (call, params) => {
    call.accept("application/json");
    const input = readAttribute(call.json());
    call.requireInstance("iam.policy.write");
    checkSchema(call, params.schemaId);
    const created = await call.deps.attributes.create(call.instanceId, { id: randomUUID(), ...input });
    return { status: 201, body: attributeResource(call, created) };
  });

  handle("GET", `${base}/:schemaId/attributes/:attributeId`, async (call, params) => {
    call.requireInstance("iam.policy.read");
    checkSchema(call, params.schemaId);
    return { status: 200, body: attributeResource(call, await call.deps.attributes.get(call.instanceId, params.attributeId!)) };
  });

  handle("PUT", `${base}/:schemaId/attributes/:attributeId`, async (call, params) => {
    call.accept("application/json");
    const input = readAttribute(call.json());
    call.requireInstance("iam.policy.write");
    checkSchema(call, params.schemaId);
    const updated = await call.deps.attributes.replace(call.instanceId, { id: params.attributeId!, ...input });
    return { status: 200, body: attributeResource(call, updated) };
  });

  handle("DELETE", `${base}/:schemaId/attributes/:attributeId`, async (call, params) => {
    call.requireInstance("iam.policy.write");
    checkSchema(call, params.schemaId);
    await call.deps.attributes.remove(call.instanceId, params.attributeId!);
    return { status: 204 };
  });
}
