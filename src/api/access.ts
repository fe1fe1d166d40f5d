import { type DescMethod, type DescService, getOption, hasOption } from "@bufbuild/protobuf";
import { createContextKey, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { options as v2Options } from "../../gen/zitadel/protoc_gen_zitadel/v2/options_pb.js";
import { auth_option as v1AuthOption } from "../../gen/zitadel/options_pb.js";
import { type Principal, principalOfSession, requirePermission } from "../domain/access.js";
import { permissionDenied, unauthenticated } from "../domain/errors.js";
import { tokenDigest } from "../domain/secrets.js";
import { createPrincipalFinder, createSessionCredentialFinder } from "../store/access-store.js";
import type { Db } from "../store/db.js";
import { findOrg } from "../store/user-store.js";
import { type ErrorLogger, toConnectError } from "./errors.js";

/** The authenticated caller of the current RPC, set by {@link secureService}. */
export const principalKey = createContextKey<Principal | undefined>(undefined);

/**
 * The permission an RPC requires, as ZITADEL's protos declare it (v1 `zitadel.v1.auth_option`,
 * v2 `zitadel.protoc_gen_zitadel.v2.options`). "authenticated" means the RPC checks itself.
 */
function requiredPermission(method: DescMethod): string {
  let permission = permissionOfMethod.get(method);
  if (permission === undefined) {
    if (hasOption(method, v1AuthOption)) permission = getOption(method, v1AuthOption).permission;
    else if (hasOption(method, v2Options)) permission = getOption(method, v2Options).authOption?.permission ?? "authenticated";
    else permission = "authenticated";
    permissionOfMethod.set(method, permission);
  }
  return permission;
}

/** Options never change at run time, and decoding them on every call shows in profiles. */
const permissionOfMethod = new Map<DescMethod, string>();

/** Where a command acts and on whose behalf: what every domain command is given. */
export interface Target {
  instanceId: string;
  orgId: string;
  /** The calling user's id, recorded as the creator of events. */
  creator: string;
}

export interface Access {
  /**
   * The organisation an RPC acts on, checked to exist and checked against the RPC's permission:
   * the request's own organisation field (v2) first, else `x-zitadel-orgid`, else the caller's.
   */
  target(ctx: HandlerContext, requested?: { orgId?: string; orgDomain?: string }): Promise<Target>;
}

const CALLER_CACHE_MS = 1000;
const CALLER_CACHE_SIZE = 10_000;

export function createAccess(store: Db, now: () => number = Date.now) {
  // Organisations known to exist, by "<instance>/<org>". Removing one (PingOne's population
  // delete) clears it through forgetOrg. Replicas on PostgreSQL cannot clear each other's sets:
  // there every request looks the organisation up.
  const existingOrgs = new Set<string>();
  const cacheOrgs = store.dialect === "sqlite";
  const findPrincipal = createPrincipalFinder(store);
  const findSession = createSessionCredentialFinder(store);
  // Callers by token, reused for at most CALLER_CACHE_MS and never past the token's expiry:
  // hashing the token and joining three tables on every request is a tenth of an import's cost.
  // Every change that can affect a caller (a service user's state, its tokens, its roles) clears
  // the map through forgetCallers, so that such a change takes effect at once.
  // Replicas on PostgreSQL cannot clear each other's maps: there every request reads the caller.
  const callers = new Map<string, { principal: Principal; until: number }>();
  const cacheMs = store.dialect === "sqlite" ? CALLER_CACHE_MS : 0;

  async function authenticate(headers: Headers): Promise<Principal> {
    const authorization = headers.get("authorization");
    if (!authorization) throw unauthenticated("AUTH-7fs1e", "auth header missing");
    const token = /^Bearer\s+(\S+)$/i.exec(authorization)?.[1];
    const at = now();
    const cached = token === undefined ? undefined : callers.get(token);
    if (cached && cached.until > at) return cached.principal;
    if (token === undefined) throw unauthenticated("AUTH-Ws8Fe", "invalid or expired token");
    const digest = tokenDigest(token);
    const found = await findPrincipal(digest, at);
    // Not a personal access token: a session token (CreateSession's), as ZITADEL accepts them.
    // Its caller is read anew on every request, so a session that ends stops working at once.
    if (!found) return principalOfSession(await findSession(digest), at);
    if (cacheMs === 0) return found.principal;
    if (callers.size >= CALLER_CACHE_SIZE) callers.delete(callers.keys().next().value!);
    callers.set(token, { principal: found.principal, until: Math.min(at + cacheMs, found.tokenExpiresAt) });
    return found.principal;
  }

  /** The organisation that verified `domain` (verified domains are claimed instance-wide), or throws. */
  async function orgOfDomain(instanceId: string, domain: string): Promise<string> {
    const claim = await store.db
      .selectFrom("unique_constraints")
      .select("owner_id")
      .where("instance_id", "=", instanceId)
      .where("kind", "=", "org_domain")
      .where("value", "=", domain.trim().toLowerCase())
      .executeTakeFirst();
    if (!claim) throw permissionDenied("AUTH-Bs7Ds", "Organisation doesn't exist");
    return claim.owner_id;
  }

  const access: Access = {
    async target(ctx, requested) {
      const principal = ctx.values.get(principalKey);
      if (!principal) throw unauthenticated("AUTH-7fs1e", "auth header missing");
      // v2's organization.org_domain names an organisation by one of its verified domains.
      const byDomain = requested?.orgDomain ? await orgOfDomain(principal.instanceId, requested.orgDomain) : undefined;
      const orgId = byDomain ?? (requested?.orgId || ctx.requestHeader.get("x-zitadel-orgid") || principal.orgId);
      const orgKey = `${principal.instanceId}/${orgId}`;
      if (!existingOrgs.has(orgKey)) {
        if (!(await findOrg(store.db, principal.instanceId, orgId))) {
          throw permissionDenied("AUTH-Bs7Ds", "Organisation doesn't exist");
        }
        if (cacheOrgs) existingOrgs.add(orgKey);
      }
      const permission = requiredPermission(ctx.method);
      requirePermission(principal, permission === "authenticated" ? "user.read" : permission, orgId);
      return { instanceId: principal.instanceId, orgId, creator: principal.userId };
    },
  };

  /**
   * Wraps every method of a service so that it runs only for an authenticated caller (put in
   * the context under {@link principalKey}) and so that whatever it throws leaves as a
   * ZITADEL-shaped ConnectError. Used for Connect and REST alike.
   */
  function secureService<S extends DescService>(service: S, impl: ServiceImpl<S>, logUnexpected: ErrorLogger) {
    const secured: Record<string, unknown> = {};
    for (const method of service.methods) {
      const inner = (impl as Record<string, (req: unknown, ctx: HandlerContext) => unknown>)[method.localName];
      if (!inner) continue;
      secured[method.localName] = async (req: unknown, ctx: HandlerContext) => {
        try {
          ctx.values.set(principalKey, await authenticate(ctx.requestHeader));
          return await inner.call(impl, req, ctx);
        } catch (err) {
          throw toConnectError(err, logUnexpected);
        }
      };
    }
    return secured as ServiceImpl<S>;
  }

  return {
    access,
    secureService,
    forgetCallers: () => callers.clear(),
    /** An organisation was removed: it no longer passes the existence check (and its members' roles are gone). */
    forgetOrg: (instanceId: string, orgId: string) => {
      existingOrgs.delete(`${instanceId}/${orgId}`);
      callers.clear();
    },
  };
}
