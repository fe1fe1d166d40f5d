import { createHash } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Principal } from "../domain/access.js";
import { hasInstancePermission, hasPermission } from "../domain/access.js";
import type { DirectoryObjects, PopulationCommands } from "../domain/directory-objects.js";
import type { ExternalPasswords } from "../domain/external-passwords.js";
import type { PasswordCommands } from "../domain/passwords.js";
import type { SecretBox } from "../domain/secrets.js";
import type { SessionCommands } from "../domain/sessions.js";
import type { UserStore } from "../domain/ports.js";
import type { UserChangeCommands } from "../domain/user-changes.js";
import type { UserProfileCommands } from "../domain/user-profile.js";
import type { UserQueries } from "../domain/user-queries.js";
import type { UserStateCommands } from "../domain/user-states.js";
import type { UserCommands } from "../domain/users.js";
import { invalidData, MESSAGES, notFoundError, PingOneError, unsupportedMediaType } from "./errors.js";

/** What the PingOne facade calls: the same domain commands and queries ZITADEL's services use. */
export interface PingOneDeps {
  /** Base of the absolute URLs in `_links` (USERPORT_EXTERNAL_URL), without a trailing slash. */
  externalUrl: string;
  /** The caller behind `Authorization: Bearer <personal access token>`, as on ZITADEL's APIs. */
  authenticate(authorization: string | undefined): Promise<Principal>;
  users: UserCommands;
  states: UserStateCommands;
  changes: UserChangeCommands;
  profiles: UserProfileCommands;
  queries: UserQueries;
  populations: PopulationCommands;
  attributes: DirectoryObjects;
  /** LDAP gateways (directory objects of kind "gateway"). */
  gateways: DirectoryObjects;
  /** Seals a gateway's bindPassword. */
  secretBox: SecretBox;
  /** A user's external-password link, if any. */
  externalPasswords: Pick<ExternalPasswords, "link">;
  userStore: Pick<UserStore, "getUser" | "listMetadata">;
  passwords: PasswordCommands;
  sessions: SessionCommands;
  /** The lockout policy in force for an organisation's users. */
  lockoutPolicy(instanceId: string, orgId: string): Promise<{ maxPasswordAttempts: number }>;
  /** When the instance was created (the environment's `createdAt`). */
  instanceCreatedAt(instanceId: string): Promise<number>;
}

/** A name-based (version 5) UUID: the environment's and the user schema's ids, derived from the instance id. */
export function nameUuid(namespace: string, name: string): string {
  const hash = createHash("sha1").update(namespace).update("\u0000").update(name).digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const environmentIds = new Map<string, string>();
/** The environment's UUID (derived once per instance: every request compares it with the path's). */
export function environmentId(instanceId: string): string {
  let id = environmentIds.get(instanceId);
  if (id === undefined) {
    id = nameUuid("userport.environment", instanceId);
    environmentIds.set(instanceId, id);
  }
  return id;
}
export const userSchemaId = (instanceId: string) => nameUuid("userport.schema.user", instanceId);

/** The request as a handler sees it: the caller, the environment and helpers for the body. */
export class Call {
  readonly envId: string;
  constructor(
    readonly request: FastifyRequest,
    readonly reply: FastifyReply,
    readonly principal: Principal,
    readonly deps: PingOneDeps,
  ) {
    this.envId = environmentId(principal.instanceId);
  }

  get instanceId() {
    return this.principal.instanceId;
  }

  /** An absolute URL under the environment, e.g. `link("users", id)`. */
  link(...path: string[]): { href: string } {
    return { href: [`${this.deps.externalUrl}/v1/environments/${this.envId}`, ...path.map(encodeURIComponent)].join("/") };
  }

  /** The request's media type without parameters (`; charset=UTF-8`), lower-cased; "" when absent. */
  mediaType(): string {
    return (this.request.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  }

  /** Refuses (415) a media type outside `accepted`; returns the one given. */
  accept(...accepted: string[]): string {
    const type = this.mediaType();
    if (!accepted.includes(type)) throw unsupportedMediaType();
    return type;
  }

  /** The JSON body as an object; `{}` for an empty body when `optional`. */
  json(optional = false): Record<string, unknown> {
    const raw = this.request.body;
    const text = typeof raw === "string" ? raw : raw === undefined || raw === null ? "" : String(raw);
    if (text.trim() === "") {
      if (optional) return {};
      throw new PingOneError(400, "INVALID_DATA", MESSAGES.invalidData, [{ code: "REQUIRED_VALUE", target: "body", message: "A request body is required" }]);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new PingOneError(400, "INVALID_DATA", MESSAGES.invalidData, [
        { code: "INVALID_VALUE", target: "body", message: "The request body is not valid JSON" },
      ]);
    }
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
      throw invalidData("body", "The request body must be a JSON object");
    }
    return parsed as Record<string, unknown>;
  }

  /** Whether the caller holds `permission` on the organisation (population). */
  may(permission: string, orgId: string): boolean {
    return hasPermission(this.principal, permission, orgId);
  }

  require(permission: string, orgId: string): void {
    if (!this.may(permission, orgId)) {
      throw new PingOneError(403, "ACCESS_FAILED", MESSAGES.forbidden, [
        { code: "INSUFFICIENT_PERMISSIONS", target: "Authorization Credentials", message: `The caller lacks ${permission} on population ${orgId}` },
      ]);
    }
  }

  /** Instance-level permissions (an IAM_ role), for environment-wide objects. */
  requireInstance(permission: string): void {
    if (!hasInstancePermission(this.principal, permission)) {
      throw new PingOneError(403, "ACCESS_FAILED", MESSAGES.forbidden, [
        { code: "INSUFFICIENT_PERMISSIONS", target: "Authorization Credentials", message: `The caller lacks ${permission} on the environment` },
      ]);
    }
  }

  notFound(what: string): PingOneError {
    return notFoundError(`Unable to find ${what}.`);
  }
}
