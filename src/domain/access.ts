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
const USER_READ = ["user.read", "user.global.read"];
const ORG_MANAGEMENT = ["org.read", "org.write", "org.member.read", "org.member.write", "org.member.delete", "policy.read", "policy.write", "policy.delete"];
const IAM_POLICY = ["iam.policy.read", "iam.policy.write", "iam.policy.delete"];
/** The organisation's identity providers: owners, settings managers and instance-wide managers. */
const IDP_MANAGEMENT = ["org.idp.read", "org.idp.write"];
/** Sessions: owners and login clients create them; organisation managers read and end their users'. */
const SESSIONS = ["session.read", "session.write", "session.delete"];
const ORG_SESSIONS = ["session.read", "session.delete"];

/**
 * ZITADEL's default role → permission mapping (cmd/defaults.yaml InternalAuthZ), for the
 * permissions userport checks. IAM_* roles apply in every organisation of the instance, ORG_*
 * roles in their own.
 */
export const ROLE_PERMISSIONS: Readonly<Record<string, readonly string[]>> = {
  IAM_OWNER: [...USER_MANAGEMENT, ...ORG_MANAGEMENT, ...IDP_MANAGEMENT, "org.create", ...IAM_POLICY, ...SESSIONS],
  IAM_ORG_MANAGER: [...USER_MANAGEMENT, ...ORG_MANAGEMENT, ...IDP_MANAGEMENT, "org.create"],
  IAM_USER_MANAGER: [...USER_MANAGEMENT, "org.read", "org.member.read", "policy.read"],
  IAM_OWNER_VIEWER: [...USER_READ, "org.read", "org.member.read", "org.idp.read", "policy.read", "iam.policy.read", "session.read"],
  IAM_LOGIN_CLIENT: ["user.read", "user.write", "user.global.read", "org.read", "org.create", "policy.read", "iam.policy.read", ...SESSIONS],
  ORG_OWNER: [...USER_MANAGEMENT, ...ORG_MANAGEMENT, ...IDP_MANAGEMENT, ...ORG_SESSIONS],
  ORG_USER_MANAGER: [...USER_MANAGEMENT, "org.read", "policy.read", ...ORG_SESSIONS],
  ORG_OWNER_VIEWER: [...USER_READ, "org.read", "org.member.read", "org.idp.read", "policy.read", "session.read"],
  ORG_SETTINGS_MANAGER: ["org.read", "org.write", "org.member.read", ...IDP_MANAGEMENT, "policy.read", "policy.write", "policy.delete"],
  ORG_USER_PERMISSION_EDITOR: [...USER_READ, "org.read", "org.member.read", "policy.read"],
  ORG_PROJECT_PERMISSION_EDITOR: [...USER_READ, "org.read", "org.member.read", "policy.read"],
  ORG_PROJECT_CREATOR: ["user.global.read", "policy.read"],
  // Impersonation is not served; the roles can be granted and carry ZITADEL's permissions.
  ORG_ADMIN_IMPERSONATOR: ["admin.impersonation", "impersonation"],
  ORG_END_USER_IMPERSONATOR: ["impersonation"],
  // user.self.delete is for the auth API's RemoveMyUser, which userport does not serve.
  ORG_USER_SELF_MANAGER: ["policy.read", "user.self.delete"],
};

/** The roles that can be granted on an organisation (AddOrgMember): ZITADEL's ORG_ roles. */
export const ORG_ROLES: readonly string[] = Object.keys(ROLE_PERMISSIONS).filter((role) => role.startsWith("ORG_"));

/** True when one of the caller's roles grants `permission` in organisation `orgId`. */
export function hasPermission(principal: Principal, permission: string, orgId: string): boolean {
  const roles = [...principal.instanceRoles, ...(principal.orgRoles.get(orgId) ?? [])];
  return roles.some((role) => ROLE_PERMISSIONS[role]?.includes(permission));
}

/** True when one of the caller's instance-level roles grants `permission` (in every organisation). */
export function hasInstancePermission(principal: Principal, permission: string): boolean {
  return principal.instanceRoles.some((role) => ROLE_PERMISSIONS[role]?.includes(permission));
}

export function requirePermission(principal: Principal, permission: string, orgId: string): void {
  if (!hasPermission(principal, permission, orgId)) {
    throw permissionDenied("AUTH-5mWD2", "No matching permissions found");
  }
}
