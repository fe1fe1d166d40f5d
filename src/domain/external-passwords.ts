import { PingOneErrors } from "./error-catalogue.js";
import type { PasswordDirectory } from "./ports.js";
import type { DirectoryObject } from "./directory-objects.js";
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
  gateways: Pick<DirectoryStore, "getObject">;
  metadata: Pick<UserStore, "listMetadata">;
  secretBox: SecretBox;
  directory: PasswordDirectory;
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
  }));
}

export function createExternalPasswords(deps: ExternalPasswordsDeps) {
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
    const outcome = await deps.directory.verify(
      {
        key: `${user.instanceId}/${gateway.id}/${gateway.changedAt}`,
        servers: Array.isArray(gateway.body.serversHostAndPort) ? gateway.body.serversHostAndPort.map(String) : [],
        security: gateway.body.connectionSecurity === "TLS" || gateway.body.connectionSecurity === "StartTLS" ? gateway.body.connectionSecurity : "None",
        validateTlsCertificates: gateway.body.validateTlsCertificates !== false,
        bindDn: String(gateway.body.bindDN ?? ""),
        bindPassword: gateway.sealedSecret === undefined ? "" : deps.secretBox.open(gateway.sealedSecret),
      },
      { baseDn: userType.searchBaseDn, correlation },
      password,
    );
    if (outcome === "mismatch") return { matches: false };
    return { matches: true, capture: userType.passwordAuthority === "PING_ONE", gatewayId: gateway.id, userTypeId: userType.id };
  }

  return { link, verify };
}

export type ExternalPasswords = ReturnType<typeof createExternalPasswords>;
