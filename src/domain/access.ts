import { AuthErrors } from "./error-catalogue.js";

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

/** user.credential.write and user.passkey.write: passkey registration links (cmd/defaults.yaml). */
const USER_MANAGEMENT = ["user.read", "user.write", "user.delete", "user.global.read", "user.credential.write", "user.passkey.write"];
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
  // iam.write: admin ImportData (ZITADEL gives it to IAM_OWNER only).
  IAM_OWNER: [...USER_MANAGEMENT, ...ORG_MANAGEMENT, ...IDP_MANAGEMENT, "org.create", ...IAM_POLICY, ...SESSIONS, "iam.write"],
  IAM_ORG_MANAGER: [...USER_MANAGEMENT, ...ORG_MANAGEMENT, ...IDP_MANAGEMENT, "org.create"],
  IAM_USER_MANAGER: [...USER_MANAGEMENT, "org.read", "org.member.read", "policy.read"],
  IAM_OWNER_VIEWER: [...USER_READ, "org.read", "org.member.read", "org.idp.read", "policy.read", "iam.policy.read", "session.read"],
  IAM_LOGIN_CLIENT: [
    "user.read",
    "user.write",
    "user.global.read",
    "user.credential.write",
    "user.passkey.write",
    "org.read",
    "org.create",
    "policy.read",
    "iam.policy.read",
    ...SESSIONS,
  ],
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
    throw AuthErrors.noMatchingPermission();
  }
}

/**
 * The permission check ZITADEL's commands and v2 handlers run themselves (`authz.CheckPermission`,
 * internal/api/authz/permission.go), as opposed to the interceptor's check of the RPC's declared
 * permission ({@link requirePermission}, AUTH-5mWD2). ZITADEL leaves its key untranslated, so
 * clients see "Errors.PermissionDenied".
 */
export function requireCommandPermission(principal: Principal, permission: string, orgId: string): void {
  if (!hasPermission(principal, permission, orgId)) throw AuthErrors.permissionDenied();
}

/**
 * The user itself, or `permission` on the user's organisation: ZITADEL's checkPermissionUpdateUser
 * and the v2 read checks (internal/command/user_v2.go, internal/api/grpc/user/v2/query.go).
 */
export function requireSelfOrPermission(principal: Principal, permission: string, user: { id: string; orgId: string }): void {
  if (user.id !== principal.userId) requireCommandPermission(principal, permission, user.orgId);
}

/** A session as the bearer of its token would act through it (see {@link principalOfSession}). */
export interface SessionCredential {
  terminated: boolean;
  expiresAt: number | undefined;
  /** Whether a factor that authenticates the user was checked: a password or a TOTP code. */
  authenticated: boolean;
  /** The session's checked user as a caller, with the user's roles; undefined when there is none or it is not active. */
  principal: Principal | undefined;
}

/**
 * The caller a session token stands for, as ZITADEL's verifySessionToken
 * (internal/authz/repository/eventsourcing/eventstore/token_verifier.go) accepts it: the session's
 * user, acting with its own roles, while the session lives and has authenticated the user.
 *
 * - A session that does not exist or was deleted: the token is as invalid as an unknown one.
 * - Past its expiration: `AUTHZ-EGDo3` "session expired".
 * - No user or no authenticating factor checked (checkAuthentication): `AUTHZ-Kl3p0`.
 * - A user that is no longer active (deactivated, locked, removed) cannot call, as with
 *   personal access tokens.
 */
export function principalOfSession(session: SessionCredential | undefined, now: number): Principal {
  if (!session || session.terminated) throw AuthErrors.tokenInvalid();
  if (session.expiresAt !== undefined && session.expiresAt < now) throw AuthErrors.sessionExpired();
  if (!session.authenticated) throw AuthErrors.sessionNotAuthenticated();
  if (!session.principal) throw AuthErrors.tokenInvalid();
  return session.principal;
}
