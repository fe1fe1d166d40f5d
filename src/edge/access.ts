import { AuthErrors } from "../domain/error-catalogue.js";
import { type DescMethod, type DescService, getOption, hasOption } from "@bufbuild/protobuf";
import { createContextKey, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { options as v2Options } from "../../gen/zitadel/protoc_gen_zitadel/v2/options_pb.js";
import { auth_option as v1AuthOption } from "../../gen/zitadel/options_pb.js";
import type { Principal } from "../domain/access.js";
import type { CallerAccess, Target } from "../domain/authentication.js";
import { requestOf } from "./calls.js";
import { type ErrorLog, toConnectError } from "./errors.js";
import { compileValidator, validateMessage } from "./validation.js";

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

type Requested = { orgId?: string; orgDomain?: string };

/**
 * How the wrapper finds the organisation of an RPC whose options declare a permission, or
 * undefined for an RPC that checks itself ("authenticated"). ZITADEL's auth interceptor
 * (internal/api/grpc/server/middleware/auth_interceptor.go → internal/api/authz) checks a
 * declared permission before anything else looks at the request: v1 `zitadel.v1.auth_option`
 * on the context organisation (the admin API's requests name it in `org_id`), v2
 * `auth_option` with an `org_field` on the organisation that request field names. v2 RPCs
 * without an `org_field` check their permission in the command, after validation.
 */
function declaredCheckOf(method: DescMethod): ((req: Record<string, unknown>) => Requested | undefined) | undefined {
  if (declaredChecks.has(method)) return declaredChecks.get(method);
  let check: ((req: Record<string, unknown>) => Requested | undefined) | undefined;
  const permission = requiredPermission(method);
  if (permission !== "authenticated" && hasOption(method, v1AuthOption)) {
    const orgField = method.input.fields.find((f) => f.name === "org_id" && f.fieldKind === "scalar");
    check = orgField
      ? (req) => {
          const orgId = req[orgField.localName] as string;
          return orgId === "" ? undefined : { orgId };
        }
      : () => undefined;
  } else if (permission !== "authenticated" && hasOption(method, v2Options)) {
    const orgFieldName = getOption(method, v2Options).authOption?.orgField ?? "";
    const orgField = method.input.fields.find((f) => f.name === orgFieldName && f.fieldKind === "message");
    if (orgField) {
      check = (req) => {
        const org = (req[orgField.localName] as { org?: { case?: string; value?: string } } | undefined)?.org;
        if (org?.case === "orgId") return { orgId: org.value! };
        if (org?.case === "orgDomain") return { orgDomain: org.value! };
        return undefined;
      };
    }
  }
  declaredChecks.set(method, check);
  return check;
}

const declaredChecks = new Map<DescMethod, ((req: Record<string, unknown>) => Requested | undefined) | undefined>();

/** The organisation the wrapper already checked for the current RPC (see {@link declaredCheckOf}). */
const checkedTargetKey = createContextKey<Target | undefined>(undefined);

export type { Target } from "../domain/authentication.js";

export interface Access {
  /**
   * The organisation an RPC acts on, checked to exist and checked against the RPC's permission:
   * the request's own organisation field (v2) first, else `x-zitadel-orgid`, else the caller's.
   */
  target(ctx: HandlerContext, requested?: Requested): Promise<Target>;
}

/** The Connect side of {@link CallerAccess}: callers from request headers, permissions from the RPC's options. */
export function createAccess(callerAccess: CallerAccess) {
  const access: Access = {
    async target(ctx, requested) {
      const checked = ctx.values.get(checkedTargetKey);
      if (checked) return checked;
      const principal = ctx.values.get(principalKey);
      if (!principal) throw AuthErrors.headerMissing();
      const permission = requiredPermission(ctx.method);
      return callerAccess.target(
        principal,
        { ...requested, contextOrgId: ctx.requestHeader.get("x-zitadel-orgid") ?? undefined },
        permission === "authenticated" ? "user.read" : permission,
        requestOf(ctx),
      );
    },
  };

  /**
   * Wraps every method of a service in ZITADEL's interceptor order: the caller is authenticated
   * (and put in the context under {@link principalKey}); an RPC that declares a permission has
   * its organisation checked to exist and the permission checked on it (AUTH-5mWD2), as
   * `access.target` does, which then answers that organisation; the request is validated against
   * its protos' PGV rules (src/edge/validation.ts); then the handler runs. Whatever is thrown
   * leaves as a ZITADEL-shaped ConnectError, an unexpected error logged to `logOf(ctx)` (the
   * request's logger). Used for Connect and REST alike.
   */
  function secureService<S extends DescService>(service: S, impl: ServiceImpl<S>, logOf: (ctx: HandlerContext) => ErrorLog) {
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
            throw toConnectError(err, logOf(ctx));
          }
        };
        continue;
      }
      // Compiled now, so that an annotation the validator does not know fails at start-up.
      compileValidator(method.input);
      const declaredCheck = declaredCheckOf(method);
      secured[method.localName] = async (req: unknown, ctx: HandlerContext) => {
        try {
          ctx.values.set(principalKey, await callerAccess.authenticate(ctx.requestHeader.get("authorization")));
          if (declaredCheck) {
            ctx.values.set(checkedTargetKey, await access.target(ctx, declaredCheck(req as Record<string, unknown>)));
          }
          validateMessage(method.input, req as never);
          return await inner.call(impl, req, ctx);
        } catch (err) {
          throw toConnectError(err, logOf(ctx));
        }
      };
    }
    return secured as ServiceImpl<S>;
  }

  return { access, secureService };
}
