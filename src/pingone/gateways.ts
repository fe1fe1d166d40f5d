import { randomUUID } from "node:crypto";
import type { DirectoryObject } from "../domain/directory-objects.js";
import type { Call } from "./context.js";
import { invalidData, MESSAGES, PingOneError } from "./errors.js";
import type { Handle } from "./index.js";
import { UUID_PATTERN } from "./users.js";
import { isFilterPattern } from "../ldap/directory.js";

// biome-ignore lint/suspicious/noTemplateCurlyInString: PingOne's placeholder, not a template
const IDENTIFIER = "${identifier}";

/**
 * PingOne's LDAP gateways (Platform API "Gateways", "Create LDAP Gateway"; the Go SDK's
 * `GatewayTypeLDAP` and `GatewayTypeLDAPAllOfUserTypes` in pingone-go-sdk-v2 management/;
 * terraform-provider-pingone internal/service/base/resource_gateway.go). A gateway is a
 * directory object of kind "gateway" (src/domain/directory-objects.ts): its body is the JSON
 * below in PingOne's names, its `bindPassword` the sealed secret, never returned. User types get
 * server-assigned UUIDs when they come without one (Terraform sends none on create and sends them
 * back on update). A user type's `newUserLookup` (just-in-time migration, see
 * src/domain/external-passwords.ts) is checked here: a filter with `${identifier}`, an existing
 * population, a mapping for `username`. Only type LDAP is served (no Kerberos). Reading needs `iam.policy.read`,
 * changing `iam.policy.write` (instance roles), as the user schema.
 */
const SECURITY = ["None", "TLS", "StartTLS"];
const AUTHORITIES = ["PING_ONE", "LDAP"];
/** An LDAP attribute description: a name or an OID (RFC 4512 section 2.5). */
const ATTRIBUTE = /^([A-Za-z][A-Za-z0-9-]*|\d+(\.\d+)*)$/;

const required = (target: string) =>
  new PingOneError(400, "INVALID_DATA", MESSAGES.invalidData, [{ code: "REQUIRED_VALUE", target, message: `${target} is required` }]);

function text(body: Record<string, unknown>, key: string, target = key, optional = false): string | undefined {
  const value = body[key];
  if (value === undefined || value === null || value === "") {
    if (optional) return undefined;
    throw required(target);
  }
  if (typeof value !== "string") throw invalidData(target, `${target} must be a string`);
  if (value.length > 1024) throw invalidData(target, `${target} must be at most 1024 characters`, "SIZE_LIMIT_EXCEEDED");
  return value;
}

function flag(body: Record<string, unknown>, key: string, fallback: boolean, target = key): boolean {
  const value = body[key];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "boolean") throw invalidData(target, `${target} must be a boolean`);
  return value;
}

function readUserType(value: unknown, index: number): Record<string, unknown> {
  const at = `userTypes[${index}]`;
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw invalidData(at, `${at} must be an object`);
  const type = value as Record<string, unknown>;
  const authority = text(type, "passwordAuthority", `${at}.passwordAuthority`)!;
  if (!AUTHORITIES.includes(authority)) {
    throw invalidData(`${at}.passwordAuthority`, "passwordAuthority must be PING_ONE or LDAP", "INVALID_VALUE", { allowedValues: AUTHORITIES });
  }
  const attributes = type.orderedCorrelationAttributes;
  if (!Array.isArray(attributes) || attributes.length === 0) throw required(`${at}.orderedCorrelationAttributes`);
  for (const attribute of attributes) {
    if (typeof attribute !== "string" || !ATTRIBUTE.test(attribute)) {
      throw invalidData(`${at}.orderedCorrelationAttributes`, "each correlation attribute must be an LDAP attribute name", "INVALID_VALUE", {
        allowedPattern: ATTRIBUTE.source,
      });
    }
  }
  let id = type.id;
  if (id !== undefined && id !== null && (typeof id !== "string" || !UUID_PATTERN.test(id))) throw invalidData(`${at}.id`, "id must be a UUID");
  if (typeof id !== "string") id = randomUUID();
  const newUserLookup =
    type.newUserLookup === undefined || type.newUserLookup === null ? undefined : readNewUserLookup(type.newUserLookup, `${at}.newUserLookup`);
  return {
    id,
    name: text(type, "name", `${at}.name`),
    passwordAuthority: authority,
    searchBaseDn: text(type, "searchBaseDn", `${at}.searchBaseDn`),
    orderedCorrelationAttributes: attributes,
    allowPasswordChanges: flag(type, "allowPasswordChanges", false, `${at}.allowPasswordChanges`),
    updateUserOnSuccessfulAuthentication: flag(type, "updateUserOnSuccessfulAuthentication", false, `${at}.updateUserOnSuccessfulAuthentication`),
    ...(newUserLookup ? { newUserLookup } : {}),
  };
}

/** A PingOne attribute a mapping may name: `username`, `name.given`, a custom attribute, … */
const MAPPED_ATTRIBUTE = /^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)?$/;

/**
 * A user type's `newUserLookup` (the Go SDK's GatewayTypeLDAPAllOfNewUserLookup; Terraform's
 * `new_user_lookup` of pingone_gateway): `ldapFilterPattern` an LDAP filter with `${identifier}`,
 * `population.id`, and `attributeMappings` of `{name, value}` with one for `username`.
 */
function readNewUserLookup(value: unknown, at: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw invalidData(at, `${at} must be an object`);
  const lookup = value as Record<string, unknown>;
  const pattern = text(lookup, "ldapFilterPattern", `${at}.ldapFilterPattern`)!;
  if (!pattern.includes(IDENTIFIER) || !isFilterPattern(pattern)) {
    throw invalidData(
      `${at}.ldapFilterPattern`,
      `ldapFilterPattern must be an LDAP filter using ${IDENTIFIER}, such as (|(uid=${IDENTIFIER})(mail=${IDENTIFIER}))`,
    );
  }
  const population = lookup.population as { id?: unknown } | undefined;
  const populationId = population && typeof population === "object" ? population.id : undefined;
  if (typeof populationId !== "string" || populationId === "") throw required(`${at}.population.id`);
  const mappings = lookup.attributeMappings;
  if (!Array.isArray(mappings) || mappings.length === 0) throw required(`${at}.attributeMappings`);
  const attributeMappings = mappings.map((mapping, index) => {
    const target = `${at}.attributeMappings[${index}]`;
    if (typeof mapping !== "object" || mapping === null || Array.isArray(mapping)) throw invalidData(target, `${target} must be an object`);
    const name = text(mapping as Record<string, unknown>, "name", `${target}.name`)!;
    if (!MAPPED_ATTRIBUTE.test(name)) throw invalidData(`${target}.name`, `${name} is not a user attribute name`, "INVALID_VALUE");
    return { name, value: text(mapping as Record<string, unknown>, "value", `${target}.value`)! };
  });
  if (!attributeMappings.some((mapping) => mapping.name === "username")) {
    throw invalidData(`${at}.attributeMappings`, "One of the attributeMappings must be for username", "REQUIRED_VALUE");
  }
  if (new Set(attributeMappings.map((mapping) => mapping.name)).size !== attributeMappings.length) {
    throw invalidData(`${at}.attributeMappings`, "Each attribute may be mapped once", "UNIQUENESS_VIOLATION");
  }
  return { ldapFilterPattern: pattern, population: { id: populationId }, attributeMappings };
}

/** The populations the user types' newUserLookup create users in must exist. */
async function checkLookupPopulations(call: Call, body: Record<string, unknown>) {
  const types = body.userTypes as Array<{ newUserLookup?: { population: { id: string } } }>;
  for (const [index, type] of types.entries()) {
    const id = type.newUserLookup?.population.id;
    if (id !== undefined && !(await call.deps.populations.exists(call.instanceId, id))) {
      throw invalidData(`userTypes[${index}].newUserLookup.population.id`, `The population ${id} does not exist in this environment`, "INVALID_VALUE", {
        referencedValues: [id],
      });
    }
  }
}

/** The gateway's stored body and its bind password (absent on a PUT that keeps the stored one). */
function readGateway(body: Record<string, unknown>, previous: DirectoryObject | undefined) {
  const name = text(body, "name")!;
  const type = text(body, "type")!;
  if (type !== "LDAP") throw invalidData("type", "Only LDAP gateways are supported", "INVALID_VALUE", { allowedValues: ["LDAP"] });
  const security = text(body, "connectionSecurity", "connectionSecurity", true) ?? "None";
  if (!SECURITY.includes(security))
    throw invalidData("connectionSecurity", "connectionSecurity must be None, TLS or StartTLS", "INVALID_VALUE", { allowedValues: SECURITY });
  const servers = body.serversHostAndPort;
  if (!Array.isArray(servers) || servers.length === 0) throw required("serversHostAndPort");
  for (const server of servers) {
    const port = typeof server === "string" ? Number(server.slice(server.lastIndexOf(":") + 1)) : Number.NaN;
    if (typeof server !== "string" || server.lastIndexOf(":") <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw invalidData("serversHostAndPort", `${JSON.stringify(server)} is not host:port`, "INVALID_VALUE");
    }
  }
  if (body.kerberos !== undefined && body.kerberos !== null) throw invalidData("kerberos", "Kerberos is not supported", "INVALID_VALUE");
  const bindPassword = text(body, "bindPassword", "bindPassword", previous !== undefined);
  const userTypes = body.userTypes ?? [];
  if (!Array.isArray(userTypes)) throw invalidData("userTypes", "userTypes must be an array");
  const types = userTypes.map((userType, index) => readUserType(userType, index));
  if (new Set(types.map((userType) => userType.id)).size !== types.length)
    throw invalidData("userTypes", "user type ids must be unique", "UNIQUENESS_VIOLATION");
  return {
    name,
    bindPassword,
    body: {
      ...(typeof body.description === "string" ? { description: body.description } : {}),
      type,
      enabled: flag(body, "enabled", true),
      vendor: text(body, "vendor")!,
      bindDN: text(body, "bindDN")!,
      connectionSecurity: security,
      serversHostAndPort: servers,
      validateTlsCertificates: flag(body, "validateTlsCertificates", true),
      followReferrals: false,
      userTypes: types,
    },
  };
}

export function gatewayResource(call: Call, gateway: DirectoryObject) {
  return {
    _links: { self: call.link("gateways", gateway.id), environment: { href: `${call.deps.externalUrl}/v1/environments/${call.envId}` } },
    id: gateway.id,
    environment: { id: call.envId },
    name: gateway.name,
    ...gateway.body,
    createdAt: new Date(gateway.createdAt).toISOString(),
    updatedAt: new Date(gateway.changedAt).toISOString(),
  };
}

export function registerGatewayRoutes(handle: Handle) {
  const base = "/environments/:envId/gateways";

  handle("GET", base, async (call) => {
    call.requireInstance("iam.policy.read");
    const gateways = (await call.deps.gateways.list(call.instanceId)).map((gateway) => gatewayResource(call, gateway));
    return { status: 200, body: { _links: { self: call.link("gateways") }, _embedded: { gateways }, count: gateways.length, size: gateways.length } };
  });

  handle("POST", base, async (call) => {
    call.accept("application/json");
    const body = call.json();
    call.requireInstance("iam.policy.write");
    const input = readGateway(body, undefined);
    await checkLookupPopulations(call, input.body);
    const created = await call.deps.gateways.create(call.instanceId, {
      id: randomUUID(),
      name: input.name,
      body: input.body,
      sealedSecret: call.deps.secretBox.seal(input.bindPassword!),
    });
    return { status: 201, body: gatewayResource(call, created) };
  });

  handle("GET", `${base}/:gatewayId`, async (call, params) => {
    call.requireInstance("iam.policy.read");
    return { status: 200, body: gatewayResource(call, await call.deps.gateways.get(call.instanceId, params.gatewayId!)) };
  });

  handle("PUT", `${base}/:gatewayId`, async (call, params) => {
    call.accept("application/json");
    const body = call.json();
    call.requireInstance("iam.policy.write");
    const previous = await call.deps.gateways.get(call.instanceId, params.gatewayId!);
    const input = readGateway(body, previous);
    await checkLookupPopulations(call, input.body);
    const updated = await call.deps.gateways.replace(call.instanceId, {
      id: previous.id,
      name: input.name,
      body: input.body,
      // PingOne never returns the bind password, so a PUT without one keeps it (Terraform keeps it from its state).
      ...(input.bindPassword !== undefined ? { sealedSecret: call.deps.secretBox.seal(input.bindPassword) } : {}),
    });
    return { status: 200, body: gatewayResource(call, updated) };
  });

  handle("DELETE", `${base}/:gatewayId`, async (call, params) => {
    call.requireInstance("iam.policy.write");
    await call.deps.gateways.remove(call.instanceId, params.gatewayId!);
    return { status: 204 };
  });
}
