import { randomUUID } from "node:crypto";
import type { DirectoryObject } from "../domain/directory-objects.js";
import { PingOneErrors } from "../domain/error-catalogue.js";
import { type ExternalPasswordLink, externalLinkValue, gatewayUserTypes, type NewDirectoryUser } from "../domain/external-passwords.js";
import type { HumanProfile } from "../domain/human.js";
import type { MetadataEntry, User } from "../domain/ports.js";
import type { ChangeTarget } from "../domain/user-states.js";
import type { Call, PingOneDeps } from "./context.js";
import { invalidData, MESSAGES, PingOneError } from "./errors.js";
import { parseUserFilter } from "./filter.js";
import type { Handle } from "./index.js";

/**
 * PingOne's user resource over ZITADEL's human user (PingOne Platform API "Users"; the Go SDK's
 * `User` model in pingone-go-sdk-v2 management/model_user.go).
 *
 * Mapping: `username` is the username (unique per instance, case-insensitively, through the same
 * claims ZITADEL's APIs use); `email`; `name.given`/`name.family` are the profile's given and
 * family names, `name.formatted` its display name, `nickname` its nick name, the first tag of
 * `preferredLanguage` its preferred language; `population.id` is the organisation; `enabled`
 * false is state INACTIVE, `account.status` LOCKED is state LOCKED. Every other attribute
 * (address, title, timezone, accountId, externalId, type, photo, locale, phones, the rest of
 * `name`, `preferredLanguage` as written, `mfaEnabled`, `lifecycle`, custom attributes) is a
 * metadata entry `pingone.<attribute>` holding its JSON, so ZITADEL's metadata APIs see it.
 */
export const METADATA_PREFIX = "pingone.";

/** Attributes kept as metadata, as PingOne names them. */
const METADATA_ATTRIBUTES = [
  "accountId",
  "address",
  "externalId",
  "locale",
  "mobilePhone",
  "primaryPhone",
  "photo",
  "timezone",
  "title",
  "type",
  "preferredLanguage",
] as const;
/** The parts of `name` ZITADEL's profile has no field for (formatted is also the display name). */
const NAME_EXTRAS = ["middle", "honorificPrefix", "honorificSuffix", "formatted"] as const;
/** Kept as metadata but written only through their own endpoints or on import ("password.external": the gateway link). */
const INTERNAL_ATTRIBUTES = ["mfaEnabled", "lifecycle", "password.external"] as const;
const isInternal = (key: string) => (INTERNAL_ATTRIBUTES as readonly string[]).includes(key);

export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Attributes of PingOne's user schema that are not custom (read-only ones are ignored on write). */
export const CORE_ATTRIBUTES = new Set<string>([
  "id",
  "_links",
  "_embedded",
  "environment",
  "population",
  "username",
  "email",
  "emailVerified",
  "name",
  "nickname",
  "password",
  "enabled",
  "account",
  "identityProvider",
  "verifyStatus",
  "createdAt",
  "updatedAt",
  "lastSignOn",
  "memberOfGroupIDs",
  "memberOfGroupNames",
  ...METADATA_ATTRIBUTES,
  ...INTERNAL_ATTRIBUTES,
]);

const STRING_LIMITS: Record<string, number> = {
  accountId: 1024,
  externalId: 1024,
  mobilePhone: 32,
  primaryPhone: 32,
  timezone: 256,
  title: 256,
  type: 256,
  preferredLanguage: 256,
  nickname: 256,
  email: 256,
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A user's metadata under the prefix, by attribute, as JSON values. */
export async function pingOneAttributes(call: Call, userId: string): Promise<Map<string, unknown>> {
  const entries = await call.deps.userStore.listMetadata(call.instanceId, userId);
  const attributes = new Map<string, unknown>();
  for (const entry of entries) {
    if (!entry.key.startsWith(METADATA_PREFIX)) continue;
    try {
      attributes.set(entry.key.slice(METADATA_PREFIX.length), JSON.parse(decoder.decode(entry.value)));
    } catch {
      // Written through ZITADEL's metadata API as something other than JSON: shown as text.
      attributes.set(entry.key.slice(METADATA_PREFIX.length), decoder.decode(entry.value));
    }
  }
  return attributes;
}

const dateTime = (ms: number) => new Date(ms).toISOString();

/** The user resource as PingOne returns it; attributes not set are left out (no nulls). */
export function userResource(call: Call, user: User, attributes: Map<string, unknown>): Record<string, unknown> {
  const self = call.link("users", user.id);
  const password = call.link("users", user.id, "password");
  const human = user.human;
  const name: Record<string, unknown> = {};
  if (human?.profile.givenName) name.given = human.profile.givenName;
  if (human?.profile.familyName) name.family = human.profile.familyName;
  const extras = attributes.get("name");
  if (extras && typeof extras === "object") Object.assign(name, extras);
  const resource: Record<string, unknown> = {
    _links: {
      self,
      environment: { href: `${call.deps.externalUrl}/v1/environments/${call.envId}` },
      population: call.link("populations", user.orgId),
      devices: call.link("users", user.id, "devices"),
      roleAssignments: call.link("users", user.id, "roleAssignments"),
      password,
      "password.reset": password,
      "password.set": password,
      "password.check": password,
      "password.recover": password,
      linkedAccounts: call.link("users", user.id, "linkedAccounts"),
      "account.sendVerificationCode": self,
      memberOfGroups: call.link("users", user.id, "memberOfGroups"),
    },
    id: user.id,
    environment: { id: call.envId },
    account: {
      canAuthenticate: user.state === "ACTIVE",
      status: user.state === "LOCKED" ? "LOCKED" : "OK",
    },
    createdAt: dateTime(user.createdAt),
  };
  if (human?.email.address) resource.email = human.email.address;
  if (human?.email.verified) resource.emailVerified = true;
  resource.enabled = user.state !== "INACTIVE";
  resource.identityProvider = { type: "PING_ONE" };
  const lifecycle = attributes.get("lifecycle");
  resource.lifecycle = { status: lifecycle && typeof lifecycle === "object" && "status" in lifecycle ? lifecycle.status : "ACCOUNT_OK" };
  resource.mfaEnabled = attributes.get("mfaEnabled") === true;
  if (Object.keys(name).length > 0) resource.name = name;
  if (human?.profile.nickName) resource.nickname = human.profile.nickName;
  resource.population = { id: user.orgId };
  resource.updatedAt = dateTime(user.changedAt);
  resource.username = user.username;
  resource.verifyStatus = "NOT_INITIATED";
  for (const [key, value] of attributes) {
    if (key === "name" || isInternal(key)) continue;
    if (value !== null && value !== undefined) resource[key] = value;
  }
  return resource;
}

/** The writable attributes of a body, checked, split into ZITADEL's fields and metadata entries. */
interface UserInput {
  username: string;
  email: string;
  profile: HumanProfile;
  metadata: MetadataEntry[];
}

function str(body: Record<string, unknown>, key: string, target = key): string | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw invalidData(target, `${target} must be a string`);
  const limit = STRING_LIMITS[key] ?? 256;
  if ([...value].length > limit) throw invalidData(target, `${target} must be at most ${limit} characters`, "SIZE_LIMIT_EXCEEDED");
  return value;
}

function checkAttribute(key: string, value: unknown): void {
  switch (key) {
    case "address":
    case "photo":
      if (typeof value !== "object" || value === null || Array.isArray(value)) throw invalidData(key, `${key} must be an object`);
      for (const [part, inner] of Object.entries(value)) {
        if (typeof inner !== "string") throw invalidData(`${key}.${part}`, `${key}.${part} must be a string`);
      }
      if (key === "address" && "countryCode" in value && !/^[A-Z]{2}$/.test(String(value.countryCode))) {
        throw invalidData("address.countryCode", "address.countryCode must be an ISO 3166-1 alpha-2 code", "INVALID_VALUE", { allowedPattern: "^[A-Z]{2}$" });
      }
      if (key === "photo" && "href" in value && !/^https?:\/\//i.test(String(value.href))) {
        throw invalidData("photo.href", "photo.href must be an absolute http or https URL");
      }
      return;
    case "locale":
      if (typeof value === "string") return;
      if (Array.isArray(value) && value.every((item) => typeof item === "string")) return;
      throw invalidData(key, "locale must be a string");
    case "timezone":
      if (typeof value !== "string" || !/^\w+\/[\w/+-]+$/.test(value)) {
        throw invalidData(key, "timezone must be an IANA time zone such as America/Los_Angeles", "INVALID_VALUE", { allowedPattern: "^\\w+\\/\\w+$" });
      }
      return;
    case "mobilePhone":
    case "primaryPhone":
      if (typeof value !== "string" || !/\d/.test(value)) throw invalidData(key, `${key} must contain at least one digit`);
      return;
    default:
      if (typeof value !== "string") throw invalidData(key, `${key} must be a string`);
  }
}

export const metadataEntry = (key: string, value: unknown): MetadataEntry => ({
  key: METADATA_PREFIX + key,
  value: encoder.encode(JSON.stringify(value)),
});

/**
 * Reads the writable attributes of a user body. Read-only attributes (id, enabled, account, …)
 * are ignored, not refused (PingOne's clients send them: the Go SDK always sends `email`, "" when
 * unset; Terraform sends `account`); unknown attributes are ignored unless the schema defines
 * them as custom attributes, as PingOne does.
 */
export function readUserInput(body: Record<string, unknown>, customAttributes: DirectoryObject[]): UserInput {
  const username = str(body, "username");
  if (username === undefined || username.trim() === "") {
    throw new PingOneError(400, "INVALID_DATA", MESSAGES.invalidData, [{ code: "REQUIRED_VALUE", target: "username", message: "username is required" }]);
  }
  if ([...username].length > 128) throw invalidData("username", "username must be at most 128 characters", "SIZE_LIMIT_EXCEEDED");
  const email = str(body, "email") ?? "";
  const nameValue = body.name;
  if (nameValue !== undefined && nameValue !== null && (typeof nameValue !== "object" || Array.isArray(nameValue))) {
    throw invalidData("name", "name must be an object");
  }
  const name = (nameValue ?? {}) as Record<string, unknown>;
  const given = str(name, "given", "name.given") ?? "";
  const family = str(name, "family", "name.family") ?? "";
  const formatted = str(name, "formatted", "name.formatted") ?? "";
  const nickname = str(body, "nickname") ?? "";
  const preferredLanguage = str(body, "preferredLanguage") ?? "";
  const metadata: MetadataEntry[] = [];
  const extras: Record<string, string> = {};
  for (const part of NAME_EXTRAS) {
    const value = str(name, part, `name.${part}`);
    if (value !== undefined) extras[part] = value;
  }
  if (Object.keys(extras).length > 0) metadata.push(metadataEntry("name", extras));
  for (const key of METADATA_ATTRIBUTES) {
    const value = body[key];
    if (value === undefined || value === null) continue;
    checkAttribute(key, value);
    if (typeof value === "string" && [...value].length > (STRING_LIMITS[key] ?? 256)) {
      throw invalidData(key, `${key} must be at most ${STRING_LIMITS[key] ?? 256} characters`, "SIZE_LIMIT_EXCEEDED");
    }
    metadata.push(metadataEntry(key, value));
  }
  for (const attribute of customAttributes) {
    const value = body[attribute.name];
    if (value === undefined || value === null || attribute.body.enabled === false) continue;
    if (attribute.body.multiValued === true && !Array.isArray(value)) {
      throw invalidData(attribute.name, `${attribute.name} is multi-valued: its value must be a JSON array`);
    }
    const type = attribute.body.type ?? "STRING";
    const items = Array.isArray(value) ? value : [value];
    for (const item of items) {
      if (type === "STRING" && typeof item !== "string") throw invalidData(attribute.name, `${attribute.name} must hold strings`);
      if (type === "BOOLEAN" && typeof item !== "boolean") throw invalidData(attribute.name, `${attribute.name} must hold booleans`);
    }
    metadata.push(metadataEntry(attribute.name, value));
  }
  // The first tag of an Accept-Language value ("en-gb;q=0.8, en;q=0.7") is the profile's language.
  const language = preferredLanguage.split(",")[0]!.split(";")[0]!.trim();
  return {
    username: username.trim(),
    email,
    profile: { givenName: given, familyName: family, nickName: nickname, displayName: formatted, preferredLanguage: language, gender: 0 },
    metadata,
  };
}

/** The writable view of a user, as a PUT body would restate it (for PATCH). */
function writableView(user: User, attributes: Map<string, unknown>): Record<string, unknown> {
  const view: Record<string, unknown> = { username: user.username };
  if (user.human?.email.address) view.email = user.human.email.address;
  const name: Record<string, unknown> = {};
  if (user.human?.profile.givenName) name.given = user.human.profile.givenName;
  if (user.human?.profile.familyName) name.family = user.human.profile.familyName;
  const extras = attributes.get("name");
  if (extras && typeof extras === "object") Object.assign(name, extras);
  view.name = name;
  if (user.human?.profile.nickName) view.nickname = user.human.profile.nickName;
  for (const [key, value] of attributes) {
    if (key !== "name" && !isInternal(key)) view[key] = value;
  }
  return view;
}

/** JSON merge of a PATCH: a value replaces, `null` clears, an object merges one level deep (name, address, photo). */
function mergePatch(view: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  const merged = { ...view };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete merged[key];
    else if (typeof value === "object" && !Array.isArray(value) && typeof merged[key] === "object" && merged[key] !== null && !Array.isArray(merged[key])) {
      const inner = { ...(merged[key] as Record<string, unknown>) };
      for (const [part, partValue] of Object.entries(value)) {
        if (partValue === null) delete inner[part];
        else inner[part] = partValue;
      }
      merged[key] = inner;
    } else merged[key] = value;
  }
  return merged;
}

const USER_MEDIA = {
  create: "application/json",
  import: "application/vnd.pingidentity.user.import+json",
  lock: "application/vnd.pingidentity.account.lock+json",
  unlock: "application/vnd.pingidentity.account.unlock+json",
};

/** A password value on import: `{SCHEME}…` is pre-encoded (checked by the hash registry), anything else cleartext. */
function readPassword(body: Record<string, unknown>): {
  password?: { plain: string } | { encodedHash: string };
  forceChange: boolean;
  external?: Record<string, unknown>;
} {
  const value = body.password;
  if (value === undefined || value === null) return { forceChange: false };
  if (typeof value !== "object" || Array.isArray(value)) throw invalidData("password", "password must be an object");
  const password = value as Record<string, unknown>;
  const forceChange = password.forceChange === true;
  if (password.forceChange !== undefined && typeof password.forceChange !== "boolean")
    throw invalidData("password.forceChange", "password.forceChange must be a boolean");
  if (password.external !== undefined && password.external !== null) {
    return { forceChange, external: password.external as Record<string, unknown> };
  }
  if (password.value === undefined || password.value === null) return { forceChange };
  if (typeof password.value !== "string" || password.value === "") {
    throw invalidData("password.value", "password.value must be a non-empty string", "EMPTY_VALUE");
  }
  return { password: /^\{[A-Za-z0-9_-]+\}/.test(password.value) ? { encodedHash: password.value } : { plain: password.value }, forceChange };
}

/**
 * `password.external.gateway` of an import ("Create User Import External Password"): an existing
 * LDAP gateway, one of its user types, and correlation attributes (LDAP attribute → value) of
 * which at least one is among the user type's orderedCorrelationAttributes (or is "dn").
 */
export async function readExternalLink(call: Call, external: Record<string, unknown>, body: Record<string, unknown>): Promise<ExternalPasswordLink> {
  const target = "password.external.gateway";
  const password = body.password as Record<string, unknown>;
  if (password.value !== undefined && password.value !== null) {
    throw invalidData("password.value", "password.value and password.external cannot both be set");
  }
  const gateway = external.gateway;
  if (typeof gateway !== "object" || gateway === null || Array.isArray(gateway)) {
    throw new PingOneError(400, "INVALID_DATA", MESSAGES.invalidData, [{ code: "REQUIRED_VALUE", target, message: `${target} is required` }]);
  }
  const { id, type, userType, correlationAttributes } = gateway as Record<string, unknown>;
  if (typeof id !== "string" || id === "") {
    throw new PingOneError(400, "INVALID_DATA", MESSAGES.invalidData, [
      { code: "REQUIRED_VALUE", target: `${target}.id`, message: "The gateway's id is required" },
    ]);
  }
  if (type !== undefined && type !== null && type !== "LDAP") {
    throw invalidData(`${target}.type`, "Only LDAP gateways hold passwords", "INVALID_VALUE", { allowedValues: ["LDAP"] });
  }
  const found = await call.deps.gateways.find(call.instanceId, id);
  if (!found) throw invalidData(`${target}.id`, `The gateway ${id} does not exist in this environment`, "INVALID_VALUE", { referencedValues: [id] });
  const userTypeId = (userType as { id?: unknown } | undefined)?.id;
  if (typeof userTypeId !== "string" || userTypeId === "") {
    throw new PingOneError(400, "INVALID_DATA", MESSAGES.invalidData, [
      { code: "REQUIRED_VALUE", target: `${target}.userType.id`, message: "The gateway's user type id is required" },
    ]);
  }
  const types = gatewayUserTypes(found);
  const chosen = types.find((candidate) => candidate.id === userTypeId);
  if (!chosen) {
    throw invalidData(`${target}.userType.id`, `The gateway ${id} has no user type ${userTypeId}`, "INVALID_VALUE", { allowedValues: types.map((t) => t.id) });
  }
  if (typeof correlationAttributes !== "object" || correlationAttributes === null || Array.isArray(correlationAttributes)) {
    throw new PingOneError(400, "INVALID_DATA", MESSAGES.invalidData, [
      { code: "REQUIRED_VALUE", target: `${target}.correlationAttributes`, message: "correlationAttributes is required" },
    ]);
  }
  const values: Record<string, string> = {};
  for (const [name, value] of Object.entries(correlationAttributes)) {
    if (typeof value !== "string" || value === "" || value.length > 1024) {
      throw invalidData(`${target}.correlationAttributes.${name}`, "A correlation attribute's value must be a non-empty string of at most 1024 characters");
    }
    values[name] = value;
  }
  const usable = [...chosen.orderedCorrelationAttributes, "dn"].filter((name) => values[name] !== undefined);
  if (usable.length === 0) {
    throw invalidData(
      `${target}.correlationAttributes`,
      `None of the user type's correlation attributes (${chosen.orderedCorrelationAttributes.join(", ")}) is given`,
      "INVALID_VALUE",
      {
        allowedValues: chosen.orderedCorrelationAttributes,
      },
    );
  }
  return { gatewayId: found.id, userTypeId: chosen.id, correlationAttributes: values };
}

/**
 * Creates the user a gateway's newUserLookup found in its directory (just-in-time migration,
 * src/domain/external-passwords.ts): the attribute mappings' values become the PingOne user body
 * (`name.given` → `{"name": {"given": …}}`), read as an import's body is (custom attributes only
 * when defined in the schema), with the gateway link as its external password. The gateway is
 * the creator of its events. A body the mappings make invalid is a FailedPrecondition naming the
 * attribute, never a half-made user.
 */
export async function createDirectoryUser(deps: Pick<PingOneDeps, "users" | "attributes">, found: NewDirectoryUser): Promise<string> {
  const body: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(found.attributes)) {
    const path = name.split(".");
    let at = body;
    for (const part of path.slice(0, -1)) {
      if (typeof at[part] !== "object" || at[part] === null) at[part] = {};
      at = at[part] as Record<string, unknown>;
    }
    at[path[path.length - 1]!] = value;
  }
  let input: UserInput;
  try {
    input = readUserInput(body, await deps.attributes.list(found.instanceId));
  } catch (err) {
    if (!(err instanceof PingOneError)) throw err;
    const detail = err.details[0];
    throw PingOneErrors.newUserInvalid(detail ? ` (${detail.target}: ${detail.message})` : "");
  }
  const created = await deps.users.createHuman({
    path: "pingone",
    instanceId: found.instanceId,
    orgId: found.populationId,
    creator: found.gatewayId,
    userId: randomUUID(),
    username: input.username,
    profile: input.profile,
    email: { address: input.email, verification: { kind: "none" } },
    passwordChangeRequired: false,
    passwordlessRegistration: false,
    metadata: [...input.metadata, metadataEntry("password.external", externalLinkValue(found.link))],
  });
  return created.user.id;
}

export function registerUserRoutes(handle: Handle) {
  const base = "/environments/:envId/users";

  async function loadUser(call: Call, userId: string, permission: string): Promise<User> {
    const user = await call.deps.userStore.getUser(call.instanceId, userId);
    // A user the caller may not read is "not found", as one that does not exist.
    if (user?.type !== "human" || !(call.may("user.read", user.orgId) || call.may(permission, user.orgId))) {
      throw call.notFound(`user with ID ${userId}`);
    }
    call.require(permission, user.orgId);
    return user;
  }

  const target = (call: Call): ChangeTarget => ({ instanceId: call.instanceId, orgId: undefined, creator: call.principal.userId, api: "v1" });

  async function resolvePopulation(call: Call, body: Record<string, unknown>, required: boolean): Promise<string> {
    const population = body.population as { id?: unknown } | undefined;
    const id = population && typeof population === "object" ? population.id : undefined;
    if (id === undefined || id === null || id === "") {
      if (required) {
        throw new PingOneError(400, "INVALID_DATA", MESSAGES.invalidData, [
          { code: "REQUIRED_VALUE", target: "population.id", message: "population.id is required" },
        ]);
      }
      return (await call.deps.populations.defaultOrgId(call.instanceId)) || call.principal.orgId;
    }
    if (typeof id !== "string") throw invalidData("population.id", "population.id must be a string");
    // An existence check only: listing the populations would count every user on each write.
    if (!(await call.deps.populations.exists(call.instanceId, id))) {
      throw invalidData("population.id", `The population ${id} does not exist in this environment`, "INVALID_VALUE", { referencedValues: [id] });
    }
    return id;
  }

  const customAttributes = (call: Call) => call.deps.attributes.list(call.instanceId);

  handle("POST", base, async (call) => {
    const media = call.accept(USER_MEDIA.create, USER_MEDIA.import);
    const body = call.json();
    const importing = media === USER_MEDIA.import;
    const input = readUserInput(body, await customAttributes(call));
    const orgId = await resolvePopulation(call, body, importing);
    call.require("user.write", orgId);
    const { password, forceChange, external } = readPassword(body);
    const metadata = [...input.metadata];
    if (external) metadata.push(metadataEntry("password.external", externalLinkValue(await readExternalLink(call, external, body))));
    if (body.mfaEnabled !== undefined) {
      if (typeof body.mfaEnabled !== "boolean") throw invalidData("mfaEnabled", "mfaEnabled must be a boolean");
      metadata.push(metadataEntry("mfaEnabled", body.mfaEnabled));
    }
    const lifecycle = body.lifecycle as { status?: unknown } | undefined;
    if (importing && lifecycle && typeof lifecycle === "object" && lifecycle.status !== undefined) {
      if (lifecycle.status !== "ACCOUNT_OK" && lifecycle.status !== "VERIFICATION_REQUIRED") {
        throw invalidData("lifecycle.status", "lifecycle.status must be ACCOUNT_OK or VERIFICATION_REQUIRED", "INVALID_VALUE", {
          allowedValues: ["ACCOUNT_OK", "VERIFICATION_REQUIRED"],
        });
      }
      metadata.push(metadataEntry("lifecycle", { status: lifecycle.status }));
    }
    const emailVerified = importing && body.emailVerified === true;
    const created = await call.deps.users.createHuman({
      path: "pingone",
      instanceId: call.instanceId,
      orgId,
      creator: call.principal.userId,
      userId: randomUUID(),
      username: input.username,
      profile: input.profile,
      email: { address: input.email, verification: emailVerified ? { kind: "verified" } : { kind: "none" } },
      ...(password ? { password } : {}),
      passwordChangeRequired: forceChange,
      passwordlessRegistration: false,
      metadata,
    });
    const attributes = new Map(metadata.map((entry) => [entry.key.slice(METADATA_PREFIX.length), JSON.parse(decoder.decode(entry.value)) as unknown]));
    return { status: 201, body: userResource(call, created.user, attributes) };
  });

  handle("GET", base, async (call) => {
    const query = call.request.query as Record<string, string | undefined>;
    const filter = query.filter === undefined || query.filter.trim() === "" ? undefined : parseUserFilter(query.filter);
    let limit = 200;
    if (query.limit !== undefined) {
      const parsed = Number(query.limit);
      if (!Number.isInteger(parsed) || parsed < 1) {
        throw invalidData("limit", "limit must be a positive integer", "OUT_OF_RANGE", { rangeMinimumValue: 1, rangeMaximumValue: 1000 });
      }
      // PingOne pages /users by 200 at most; clients read `size`, not the limit they asked for.
      limit = Math.min(parsed, 200);
    }
    let offset = 0;
    if (query.cursor !== undefined) {
      const decoded = /^[A-Za-z0-9_-]{1,64}$/.test(query.cursor)
        ? Number(Buffer.from(query.cursor, "base64url").toString("utf8").replace(/^o:/, ""))
        : Number.NaN;
      if (!Number.isInteger(decoded) || decoded < 0) throw invalidData("cursor", "The cursor is not one this service handed out");
      offset = decoded;
    }
    const page = await call.deps.queries.listReadableUsers(call.principal, {
      filters: [{ kind: "type", type: "human" }, ...(filter ? [filter] : [])],
      sort: "createdAt",
      asc: true,
      offset,
      limit,
    });
    const users = await Promise.all(page.users.map(async (user) => userResource(call, user, await pingOneAttributes(call, user.id))));
    const pageLink = (at: number) => {
      const params = new URLSearchParams();
      if (query.filter !== undefined) params.set("filter", query.filter);
      if (query.limit !== undefined) params.set("limit", query.limit);
      if (at > 0) params.set("cursor", Buffer.from(`o:${at}`).toString("base64url"));
      const search = params.toString();
      return { href: `${call.link("users").href}${search ? `?${search}` : ""}` };
    };
    const links: Record<string, { href: string }> = { self: pageLink(offset) };
    if (offset + users.length < page.total) links.next = pageLink(offset + users.length);
    if (offset > 0) links.prev = pageLink(Math.max(0, offset - limit));
    return { status: 200, body: { _links: links, _embedded: { users }, count: page.total, size: users.length } };
  });

  handle("GET", `${base}/:userId`, async (call, params) => {
    const user = await loadUser(call, params.userId!, "user.read");
    return { status: 200, body: userResource(call, user, await pingOneAttributes(call, user.id)) };
  });

  async function replace(call: Call, userId: string, body: Record<string, unknown>) {
    const input = readUserInput(body, await customAttributes(call));
    const attributes = await pingOneAttributes(call, userId);
    const keep = INTERNAL_ATTRIBUTES.filter((key) => attributes.has(key)).map((key) => metadataEntry(key, attributes.get(key)));
    const user = await call.deps.profiles.replaceHuman(target(call), userId, {
      username: input.username,
      email: input.email,
      profile: input.profile,
      metadata: [...input.metadata, ...keep],
      metadataPrefix: METADATA_PREFIX,
    });
    return { status: 200, body: userResource(call, user, await pingOneAttributes(call, user.id)) };
  }

  handle("PUT", `${base}/:userId`, async (call, params) => {
    call.accept("application/json");
    const body = call.json();
    await loadUser(call, params.userId!, "user.write");
    return replace(call, params.userId!, body);
  });

  handle("PATCH", `${base}/:userId`, async (call, params) => {
    call.accept("application/json");
    const patch = call.json();
    const user = await loadUser(call, params.userId!, "user.write");
    const view = writableView(user, await pingOneAttributes(call, user.id));
    return replace(call, user.id, mergePatch(view, patch));
  });

  handle("DELETE", `${base}/:userId`, async (call, params) => {
    const user = await loadUser(call, params.userId!, "user.delete");
    await call.deps.states.remove(target(call), user.id);
    return { status: 204 };
  });

  // Account lock and unlock share the user's URL, told apart by the media type.
  handle("POST", `${base}/:userId`, async (call, params) => {
    const media = call.accept(USER_MEDIA.lock, USER_MEDIA.unlock, USER_MEDIA.lock.replace("+json", ""), USER_MEDIA.unlock.replace("+json", ""));
    let user = await loadUser(call, params.userId!, "user.write");
    if (media.startsWith(USER_MEDIA.lock.replace("+json", ""))) {
      if (user.state === "INACTIVE") {
        throw new PingOneError(400, "REQUEST_FAILED", `${MESSAGES.requestFailed} A disabled user cannot be locked.`, [
          { code: "ACCOUNT_NOT_USABLE", target: "enabled", message: "The user is disabled" },
        ]);
      }
      if (user.state !== "LOCKED") user = await call.deps.states.lock(target(call), user.id);
    } else if (user.state === "LOCKED") {
      user = await call.deps.states.unlock(target(call), user.id);
    }
    return { status: 200, body: userResource(call, user, await pingOneAttributes(call, user.id)) };
  });

  const enabledBody = (call: Call, user: User) => ({
    _links: { self: call.link("users", user.id, "enabled"), user: call.link("users", user.id) },
    enabled: user.state !== "INACTIVE",
  });

  handle("GET", `${base}/:userId/enabled`, async (call, params) => {
    const user = await loadUser(call, params.userId!, "user.read");
    return { status: 200, body: enabledBody(call, user) };
  });

  handle("PUT", `${base}/:userId/enabled`, async (call, params) => {
    call.accept("application/json");
    const body = call.json();
    if (typeof body.enabled !== "boolean") throw invalidData("enabled", "enabled must be true or false", "REQUIRED_VALUE");
    let user = await loadUser(call, params.userId!, "user.write");
    if (body.enabled && user.state === "INACTIVE") user = await call.deps.states.reactivate(target(call), user.id);
    if (!body.enabled && user.state !== "INACTIVE") user = await call.deps.states.deactivate(target(call), user.id);
    return { status: 200, body: enabledBody(call, user) };
  });

  const mfaBody = (call: Call, user: User, enabled: boolean) => ({
    _links: { self: call.link("users", user.id, "mfaEnabled"), user: call.link("users", user.id) },
    mfaEnabled: enabled,
  });

  handle("GET", `${base}/:userId/mfaEnabled`, async (call, params) => {
    const user = await loadUser(call, params.userId!, "user.read");
    return { status: 200, body: mfaBody(call, user, (await pingOneAttributes(call, user.id)).get("mfaEnabled") === true) };
  });

  handle("PUT", `${base}/:userId/mfaEnabled`, async (call, params) => {
    call.accept("application/json");
    const body = call.json();
    if (typeof body.mfaEnabled !== "boolean") throw invalidData("mfaEnabled", "mfaEnabled must be true or false", "REQUIRED_VALUE");
    const user = await loadUser(call, params.userId!, "user.write");
    await call.deps.changes.setMetadata(target(call), user.id, [metadataEntry("mfaEnabled", body.mfaEnabled)], false);
    return { status: 200, body: mfaBody(call, user, body.mfaEnabled) };
  });

  const populationBody = (call: Call, user: User) => ({
    _links: { self: call.link("users", user.id, "population"), user: call.link("users", user.id), population: call.link("populations", user.orgId) },
    id: user.orgId,
  });

  handle("GET", `${base}/:userId/population`, async (call, params) => {
    const user = await loadUser(call, params.userId!, "user.read");
    return { status: 200, body: populationBody(call, user) };
  });

  handle("PUT", `${base}/:userId/population`, async (call, params) => {
    call.accept("application/json");
    const body = call.json();
    if (typeof body.id !== "string" || body.id === "") throw invalidData("id", "id of the population is required", "REQUIRED_VALUE");
    const user = await loadUser(call, params.userId!, "user.write");
    const orgId = await resolvePopulation(call, { population: { id: body.id } }, true);
    call.require("user.write", orgId);
    const moved = await call.deps.profiles.moveToOrg(target(call), user.id, orgId);
    return { status: 200, body: populationBody(call, moved) };
  });
}
