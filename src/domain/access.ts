import { permissionDenied } from "./errors.js";

/** Who is calling: the owner of a valid token, with their role assignments. */
export interface Principal {
  instanceId: string;
  userId: string;
  /** The caller's own organisation (their resource owner): the default target of v1 calls. */
  orgId: string;
  /** Instance-level roles, e.g. IAM_OWNER. */
  instanceRoles: readonly string[];
  /** Roles per organisation id, e.g. ORG_OWNER. */
  orgRoles: ReadonlyMap<string, readonly string[]>;
}

const USER_MANAGEMENT = ["user.read", "user.write", "user.delete", "user.global.read"];
const READ_ONLY = ["user.read", "user.global.read"];

/**
 * ZITADEL's default role → permission mapping, for the user permissions userport checks.
 * IAM_* roles apply in every organisation of the instance, ORG_* roles in their own.
 */
export const ROLE_PERMISSIONS: Readonly<Record<string, readonly string[]>> = {
  IAM_OWNER: USER_MANAGEMENT,
  IAM_ORG_MANAGER: USER_MANAGEMENT,
  IAM_USER_MANAGER: USER_MANAGEMENT,
  IAM_OWNER_VIEWER: READ_ONLY,
  IAM_LOGIN_CLIENT: ["user.read", "user.write", "user.global.read"],
  ORG_OWNER: USER_MANAGEMENT,
  ORG_USER_MANAGER: USER_MANAGEMENT,
  ORG_OWNER_VIEWER: READ_ONLY,
};

/** True when one of the caller's roles grants `permission` in organisation `orgId`. */
export function hasPermission(principal: Principal, permission: string, orgId: string): boolean {
  const roles = [...principal.instanceRoles, ...(principal.orgRoles.get(orgId) ?? [])];
  return roles.some((role) => ROLE_PERMISSIONS[role]?.includes(permission));
}

export function requirePermission(principal: Principal, permission: string, orgId: string): void {
  if (!hasPermission(principal, permission, orgId)) {
    throw permissionDenied("AUTH-5mWD2", "No matching permissions found");
  }
}
