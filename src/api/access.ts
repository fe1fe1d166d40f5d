import { type DescMethod, type DescService, getOption, hasOption } from "@bufbuild/protobuf";
import { createContextKey, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { options as v2Options } from "../../gen/zitadel/protoc_gen_zitadel/v2/options_pb.js";
import { auth_option as v1AuthOption } from "../../gen/zitadel/options_pb.js";
import type { Principal } from "../domain/access.js";
import type { CallerAccess, Target } from "../domain/authentication.js";
import { unauthenticated } from "../domain/errors.js";
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

export type { Target } from "../domain/authentication.js";

export interface Access {
  /**
   * The organisation an RPC acts on, checked to exist and checked against the RPC's permission:
   * the request's own organisation field (v2) first, else `x-zitadel-orgid`, else the caller's.
   */
  target(ctx: HandlerContext, requested?: { orgId?: string; orgDomain?: string }): Promise<Target>;
}

/** The Connect side of {@link CallerAccess}: callers from request headers, permissions from the RPC's options. */
export function createAccess(callerAccess: CallerAccess) {
  const access: Access = {
    async target(ctx, requested) {
      const principal = ctx.values.get(principalKey);
      if (!principal) throw unauthenticated("AUTH-7fs1e", "auth header missing");
      const permission = requiredPermission(ctx.method);
      return callerAccess.target(
        principal,
        { ...requested, contextOrgId: ctx.requestHeader.get("x-zitadel-orgid") ?? undefined },
        permission === "authenticated" ? "user.read" : permission,
      );
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
      if (method.methodKind === "bidi_streaming" || method.methodKind === "server_streaming") {
        // A stream's failures happen while it is iterated, after the handler returned.
        secured[method.localName] = async function* (req: unknown, ctx: HandlerContext) {
          try {
            ctx.values.set(principalKey, await callerAccess.authenticate(ctx.requestHeader.get("authorization")));
            yield* inner.call(impl, req, ctx) as AsyncIterable<unknown>;
          } catch (err) {
            throw toConnectError(err, logUnexpected);
          }
        };
        continue;
      }
      secured[method.localName] = async (req: unknown, ctx: HandlerContext) => {
        try {
          ctx.values.set(principalKey, await callerAccess.authenticate(ctx.requestHeader.get("authorization")));
          return await inner.call(impl, req, ctx);
        } catch (err) {
          throw toConnectError(err, logUnexpected);
        }
      };
    }
    return secured as ServiceImpl<S>;
  }

  return { access, secureService };
}
