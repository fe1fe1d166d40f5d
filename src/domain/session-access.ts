import { hasPermission, type Principal } from "./access.js";
import { AuthErrors, SessionErrors } from "./error-catalogue.js";
import type { SessionRecord } from "./ports.js";
import { tokenDigest } from "./secrets.js";

/** The permissions a session is read or ended with. */
export type SessionPermission = "session.read" | "session.delete";

/**
 * Whether the caller may read or delete a session without its token: the session is its own, or
 * it holds the permission on the user's organisation (or the instance); for reading, also when
 * it created the session. (ZITADEL's checkSessionTerminationPermission leaves the creator out.)
 */
export function mayAccessSession(principal: Principal, session: SessionRecord, permission: SessionPermission): boolean {
  return (
    (permission === "session.read" && session.creator === principal.userId) ||
    (session.userId !== "" && session.userId === principal.userId) ||
    hasPermission(principal, permission, session.userOrgId)
  );
}

/** The caller proves the session's token, or may access the session without it (see mayAccessSession). */
export function authorizeSessionAccess(principal: Principal, session: SessionRecord, token: string | undefined, permission: SessionPermission) {
  if (token !== undefined) {
    if (tokenDigest(token) !== session.tokenDigest) throw SessionErrors.tokenInvalid();
  } else if (!mayAccessSession(principal, session, permission)) {
    throw AuthErrors.permissionDenied();
  }
}

/**
 * The sessions a caller sees in a list: those it created, its own, and those of the
 * organisations it may read sessions in (all of them with the permission on the instance).
 */
export function visibleSessions(principal: Principal) {
  const all = hasPermission(principal, "session.read", "");
  const orgIds = all ? ("all" as const) : [...principal.orgRoles.keys()].filter((orgId) => hasPermission(principal, "session.read", orgId));
  return { creator: principal.userId, userId: principal.userId, orgIds };
}
