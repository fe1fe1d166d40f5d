import { AuthErrors } from "./error-catalogue.js";
import type { CredentialStore, ReplicaNotice, ReplicaNotices, RequestScoped, RequestState } from "./ports.js";
import { type Principal, principalOfSession, requirePermission } from "./access.js";
import { tokenDigest } from "./secrets.js";

/** Where a command acts and on whose behalf: what every domain command is given. */
export interface Target extends RequestScoped {
  instanceId: string;
  orgId: string;
  /** The calling user's id, recorded as the creator of events. */
  creator: string;
}

/** A target without an organisation: commands on the instance itself (a new organisation, the instance's policies). */
export type InstanceTarget = Omit<Target, "orgId">;

/** The organisation a call names: its own field (v2), else the `x-zitadel-orgid` context, else the caller's. */
export interface RequestedOrg {
  orgId?: string;
  orgDomain?: string;
  /** The organisation of the call's context (ZITADEL's `x-zitadel-orgid` header). */
  contextOrgId?: string;
}

export interface CallerAccess {
  /** The caller behind an `Authorization` header value: a personal access token, or a session token as ZITADEL accepts them. */
  authenticate(authorization: string | null | undefined): Promise<Principal>;
  /**
   * The organisation a call acts on, checked to exist and checked against `permission`
   * (ZITADEL's interceptor: AUTH-Bs7Ds for an unknown organisation, AUTH-5mWD2 without the permission),
   * for the commands of `request`.
   */
  target(principal: Principal, requested: RequestedOrg, permission: string, request: RequestState | undefined): Promise<Target>;
  /** Forgets remembered callers: called after every change that can affect one (a user's state, tokens, roles). */
  forgetCallers(): void;
  /** Forgets that an organisation exists: called when one is removed. */
  forgetOrg(instanceId: string, orgId: string): void;
}

const CALLER_CACHE_SIZE = 10_000;

/**
 * Authentication and the organisation check of every call, whatever the protocol.
 *
 * Callers by personal access token are remembered for at most `callerCacheMs` and never past the
 * token's expiry, and organisations once seen to exist: hashing the token and joining three tables
 * on every request is a tenth of an import's cost on SQLite, and on PostgreSQL these reads were
 * two of an import's three round trips before its write. Every change that can affect a caller
 * clears them through {@link CallerAccess.forgetCallers}. With `replicas` (several processes on
 * one PostgreSQL database), that change is also announced to every other replica, which forgets
 * as soon as the notice arrives (milliseconds; a caller refused on the replica that made the
 * change may pass once more on another meanwhile), and a replica that may have missed notices (its
 * listening connection is down) remembers nothing until it listens again.
 * A lookup that was under way while its replica forgot is not remembered: it may have read the
 * state from before the change.
 * Session tokens are read anew on every request, so a session that ends stops working at once.
 */
export function createCallerAccess(deps: { credentials: CredentialStore; now: () => number; callerCacheMs: number; replicas?: ReplicaNotices }): CallerAccess {
  const { credentials, now, callerCacheMs, replicas } = deps;
  const callers = new Map<string, { principal: Principal; until: number }>();
  const existingOrgs = new Set<string>();
  // Counts the times this replica forgot: a lookup remembers its answer only if none happened while it ran.
  let forgotten = 0;
  const remembering = () => callerCacheMs > 0 && (replicas === undefined || replicas.listening());
  const forget = (notice: ReplicaNotice) => {
    forgotten++;
    if (notice.forget === "org") existingOrgs.delete(`${notice.instanceId}/${notice.orgId}`);
    else {
      callers.clear();
      if (notice.forget === "everything") existingOrgs.clear();
    }
  };
  replicas?.onNotice(forget);
  const announce = (notice: ReplicaNotice) => {
    forget(notice);
    // A notice that cannot be sent (the database just went away) leaves the other replicas
    // remembering for at most callerCacheMs; the change itself is already committed.
    void replicas?.send(notice).catch(() => {});
  };

  async function orgOf(principal: Principal, requested: RequestedOrg): Promise<string> {
    // v2's organization.org_domain names an organisation by one of its verified domains.
    const byDomain = requested.orgDomain ? await credentials.orgOfVerifiedDomain(principal.instanceId, requested.orgDomain.trim().toLowerCase()) : undefined;
    if (requested.orgDomain && !byDomain) throw AuthErrors.orgNotFound();
    const orgId = byDomain ?? (requested.orgId || requested.contextOrgId || principal.orgId);
    const key = `${principal.instanceId}/${orgId}`;
    if (!existingOrgs.has(key)) {
      const before = forgotten;
      if (!(await credentials.orgExists(principal.instanceId, orgId))) throw AuthErrors.orgNotFound();
      if (remembering() && forgotten === before) existingOrgs.add(key);
    }
    return orgId;
  }

  return {
    async authenticate(authorization) {
      if (!authorization) throw AuthErrors.headerMissing();
      const token = /^Bearer\s+(\S+)$/i.exec(authorization)?.[1];
      if (token === undefined) throw AuthErrors.tokenInvalid();
      const at = now();
      const cached = callers.get(token);
      if (cached && cached.until > at) return cached.principal;
      const digest = tokenDigest(token);
      const before = forgotten;
      const found = await credentials.tokenOwner(digest, at);
      if (!found) return principalOfSession(await credentials.sessionCredential(digest), at);
      if (remembering() && forgotten === before) {
        if (callers.size >= CALLER_CACHE_SIZE) callers.delete(callers.keys().next().value!);
        callers.set(token, { principal: found.principal, until: Math.min(at + callerCacheMs, found.tokenExpiresAt) });
      }
      return found.principal;
    },
    async target(principal, requested, permission, request) {
      const orgId = await orgOf(principal, requested);
      requirePermission(principal, permission, orgId);
      return { instanceId: principal.instanceId, orgId, creator: principal.userId, request };
    },
    forgetCallers: () => announce({ forget: "callers" }),
    forgetOrg: (instanceId, orgId) => announce({ forget: "org", instanceId, orgId }),
  };
}
