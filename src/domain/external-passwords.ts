import { PingOneErrors } from "./error-catalogue.js";
import type { PasswordDirectory } from "./ports.js";
import type { DirectoryObject } from "./directory-objects.js";
import { isDomainError } from "./errors.js";
import type { SecretBox } from "./secrets.js";
import type { User, UserStore, DirectoryStore } from "./ports.js";

/**
 * External passwords: users whose password lives in an LDAP directory reached through a gateway
 * (PingOne's "password.external.gateway", Platform API "Create User Import External Password"
 * and "LDAP gateways"). A gateway is a directory object of kind "gateway" whose body holds
 * PingOne's gateway JSON (serversHostAndPort, bindDN, connectionSecurity, validateTlsCertificates,
 * userTypes[]) and whose bind password is its sealed secret. A user's link to it (gateway, user
 * type, correlation attributes) is the metadata entry EXTERNAL_PASSWORD_KEY, written with the user.
 *
 * Only a user without a stored password consults its link (src/domain/sessions.ts), so native
 * sign-ins never pay for it. With the user type's passwordAuthority PING_ONE the first success
 * captures the password (hashed with the configured hasher; later checks never reach LDAP); with
 * LDAP it is never stored.
 */
export const EXTERNAL_PASSWORD_KEY = "pingone.password.external";

export type ConnectionSecurity = "None" | "TLS" | "StartTLS";
export type PasswordAuthority = "PING_ONE" | "LDAP";

export interface GatewayUserType {
  id: string;
  name: string;
  passwordAuthority: PasswordAuthority;
  searchBaseDn: string;
  orderedCorrelationAttributes: string[];
  newUserLookup: NewUserLookup | undefined;
}

/**
 * A user type's just-in-time migration (PingOne's `newUserLookup`, the Go SDK's
 * GatewayTypeLDAPAllOfNewUserLookup): a sign-in by a username no user has is looked up in the
 * directory with `ldapFilterPattern` (`${identifier}` standing for the username typed); when an
 * entry matches and the password binds as it, a user is created in the population, its
 * attributes taken from the entry by `attributeMappings` (PingOne attribute name → a value in
 * which `${ldapAttributes.<name>}` stands for the entry's attribute; one mapping is `username`).
 */
export interface NewUserLookup {
  ldapFilterPattern: string;
  populationId: string;
  attributeMappings: Array<{ name: string; value: string }>;
}

/** `${ldapAttributes.<attribute>}` in an attribute mapping's value. */
export const LDAP_ATTRIBUTE_REFERENCE = /\$\{ldapAttributes\.([A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)*)\}/g;

/** The LDAP attributes a mapping's value refers to. */
export function mappingAttributes(value: string): string[] {
  return [...value.matchAll(LDAP_ATTRIBUTE_REFERENCE)].map((match) => match[1]!);
}

/** A mapping's value for an entry; undefined when the entry has none of the attributes it refers to. */
export function mappedValue(value: string, attributes: Record<string, string>): string | undefined {
  let found = mappingAttributes(value).length === 0;
  const result = value.replace(LDAP_ATTRIBUTE_REFERENCE, (_, name: string) => {
    const inner = attributes[name];
    if (inner !== undefined) found = true;
    return inner ?? "";
  });
  return found && result.trim() !== "" ? result : undefined;
}

/** What creating a user found by a newUserLookup needs (src/pingone builds the user from it). */
export interface NewDirectoryUser {
  instanceId: string;
  populationId: string;
  /** The gateway, recorded as the creator of the user's events. */
  gatewayId: string;
  /** PingOne attribute name (`username`, `email`, `name.given`, …) → value, from the mappings. */
  attributes: Record<string, string>;
  link: ExternalPasswordLink;
}

/** How to reach a gateway's directory; `bindPassword` is opened from the sealed secret only for the check. */
export interface LdapConnection {
  /** Identifies the gateway's connection pool; changes whenever the gateway does. */
  key: string;
  servers: string[];
  security: ConnectionSecurity;
  validateTlsCertificates: boolean;
  bindDn: string;
  bindPassword: string;
}

export interface ExternalPasswordLink {
  gatewayId: string;
  userTypeId: string;
  /** LDAP attribute name → value (e.g. `{"uid": "jdoe"}`), tried in the user type's order. */
  correlationAttributes: Record<string, string>;
}

export interface ExternalPasswordsDeps {
  gateways: Pick<DirectoryStore, "getObject" | "listObjects">;
  metadata: Pick<UserStore, "listMetadata">;
  secretBox: SecretBox;
  directory: PasswordDirectory;
  /** The user a login name belongs to: the one a concurrent just-in-time migration created. */
  userIdByLoginName?(instanceId: string, loginName: string): Promise<string | undefined>;
}

/** The outcome of a check by a user's external authority; undefined from `verify` when the user has none. */
export type ExternalCheck = { matches: false } | { matches: true; capture: boolean; gatewayId: string; userTypeId: string };

const decoder = new TextDecoder();

/** Reads a stored link; undefined when absent or not a link (e.g. overwritten through the metadata API). */
export function parseExternalLink(bytes: Uint8Array): ExternalPasswordLink | undefined {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch {
    return undefined;
  }
  const gateway = (value as { gateway?: Record<string, unknown> } | null)?.gateway;
  if (!gateway || typeof gateway.id !== "string") return undefined;
  const userTypeId = (gateway.userType as { id?: unknown } | undefined)?.id;
  const correlation = gateway.correlationAttributes;
  if (typeof userTypeId !== "string" || !correlation || typeof correlation !== "object" || Array.isArray(correlation)) return undefined;
  const correlationAttributes: Record<string, string> = {};
  for (const [name, inner] of Object.entries(correlation)) {
    if (typeof inner === "string") correlationAttributes[name] = inner;
  }
  return { gatewayId: gateway.id, userTypeId, correlationAttributes };
}

/** A link as stored: PingOne's `password.external.gateway` object. */
export function externalLinkValue(link: ExternalPasswordLink): Record<string, unknown> {
  return { gateway: { id: link.gatewayId, type: "LDAP", userType: { id: link.userTypeId }, correlationAttributes: link.correlationAttributes } };
}

/** The user types of a stored gateway body. */
export function gatewayUserTypes(gateway: DirectoryObject): GatewayUserType[] {
  const types = Array.isArray(gateway.body.userTypes) ? (gateway.body.userTypes as Array<Record<string, unknown>>) : [];
  return types.map((type) => ({
    id: String(type.id),
    name: String(type.name ?? ""),
    passwordAuthority: type.passwordAuthority === "LDAP" ? "LDAP" : "PING_ONE",
    searchBaseDn: String(type.searchBaseDn ?? ""),
    orderedCorrelationAttributes: Array.isArray(type.orderedCorrelationAttributes) ? type.orderedCorrelationAttributes.map(String) : [],
    newUserLookup: readNewUserLookup(type.newUserLookup),
  }));
}

function readNewUserLookup(value: unknown): NewUserLookup | undefined {
  if (!value || typeof value !== "object") return undefined;
  const lookup = value as { ldapFilterPattern?: unknown; population?: { id?: unknown }; attributeMappings?: unknown };
  if (typeof lookup.ldapFilterPattern !== "string" || typeof lookup.population?.id !== "string" || !Array.isArray(lookup.attributeMappings)) return undefined;
  return {
    ldapFilterPattern: lookup.ldapFilterPattern,
    populationId: lookup.population.id,
    attributeMappings: (lookup.attributeMappings as Array<{ name?: unknown; value?: unknown }>).map((mapping) => ({
      name: String(mapping.name),
      value: String(mapping.value),
    })),
  };
}

export function createExternalPasswords(deps: ExternalPasswordsDeps) {
  /**
   * The gateways' connection settings as last read, with the bind password opened: the gateway
   * is read from the store on every check (so a change, made by this process or another, shows at
   * once), but its secret is opened and a new connection pool keyed only when its stored form
   * changed.
   */
  const connections = new Map<string, { stored: string; connection: LdapConnection }>();
  let versions = 0;
  /** Creates the user a newUserLookup found (src/pingone/wiring.ts provides it). */
  let createUser: ((user: NewDirectoryUser) => Promise<string>) | undefined;

  function connectionOf(instanceId: string, gateway: DirectoryObject): LdapConnection {
    const cacheKey = `${instanceId}/${gateway.id}`;
    const stored = JSON.stringify([gateway.changedAt, gateway.sealedSecret ?? "", gateway.body]);
    const cached = connections.get(cacheKey);
    if (cached?.stored === stored) return cached.connection;
    const body = gateway.body;
    const connection: LdapConnection = {
      // A new pool for each stored form (src/ldap/directory.ts closes the older ones).
      key: `${cacheKey}/${++versions}`,
      servers: Array.isArray(body.serversHostAndPort) ? body.serversHostAndPort.map(String) : [],
      security: body.connectionSecurity === "TLS" || body.connectionSecurity === "StartTLS" ? body.connectionSecurity : "None",
      validateTlsCertificates: body.validateTlsCertificates !== false,
      bindDn: String(body.bindDN ?? ""),
      bindPassword: gateway.sealedSecret === undefined ? "" : deps.secretBox.open(gateway.sealedSecret),
    };
    connections.set(cacheKey, { stored, connection });
    return connection;
  }

  /** The user's link, if its password is external. */
  async function link(user: Pick<User, "instanceId" | "id">): Promise<ExternalPasswordLink | undefined> {
    const entries = await deps.metadata.listMetadata(user.instanceId, user.id);
    const entry = entries.find((candidate) => candidate.key === EXTERNAL_PASSWORD_KEY);
    return entry && parseExternalLink(entry.value);
  }

  /**
   * Checks `password` against the directory of the user's gateway. Undefined when the user has no
   * external password; throws (nothing counted) when the gateway or directory cannot decide.
   */
  async function verify(user: Pick<User, "instanceId" | "id">, password: string): Promise<ExternalCheck | undefined> {
    const found = await link(user);
    if (!found) return undefined;
    const gateway = await deps.gateways.getObject(user.instanceId, "gateway", found.gatewayId);
    if (!gateway) throw PingOneErrors.gatewayMissing(found.gatewayId);
    if (gateway.body.enabled === false) throw PingOneErrors.gatewayDisabled(found.gatewayId);
    const userType = gatewayUserTypes(gateway).find((type) => type.id === found.userTypeId);
    if (!userType) throw PingOneErrors.userTypeMissing(gateway.id, found.userTypeId);
    // The user's correlation values, in the user type's order ("dn" names the entry itself).
    const order = [...userType.orderedCorrelationAttributes, "dn"];
    const correlation = order
      .filter((attribute, index) => order.indexOf(attribute) === index && found.correlationAttributes[attribute] !== undefined)
      .map((attribute): [string, string] => [attribute, found.correlationAttributes[attribute]!]);
    if (correlation.length === 0) {
      throw PingOneErrors.noCorrelationValue();
    }
    // An empty password would be an unauthenticated bind, which LDAP servers accept as anonymous.
    if (password === "") return { matches: false };
    const outcome = await deps.directory.verify(connectionOf(user.instanceId, gateway), { baseDn: userType.searchBaseDn, correlation }, password);
    if (outcome === "mismatch") return { matches: false };
    return { matches: true, capture: userType.passwordAuthority === "PING_ONE", gatewayId: gateway.id, userTypeId: userType.id };
  }

  /**
   * Just-in-time migration for a sign-in by `identifier`, which no user has: the enabled
   * gateways' user types with a newUserLookup are searched in order (gateways by creation, user
   * types as listed); the first whose directory has a matching entry decides. When the password
   * binds as that entry, the user is created (linked to the gateway, its attributes mapped from
   * the entry) and its id returned; a wrong password, or no entry anywhere, creates nothing and
   * returns undefined. A directory that cannot decide throws, as for a check.
   */
  async function provision(instanceId: string, identifier: string, password: string): Promise<string | undefined> {
    if (!createUser || password === "" || identifier.trim() === "") return undefined;
    const gateways = (await deps.gateways.listObjects(instanceId, "gateway")).filter((gateway) => gateway.body.enabled !== false);
    for (const gateway of gateways) {
      for (const userType of gatewayUserTypes(gateway)) {
        const lookup = userType.newUserLookup;
        if (!lookup) continue;
        const wanted = new Set([...userType.orderedCorrelationAttributes.filter((name) => name.toLowerCase() !== "dn")]);
        for (const mapping of lookup.attributeMappings) for (const name of mappingAttributes(mapping.value)) wanted.add(name);
        const found = await deps.directory.lookup(
          connectionOf(instanceId, gateway),
          { baseDn: userType.searchBaseDn, pattern: lookup.ldapFilterPattern, identifier, attributes: [...wanted] },
          password,
        );
        if (found.outcome === "none") continue;
        if (found.outcome === "mismatch") return undefined;
        const attributes: Record<string, string> = {};
        for (const mapping of lookup.attributeMappings) {
          const value = mappedValue(mapping.value, found.attributes);
          if (value !== undefined) attributes[mapping.name] = value;
        }
        const correlationAttributes: Record<string, string> = {};
        for (const name of userType.orderedCorrelationAttributes) {
          const value = found.attributes[name];
          if (value !== undefined) correlationAttributes[name] = value;
        }
        if (Object.keys(correlationAttributes).length === 0) correlationAttributes.dn = found.dn;
        try {
          return await createUser({
            instanceId,
            populationId: lookup.populationId,
            gatewayId: gateway.id,
            attributes,
            link: { gatewayId: gateway.id, userTypeId: userType.id, correlationAttributes },
          });
        } catch (err) {
          // Two first sign-ins at once: one creates the user, the other signs in as it.
          const existing =
            isDomainError(err) && err.kind === "AlreadyExists" && attributes.username !== undefined
              ? await deps.userIdByLoginName?.(instanceId, attributes.username)
              : undefined;
          if (existing === undefined) throw err;
          return existing;
        }
      }
    }
    return undefined;
  }

  return {
    link,
    verify,
    provision,
    /** Sets how a user found by a newUserLookup is created (the PingOne facade's mapping of attributes). */
    onNewUser(create: (user: NewDirectoryUser) => Promise<string>) {
      createUser = create;
    },
  };
}

export type ExternalPasswords = ReturnType<typeof createExternalPasswords>;
